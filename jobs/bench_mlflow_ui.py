"""Benchmark: the MLflow UI's REST calls through `mlflow server`, on a sparktrack store (the
plugin) and on a SQLite store holding the same runs.

Each size is an experiment of N runs with 10 params and 10 metrics (``m0`` with a history of
``HISTORY`` steps, the others one value each). sparktrack's store is written with its own API;
the very same runs (ids, names, times, tags, values), read back from it, go into MLflow's SQLite
schema with SQL inserts (MLflow's API writes a few runs per second, hours for 100,000). Then one
``mlflow server`` (one worker) serves each store and the calls the UI makes are timed over HTTP:

- the runs table: ``runs/search`` with the UI's arguments (``max_results`` 50 and 100, order
  ``attributes.start_time DESC``, ``ACTIVE_ONLY``);
- the metric charts: ``metrics/get-history-bulk-interval`` for the 100 newest runs
  (``max_results`` 320, the UI's value);
- the run page: ``runs/get`` and the search for its child runs
  (``tags.`mlflow.parentRunId` = '<id>'``).

"first" is the first call after the server started (sparktrack reads the store's tables
then); the other figures are the median of ``--repeat`` calls.

    python jobs/bench_mlflow_ui.py                       # 10,000 runs
    python jobs/bench_mlflow_ui.py --sizes 10000 100000  # 100,000 only when asked
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

__all__ = ["main", "run"]

REPO = Path(__file__).resolve().parent.parent
HISTORY = 20  # steps of metric m0
PAGE_SIZES = (50, 100)  # the two runs/search calls of the runs table
BULK_RUNS = 100  # the server's limit of run ids per get-history-bulk-interval call
BULK_MAX_RESULTS = 320  # what the UI asks for


# -- the runs ---------------------------------------------------------------------------------
def _fill_sparktrack(root: str, runs: int,
                     progress: Callable[[str], None]) -> tuple[str, dict[str, list]]:
    """An experiment of ``runs`` runs written with sparktrack's store API: its id, and the
    metrics logged, by run id (every step, for the SQLite copy)."""
    from sparktrack import Metric, Param, RunTag, TrackingClient
    from sparktrack._store import open_store

    client = TrackingClient(root)
    store = open_store(root)
    experiment_id = client.create_experiment("ui-bench")
    rng = random.Random(runs)
    now = int(time.time() * 1000) - runs * 1000
    logged = {}
    for i in range(runs):
        start = now + i * 1000
        info = store.create_run(experiment_id, run_name=f"run-{i}", user_id="bench",
                                start_time=start)
        params = [Param(f"p{k}", "abcd"[(i + k) % 4]) for k in range(10)]
        metrics = [Metric("m0", rng.random() / (step + 1), start + step, step)
                   for step in range(HISTORY)]
        metrics += [Metric(f"m{k}", rng.random(), start, 0) for k in range(1, 10)]
        store.log_batch(info.run_id, params=params, metrics=metrics,
                        tags=[RunTag("mlflow.source.name", "bench_mlflow_ui.py")])
        store.update_run(info.run_id, status="FINISHED", end_time=start + 500)
        logged[info.run_id] = metrics
        if i and i % 10_000 == 0:
            progress(f"  sparktrack: {i:,} / {runs:,} runs written")
    client.flush()
    return experiment_id, logged


def _copy_to_sqlite(root: str, experiment_id: str, logged: dict[str, list], db: str) -> str:
    """The runs of ``experiment_id``, read back from the sparktrack store (their metrics'
    steps from ``logged``), inserted into a SQLite store in MLflow's own schema (created by
    MLflow); the SQLite experiment's id."""
    import logging

    from mlflow.tracking import MlflowClient

    from sparktrack import TrackingClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    sql_experiment = MlflowClient(f"sqlite:///{db}").create_experiment("ui-bench")
    client = TrackingClient(root)
    runs = _all_runs(client, experiment_id)
    rows: dict[str, list[tuple]] = {"runs": [], "params": [], "tags": [], "metrics": [],
                                    "latest_metrics": []}
    for run in runs:
        info, run_id = run.info, run.info.run_id
        rows["runs"].append((run_id, info.run_name, "LOCAL", "bench_mlflow_ui.py", "",
                             info.user_id, info.status, info.start_time, info.end_time, "",
                             "active", f"mlflow-artifacts:/{sql_experiment}/{run_id}",
                             int(sql_experiment)))
        rows["params"] += [(k, v, run_id) for k, v in run.data.params.items()]
        rows["tags"] += [(k, v, run_id) for k, v in run.data.tags.items()]
        latest = {}
        for m in logged[run_id]:
            rows["metrics"].append((m.key, m.value, m.timestamp, run_id, m.step, 0))
            if m.key not in latest or m.step >= latest[m.key].step:
                latest[m.key] = m
        assert {k: m.value for k, m in latest.items()} == run.data.metrics, run_id
        rows["latest_metrics"] += [(k, m.value, m.timestamp, m.step, 0, run_id)
                                   for k, m in latest.items()]
    con = sqlite3.connect(db)
    try:
        with con:
            con.executemany(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name,"
                " user_id, status, start_time, end_time, source_version, lifecycle_stage,"
                " artifact_uri, experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows["runs"])
            con.executemany('INSERT INTO params ("key", value, run_uuid) VALUES (?,?,?)',
                            rows["params"])
            con.executemany('INSERT INTO tags ("key", value, run_uuid) VALUES (?,?,?)',
                            rows["tags"])
            con.executemany('INSERT INTO metrics ("key", value, timestamp, run_uuid, step,'
                            ' is_nan) VALUES (?,?,?,?,?,?)', rows["metrics"])
            con.executemany('INSERT INTO latest_metrics ("key", value, timestamp, step,'
                            ' is_nan, run_uuid) VALUES (?,?,?,?,?,?)', rows["latest_metrics"])
    finally:
        con.close()
    return sql_experiment


def _all_runs(client, experiment_id: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=50_000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


# -- the servers ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """``mlflow server`` (one worker) on 127.0.0.1; stopped with its process group."""

    def __init__(self, backend_uri: str, log_path: Path, *, startup_timeout: float = 180.0):
        self.url = f"http://127.0.0.1:{_free_port()}"
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
        # A checkout's sparktrack (this file's) first, as for the job itself.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
             "--host", "127.0.0.1", "--port", self.url.rsplit(":", 1)[1], "--workers", "1"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server on {backend_uri} exited; see {log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"mlflow server not up after {startup_timeout} s; "
                                       f"see {log_path}") from None
                time.sleep(0.3)

    def call(self, path: str, *, body: dict | None = None,
             query: list[tuple[str, str]] | None = None) -> tuple[float, dict]:
        """Seconds one request took, and its JSON answer (an HTTP error raises)."""
        url = f"{self.url}/ajax-api/2.0/mlflow/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data,
                                         headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as answer:
            payload = answer.read()
        return time.perf_counter() - start, json.loads(payload or b"{}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()


def _check_plugin() -> None:
    names = {point.name for point in importlib.metadata.entry_points(
        group="mlflow.tracking_store")}
    if "sparktrack" not in names:
        raise SystemExit("MLflow does not see the sparktrack plugin: install this checkout "
                         "(`pip install -e '.[bench]'`, as `make bench` does).")


# -- the calls --------------------------------------------------------------------------------
def _ui_calls(experiment_id: str) -> dict[str, Callable[[_Server, list[str]], tuple]]:
    """The UI's calls, by label; each takes the server and the newest run ids."""
    def search(size: int):
        body = {"experiment_ids": [experiment_id], "filter": "", "max_results": size,
                "order_by": ["attributes.start_time DESC"], "run_view_type": "ACTIVE_ONLY"}
        return lambda server, ids: server.call("runs/search", body=body)

    def bulk(server, ids):
        query = [("run_ids", i) for i in ids[:BULK_RUNS]]
        query += [("metric_key", "m0"), ("max_results", str(BULK_MAX_RESULTS))]
        return server.call("metrics/get-history-bulk-interval", query=query)

    def get_run(server, ids):
        return server.call("runs/get", query=[("run_id", ids[0])])

    def children(server, ids):
        body = {"experiment_ids": [experiment_id], "run_view_type": "ACTIVE_ONLY",
                "filter": f"tags.`mlflow.parentRunId` = '{ids[0]}'", "max_results": 100}
        return server.call("runs/search", body=body)

    calls = {f"runs/search max {size}": search(size) for size in PAGE_SIZES}
    calls[f"get-history-bulk-interval ({BULK_RUNS} runs)"] = bulk
    calls["runs/get"] = get_run
    calls["runs/search children"] = children
    return calls


def _measure(server: _Server, experiment_id: str, repeat: int) -> tuple[dict, list[str]]:
    """{label: (first, median)} seconds for each UI call, and the newest run ids."""
    first, answer = server.call("runs/search", body={
        "experiment_ids": [experiment_id], "max_results": BULK_RUNS, "filter": "",
        "order_by": ["attributes.start_time DESC"], "run_view_type": "ACTIVE_ONLY"})
    ids = [run["info"]["run_id"] for run in answer.get("runs", [])]
    figures = {"first call (runs/search max 100)": (first, first)}
    for label, call in _ui_calls(experiment_id).items():
        times = [call(server, ids)[0] for _ in range(repeat)]
        figures[label] = (times[0], statistics.median(times))
    _check_answers(server, experiment_id, ids)
    return figures, ids


def _check_answers(server: _Server, experiment_id: str, ids: list[str]) -> None:
    """The answers hold what the UI shows: 50 runs with their values, m0's whole history."""
    _, page = server.call("runs/search", body={
        "experiment_ids": [experiment_id], "max_results": 50, "filter": "",
        "order_by": ["attributes.start_time DESC"], "run_view_type": "ACTIVE_ONLY"})
    runs = page["runs"]
    assert len(runs) == 50 and [r["info"]["run_id"] for r in runs] == ids[:50], "runs/search"
    assert len(runs[0]["data"]["params"]) == 10 and len(runs[0]["data"]["metrics"]) == 10
    _, bulk = server.call("metrics/get-history-bulk-interval", query=[
        ("run_ids", ids[0]), ("metric_key", "m0"), ("max_results", "320")])
    assert len(bulk["metrics"]) == HISTORY, "get-history-bulk-interval"


# -- the benchmark ----------------------------------------------------------------------------
def run(*, print_fn: Callable[[str], None] = print, sizes: tuple[int, ...] = (10_000,),
        repeat: int = 5, sqlite_sizes: tuple[int, ...] | None = None) -> list[dict]:
    """Time the UI's calls at each size; SQLite at ``sqlite_sizes`` (default: every size)."""
    _check_plugin()
    rows = []
    for size in sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-mlflow-ui-{size}-"))
        try:
            rows.append(_one_size(folder, size, repeat,
                                  sqlite=sqlite_sizes is None or size in sqlite_sizes,
                                  print_fn=print_fn))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    _print_table(rows, print_fn)
    return rows


def _one_size(folder: Path, size: int, repeat: int, *, sqlite: bool,
              print_fn: Callable[[str], None]) -> dict:
    root = str(folder / "store")
    print_fn(f"writing {size:,} runs (10 params, 10 metrics, m0 over {HISTORY} steps) "
             "into sparktrack ...")
    started = time.perf_counter()
    experiment_id, logged = _fill_sparktrack(root, size, print_fn)
    print_fn(f"  {time.perf_counter() - started:.0f} s")
    row = {"runs": size}
    if sqlite:
        print_fn("copying the same runs into a SQLite MLflow store ...")
        started = time.perf_counter()
        sql_experiment = _copy_to_sqlite(root, experiment_id, logged, str(folder / "mlflow.db"))
        print_fn(f"  {time.perf_counter() - started:.0f} s")
        server = _Server(f"sqlite:///{folder}/mlflow.db", folder / "sqlite-server.log")
        try:
            row["sqlite"], sql_ids = _measure(server, sql_experiment, repeat)
        finally:
            server.stop()
    server = _Server(f"sparktrack://{root}", folder / "sparktrack-server.log")
    try:
        row["sparktrack"], ids = _measure(server, experiment_id, repeat)
    finally:
        server.stop()
    if sqlite:
        assert ids == sql_ids, "the two stores list different runs"
    return row


def _print_table(rows: list[dict], print_fn: Callable[[str], None]) -> None:
    header = f"{'runs':>8}  {'call':<38} {'sparktrack':>11} {'SQLite':>9} {'ratio':>7}"
    print_fn(header)
    print_fn("-" * len(header))
    for row in rows:
        for label, (_, ours) in row["sparktrack"].items():
            theirs = row.get("sqlite", {}).get(label, (None, None))[1]
            ratio = "-" if theirs is None else f"{theirs / ours:.1f}x"
            sql = "-" if theirs is None else f"{theirs:.3f}s"
            print_fn(f"{row['runs']:>8,}  {label:<38} {ours:>10.3f}s {sql:>9} {ratio:>7}")
    print_fn("median of the repeats through `mlflow server --workers 1` over HTTP; ratio: "
             "SQLite's time over sparktrack's.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--sqlite-sizes", type=int, nargs="*", default=None,
                        help="sizes SQLite is measured at (default: every size)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    sqlite_sizes = None if args.sqlite_sizes is None else tuple(args.sqlite_sizes)
    run(sizes=tuple(args.sizes), repeat=args.repeat, sqlite_sizes=sqlite_sizes)


if __name__ == "__main__":
    main()
