"""Benchmark: many writer processes logging short runs into one store, then maintenance.

    python jobs/bench_writers.py                          # 32 processes x 1,000 runs
    python jobs/bench_writers.py --processes 4 --runs 50  # a quick try
    python jobs/bench_writers.py --run-seconds 0.05       # runs that take time: more commits

Every writer is its own process (``spawn``: deltalake breaks in forked processes). All import
sparktrack first, then start together and log short runs through the fluent API into ONE local
store: start a run, 3 params, 3 metrics at steps 0..2, a tag, end; then ``flush()``. Timed from
the common start until the last writer's flush returned: everything is on disk by then.
A writer commits its buffer about once a second (the flush interval), so the number of files a
table gets depends on how long the writers log, not on how many runs they log: ``--run-seconds``
makes each run take that long (a sleep inside the run) to see many commits.

Then a reader checks every run (present, FINISHED, its params, tag, latest metric values and
every history point) and prints ``lost: 0`` or the exact losses. Reported before and after
maintenance (compact, checkpoint, vacuum with 0 hours retention, materialize ``runs_latest``,
each step timed): the data files and log length of every table, the store's size on disk and
search times (a filtered, ordered search, first 100 runs) measured as ``jobs/bench_search.py``
does: *first* (nothing in memory, no saved state valid for the tables: the state saved before
compaction covers files compaction removed, so the first search after it rebuilds), *new
process* (starts from the saved state) and *warm* (state in memory). The store is a temporary
folder, removed at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["main", "run"]

PARAM_KEYS = ("worker", "index", "lr")
METRIC_KEYS = ("loss", "accuracy", "f1")
STEPS = 3  # points per metric per run
TAG = ("bench", "writers")
FILTER = "metrics.loss < 0.3 AND params.lr = '0.003'"
ORDER = ["metrics.accuracy DESC"]
VERIFY_LIMIT = 100_000  # the verification reads every run in one search frame
STATE_FOLDER = "_search_state"  # the saved search state (a cache beside the tables)


# -- what each run holds: a function of (worker, index), so the reader can check every value --
def _run_name(worker: int, index: int) -> str:
    return f"w{worker}-r{index}"


def _params(worker: int, index: int) -> dict[str, str]:
    return {"worker": str(worker), "index": str(index), "lr": f"0.00{1 + index % 5}"}


def _metric(key: str, worker: int, index: int, step: int) -> float:
    # Spread over (0, 1), never 0: every step of every metric has its own value.
    base = ((worker * 7919 + index * 104729) % 1000 + 1) / 1002
    if key == "loss":
        return round(base / (step + 1), 6)
    if key == "accuracy":
        return round(1 - base / (step + 2), 6)
    return round((1 - base) * (step + 1) / STEPS, 6)


# -- the writer processes ----------------------------------------------------------------------
def _writer(root: str, experiment_id: str, worker: int, runs: int, progress_every: int,
            run_seconds: float, messages, go) -> None:
    """Log ``runs`` short runs into ``root``; report progress on ``messages`` as
    ``(kind, worker, runs logged, seconds)`` (seconds: the final flush's, in "done")."""
    import sparktrack

    sparktrack.set_tracking_uri(root)
    sparktrack.set_experiment(experiment_id=experiment_id)
    messages.put(("ready", worker, 0, 0.0))
    go.wait()  # every writer has imported and opened the store: start together
    for index in range(runs):
        with sparktrack.start_run(run_name=_run_name(worker, index)):
            if run_seconds:
                time.sleep(run_seconds)  # the run's "training", before its results are logged
            sparktrack.log_params(_params(worker, index))
            for step in range(STEPS):
                sparktrack.log_metrics(
                    {key: _metric(key, worker, index, step) for key in METRIC_KEYS}, step=step
                )
            sparktrack.set_tag(*TAG)
        if (index + 1) % progress_every == 0 or index + 1 == runs:
            messages.put(("progress", worker, index + 1, 0.0))
    flush_started = time.perf_counter()
    sparktrack.flush()
    messages.put(("done", worker, runs, time.perf_counter() - flush_started))


def _start_writers(root: str, experiment_id: str, *, processes: int, runs: int,
                   progress_every: int, run_seconds: float):
    context = multiprocessing.get_context("spawn")
    messages, go = context.Queue(), context.Event()
    writers = [
        context.Process(target=_writer, name=f"bench-writer-{worker}",
                        args=(root, experiment_id, worker, runs, progress_every, run_seconds,
                              messages, go))
        for worker in range(processes)
    ]
    for writer in writers:
        writer.start()
    return writers, messages, go


def _next_message(messages, writers) -> tuple | None:
    """The next writer message, or None for a quiet second; raises if a writer died."""
    try:
        return messages.get(timeout=1.0)
    except queue.Empty:
        dead = [w for w in writers if w.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(
                "writer process(es) failed: "
                + ", ".join(f"{w.name} exit code {w.exitcode}" for w in dead)
            ) from None
        return None


def _write(root: str, experiment_id: str, *, processes: int, runs: int, progress_every: int,
           run_seconds: float, print_fn: Callable[[str], None]) -> dict:
    """Run the writers; return the wall time (common start to last flush), when the last run
    was logged (buffered), the longest final flush and the writers' exit codes."""
    writers, messages, go = _start_writers(root, experiment_id, processes=processes, runs=runs,
                                           progress_every=progress_every,
                                           run_seconds=run_seconds)
    try:
        ready = 0
        while ready < processes:
            message = _next_message(messages, writers)
            ready += message is not None and message[0] == "ready"
        print_fn(f"  {processes} writers ready (imported, store open): start")
        started = time.perf_counter()
        go.set()
        logged, done, last_print, final_flush = [0] * processes, 0, started, 0.0
        all_logged = None
        while done < processes:
            message = _next_message(messages, writers)
            if message is not None:
                kind, worker, count, seconds = message
                logged[worker] = count
                done += kind == "done"
                final_flush = max(final_flush, seconds)
            now = time.perf_counter()
            if all_logged is None and sum(logged) == processes * runs:
                all_logged = now - started
                print_fn(f"  every run logged after {all_logged:.1f} s; {done} writers flushed")
            if now - last_print >= 10 and done < processes:
                total = sum(logged)
                print_fn(f"  {total:,} / {processes * runs:,} runs logged, {done} writers "
                         f"flushed, {now - started:.0f} s ({total / (now - started):,.0f} runs/s)")
                last_print = now
        wall = time.perf_counter() - started
        for writer in writers:
            writer.join(timeout=120)
        return {"wall_s": wall, "logged_s": all_logged, "final_flush_max_s": final_flush,
                "exit_codes": [writer.exitcode for writer in writers]}
    finally:
        for writer in writers:  # only on an error above: never leave a writer behind
            if writer.is_alive():
                writer.terminate()
                writer.join(timeout=30)


# -- checking what was written -----------------------------------------------------------------
def _verify(client, experiment_id: str, *, processes: int, runs: int) -> dict[str, int]:
    """What the store lost, counted over every expected run (a missing run loses its params,
    tag and points too); ``extra`` counts runs or points no writer logged (duplicates)."""
    frame = client.search_runs_frame(experiment_id, max_results=VERIFY_LIMIT)
    by_name = {name: row for name, row in zip(frame["tags.mlflow.runName"],
                                              frame.to_dict("records"))}
    lost = {"runs": 0, "status": 0, "params": 0, "tags": 0, "latest": 0, "points": 0,
            "extra": len(frame) - len(by_name)}
    expected_names = set()
    for worker in range(processes):
        for index in range(runs):
            name = _run_name(worker, index)
            expected_names.add(name)
            row = by_name.get(name)
            if row is None:
                lost["runs"] += 1
                lost["params"] += len(PARAM_KEYS)
                lost["tags"] += 1
                lost["latest"] += len(METRIC_KEYS)
                lost["points"] += len(METRIC_KEYS) * STEPS
                continue
            lost["status"] += row["status"] != "FINISHED"
            lost["params"] += sum(row.get(f"params.{key}") != value
                                  for key, value in _params(worker, index).items())
            lost["tags"] += row.get(f"tags.{TAG[0]}") != TAG[1]
            lost["latest"] += sum(row.get(f"metrics.{key}") != _metric(key, worker, index,
                                                                       STEPS - 1)
                                  for key in METRIC_KEYS)
    lost["extra"] += len(set(by_name) - expected_names)
    present = {name: row["run_id"] for name, row in by_name.items() if name in expected_names}
    for key in METRIC_KEYS:
        histories = client.get_metric_histories(list(present.values()), key)
        for name, run_id in present.items():
            worker, index = (int(part) for part in name[1:].split("-r"))
            got = [(point.step, point.value) for point in histories[run_id]]
            wanted = [(step, _metric(key, worker, index, step)) for step in range(STEPS)]
            lost["points"] += sum(point not in got for point in wanted)
            lost["extra"] += max(0, len(got) - len(wanted))
    return lost


def _lost_line(lost: dict[str, int]) -> str:
    if not any(lost.values()):
        return "lost: 0"
    return "lost: " + ", ".join(f"{key} {count:,}" for key, count in lost.items() if count)


# -- the store's layout on disk ----------------------------------------------------------------
def _tables(root: str) -> dict[str, dict[str, int]]:
    """Data files and log length (versions) of each table that exists."""
    from deltalake import DeltaTable

    from sparktrack.schemas import REGISTRY_TABLES, TABLES

    stats = {}
    for name in [*TABLES, *REGISTRY_TABLES, "runs_latest"]:
        path = os.path.join(root, name)
        if DeltaTable.is_deltatable(path):
            table = DeltaTable(path)
            stats[name] = {"files": len(table.file_uris()), "versions": table.version() + 1}
    return stats


def _folder_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _sizes(root: str) -> dict[str, int]:
    """Bytes on disk: the tables logging writes (data files, removed or not, and logs), the
    saved search state beside them and the materialized ``runs_latest``."""
    state = _folder_bytes(os.path.join(root, STATE_FOLDER))
    latest = _folder_bytes(os.path.join(root, "runs_latest"))
    return {"tables_bytes": _folder_bytes(root) - state - latest, "search_state_bytes": state,
            "runs_latest_bytes": latest}


# -- search times ------------------------------------------------------------------------------
def _search_times(client, experiment_id: str, *, repeat: int) -> dict[str, float]:
    """first / new process / warm, as in jobs/bench_search.py (best of ``repeat`` for the last
    two)."""
    from sparktrack._store import open_store

    store = open_store(client.store_root)  # the client's store: its caches are what is timed

    def search() -> int:
        return len(client.search_runs(experiment_id, FILTER, order_by=ORDER, max_results=100))

    def timed() -> tuple[float, int]:
        start = time.perf_counter()
        found = search()
        return time.perf_counter() - start, found

    store.release_caches()
    first, matched = timed()
    restart = []
    for _ in range(repeat):
        store.release_caches()  # as a new process: only the saved state (not timed)
        restart.append(timed()[0])
    warm = [timed()[0] for _ in range(repeat)]
    return {"first_s": first, "new_process_s": min(restart), "warm_s": min(warm),
            "matched": matched}


# -- maintenance -------------------------------------------------------------------------------
def _maintain(root: str) -> dict[str, float]:
    """Each maintenance step, timed. Vacuum keeps nothing (0 hours): no writer is running and
    no reader needs the removed files, so the store's size after is what compaction leaves."""
    from sparktrack.maintenance import Maintenance

    maintenance = Maintenance(root)
    steps = {
        "compact": maintenance.compact,
        "checkpoint": maintenance.checkpoint,
        "vacuum": lambda: maintenance.vacuum(retention_hours=0),
        "materialize": maintenance.materialize_runs_latest,
    }
    seconds = {}
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - start
    return seconds


# -- the job -----------------------------------------------------------------------------------
def _check_sizes(*, processes: int, runs: int, repeat: int, progress_every: int,
                 run_seconds: float) -> None:
    from sparktrack.errors import InvalidInputError

    if min(processes, runs, repeat, progress_every) < 1 or run_seconds < 0:
        raise InvalidInputError(
            f"processes ({processes}), runs ({runs}), repeat ({repeat}) and progress_every "
            f"({progress_every}) must be >= 1 and run_seconds ({run_seconds}) >= 0."
        )
    if processes * runs > VERIFY_LIMIT:
        raise InvalidInputError(
            f"processes x runs is {processes * runs:,}, more than {VERIFY_LIMIT:,}: the "
            "verification reads every run in one search. Use fewer processes or runs."
        )


def run(
    *,
    print_fn: Callable[[str], None] = print,
    processes: int = 32,
    runs: int = 1_000,
    repeat: int = 3,
    progress_every: int = 100,
    run_seconds: float = 0.0,
) -> dict:
    """Write, verify, maintain, verify again; print the figures and return them."""
    _check_sizes(processes=processes, runs=runs, repeat=repeat,
                 progress_every=progress_every, run_seconds=run_seconds)
    from sparktrack import TrackingClient

    folder = tempfile.mkdtemp(prefix="bench-writers-")
    try:
        client = TrackingClient(folder)
        experiment_id = client.create_experiment("bench-writers")
        client.flush()
        print_fn(f"{processes} writer processes x {runs:,} runs into {folder} ...")
        written = _write(folder, experiment_id, processes=processes, runs=runs,
                         progress_every=progress_every, run_seconds=run_seconds,
                         print_fn=print_fn)
        total_runs = processes * runs
        points = total_runs * len(METRIC_KEYS) * STEPS
        result = {
            "processes": processes, "runs": total_runs, "points": points, **written,
            "runs_per_s": total_runs / written["wall_s"],
            "points_per_s": points / written["wall_s"],
            "writers_left_search_state": os.path.isdir(os.path.join(folder, STATE_FOLDER)),
            "tables_before": _tables(folder), "size_before": _sizes(folder),
        }
        print_fn(f"written in {written['wall_s']:.1f} s: {result['runs_per_s']:,.0f} runs/s, "
                 f"{result['points_per_s']:,.0f} points/s (every run logged after "
                 f"{written['logged_s']:.1f} s, longest final flush "
                 f"{written['final_flush_max_s']:.1f} s); writer exit codes "
                 f"{sorted(set(written['exit_codes']))}")
        # Nothing saved yet: the writers never searched (removing the cache is always safe).
        shutil.rmtree(os.path.join(folder, STATE_FOLDER), ignore_errors=True)
        print_fn("searching (before maintenance) ...")
        result["search_before"] = _search_times(client, experiment_id, repeat=repeat)
        print_fn("verifying every run with a fresh reader ...")
        result["lost"] = _verify(client, experiment_id, processes=processes, runs=runs)
        print_fn(_lost_line(result["lost"]))
        result["size_searched"] = _sizes(folder)

        print_fn("maintenance: compact, checkpoint, vacuum (0 h), materialize runs_latest ...")
        result["maintenance_s"] = _maintain(folder)
        result["tables_after"] = _tables(folder)
        result["size_after"] = _sizes(folder)
        print_fn("searching (after maintenance) ...")
        result["search_after"] = _search_times(client, experiment_id, repeat=repeat)
        result["lost_after"] = _verify(client, experiment_id, processes=processes, runs=runs)
        print_fn(f"after maintenance, {_lost_line(result['lost_after'])}")
        _print_report(result, print_fn)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _print_report(result: dict, print_fn: Callable[[str], None]) -> None:
    before, after = result["tables_before"], result["tables_after"]
    header = (f"{'table':<20} {'files before':>12} {'after':>7} {'log versions before':>20} "
              f"{'after':>7}")
    print_fn(header)
    print_fn("-" * len(header))
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name, {}), after.get(name, {})
        print_fn(f"{name:<20} {b.get('files', '-'):>12} {a.get('files', '-'):>7} "
                 f"{b.get('versions', '-'):>20} {a.get('versions', '-'):>7}")
    steps = ", ".join(f"{step} {secs:.1f} s" for step, secs in result["maintenance_s"].items())
    print_fn(f"maintenance: {steps}")
    print_fn(f"tables on disk: {_mb(result['size_before']['tables_bytes'])} before, "
             f"{_mb(result['size_after']['tables_bytes'])} after maintenance, plus runs_latest "
             f"{_mb(result['size_after']['runs_latest_bytes'])}; saved search state "
             f"{_mb(result['size_searched']['search_state_bytes'])} before, "
             f"{_mb(result['size_after']['search_state_bytes'])} after")
    s_before, s_after = result["search_before"], result["search_after"]
    print_fn(f"search ({FILTER!r}, order {ORDER[0]!r}, first 100: {s_before['matched']} "
             "returned): first / new process / warm")
    for label, times in (("before maintenance", s_before), ("after maintenance", s_after)):
        print_fn(f"  {label:<19} {times['first_s']:.3f} s / {times['new_process_s']:.3f} s / "
                 f"{times['warm_s']:.3f} s")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=32)
    parser.add_argument("--runs", type=int, default=1_000, help="runs per process")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--progress-every", type=int, default=100,
                        help="a writer reports every N runs")
    parser.add_argument("--run-seconds", type=float, default=0.0,
                        help="each run sleeps this long before logging (its training): spreads "
                             "the writes over more flushes, so more files")
    args = parser.parse_args(argv)
    run(processes=args.processes, runs=args.runs, repeat=args.repeat,
        progress_every=args.progress_every, run_seconds=args.run_seconds)


if __name__ == "__main__":
    main()
