"""Benchmark: logging throughput and size on disk, sparktrack against MLflow (SQLite store).

Same machine, same process, same workload; each figure is the best of ``--repeat`` tries.
sparktrack's timings include committing everything to Delta (``flush()``), so they measure
data on disk, not data in a buffer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["main", "run"]


def _folder_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _best(repeat: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeat))


# -- sparktrack ------------------------------------------------------------------------------
def _sparktrack_workloads(root: str, *, points: int, batches: int, runs: int):
    import sparktrack
    from sparktrack import Metric, TrackingClient

    client = TrackingClient(root)
    experiment_id = client.create_experiment(f"bench-{time.time_ns()}")

    def metric_loop() -> float:
        run_id = client.create_run(experiment_id).info.run_id
        start = time.perf_counter()
        for step in range(points):
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        client.flush()
        return time.perf_counter() - start

    def batch_loop() -> float:
        run_id = client.create_run(experiment_id).info.run_id
        now = int(time.time() * 1000)
        payloads = [
            [Metric(f"m{i % 10}", float(i), now, b * 100 + i // 10) for i in range(1000)]
            for b in range(batches)
        ]
        start = time.perf_counter()
        for payload in payloads:
            client.log_batch(run_id, metrics=payload)
        client.flush()
        return time.perf_counter() - start

    def short_runs() -> float:
        sparktrack.set_tracking_uri(root)
        sparktrack.set_experiment(experiment_id=experiment_id)
        start = time.perf_counter()
        for i in range(runs):
            with sparktrack.start_run():
                sparktrack.log_params({f"p{k}": k * i for k in range(5)})
                sparktrack.log_metrics({f"m{k}": k * 0.5 for k in range(5)})
        sparktrack.flush()
        return time.perf_counter() - start

    return metric_loop, batch_loop, short_runs


# -- MLflow ----------------------------------------------------------------------------------
def _mlflow_workloads(folder: str, *, points: int, batches: int, runs: int):
    import logging

    import mlflow
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(f"bench-{time.time_ns()}")

    def metric_loop() -> float:
        run_id = client.create_run(experiment_id).info.run_id
        start = time.perf_counter()
        for step in range(points):
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        return time.perf_counter() - start

    def batch_loop() -> float:
        run_id = client.create_run(experiment_id).info.run_id
        now = int(time.time() * 1000)
        payloads = [
            [MlflowMetric(f"m{i % 10}", float(i), now, b * 100 + i // 10) for i in range(1000)]
            for b in range(batches)
        ]
        start = time.perf_counter()
        for payload in payloads:
            client.log_batch(run_id, metrics=payload)
        return time.perf_counter() - start

    def short_runs() -> float:
        mlflow.set_experiment(experiment_id=experiment_id)
        start = time.perf_counter()
        for i in range(runs):
            with mlflow.start_run():
                mlflow.log_params({f"p{k}": k * i for k in range(5)})
                mlflow.log_metrics({f"m{k}": k * 0.5 for k in range(5)})
        return time.perf_counter() - start

    return metric_loop, batch_loop, short_runs


def _bytes_per_point(make_store: Callable[[str], Callable[[], float]], measure: Callable[[str], int],
                     points: int) -> float:
    folder = tempfile.mkdtemp(prefix="bench-size-")
    try:
        make_store(folder)()
        return measure(folder) / points
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(*, print_fn: Callable[[str], None] = print, repeat: int = 3, scale: float = 1.0) -> list[dict]:
    """Measure both systems; print a table and return its rows."""
    sizes = {
        "sparktrack": {"points": int(100_000 * scale), "batches": int(200 * scale),
                       "runs": int(1_000 * scale)},
        "mlflow": {"points": max(50, int(1_000 * scale)), "batches": max(2, int(10 * scale)),
                   "runs": max(10, int(100 * scale))},
    }
    results: dict[str, dict[str, float]] = {}
    for system, make in (("sparktrack", _sparktrack_workloads), ("mlflow", _mlflow_workloads)):
        size = sizes[system]
        print_fn(f"measuring {system} ({size['points']} points, {size['batches']} batches of "
                 f"1000, {size['runs']} short runs; best of {repeat}) ...")
        folder = tempfile.mkdtemp(prefix=f"bench-{system}-")
        try:
            metric_loop, batch_loop, short_runs = make(folder, **size)
            results[system] = {
                "log_metric loop (points/s)": size["points"] / _best(repeat, metric_loop),
                "log_batch (points/s)": size["batches"] * 1000 / _best(repeat, batch_loop),
                "short runs (runs/s)": size["runs"] / _best(repeat, short_runs),
            }
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # On-disk size of the same 100,000 metric points (10 keys x 10,000 steps) in each store.
    size_points = 100_000
    results["sparktrack"]["bytes per metric point"] = _size_sparktrack(size_points)
    results["mlflow"]["bytes per metric point"] = _size_mlflow(size_points)

    rows = []
    header = f"{'workload':<28} {'sparktrack':>14} {'MLflow (SQLite)':>16} {'ratio':>9}"
    print_fn(header)
    print_fn("-" * len(header))
    for name in results["sparktrack"]:
        ours, theirs = results["sparktrack"][name], results["mlflow"][name]
        # For throughput higher is better; for size, lower is better: ratio = how many times better.
        ratio = theirs / ours if name.startswith("bytes") else ours / theirs
        rows.append({"workload": name, "sparktrack": ours, "mlflow": theirs, "ratio": ratio})
        print_fn(f"{name:<28} {ours:>14,.1f} {theirs:>16,.1f} {ratio:>8.1f}x")
    return rows


def _size_sparktrack(points: int) -> float:
    from sparktrack import Metric, TrackingClient

    folder = tempfile.mkdtemp(prefix="bench-size-st-")
    try:
        client = TrackingClient(folder)
        experiment_id = client.create_experiment("size")
        run_id = client.create_run(experiment_id).info.run_id
        now = int(time.time() * 1000)
        for start in range(0, points, 1000):
            client.log_batch(run_id, metrics=[
                Metric(f"m{i % 10}", 1.0 / (i + 1), now + i, i // 10)
                for i in range(start, start + 1000)
            ])
        client.flush()
        return _folder_bytes(os.path.join(folder, "metrics")) / points
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _size_mlflow(points: int) -> float:
    import mlflow
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.tracking import MlflowClient

    folder = tempfile.mkdtemp(prefix="bench-size-mlflow-")
    try:
        uri = f"sqlite:///{folder}/mlflow.db"
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        experiment_id = client.create_experiment("size")
        run_id = client.create_run(experiment_id).info.run_id
        empty = os.path.getsize(f"{folder}/mlflow.db")
        now = int(time.time() * 1000)
        for start in range(0, points, 1000):
            client.log_batch(run_id, metrics=[
                MlflowMetric(f"m{i % 10}", 1.0 / (i + 1), now + i, i // 10)
                for i in range(start, start + 1000)
            ])
        return (os.path.getsize(f"{folder}/mlflow.db") - empty) / points
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply workload sizes")
    args = parser.parse_args(argv)
    run(repeat=args.repeat, scale=args.scale)


if __name__ == "__main__":
    main()
