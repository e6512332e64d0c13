"""Render the sparktrack dashboard of a store: PNG charts and a static HTML page.

    spark-submit jobs/dashboard.py --store ./sparktrack-store --out ./dashboard
    python jobs/dashboard.py --store ./sparktrack-store --out ./dashboard --metric rmse

Charts: a metric's best value over time across runs, runs started per user, runs per day and
status, the top runs by the metric, and one run's metric curves (the best run by default).
Everything is read through the ``sparktrack`` Spark data source.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sparktrack.spark import session  # noqa: E402
from sparktrack.spark.dashboard import build_dashboard  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=os.environ.get("SPARKTRACK_TRACKING_URI",
                                                          "./sparktrack-store"),
                        help="store URI (default: $SPARKTRACK_TRACKING_URI or ./sparktrack-store)")
    parser.add_argument("--out", default="./dashboard", help="output folder (PNG + index.html)")
    parser.add_argument("--metric", default=None,
                        help="metric to rank runs by (default: the one most runs logged)")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument("--minimize", dest="minimize", action="store_true", default=None,
                           help="lower is better (default: guessed from the metric name)")
    direction.add_argument("--maximize", dest="minimize", action="store_false",
                           help="higher is better")
    parser.add_argument("--run-id", default=None, help="run whose curves to draw (default: best)")
    parser.add_argument("--experiment-ids", default=None, help="comma-separated experiments")
    parser.add_argument("--top", type=int, default=10, help="how many top runs to show")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spark = session(app_name="sparktrack-dashboard")
    dashboard = build_dashboard(
        spark, args.store, args.out, metric=args.metric, minimize=args.minimize,
        run_id=args.run_id, experiment_ids=args.experiment_ids, top=args.top,
    )
    print(f"Dashboard written to {dashboard.html_path} ({len(dashboard.images)} charts, "
          f"metric {dashboard.metric!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
