"""Benchmark: the sparktrack data source against Spark's own parquet reader, and pushdown.

1. Full scan of a metrics table of ``--points`` points (default 10 million): every column of
   every row through ``spark.read.format("sparktrack")`` against ``spark.read.parquet`` of the
   same live files (the snapshot's ``file_uris()``: the physical reference), both written to
   Spark's ``noop`` sink; best of ``--repeat``.
2. A query for one run: how many files the reader opens with and without filter pushdown
   (and how long the query takes each way).

The store is laid out as logging leaves it: ``--experiments`` experiments of ``--runs`` runs,
each experiment committed ``--commits`` times (one file per experiment and commit).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable

__all__ = ["main", "run"]

PUSHDOWN = "spark.sql.python.filterPushdown.enabled"


def _fill(root: str, *, points: int, experiments: int, runs: int, commits: int,
          progress: Callable[[str], None]) -> list[str]:
    """Create the runs with the client, then append the points in per-experiment commits."""
    import numpy as np
    import pyarrow as pa

    from sparktrack import TrackingClient
    from sparktrack._store import open_store
    from sparktrack._store.schemas import METRICS

    client = TrackingClient(root)
    store = open_store(root)  # the client's store: the benchmark writes its tables directly
    run_ids: dict[str, list[str]] = {}
    for e in range(experiments):
        experiment_id = client.create_experiment(f"bench-{e}")
        run_ids[experiment_id] = [
            store.create_run(experiment_id, run_name=f"run-{e}-{r}", user_id="bench").run_id
            for r in range(runs)
        ]
    client.flush()
    per_commit = max(1, points // (experiments * commits))
    per_run = max(1, per_commit // runs)
    keys = np.array(["loss", "accuracy", "rmse", "lr"])
    rng = np.random.default_rng(0)
    metrics = store.tables[METRICS.name]
    written = 0
    for c in range(commits):
        for experiment_id, ids in run_ids.items():
            count = per_run * len(ids)
            step = np.tile(np.arange(c * per_run, (c + 1) * per_run) // len(keys), len(ids))
            batch = pa.table({
                "run_id": np.repeat(ids, per_run),
                "experiment_id": pa.array([experiment_id] * count),
                "key": keys[np.arange(count) % len(keys)],
                "value": rng.random(count),
                "timestamp": 1_700_000_000_000 + np.arange(count, dtype=np.int64),
                "step": step.astype(np.int64),
            })
            metrics.append(batch)
            written += count
        progress(f"  commit round {c + 1}/{commits}: {written:,} points")
    return [run_id for ids in run_ids.values() for run_id in ids]


def _best(repeat: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def run(
    *,
    print_fn: Callable[[str], None] = print,
    points: int = 10_000_000,
    experiments: int = 40,
    runs: int = 25,
    commits: int = 10,
    repeat: int = 3,
) -> list[dict]:
    from deltalake import DeltaTable

    from sparktrack.spark import _reader as reader, session

    spark = session(app_name="sparktrack-bench-datasource")
    folder = tempfile.mkdtemp(prefix="bench-datasource-")
    try:
        print_fn(f"writing {points:,} metric points ({experiments} experiments x {runs} runs, "
                 f"{commits} commits each) ...")
        run_ids = _fill(folder, points=points, experiments=experiments, runs=runs,
                        commits=commits, progress=print_fn)
        table_uri = f"{folder}/metrics"
        files = DeltaTable(table_uri).file_uris()

        # New DataFrames for every measurement: Spark keeps a data source's plan (partitions,
        # pushed filters) with the DataFrame, and planning is part of what is measured.
        def source():
            return spark.read.format("sparktrack").option("table", "metrics").load(folder)

        def physical():
            return spark.read.option("basePath", table_uri).parquet(*files)

        def scan(make_frame):
            return lambda: make_frame().write.format("noop").mode("overwrite").save()

        total = source().count()
        # Planned once, executed `repeat` times: the readers themselves.
        source_frame, physical_frame = source(), physical()
        source_s = _best(repeat, scan(lambda: source_frame))
        parquet_s = _best(repeat, scan(lambda: physical_frame))
        # Planned every time (snapshot and file listing included): what a user waits for.
        source_cold_s = _best(repeat, scan(source))
        parquet_cold_s = _best(repeat, scan(physical))

        one_run = run_ids[len(run_ids) // 2]
        options = reader.parse_options({"path": folder, "table": "metrics"})
        files_all = sum(len(t.files) for t in reader.plan(options))
        pushed = options.with_conditions([("=", "run_id", one_run)])
        files_one = sum(len(t.files) for t in reader.plan(pushed))

        def one_run_count():
            frame = source()
            return frame.where(frame.run_id == one_run).count()

        with_s = _best(repeat, one_run_count)
        spark.conf.set(PUSHDOWN, "false")
        try:
            without_s = _best(repeat, one_run_count)
        finally:
            spark.conf.set(PUSHDOWN, "true")
        one_run_points = one_run_count()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    rows = [
        {"case": "full scan", "points": total, "files": len(files),
         "datasource_s": source_s, "parquet_s": parquet_s, "ratio": source_s / parquet_s,
         "datasource_planned_s": source_cold_s, "parquet_planned_s": parquet_cold_s,
         "ratio_planned": source_cold_s / parquet_cold_s},
        {"case": "one run", "points": one_run_points, "files_with_pushdown": files_one,
         "files_without_pushdown": files_all, "fraction_read": files_one / files_all,
         "with_pushdown_s": with_s, "without_pushdown_s": without_s},
    ]
    full, one = rows
    print_fn(f"full scan of {full['points']:,} points in {full['files']} files: data source "
             f"{full['datasource_s']:.2f}s, spark.read.parquet {full['parquet_s']:.2f}s "
             f"-> {full['ratio']:.2f}x (planning included each time: "
             f"{full['datasource_planned_s']:.2f}s vs {full['parquet_planned_s']:.2f}s -> "
             f"{full['ratio_planned']:.2f}x)")
    print_fn(f"one run ({one['points']:,} points): {one['files_with_pushdown']} of "
             f"{one['files_without_pushdown']} files read with pushdown "
             f"({100 * one['fraction_read']:.1f}%); {one['with_pushdown_s']:.2f}s with, "
             f"{one['without_pushdown_s']:.2f}s without")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--experiments", type=int, default=40)
    parser.add_argument("--runs", type=int, default=25, help="runs per experiment")
    parser.add_argument("--commits", type=int, default=10, help="commits per experiment")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    run(points=args.points, experiments=args.experiments, runs=args.runs,
        commits=args.commits, repeat=args.repeat)


if __name__ == "__main__":
    main()
