"""Benchmark: search_runs over 1,000 to 1,000,000 runs, against MLflow and the Spark data source.

Each run has 10 params and 10 metrics, a user (one of 20) and a name; one run in the middle also
has a 1,000-point history of ``m9``. An experiment holds at most
``Settings.max_runs_per_experiment`` runs (500,000 by default, Databricks' quota), so larger
sizes are split over several experiments and every search covers all of them.

Measured per size, sparktrack:

* a filtered, ordered search (first 100 results): *first* (a new Python process, no saved
  search state: ``<store>/_search_state`` removed before it), *new process* (a new Python
  process that starts from the saved state; its import + open time and peak memory too), the
  same in this process after dropping what the store holds in memory (``release_caches``),
  and *warm* (state in memory); each the best of ``--repeat``;
* every run as a pandas frame (``search_runs_frame``; at most 100,000 runs, its limit);
* disk: the Delta tables and the saved search state, and their ratio;
* Spark (``local[2]``, the ``sparktrack`` data source) against sparktrack's API on the same
  three questions: runs per user, the top 100 runs by the latest ``m1``, one run's history. The
  answers are compared: both sides must find the same runs.

MLflow (SQLite store) is measured at ``--mlflow-sizes``. Writing runs through MLflow's API goes
at a few runs per second here, so its store gets at most 1,000 runs that way and is then grown
to the size by copying those rows (new run ids, shifted start times) with SQL inside MLflow's
own schema: the same tables, indexes and value distribution its API would have produced.

Filling a million runs takes minutes: ``--keep DIR`` fills ``DIR/runs-<size>`` (one store per
size) and keeps it, and reuses it when a previous run filled it; ``--store DIR`` only reuses
(an error if the store is not filled), so the figures can be measured again without refilling:

    python jobs/bench_search.py --sizes 1000000 --mlflow-sizes --keep /work/bench-1m
    python jobs/bench_search.py --sizes 1000000 --mlflow-sizes --store /work/bench-1m
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence

__all__ = ["main", "run"]

FILTER = "metrics.m0 < 0.5 AND params.p1 = 'b'"
MLFLOW_API_RUNS = 1_000  # runs MLflow writes through its API; larger stores are copies
ORDER = ["metrics.m1 DESC"]
USERS = 20  # run i belongs to user-(i % USERS)
HISTORY_KEY = "m9"
HISTORY_POINTS = 1_000  # points of HISTORY_KEY logged by the run in the middle
FILLED_TAG = "bench.filled"  # set on each experiment once all its runs are committed
TABLES = ("runs", "params", "tags", "metrics", "metric_summaries")
SUMMARIZED = ("runs", "params", "tags", "metric_summaries")  # what the search state holds
STATE_FOLDER = "_search_state"
REPEAT_BUDGET_S = 60.0  # a timed case stops repeating once it has taken this long in all

# Run by a new Python process: open a client, time one filtered search, report as JSON.
_SEARCH_SCRIPT = """
import json, resource, sys, time
started = time.perf_counter()
from sparktrack import TrackingClient
client = TrackingClient(sys.argv[1])
opened = time.perf_counter()
runs = client.search_runs(json.loads(sys.argv[2]), sys.argv[3],
                          order_by=json.loads(sys.argv[4]), max_results=100)
searched = time.perf_counter()


def peak_rss_mb():
    # This process's own peak: Linux carries ru_maxrss over fork and exec, so a child of a
    # large benchmark process would report at least its parent's size. VmHWM is per image.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


