"""fingerprint(): row count, content hash and layout hash in one Spark action."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparktrack.repro._columns import Keys, _fields, _row_hash

# Row hashes are summed in three 22-bit slices so that the sums stay exact (no 64-bit overflow,
# which ANSI mode would turn into an error) for up to 2**41 rows; Python puts them back together.
_SLICE_BITS = 22
_SLICE_MASK = (1 << _SLICE_BITS) - 1
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Fingerprint:
    """What a DataFrame held and how it was laid out, as computed by :func:`fingerprint`.

    Attributes:
        row_count: number of rows.
        content_hash: 16 hex digits; depends on the rows (as a multiset) and the hashed
            columns' names and types, not on their order or partitioning.
        layout_hash: 16 hex digits; depends also on each row's partition index and position
            within its partition. Empty partitions do not count.
    """

    row_count: int
    content_hash: str
    layout_hash: str


def _slices(h: Column, prefix: str) -> list[Column]:
    return [
        F.sum(F.shiftrightunsigned(h, k * _SLICE_BITS).bitwiseAND(F.lit(_SLICE_MASK))).alias(
            f"{prefix}{k}"
        )
        for k in range(3)
    ]


def _unslice(row: object, prefix: str) -> int:
    total = 0
    for k in range(3):
        total += int(row[f"{prefix}{k}"] or 0) << (k * _SLICE_BITS)  # type: ignore[index]
    return total & _U64


def _digest(*parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def fingerprint(df: DataFrame, *, keys: Keys = None) -> Fingerprint:
    """Count the rows of ``df`` and hash its content and its layout, in one Spark job.

    Each row's 64-bit hash is ``xxhash64`` of the hashed columns (all columns when ``keys`` is
    None). The content hash is built from the sum modulo 2**64 of the row hashes (a multiset
    hash: insensitive to order, sensitive to duplicates), the row count and the columns' names
    and types. The layout hash sums instead a hash of each row's hash with its
    ``monotonically_increasing_id()``, which encodes the partition index and the position
    within the partition. Both are stable across runs and Spark sessions; they are checksums,
    not cryptographic digests.

    Raises:
        InvalidInputError: an unknown key or a column that cannot be hashed (named).
    """
    who = "fingerprint()"
    fields = _fields(df, keys, who)
    row = _row_hash(fields, who)
    placed = F.xxhash64(row, F.monotonically_increasing_id())
    hashed = df.select(row.alias("h"), placed.alias("p"))
    result = hashed.agg(F.count(F.lit(1)).alias("n"), *_slices(F.col("h"), "c"), *_slices(
        F.col("p"), "l"
    )).collect()[0]
    count = int(result["n"])
    schema = T.StructType(list(fields)).simpleString()
    return Fingerprint(
        row_count=count,
        content_hash=_digest("content", schema, count, _unslice(result, "c")),
        layout_hash=_digest("layout", schema, count, _unslice(result, "l")),
    )
