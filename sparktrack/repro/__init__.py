"""Reproducible training inputs: deterministic layouts, hash splits and data fingerprints.

Spark MLlib results depend on more than the rows: random forests draw their bootstrap samples
per partition (seeded by the partition index), ``randomSplit`` samples each partition in arrival
order, k-means|| samples per partition, and gradients are summed partition by partition, so the
same rows arriving in another order or partitioning can give another model. The helpers here
take layout out of the equation:

- :func:`deterministic` gives the same rows the same partitions, in the same order, whatever
  layout they arrived in (hash-repartition on key columns, then sort within each partition on
  a total order).
- :func:`deterministic_split` decides each row's split from a hash of its keys and a seed, so
  membership never depends on layout or on recomputation.
- :func:`fingerprint` summarises content (order-insensitive) and layout (order-sensitive) in one
  Spark job; :func:`describe_input` adds where the data came from, for tracking.

All work is done by Spark expressions (``xxhash64``, ``sortWithinPartitions``, aggregates): no
Python UDF runs on the data, and nothing here touches ``sparkContext`` (Spark Connect works).
"""
from __future__ import annotations

from sparktrack.repro._fingerprint import Fingerprint, fingerprint
from sparktrack.repro._inputs import INPUT_FIELDS, describe_input, input_key
from sparktrack.repro._layout import deterministic, deterministic_split

__all__ = [
    "INPUT_FIELDS",
    "Fingerprint",
    "describe_input",
    "deterministic",
    "deterministic_split",
    "fingerprint",
    "input_key",
]
