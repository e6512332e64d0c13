"""Autologging overhead on a CrossValidator fit: none vs sparktrack vs MLflow, same process.

    python jobs/bench_autolog.py --repeat 3 --rows 3000

The workload is jobs/train_cv.py's CrossValidator (4 param maps over a 4-stage Pipeline) on
its generated data set, with the training DataFrame cached. Each repetition fits once per
variant, variants interleaved so a slow moment of the machine hits all of them. Columns:

- ``fit s``: median seconds ``fit()`` blocks the caller, and its overhead over the untracked
  fit; ``min s`` the fastest repetition (the least disturbed by other work on the machine). sparktrack saves the model on a background thread by default, so this does not include
  the save; ``sparktrack, inline models`` is the same with ``log_models_in_background=False``.
- ``outside s``: median seconds of ``fit()`` spent outside ``CrossValidator._fit``, i.e. in
  tracking (steadier than a difference of wall times on a shared machine). sparktrack's
  training-data fingerprint runs beside training, so its cost is inside ``_fit``, not here.
- ``after s``: after each sparktrack fit, ``sparktrack.flush()`` is timed on its own: the rest
  of the background model save plus the commit of buffered rows. It is waited for before the
  next variant starts, so a save never overlaps another variant's fit.

MLflow runs on its SQLite store (``sqlite:///`` in a temporary folder) with its autolog
defaults except ``log_models``; it has no background work.
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

# (name, system, log_models, background saves)
VARIANTS = (
    ("no tracking", None, None, None),
    ("sparktrack, no models", "sparktrack", False, True),
    ("sparktrack, with models", "sparktrack", True, True),
    ("sparktrack, inline models", "sparktrack", True, False),
    ("MLflow, no models", "mlflow", False, None),
    ("MLflow, with models", "mlflow", True, None),
)


def _enable(system: str | None, log_models: bool, background: bool, folder: str) -> None:
    if system == "sparktrack":
        sparktrack.set_tracking_uri(os.path.join(folder, "sparktrack-store"))
        sparktrack.autolog(
            log_models=log_models, log_models_in_background=background, silent=True
        )
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
    names = [variant[0] for variant in VARIANTS]
    timings: dict[str, list[float]] = {name: [] for name in names}
    outside: dict[str, list[float]] = {name: [] for name in names}
    after: dict[str, list[float]] = {name: [] for name in names}

    def fit_once(name, system, log_models, background, *, record: bool) -> None:
        _enable(system, log_models, background, folder)
        try:
            inside[0] = 0.0
            started = time.perf_counter()
            build_cross_validator(folds=2).fit(train)
            blocked = time.perf_counter() - started
            waited = None
            if system == "sparktrack":
                started = time.perf_counter()
                sparktrack.flush()  # the background save ends here, before the next fit
                waited = time.perf_counter() - started
            if record:
                timings[name].append(blocked)
                outside[name].append(blocked - inside[0])
                if waited is not None:
                    after[name].append(waited)
        finally:
            _disable(system)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print_fn(f"warming up (CrossValidator, 4 param maps x 2 folds, {rows} rows) ...")
            for variant in VARIANTS:  # first fits pay JIT and set-up costs
                fit_once(*variant, record=False)
            for rep in range(repeat):
                for variant in VARIANTS:
                    fit_once(*variant, record=True)
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
        f"{'variant':<26} {'fit s':>7} {'overhead':>9} {'min s':>7} {'outside s':>10}"
        f" {'after s':>8}  fits (s)"
    )
    print_fn(header)
    print_fn("-" * len(header))
    for name in names:
        median = statistics.median(timings[name])
        overhead = 100.0 * (median - base) / base
        spent = statistics.median(outside[name])
        waited = statistics.median(after[name]) if after[name] else None
        rows_out.append({
            "variant": name, "median_s": median, "overhead_pct": overhead,
            "outside_s": spent, "after_s": waited, "fits_s": timings[name],
        })
        shown = f"{waited:>8.2f}" if waited is not None else f"{'-':>8}"
        print_fn(f"{name:<26} {median:>7.2f} {overhead:>8.1f}% {min(timings[name]):>7.2f} "
                 f"{spent:>10.2f} {shown}  "
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
