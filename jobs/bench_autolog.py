"""Autologging overhead on a CrossValidator fit: none vs sparktrack vs MLflow, same process.

    python jobs/bench_autolog.py --repeat 3 --rows 3000

The workload is jobs/train_cv.py's CrossValidator (4 param maps over a 4-stage Pipeline) on
its generated data set, with the training DataFrame cached. Each repetition fits once per
variant, variants interleaved so a slow moment of the machine hits all of them; the table
gives the median seconds and the overhead over the untracked fit, and (less noisy on a shared
machine) the median seconds spent outside ``CrossValidator._fit``, i.e. in tracking, as a
share of the training time. MLflow runs on its SQLite
store (``sqlite:///`` in a temporary folder) with its autolog defaults except ``log_models``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import sparktrack  # noqa: E402
from sparktrack.spark import session  # noqa: E402

VARIANTS = (
    ("no tracking", None, None),
    ("sparktrack, no models", "sparktrack", False),
    ("sparktrack, with models", "sparktrack", True),
    ("MLflow, no models", "mlflow", False),
    ("MLflow, with models", "mlflow", True),
)


def _enable(system: str | None, log_models: bool, folder: str) -> None:
    if system == "sparktrack":
        sparktrack.set_tracking_uri(os.path.join(folder, "sparktrack-store"))
        sparktrack.autolog(log_models=log_models, silent=True)
    elif system == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        mlflow.pyspark.ml.autolog(log_models=log_models, silent=True)


def _disable(system: str | None) -> None:
    if system == "sparktrack":
        sparktrack.autolog(disable=True)
    elif system == "mlflow":
        import mlflow

        mlflow.pyspark.ml.autolog(disable=True)


def run(
    *, print_fn: Callable[[str], None] = print, repeat: int = 3, rows: int = 3000
) -> list[dict]:
    """Measure every variant ``repeat`` times; print a table and return its rows."""
    import mlflow.pyspark.ml  # noqa: F401 - imported before timing starts

    from train_cv import build_cross_validator, make_data

    from pyspark.ml.tuning import CrossValidator

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    spark = session(app_name="sparktrack-bench-autolog")
    # Time spent training (inside CrossValidator._fit) vs around it: the difference is what the
    # tracking costs, a figure far less noisy than the difference of two wall times.
    original_fit = CrossValidator._fit
    inside = [0.0]

    def timed_fit(self, dataset):
        started = time.perf_counter()
        try:
            return original_fit(self, dataset)
        finally:
            inside[0] += time.perf_counter() - started

    CrossValidator._fit = timed_fit
    train = make_data(spark, rows=rows, seed=42).cache()
    train.count()
    folder = tempfile.mkdtemp(prefix="bench-autolog-")
    timings: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}
    logging_s: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print_fn(f"warming up (CrossValidator, 4 param maps x 2 folds, {rows} rows) ...")
            for name, system, log_models in VARIANTS:  # first fits pay JIT and set-up costs
                _enable(system, log_models, folder)
                try:
                    build_cross_validator(folds=2).fit(train)
                finally:
                    _disable(system)
            for rep in range(repeat):
                for name, system, log_models in VARIANTS:
                    _enable(system, log_models, folder)
                    try:
                        inside[0] = 0.0
                        started = time.perf_counter()
                        build_cross_validator(folds=2).fit(train)
                        timings[name].append(time.perf_counter() - started)
                        logging_s[name].append(timings[name][-1] - inside[0])
                    finally:
                        _disable(system)
                print_fn(f"  repetition {rep + 1}/{repeat}: " + ", ".join(
                    f"{name} {values[-1]:.1f}s" for name, values in timings.items()
                ))
    finally:
        CrossValidator._fit = original_fit
        train.unpersist()
        shutil.rmtree(folder, ignore_errors=True)

    base = statistics.median(timings["no tracking"])
    rows_out = []
    header = (
        f"{'variant':<26} {'median s':>9} {'overhead':>9} {'logging s':>10} {'logging %':>10}"
        "  runs (s)"
    )
    print_fn(header)
    print_fn("-" * len(header))
    for name, _, _ in VARIANTS:
        median = statistics.median(timings[name])
        overhead = 100.0 * (median - base) / base
        spent = statistics.median(logging_s[name])
        share = 100.0 * spent / (median - spent) if median > spent else float("nan")
        rows_out.append({
            "variant": name, "median_s": median, "overhead_pct": overhead,
            "logging_s": spent, "logging_pct": share, "runs_s": timings[name],
        })
        print_fn(f"{name:<26} {median:>9.2f} {overhead:>8.1f}% {spent:>10.2f} {share:>9.1f}%  "
                 + " ".join(f"{t:.1f}" for t in timings[name]))
    return rows_out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args(argv)
    run(repeat=args.repeat, rows=args.rows)


if __name__ == "__main__":
    main()
