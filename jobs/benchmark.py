"""All of sparktrack's benchmarks, MLflow measured in the same run where it applies.

    python jobs/benchmark.py                 # every section
    python jobs/benchmark.py --only tracking search

Sections live in their own modules (jobs/bench_<section>.py), each with ``run(print_fn=...)``.
Figures are printed as tables; the README quotes them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SECTIONS = {
    "tracking": "bench_tracking",  # logging throughput and size on disk (issue 2)
    "search": "bench_search",  # search over 1k-100k runs (issue 4)
    "autolog": "bench_autolog",  # CrossValidator overhead (issue 3)
    "datasource": "bench_datasource",  # Spark data source scans and pushdown (issue 5)
    "models": "bench_models",  # log_model vs Spark's writer and MLflow (issue 12)
    "import": "bench_import",  # sparktrack import from an MLflow SQLite store (issue 13)
    "mlflow_ui": "bench_mlflow_ui",  # the MLflow UI's REST calls, plugin vs SQLite (issue 13)
    "writers": "bench_writers",  # 32 writer processes into one store, maintenance (issue 14)
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="sparktrack benchmarks")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args(argv)
    for name in args.only:
        print(f"\n== {name} " + "=" * (60 - len(name)), flush=True)
        started = time.perf_counter()
        module = importlib.import_module(SECTIONS[name])
        module.run(print_fn=lambda line: print(line, flush=True))
        print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