print(json.dumps({
    "open_s": opened - started,
    "search_s": searched - opened,
    "matched": len(runs),
    "peak_rss_mb": peak_rss_mb(),
}))
"""


def _values(i: int, rng: random.Random) -> tuple[dict[str, str], dict[str, float]]:
    params = {f"p{k}": "abcd"[(i + k) % 4] for k in range(10)}
    metrics = {f"m{k}": rng.random() for k in range(10)}
    return params, metrics


def history_run_name(runs: int) -> str:
    """The name of the run that has a long history of HISTORY_KEY in a store of ``runs``."""
    return f"run-{runs // 2}"


def _experiment_plan(runs: int) -> list[tuple[str, int]]:
    """(name, runs) of each experiment of a store of ``runs``: as few as the quota allows."""
    from sparktrack.config import settings_from_env

    per = settings_from_env().max_runs_per_experiment
    if runs <= per:
        return [(f"search-{runs}", runs)]
    counts = [per] * (runs // per) + ([runs % per] if runs % per else [])
    return [(f"search-{runs}-{k + 1}", count) for k, count in enumerate(counts)]


def _fill_sparktrack(
    root: str, runs: int, progress: Callable[[str], None]
) -> tuple[object, list[str]]:
    """Write ``runs`` finished runs into the store at ``root``; the client and experiment ids."""
    from sparktrack import Metric, Param, TrackingClient
    from sparktrack._store import open_store

    client = TrackingClient(root)
    store = open_store(root)  # the client's store: its internals are what is measured
    plan = _experiment_plan(runs)
    experiment_ids = [client.create_experiment(name) for name, _ in plan]
    owner = [eid for eid, (_, count) in zip(experiment_ids, plan) for _ in range(count)]
    rng = random.Random(runs)
    now = int(time.time() * 1000)
    started = time.perf_counter()
    every = max(50_000, runs // 20)
    for i in range(runs):
        user = f"user-{i % USERS}"
        info = store.create_run(owner[i], run_name=f"run-{i}", user_id=user,
                                start_time=now + i, tags={"mlflow.user": user})
        params, metrics = _values(i, rng)
        store.log_batch(
            info.run_id,
            params=[Param(k, v) for k, v in params.items()],
            metrics=[Metric(k, v, now + i, 0) for k, v in metrics.items()],
        )
        if f"run-{i}" == history_run_name(runs):
            _log_history(store, info.run_id, metrics[HISTORY_KEY], now + i)
        store.update_run(info.run_id, status="FINISHED", end_time=now + i + 1)
        if i and i % every == 0:
            _report_progress(progress, i, runs, time.perf_counter() - started)
    client.flush()
    for experiment_id, (_, count) in zip(experiment_ids, plan):
        client.set_experiment_tag(experiment_id, FILLED_TAG, str(count))
    client.flush()
    progress(f"  sparktrack: {runs:,} runs written in {time.perf_counter() - started:.0f} s")
    return client, experiment_ids


def _log_history(store, run_id: str, last: float, timestamp: int) -> None:
    """Steps 1..HISTORY_POINTS-1 of HISTORY_KEY after the step 0 already logged; the last one
    is ``last`` again, so the run's latest value is the one ``_values`` drew."""
    from sparktrack import Metric

    steps = range(1, HISTORY_POINTS)
    points = [Metric(HISTORY_KEY, last if step == steps[-1] else step / HISTORY_POINTS,
                     timestamp, step) for step in steps]
    for start in range(0, len(points), 500):
        store.log_batch(run_id, metrics=points[start:start + 500])


def _report_progress(progress: Callable[[str], None], done: int, runs: int, spent: float) -> None:
    rate = done / spent
    progress(f"  sparktrack: {done:,} / {runs:,} runs written, {rate:,.0f} runs/s, "
             f"about {(runs - done) / rate / 60:.1f} min left")


def _filled_experiments(client, runs: int, root: str) -> list[str] | None:
    """The experiment ids of a complete earlier fill of ``runs`` in the store, or None if the
    store has none of its experiments. A partial fill (killed before its end) is an error."""
    from sparktrack.errors import InvalidStateError

    found = [client.get_experiment_by_name(name) for name, _ in _experiment_plan(runs)]
    if all(experiment is None for experiment in found):
        return None
    done = [experiment for experiment, (_, count) in zip(found, _experiment_plan(runs))
            if experiment is not None and experiment.tags.get(FILLED_TAG) == str(count)]
    if len(done) < len(found):
        raise InvalidStateError(
            f"The benchmark store {root} holds an incomplete fill of {runs:,} runs (the filling "
            f"process stopped before tagging every experiment {FILLED_TAG}). Remove the folder "
            "and run again with --keep to fill it anew."
        )
    return [experiment.experiment_id for experiment in done]


