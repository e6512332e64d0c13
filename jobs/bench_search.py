"""Benchmark: search_runs over experiments of 1,000 to 100,000 runs, sparktrack against MLflow.

Each run has 10 params and 10 metrics. Timed: a filtered, ordered search (first 100 results)
and an unfiltered one (every run, as a pandas frame), best of ``--repeat``. sparktrack's
very first search of an experiment reads and resolves its tables and saves the result; a new
process starts from that saved state; later searches in a process ("warm") read only the
files committed since. All three are reported: the first once, the new process as the best of
the repeats (each after dropping what the store holds in memory), warm as the best of the
repeats. MLflow (SQLite store) is measured at ``--mlflow-sizes``. Writing runs through MLflow's
API goes at a few runs per second here, so its store gets at most 1,000 runs that way and is
then grown to the size by copying those rows (new run ids, shifted start times) with SQL
inside MLflow's own schema: the same tables, indexes and value distribution its API would have
produced.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable

__all__ = ["main", "run"]

FILTER = "metrics.m0 < 0.5 AND params.p1 = 'b'"
MLFLOW_API_RUNS = 1_000  # runs MLflow writes through its API; larger stores are copies
ORDER = ["metrics.m1 DESC"]


def _values(i: int, rng: random.Random) -> tuple[dict[str, str], dict[str, float]]:
    params = {f"p{k}": "abcd"[(i + k) % 4] for k in range(10)}
    metrics = {f"m{k}": rng.random() for k in range(10)}
    return params, metrics


def _fill_sparktrack(root: str, runs: int, progress: Callable[[str], None]) -> tuple[object, str]:
    from sparktrack import Metric, Param, TrackingClient
    from sparktrack._store import open_store

    client = TrackingClient(root)
    store = open_store(root)  # the client's store: its internals are what is measured
    experiment_id = client.create_experiment(f"search-{runs}")
    rng = random.Random(runs)
    now = int(time.time() * 1000)
    for i in range(runs):
        info = store.create_run(experiment_id, run_name=f"run-{i}", user_id="bench",
                                start_time=now + i)
        params, metrics = _values(i, rng)
        store.log_batch(
            info.run_id,
            params=[Param(k, v) for k, v in params.items()],
            metrics=[Metric(k, v, now + i, 0) for k, v in metrics.items()],
        )
        store.update_run(info.run_id, status="FINISHED", end_time=now + i + 1)
        if i and i % 20_000 == 0:
            progress(f"  sparktrack: {i:,} / {runs:,} runs written")
    client.flush()
    return client, experiment_id


def _fill_mlflow(folder: str, runs: int, progress: Callable[[str], None]) -> tuple[object, str]:
    import logging

    from mlflow.entities import Metric as MlflowMetric
    from mlflow.entities import Param as MlflowParam
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    experiment_id = client.create_experiment(f"search-{runs}")
    rng = random.Random(runs)
    now = int(time.time() * 1000)
    for i in range(runs):
        run_id = client.create_run(experiment_id, start_time=now + i, run_name=f"run-{i}").info.run_id
        params, metrics = _values(i, rng)
        client.log_batch(
            run_id,
            params=[MlflowParam(k, v) for k, v in params.items()],
            metrics=[MlflowMetric(k, v, now + i, 0) for k, v in metrics.items()],
        )
        client.set_terminated(run_id, end_time=now + i + 1)
        if i and i % 2_000 == 0:
            progress(f"  mlflow: {i:,} / {runs:,} runs written")
    return client, experiment_id


def _replicate_mlflow_runs(db_path: str, copies: int) -> None:
    """Grow MLflow's SQLite store to ``copies`` times its runs by copying every run's rows.

    Each copy of a run gets a new random 32-hex-digit id, like the ones MLflow's API makes,
    drawn again if it is already taken: a copy's id can never equal another run's.
    """
    con = sqlite3.connect(db_path)
    try:
        with con:
            con.execute("CREATE TEMP TABLE originals AS SELECT run_uuid, start_time FROM runs")
            span = con.execute("SELECT MAX(start_time) - MIN(start_time) + 1 FROM originals")
            shift = span.fetchone()[0]
            _make_copy_ids(con, copies)
            for table in ("runs", "params", "metrics", "latest_metrics", "tags"):
                columns = [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
                for copy in range(1, copies):
                    values = []
                    for column in columns:
                        if column == "run_uuid":
                            values.append("copy_ids.new_uuid")
                        elif table == "runs" and column in ("start_time", "end_time"):
                            values.append(f"{table}.{column} + {copy * shift}")
                        else:
                            values.append(f"{table}.{column}")
                    con.execute(
                        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
                        f"FROM {table} JOIN copy_ids ON copy_ids.run_uuid = {table}.run_uuid "
                        f"AND copy_ids.copy = {copy}"
                    )
    finally:
        con.close()


def _make_copy_ids(con: sqlite3.Connection, copies: int) -> None:
    """Fill the temp table copy_ids (run_uuid, copy, new_uuid): one unused id per copy of a run."""
    taken = {row[0] for row in con.execute("SELECT run_uuid FROM runs")}
    originals = sorted(row[0] for row in con.execute("SELECT run_uuid FROM originals"))
    rng = random.Random(copies)  # the same ids on every run of the benchmark
    rows = []
    for copy in range(1, copies):
        for run_uuid in originals:
            new_uuid = f"{rng.getrandbits(128):032x}"
            while new_uuid in taken:
                new_uuid = f"{rng.getrandbits(128):032x}"
            taken.add(new_uuid)
            rows.append((run_uuid, copy, new_uuid))
    con.execute("CREATE TEMP TABLE copy_ids "
                "(run_uuid TEXT NOT NULL, copy INTEGER NOT NULL, new_uuid TEXT PRIMARY KEY)")
    con.executemany("INSERT INTO copy_ids VALUES (?, ?, ?)", rows)


def _best(
    repeat: int, fn: Callable[[], int], *, before: Callable[[], None] | None = None
) -> tuple[float, int]:
    """The shortest of ``repeat`` calls of ``fn`` (each after an untimed ``before``), and what
    the last one returned."""
    best, found = float("inf"), 0
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        found = fn()
        best = min(best, time.perf_counter() - start)
    return best, found


def run(
    *,
    print_fn: Callable[[str], None] = print,
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000),
    mlflow_sizes: tuple[int, ...] = (1_000, 10_000),
    repeat: int = 3,
) -> list[dict]:
    rows = []
    for size in sizes:
        folder = tempfile.mkdtemp(prefix=f"bench-search-{size}-")
        try:
            print_fn(f"filling sparktrack with {size:,} runs ...")
            client, experiment_id = _fill_sparktrack(folder, size, print_fn)
            def filtered_search() -> int:
                return len(client.search_runs(experiment_id, FILTER, order_by=ORDER,
                                              max_results=100))

            from sparktrack._store import open_store

            store = open_store(folder)  # the client's store
            store.release_caches()  # nothing read yet, nothing saved yet
            cold = _best(1, filtered_search)
            # As a new process: only the saved state (dropping it is not timed).
            restart = _best(repeat, filtered_search, before=store.release_caches)
            filtered = _best(repeat, filtered_search)
            everything = _best(repeat, lambda: len(client.search_runs_frame(
                experiment_id, max_results=100_000)))
            row = {"runs": size, "sparktrack_cold_s": cold[0],
                   "sparktrack_new_process_s": restart[0],
                   "sparktrack_filtered_s": filtered[0],
                   "sparktrack_all_s": everything[0], "matched": filtered[1],
                   "returned_all": everything[1]}
            if size in mlflow_sizes:
                written = min(size, MLFLOW_API_RUNS)
                print_fn(f"filling MLflow with {written:,} runs through its API ...")
                ml_client, ml_experiment = _fill_mlflow(folder, written, print_fn)
                if size > written:
                    print_fn(f"  copying them in SQL to {size:,} runs")
                    _replicate_mlflow_runs(f"{folder}/mlflow.db", size // written)
                ml_filtered = _best(repeat, lambda: len(ml_client.search_runs(
                    [ml_experiment], FILTER, order_by=ORDER, max_results=100)))
                import mlflow

                mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
                ml_all = _best(repeat, lambda: len(mlflow.search_runs(
                    [ml_experiment], max_results=100_000)))
                row.update(mlflow_filtered_s=ml_filtered[0], mlflow_all_s=ml_all[0])
            rows.append(row)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    header = (f"{'runs':>8} {'filtered: first':>16} {'new process':>12} {'warm':>8} "
              f"{'MLflow':>9} {'ratio':>16}  {'all runs':>9} {'MLflow':>9} {'ratio':>7}")
    print_fn(header)
    print_fn("-" * len(header))
    for row in rows:
        cold, restart = row["sparktrack_cold_s"], row["sparktrack_new_process_s"]
        warm, ours_a = row["sparktrack_filtered_s"], row["sparktrack_all_s"]
        ml_f, ml_a = row.get("mlflow_filtered_s"), row.get("mlflow_all_s")
        ratio_f = ("-" if ml_f is None
                   else f"{ml_f / cold:.1f}/{ml_f / restart:.1f}/{ml_f / warm:.0f}x")
        print_fn(
            f"{row['runs']:>8,} {cold:>15.3f}s {restart:>11.3f}s {warm:>7.3f}s "
            f"{_secs(ml_f):>9} {ratio_f:>16}  {ours_a:>8.3f}s {_secs(ml_a):>9} "
            f"{_ratio(ml_a, ours_a):>7}"
        )
    print_fn("first: no state saved yet; new process: starts from the saved state; warm: state "
             "in memory. ratio: MLflow's time over sparktrack's, first/new process/warm.")
    return rows


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _ratio(theirs: float | None, ours: float) -> str:
    return "-" if theirs is None else f"{theirs / ours:.1f}x"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--mlflow-sizes", type=int, nargs="*", default=[1_000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    run(sizes=tuple(args.sizes), mlflow_sizes=tuple(args.mlflow_sizes), repeat=args.repeat)


if __name__ == "__main__":
    main()
