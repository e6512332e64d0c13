"""Maintain a sparktrack store: compact, checkpoint, vacuum, materialize runs_latest.

    spark-submit jobs/maintain.py --store ./sparktrack-store
    python jobs/maintain.py --store s3://bucket/prefix --retention-hours 336

Safe while other processes log to the store. Needs no Spark (spark-submit only ships it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sparktrack.maintenance import DEFAULT_RETENTION_HOURS, STEPS, Maintenance  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=os.environ.get("SPARKTRACK_TRACKING_URI",
                                                          "./sparktrack-store"),
                        help="store URI (default: $SPARKTRACK_TRACKING_URI or ./sparktrack-store)")
    parser.add_argument("--retention-hours", type=float, default=DEFAULT_RETENTION_HOURS,
                        help="vacuum keeps files removed more recently than this (default 168)")
    parser.add_argument("--tables", default=None,
                        help="comma-separated tables to maintain (default: all)")
    for step in STEPS:
        parser.add_argument(f"--no-{step}", action="store_true", help=f"skip the {step} step")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    maintenance = Maintenance(args.store, tables=args.tables.split(",") if args.tables else None)
    report = maintenance.run(
        steps=[step for step in STEPS if not getattr(args, f"no_{step}")],
        retention_hours=args.retention_hours,
    )
    summary = {
        "store": args.store,
        "compacted": {
            table: {k: metrics.get(k) for k in ("numFilesAdded", "numFilesRemoved")}
            for table, metrics in report.compacted.items()
        },
        "checkpoints": report.checkpoints,
        "vacuumed_files": report.vacuumed,
        "runs_latest_rows": report.runs_latest_rows,
        "seconds": round(report.seconds, 2),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