def _open_store(
    size: int, folder: str, *, reuse_only: bool, progress: Callable[[str], None]
) -> tuple[object, list[str]]:
    """The client and experiment ids of a filled store of ``size`` runs at ``folder``: reused
    when an earlier run filled it, else filled now (an error when ``reuse_only``)."""
    from sparktrack import TrackingClient
    from sparktrack.errors import InvalidInputError

    if os.path.isdir(folder):
        client = TrackingClient(folder)
        experiment_ids = _filled_experiments(client, size, folder)
        if experiment_ids is not None:
            progress(f"reusing the store of {size:,} runs at {folder}")
            return client, experiment_ids
    if reuse_only:
        raise InvalidInputError(
            f"--store: {folder} holds no filled store of {size:,} runs. Fill it once with "
            f"--keep {os.path.dirname(folder)} (the same --sizes), then measure it again with "
            "--store."
        )
    progress(f"filling sparktrack with {size:,} runs at {folder} ...")
    return _fill_sparktrack(folder, size, progress)


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
    repeat: int, fn: Callable[[], object], *, before: Callable[[], None] | None = None
) -> tuple[float, object]:
    """The shortest of up to ``repeat`` calls of ``fn`` (each after an untimed ``before``), and
    what the last one returned. Stops early once the calls took REPEAT_BUDGET_S in all."""
    best, found, spent = float("inf"), None, 0.0
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        found = fn()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
        if spent >= REPEAT_BUDGET_S:
            break
    return best, found


