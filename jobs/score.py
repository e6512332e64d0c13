"""Batch scoring with a logged or registered Spark model, recorded as a run.

    python jobs/score.py --model models:/churn@champion --input data/customers \\
        --output out/scores --store ./sparktrack-store
    spark-submit jobs/score.py --model runs:/<run_id>/model --input customers --output s3://...

``--input`` is a Delta table folder (its current snapshot), a parquet path or a table name of
the Spark catalog. The model scores it through Spark (``load_model(uri).transform``); the
predictions are written with Spark's parquet writer and, with ``--format delta`` (default),
committed as a Delta table by deltalake. ML vector columns (probability, rawPrediction) are
written as arrays. The run (experiment ``--experiment``) records the model URI, the registered
name and version it resolved to, the input's fingerprint (rows, content hash, Delta version)
and the duration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import sparktrack  # noqa: E402
from sparktrack._models.scoring import FORMATS, score  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True,
                        help="runs:/<run_id>/<path>, models:/<name>/<version|latest|stage>, "
                             "models:/<name>@<alias> or a model folder")
    parser.add_argument("--input", required=True, help="Delta folder, parquet path or table")
    parser.add_argument("--output", required=True, help="where the predictions go (new path)")
    parser.add_argument("--format", choices=FORMATS, default="delta")
    parser.add_argument("--store", default=None, help="tracking URI (default: the current one)")
    parser.add_argument("--experiment", default="scoring")
    args = parser.parse_args(argv)
    if args.store:
        sparktrack.set_tracking_uri(args.store)
    sparktrack.set_experiment(args.experiment)
    result = score(args.model, args.input, args.output, output_format=args.format)
    sparktrack.flush()
    print(json.dumps(result.__dict__), flush=True)


if __name__ == "__main__":
    main()
