"""Benchmark: ``sparktrack import`` from an MLflow SQLite store (goal: 10,000 runs a minute).

The MLflow store is created by MLflow's client (so the schema is exactly 3.17's, migrations
included) and then filled with SQL inside that schema, because MLflow's API writes only a few
dozen runs per second here: ``--runs`` runs, each with 10 params, 10 metrics of ``--steps``
points, 5 tags and the ``latest_metrics`` rows MLflow keeps. One run is read back through
MLflow's client to check the rows are what its API would have written. Timed: the whole
import into an empty store (experiments, runs, histories, summaries), then a second import
that finds everything there (the idempotent re-run).

    python jobs/bench_import.py --runs 10000
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable

__all__ = ["main", "run"]


def make_mlflow_store(folder: str, runs: int, steps: int) -> tuple[str, str]:
    """An MLflow SQLite store with ``runs`` runs in one experiment; (uri, experiment id)."""
    from mlflow import MlflowClient

    path = os.path.join(folder, "mlflow.db")
    uri = f"sqlite:///{path}"
    experiment_id = MlflowClient(tracking_uri=uri).create_experiment("bench-import")
    rng = random.Random(runs)
    start = int(time.time() * 1000) - runs * 1000
    run_rows, params, metrics, latest, tags = [], [], [], [], []
    for i in range(runs):
        run_id = uuid.uuid4().hex
        begun = start + i * 1000
        run_rows.append((run_id, f"run-{i}", "LOCAL", "bench.py", "", "bench", "FINISHED",
                         begun, begun + 900, None, "", "active",
                         f"{folder}/mlruns/{experiment_id}/{run_id}/artifacts", experiment_id))
        params += [(f"p{k}", "abcd"[(i + k) % 4], run_id) for k in range(10)]
        tags += [(key, value, run_id) for key, value in (
            ("mlflow.runName", f"run-{i}"), ("mlflow.user", "bench"),
            ("mlflow.source.name", "bench.py"), ("mlflow.source.type", "LOCAL"),
            ("team", "ml"))]
        for k in range(10):
            points = [(f"m{k}", rng.random(), begun + s, s, False, run_id) for s in range(steps)]
            metrics += points
            key, value, timestamp, step, is_nan, _ = points[-1]
            latest.append((key, value, timestamp, step, is_nan, run_id))
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, deleted_time, source_version, "
            "lifecycle_stage, artifact_uri, experiment_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
        db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
        db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
        db.executemany("INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
                       "VALUES (?, ?, ?, ?, ?, ?)", metrics)
        db.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, "
                       "run_uuid) VALUES (?, ?, ?, ?, ?, ?)", latest)
    check = MlflowClient(tracking_uri=uri).get_run(run_rows[0][0])
    assert len(check.data.params) == 10 and len(check.data.metrics) == 10, check
    return uri, experiment_id


def run(*, runs: int = 10_000, steps: int = 5,
        print_fn: Callable[[str], None] = print) -> dict[str, float]:
    from sparktrack._transfer import import_mlflow

    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        started = time.perf_counter()
        uri, _ = make_mlflow_store(folder, runs, steps)
        print_fn(f"  MLflow store: {runs:,} runs, {runs * 10 * steps:,} metric points "
                 f"({time.perf_counter() - started:.0f} s to build)")
        store = os.path.join(folder, "store")
        started = time.perf_counter()
        summary = import_mlflow(uri, store_uri=store, progress=False)
        first = time.perf_counter() - started
        assert summary.runs == runs, summary
        started = time.perf_counter()
        again = import_mlflow(uri, store_uri=store, progress=False)
        second = time.perf_counter() - started
        assert again.runs == 0 and again.runs_skipped == runs, again
    per_minute = runs / first * 60
    print_fn(f"| runs | metric points | import | runs per minute | re-run (nothing new) |")
    print_fn(f"|---:|---:|---:|---:|---:|")
    print_fn(f"| {runs:,} | {summary.metric_rows:,} | {first:.1f} s | {per_minute:,.0f} | "
             f"{second:.1f} s |")
    print_fn(f"  goal: 10,000 runs per minute -> {'met' if per_minute >= 10_000 else 'MISSED'}")
    return {"seconds": first, "runs_per_minute": per_minute, "rerun_seconds": second}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=5, help="points per metric")
    args = parser.parse_args(argv)
    run(runs=args.runs, steps=args.steps)


if __name__ == "__main__":
    main()