def _child_env() -> dict[str, str]:
    """This environment with the imported sparktrack first on the path, so new processes and
    Spark's Python workers run the same code as this one."""
    import sparktrack

    code_root = os.path.dirname(os.path.dirname(os.path.abspath(sparktrack.__file__)))
    env = dict(os.environ)
    paths = [code_root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _search_in_new_process(root: str, experiment_ids: Sequence[str]) -> dict:
    """One filtered search in a new Python process: its times, matches and peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", _SEARCH_SCRIPT, root, json.dumps(list(experiment_ids)), FILTER,
         json.dumps(ORDER)],
        capture_output=True, text=True, env=_child_env(), check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the search process failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _folder_bytes(path: str) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in files)
    return total


def _disk(root: str) -> dict[str, int]:
    """Bytes on disk of each summarized table (data files and Delta log) and the search state."""
    sizes = {f"disk_{table}_bytes": _folder_bytes(os.path.join(root, table)) for table in TABLES}
    sizes["disk_state_bytes"] = _folder_bytes(os.path.join(root, STATE_FOLDER))
    return sizes


def _measure_search(client, root: str, experiment_ids: list[str], *, runs: int,
                    repeat: int) -> dict:
    """search_runs: first, new process (a real one and in this process), warm, all runs."""
    from sparktrack._run_search import MAX_RESULTS_LIMIT
    from sparktrack._store import open_store

    def filtered_search() -> int:
        return len(client.search_runs(experiment_ids, FILTER, order_by=ORDER, max_results=100))

    # Deleting the saved state is always safe (the tables are the truth): the first search
    # of a new process then reads and resolves every row, as on a store never searched. Best
    # of ``repeat``, as the other figures: a single one mostly measures whether the tables'
    # files were still in the page cache (0.5 s to 1.6 s at 100,000 runs here). The last one
    # saves the state the new processes below start from.
    firsts = []
    for _ in range(repeat):
        shutil.rmtree(os.path.join(root, STATE_FOLDER), ignore_errors=True)
        firsts.append(_search_in_new_process(root, experiment_ids))
    first = min(firsts, key=lambda child: child["search_s"])
    restarts = [_search_in_new_process(root, experiment_ids) for _ in range(repeat)]
    restart = min(restarts, key=lambda child: child["search_s"])
    store = open_store(root)  # the client's store
    in_process = _best(repeat, filtered_search, before=store.release_caches)
    warm = _best(repeat, filtered_search)
    frame_size = min(runs, MAX_RESULTS_LIMIT)
    everything = _best(repeat, lambda: len(client.search_runs_frame(
        experiment_ids, max_results=frame_size)))
    return {
        "sparktrack_cold_s": first["search_s"],
        "sparktrack_cold_all_s": [child["search_s"] for child in firsts],
        "cold_peak_rss_mb": max(child["peak_rss_mb"] for child in firsts),
        "sparktrack_new_process_s": restart["search_s"],
        "new_process_open_s": restart["open_s"],
        "new_process_peak_rss_mb": max(child["peak_rss_mb"] for child in restarts),
        "sparktrack_in_process_restart_s": in_process[0],
        "sparktrack_filtered_s": warm[0], "matched": warm[1],
        "matched_new_process": restart["matched"], "matched_first": first["matched"],
        "sparktrack_all_s": everything[0], "returned_all": everything[1],
    }


def _start_spark() -> tuple[object, float]:
    """A local[2] session with the data source registered, and how long it took to start."""
    # Spark's Python workers import sparktrack: the same one as this process.
    os.environ["PYTHONPATH"] = _child_env()["PYTHONPATH"]
    from sparktrack.spark import session

    start = time.perf_counter()
    spark = session(app_name="bench-search", master="local[2]",
                    conf={"spark.ui.showConsoleProgress": "false"})  # no bars in the log
    return spark, time.perf_counter() - start


def _spark_questions(spark, root: str, experiment_ids: Sequence[str],
                     run_id: str) -> dict[str, Callable[[], object]]:
    """The three questions as data source queries; each returns its whole answer."""
    from pyspark.sql import functions as F

    def table(name: str):
        return (spark.read.format("sparktrack").option("table", name)
                .option("experiment_ids", ",".join(experiment_ids)).load(root))

    def per_user() -> dict[str, int]:
        rows = table("runs").groupBy("user_id").count().collect()
        return {row["user_id"]: row["count"] for row in rows}

    def top() -> list[str]:
        # metric_summaries holds each run's latest value of each metric.
        rows = (table("metric_summaries").where(F.col("key") == "m1")
                .orderBy(F.col("latest_value").desc()).limit(100).select("run_id").collect())
        return [row["run_id"] for row in rows]

    def history() -> list[tuple[int, float, int]]:
        rows = (table("metrics").where((F.col("run_id") == run_id)
                                       & (F.col("key") == HISTORY_KEY))
                .orderBy("step", "timestamp").collect())
        return [(row["step"], row["value"], row["timestamp"]) for row in rows]

    return {"per_user": per_user, "top": top, "history": history}


def _api_questions(client, experiment_ids: list[str], *, runs: int,
                   run_id: str) -> dict[str, Callable[[], object]]:
    """The same three questions with sparktrack's API."""
    from sparktrack._run_search import MAX_RESULTS_LIMIT

    def per_user() -> dict[str, int]:
        if runs <= MAX_RESULTS_LIMIT:  # one frame holds every run
            frame = client.search_runs_frame(experiment_ids, max_results=max(runs, 1))
            counts = frame["tags.mlflow.user"].value_counts()
            return {user: int(count) for user, count in counts.items()}
        counts, token = Counter(), None  # more runs than a frame holds: page through them
        while True:
            page = client.search_runs(experiment_ids, max_results=MAX_RESULTS_LIMIT,
                                      page_token=token)
            counts.update(run.info.user_id for run in page)
            token = page.token
            if not token:
                return dict(counts)

    def top() -> list[str]:
        page = client.search_runs(experiment_ids, order_by=["metrics.m1 DESC"], max_results=100)
        return [run.info.run_id for run in page]

    def history() -> list[tuple[int, float, int]]:
        return [(point.step, point.value, point.timestamp)
                for point in client.get_metric_history(run_id, HISTORY_KEY)]

    return {"per_user": per_user, "top": top, "history": history}


def _measure_questions(spark, client, root: str, experiment_ids: list[str], *, runs: int,
                       repeat: int) -> dict:
    """Spark and sparktrack's API on the same questions: best times and whether they agree."""
    from sparktrack._run_search import MAX_RESULTS_LIMIT

    named = client.search_runs(experiment_ids, f"attributes.run_name = '{history_run_name(runs)}'")
    run_id = named[0].info.run_id
    ours = _api_questions(client, experiment_ids, runs=runs, run_id=run_id)
    theirs = _spark_questions(spark, root, experiment_ids, run_id)
    row: dict[str, object] = {}
    for name in ("per_user", "top", "history"):
        first = time.perf_counter()
        theirs[name]()  # the first query of a kind also starts Python workers, plans...
        row[f"spark_{name}_first_s"] = time.perf_counter() - first
        spark_s, spark_answer = _best(repeat, theirs[name])
        api_s, api_answer = _best(repeat, ours[name])
        row.update({
            f"spark_{name}_s": spark_s, f"api_{name}_s": api_s,
            f"spark_{name}": spark_answer, f"api_{name}": api_answer,
            f"agree_{name}": spark_answer == api_answer,
        })
    row["per_user_method"] = ("search_runs_frame" if runs <= MAX_RESULTS_LIMIT
                              else "search_runs pages")
    return row


def _measure_mlflow(folder: str, size: int, *, repeat: int,
                    print_fn: Callable[[str], None]) -> dict:
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
    ml_all = _best(repeat, lambda: len(mlflow.search_runs([ml_experiment], max_results=100_000)))
    return {"mlflow_filtered_s": ml_filtered[0], "mlflow_all_s": ml_all[0]}


def run(
    *,
    print_fn: Callable[[str], None] = print,
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000),
    mlflow_sizes: tuple[int, ...] = (1_000, 10_000),
    repeat: int = 3,
    keep: str | None = None,
    store: str | None = None,
    spark=None,
) -> list[dict]:
    """Measure every size and print a table per size and one for all; returns a row per size.

    ``keep``: fill (or reuse) the stores in ``keep/runs-<size>`` and leave them there;
    ``store``: reuse the filled stores in ``store/runs-<size>``, never fill. Neither: temporary
    stores, removed afterwards. ``spark``: a session to use (default: one is started, and
    stopped at the end).
    """
    started_spark = spark is None
    spark_start_s = None
    rows = []
    try:
        for size in sizes:
            base = store or keep
            folder = (os.path.join(os.path.abspath(base), f"runs-{size}") if base
                      else tempfile.mkdtemp(prefix=f"bench-search-{size}-"))
            try:
                client, experiment_ids = _open_store(size, folder, reuse_only=store is not None,
                                                     progress=print_fn)
                row = {"runs": size, "experiments": len(experiment_ids), "store": folder}
                row.update(_disk(folder))
                print_fn(f"searching {size:,} runs ...")
                row.update(_measure_search(client, folder, experiment_ids, runs=size,
                                           repeat=repeat))
                row.update(_disk(folder))  # the search state now saved
                if spark is None:
                    spark, spark_start_s = _start_spark()
                print_fn("asking Spark and sparktrack's API the same questions ...")
                row.update(_measure_questions(spark, client, folder, experiment_ids, runs=size,
                                              repeat=repeat))
                if size in mlflow_sizes:
                    mlflow_folder = tempfile.mkdtemp(prefix=f"bench-search-mlflow-{size}-")
                    try:
                        row.update(_measure_mlflow(mlflow_folder, size, repeat=repeat,
                                                   print_fn=print_fn))
                    finally:
                        shutil.rmtree(mlflow_folder, ignore_errors=True)
                row["spark_start_s"] = spark_start_s
                rows.append(row)
                _print_size(row, print_fn)
            finally:
                if base is None:
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        if started_spark and spark is not None:
            spark.stop()
    _print_summary(rows, print_fn)
    return rows


