"""deterministic() and deterministic_split(): layouts and splits that depend on rows only."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparktrack.errors import InvalidInputError
from sparktrack.repro._columns import (
    Keys,
    _canonical,
    _fields,
    _positive_int,
    _quoted,
    _row_hash,
)

# Spark's own default for spark.sql.shuffle.partitions, used when the session says "auto".
_SPARK_DEFAULT_SHUFFLE_PARTITIONS = 200
# 2**53: a non-negative 53-bit integer divided by it is an exact double in [0, 1).
_TWO_53 = float(1 << 53)


def _default_partitions(df: DataFrame) -> int:
    raw = df.sparkSession.conf.get("spark.sql.shuffle.partitions")
    try:
        return _positive_int(int(str(raw)), "spark.sql.shuffle.partitions")
    except (TypeError, ValueError):
        # "auto" (Databricks) or something else that is not a fixed number.
        return _SPARK_DEFAULT_SHUFFLE_PARTITIONS


def deterministic(
    df: DataFrame, *, num_partitions: int | None = None, keys: Keys = None
) -> DataFrame:
    """Lay ``df`` out so that the same rows always give the same partitions in the same order.

    The rows are hash-repartitioned into ``num_partitions`` partitions on the key columns and
    then sorted within each partition on a total order: the key columns first, then every other
    column. The result has the same schema and rows as ``df``; only the layout changes, and it
    depends on the rows alone, not on how many partitions they arrived in or in what order.
    Apply it last, just before ``fit()``: narrow steps after it (``select``, ``filter``,
    ``VectorAssembler.transform``) keep the layout, wide ones (joins, aggregations,
    ``repartition``) do not.

    Args:
        df: the training input.
        num_partitions: number of output partitions. Defaults to the session's
            ``spark.sql.shuffle.partitions`` (200 when it is not a fixed number, e.g. "auto"),
            always passed to Spark explicitly so that adaptive execution cannot coalesce
            partitions depending on data sizes. The same rows with another ``num_partitions``
            give another (but again reproducible) layout.
        keys: column name(s) to hash-partition on; all columns when None. Unique, stable ids
            make the cheapest keys; few distinct values make skewed partitions.

    Raises:
        InvalidInputError: an unknown or repeated key, a bad ``num_partitions``, or a column
            Spark cannot hash or order (e.g. a map nested in a struct, a variant); the message
            names the column. A top-level map with orderable keys and values is accepted and
            compared as its entries sorted by key. ML vectors and matrices are accepted: Spark
            hashes and orders them through their underlying struct.
    """
    who = "deterministic()"
    n = _default_partitions(df) if num_partitions is None else _positive_int(
        num_partitions, f"{who}: num_partitions"
    )
    key_fields = _fields(df, keys, who)
    key_names = {f.name for f in key_fields}
    # Every column takes part in the order, keys first, so that rows with equal keys are still
    # ordered by content. Rows that compare equal on every column are identical (equal values
    # in every column), so swapping them changes nothing an estimator can see: the output
    # depends on the multiset of rows only. Two exceptions to "compare equal => identical":
    # -0.0 == 0.0 and NaN == NaN in Spark's ordering. Top-level float/double columns get a
    # tie-break on the text of zeros ("-0.0" vs "0.0"); inside vectors, arrays and structs the
    # sign of zero is not separated, which can at most flip the sign of an exact-zero result.
    order_fields = key_fields + [f for f in df.schema.fields if f.name not in key_names]
    # Equal maps built in another insertion order tie on their sorted entries; their entries
    # in stored order break that tie.
    order: list[Column] = []
    tie_breaks: list[Column] = []
    for field in order_fields:
        order.append(_canonical(field, who))
        col = _quoted(field.name)
        if isinstance(field.dataType, T.FloatType | T.DoubleType):
            tie_breaks.append(F.when(col == 0, col.cast("string")))
        elif isinstance(field.dataType, T.MapType):
            tie_breaks.append(F.map_entries(col))
    partition_by = [_canonical(f, who) for f in key_fields]
    return df.repartition(n, *partition_by).sortWithinPartitions(*order, *tie_breaks)


def _cut_points(weights: object) -> list[float]:
    """Normalized cumulative upper bounds of the splits; the last is exactly 1.0."""
    who = "deterministic_split()"
    if isinstance(weights, str | bytes) or not isinstance(weights, Sequence):
        raise InvalidInputError(
            f"{who}: weights must be a list of numbers such as [0.8, 0.2], got {weights!r}"
        )
    if len(weights) < 1:
        raise InvalidInputError(f"{who}: weights is empty; give one weight per split")
    values = []
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, numbers.Real):
            raise InvalidInputError(f"{who}: weights[{i}] = {w!r} is not a number")
        w = float(w)
        if not math.isfinite(w) or w < 0:
            raise InvalidInputError(
                f"{who}: weights[{i}] = {w!r}; weights must be finite and >= 0"
            )
        values.append(w)
    total = math.fsum(values)
    if total <= 0:
        raise InvalidInputError(f"{who}: weights sum to 0; at least one must be positive")
    cuts, running = [], 0.0
    for w in values:
        running += w
        cuts.append(min(running / total, 1.0))
    cuts[-1] = 1.0
    return cuts


def deterministic_split(
    df: DataFrame, weights: Sequence[float], *, seed: int, keys: Keys = None
) -> list[DataFrame]:
    """Split ``df`` by a hash of each row's keys and ``seed``, like a layout-proof randomSplit.

    Each row gets ``u = xxhash64(seed, keys...)`` mapped to [0, 1) (top 53 bits / 2**53) and
    goes to split ``i`` when ``cut[i-1] <= u < cut[i]``, the cuts being the normalized
    cumulative weights. The split of a row is a pure function of its key values and the seed:
    the same on every run, every layout and every recomputation (``randomSplit`` can overlap
    or lose rows when its input is recomputed in another order), and no row is lost or
    duplicated. Proportions are near the weights, not exact. Rows with equal keys always land
    together, so keying on an entity id (a user, a device) keeps an entity out of two splits.

    The splits keep the input's layout; to train on them reproducibly, pass each through
    :func:`deterministic`.

    Args:
        df: the DataFrame to split.
        weights: one non-negative weight per split, normalized by their sum (like randomSplit).
        seed: an integer; another seed gives another split.
        keys: column name(s) that decide the split; all columns when None.

    Raises:
        InvalidInputError: bad weights (not numbers, negative, infinite, NaN, all zero), a
            seed that is not an integer, an unknown key, or a column that cannot be hashed.
    """
    who = "deterministic_split()"
    cuts = _cut_points(weights)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidInputError(f"{who}: seed must be an integer, got {seed!r}")
    if not -(2**63) <= int(seed) < 2**63:
        raise InvalidInputError(f"{who}: seed {seed} does not fit in a 64-bit integer")
    fields = _fields(df, keys, who)
    u = F.shiftrightunsigned(_row_hash(fields, who, seed=int(seed)), 11).cast("double") / F.lit(
        _TWO_53
    )
    splits = []
    lower = 0.0
    for upper in cuts:
        # The same Python float is the upper bound of one split and the lower bound of the
        # next, and u < 1.0 always, so the intervals tile [0, 1) exactly.
        cond = u < F.lit(upper) if lower == 0.0 else (u >= F.lit(lower)) & (u < F.lit(upper))
        splits.append(df.filter(cond))
        lower = upper
    return splits
