"""Show that MLlib results depend on data layout, and that sparktrack.repro removes that.

    spark-submit jobs/reproduce.py --store ./sparktrack-store
    python jobs/reproduce.py --store ./sparktrack-store --rows 2000

The same rows arrive in two layouts (1 partition in order; N partitions shuffled). Each layout
is split 80/20 and a random forest is trained on the 80%, twice without the helpers
(``randomSplit`` on the raw layout) and twice with them (``deterministic_split`` then
``deterministic``). All four runs are logged to the experiment "reproducibility" with their
params, metrics, model hash and input description, and a comparison table is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import sparktrack  # noqa: E402
from sparktrack import repro  # noqa: E402
from sparktrack.spark import session  # noqa: E402

FEATURES = ["f0", "f1", "f2", "f3"]
WEIGHTS = [0.8, 0.2]


def make_rows(*, rows: int, seed: int):
    """A binary-classification table (id, four features, non-linear noisy label) in pandas.

    Built on the driver so that every layout holds exactly the same values (Spark's rand()
    depends on the partitioning it runs in).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    noise = rng.normal(scale=0.8, size=rows)
    label = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] * x[:, 3] + noise > 0).astype(float)
    pdf = pd.DataFrame(x, columns=FEATURES)
    pdf.insert(0, "id", np.arange(rows, dtype="int64"))
    pdf["label"] = label
    return pdf


def layouts(spark, pdf, *, partitions: int, seed: int):
    """The same rows twice: one partition in order, and shuffled over ``partitions``."""
    in_order = spark.createDataFrame(pdf).coalesce(1)
    shuffled = spark.createDataFrame(pdf.sample(frac=1.0, random_state=seed)).repartition(
        partitions
    )
    return {"1 partition, in order": in_order, f"{partitions} partitions, shuffled": shuffled}


def model_hash(model) -> str:
    """SHA-256 (first 16 hex digits) of the forest's trees and feature importances, bit-exact."""
    digest = hashlib.sha256()
    for tree in model.trees:
        digest.update(tree.toDebugString.split("\n", 1)[1].encode())  # without the uid line
    for value in model.featureImportances.toArray():
        digest.update(struct.pack(">d", float(value)))
    return digest.hexdigest()[:16]


def log_input(df, *, name: str, context: str) -> None:
    """``sparktrack.log_input`` when the fluent API has it; otherwise the same facts as tags."""
    if hasattr(sparktrack, "log_input"):
        sparktrack.log_input(df, name=name, context=context)
    else:
        sparktrack.set_tags(repro.describe_input(df, name=name))


def train_once(layout: str, df, *, helpers: bool, seed: int, num_trees: int, max_depth: int):
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler

    if helpers:
        train, test = repro.deterministic_split(df, WEIGHTS, seed=seed, keys="id")
        train, test = repro.deterministic(train), repro.deterministic(test)
    else:
        train, test = df.randomSplit(WEIGHTS, seed=seed)
    assembler = VectorAssembler(inputCols=FEATURES, outputCol="features")
    run_name = f"rf {'with' if helpers else 'without'} helpers, {layout}"
    with sparktrack.start_run(run_name=run_name) as run:
        sparktrack.log_params(
            {"layout": layout, "helpers": helpers, "model": "RandomForestClassifier",
             "numTrees": num_trees, "maxDepth": max_depth, "seed": seed,
             "split_weights": WEIGHTS}
        )
        log_input(train, name="training", context="training")
        model = RandomForestClassifier(numTrees=num_trees, maxDepth=max_depth, seed=seed).fit(
            assembler.transform(train)
        )
        predictions = model.transform(assembler.transform(test))
        # Accuracy and F1 come from integer confusion counts: unlike areaUnderROC, they do not
        # depend on the order in which Spark merges task results.
        metrics = {
            f"test_{m}": MulticlassClassificationEvaluator(metricName=m).evaluate(predictions)
            for m in ("accuracy", "f1")
        }
        fp = repro.fingerprint(train)
        metrics["train_rows"] = fp.row_count
        sparktrack.log_metrics(metrics)
        digest = model_hash(model)
        sparktrack.set_tags({"job": "reproduce", "model_hash": digest,
                             "train_content_hash": fp.content_hash})
    return {"layout": layout, "helpers": helpers, "run_id": run.info.run_id, "model_hash": digest,
            "train_content_hash": fp.content_hash, **metrics}


def print_table(results) -> None:
    header = (f"{'layout':<26} {'helpers':<8} {'train rows':>10} {'accuracy':>20} "
              f"{'f1':>20} {'model hash':<17} {'identical?':<10}")
    print(header)
    print("-" * len(header))
    first: dict[bool, dict] = {}
    for r in results:
        base = first.setdefault(r["helpers"], r)
        same = all(r[k] == base[k] for k in ("model_hash", "test_accuracy", "test_f1",
                                             "train_content_hash"))
        verdict = "(first)" if r is base else ("yes" if same else "NO")
        print(f"{r['layout']:<26} {'yes' if r['helpers'] else 'no':<8} {r['train_rows']:>10} "
              f"{r['test_accuracy']!r:>20} {r['test_f1']!r:>20} {r['model_hash']:<17} {verdict}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="./sparktrack-store", help="store root URI")
    parser.add_argument("--experiment", default="reproducibility")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=8,
                        help="partitions of the shuffled layout")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trees", type=int, default=10)
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args(argv)

    spark = session(app_name="sparktrack-reproduce")
    sparktrack.set_tracking_uri(args.store)
    sparktrack.set_experiment(args.experiment)
    pdf = make_rows(rows=args.rows, seed=args.seed)
    data = layouts(spark, pdf, partitions=args.partitions, seed=args.seed)
    results = [
        train_once(layout, df, helpers=helpers, seed=args.seed, num_trees=args.trees,
                   max_depth=args.depth)
        for helpers in (False, True)
        for layout, df in data.items()
    ]
    sparktrack.flush()
    print(f"\nStore: {args.store}  experiment: {args.experiment}  rows: {args.rows}")
    print_table(results)
    spark.stop()


if __name__ == "__main__":
    main()