def _mb(value: float) -> str:
    return f"{value / 2**20:,.1f} MB"


def _print_size(row: dict, print_fn: Callable[[str], None]) -> None:
    """Everything measured at one size."""
    tables = sum(row[f"disk_{table}_bytes"] for table in TABLES)
    summarized = sum(row[f"disk_{table}_bytes"] for table in SUMMARIZED)
    state = row["disk_state_bytes"]
    lines = [
        f"== {row['runs']:,} runs ({row['experiments']} experiment(s)), {row['store']}",
        f"search_runs, filtered and ordered, first 100 ({row['matched']} returned):",
        f"  first (new process, no saved state)   {row['sparktrack_cold_s']:8.3f} s   "
        f"peak memory {row['cold_peak_rss_mb']:,.0f} MB, best of "
        + ", ".join(f"{took:.3f}" for took in row["sparktrack_cold_all_s"]),
        f"  new process (saved state)             {row['sparktrack_new_process_s']:8.3f} s   "
        f"peak memory {row['new_process_peak_rss_mb']:,.0f} MB, import + open "
        f"{row['new_process_open_s']:.2f} s",
        f"  same, in this process (release_caches) {row['sparktrack_in_process_restart_s']:7.3f} s",
        f"  warm                                  {row['sparktrack_filtered_s']:8.3f} s",
        f"search_runs_frame, {row['returned_all']:,} runs   {row['sparktrack_all_s']:8.3f} s",
        "disk: " + ", ".join(f"{table} {_mb(row[f'disk_{table}_bytes'])}" for table in TABLES),
        f"  search state {_mb(state)}: {state / summarized:.2f}x the four tables it summarizes "
        f"({_mb(summarized)}), {state / tables:.2f}x all five ({_mb(tables)})",
    ]
    if row.get("spark_start_s") is not None:
        lines.append(f"Spark (local[2]) session start: {row['spark_start_s']:.1f} s (once)")
    lines.append(f"  {'question':<34} {'Spark first':>11} {'Spark best':>11} "
                 f"{'sparktrack':>11}  same answer")
    for name, label in (("per_user", f"runs per user ({row['per_user_method']})"),
                        ("top", "top 100 by latest m1"),
                        ("history", f"one run's history ({len(row['api_history'])} points)")):
        lines.append(f"  {label:<34} {row[f'spark_{name}_first_s']:10.3f}s "
                     f"{row[f'spark_{name}_s']:10.3f}s {row[f'api_{name}_s']:10.3f}s  "
                     f"{'yes' if row[f'agree_{name}'] else 'NO'}")
    for line in lines:
        print_fn(line)


def _print_summary(rows: list[dict], print_fn: Callable[[str], None]) -> None:
    header = (f"{'runs':>9} {'first':>8} {'new proc':>9} {'warm':>7} {'MLflow':>8} "
              f"{'ratio':>11} {'all runs':>9} {'MLflow':>8} {'ratio':>6} "
              f"{'state/tables':>13} {'peak mem':>9} "
              f"{'Spark top100':>13} {'API top100':>11}")
    print_fn(header)
    print_fn("-" * len(header))
    for row in rows:
        summarized = sum(row[f"disk_{table}_bytes"] for table in SUMMARIZED)
        memory = max(row["cold_peak_rss_mb"], row["new_process_peak_rss_mb"])
        print_fn(
            f"{row['runs']:>9,} {row['sparktrack_cold_s']:>7.3f}s "
            f"{row['sparktrack_new_process_s']:>8.3f}s {row['sparktrack_filtered_s']:>6.3f}s "
            f"{_secs(row.get('mlflow_filtered_s')):>8} {_filtered_ratio(row):>11} "
            f"{row['sparktrack_all_s']:>8.3f}s {_secs(row.get('mlflow_all_s')):>8} "
            f"{_ratio(row.get('mlflow_all_s'), row['sparktrack_all_s']):>6} "
            f"{row['disk_state_bytes'] / summarized:>12.2f}x {memory:>6,.0f} MB "
            f"{row['spark_top_s']:>12.3f}s {row['api_top_s']:>10.3f}s"
        )
    print_fn("first: a new process, no saved state; new proc: a new process starting from the "
             "saved state; warm: state in memory. ratio: MLflow's time over sparktrack's (new "
             "process/warm). state/tables: the saved search state over the "
             "runs, params, tags and metric_summaries tables. peak mem: the larger of the two "
             "new processes' peak RSS.")


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _ratio(theirs: float | None, ours: float) -> str:
    return "-" if theirs is None else f"{theirs / ours:.1f}x"


def _filtered_ratio(row: dict) -> str:
    theirs = row.get("mlflow_filtered_s")
    if theirs is None:
        return "-"
    return (f"{theirs / row['sparktrack_new_process_s']:.1f}/"
            f"{theirs / row['sparktrack_filtered_s']:.0f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--mlflow-sizes", type=int, nargs="*", default=[1_000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--keep", metavar="DIR",
                       help="fill the stores in DIR/runs-<size> (or reuse them) and keep them")
    where.add_argument("--store", metavar="DIR",
                       help="reuse the stores a run with --keep DIR filled; never fill")
    args = parser.parse_args(argv)
    run(print_fn=lambda line: print(line, flush=True), sizes=tuple(args.sizes),
        mlflow_sizes=tuple(args.mlflow_sizes), repeat=args.repeat, keep=args.keep,
        store=args.store)


if __name__ == "__main__":
    main()
