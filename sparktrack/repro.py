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

import hashlib
import math
import numbers
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparktrack.errors import InvalidInputError

__all__ = [
    "INPUT_FIELDS",
    "Fingerprint",
    "describe_input",
    "deterministic",
    "deterministic_split",
    "fingerprint",
    "input_key",
]

Keys = str | Sequence[str] | None

# Spark's own default for spark.sql.shuffle.partitions, used when the session says "auto".
_SPARK_DEFAULT_SHUFFLE_PARTITIONS = 200
# Row hashes are summed in three 22-bit slices so that the sums stay exact (no 64-bit overflow,
# which ANSI mode would turn into an error) for up to 2**41 rows; Python puts them back together.
_SLICE_BITS = 22
_SLICE_MASK = (1 << _SLICE_BITS) - 1
_U64 = (1 << 64) - 1
# 2**53: a non-negative 53-bit integer divided by it is an exact double in [0, 1).
_TWO_53 = float(1 << 53)


# --------------------------------------------------------------------------------------------
# Column checks and canonical forms
# --------------------------------------------------------------------------------------------


def _quoted(name: str) -> Column:
    """The top-level column ``name``, even when it contains dots or backticks."""
    return F.col("`" + name.replace("`", "``") + "`")


def _problem(dt: T.DataType, path: str) -> str | None:
    """Why values of ``dt`` (at ``path``) cannot be hashed and ordered by Spark, or None."""
    if isinstance(dt, T.MapType):
        return f"{path} is a map ({dt.simpleString()}): Spark can neither order nor hash maps"
    if isinstance(dt, T.VariantType):
        return f"{path} is a variant: Spark can neither order nor hash variants"
    if isinstance(dt, T.CalendarIntervalType):
        return f"{path} is a calendar interval, which Spark cannot order"
    if isinstance(dt, T.StructType):
        for field in dt.fields:
            found = _problem(field.dataType, f"{path}.{field.name}")
            if found:
                return found
    elif isinstance(dt, T.ArrayType):
        return _problem(dt.elementType, f"{path}[]")
    elif isinstance(dt, T.UserDefinedType):
        # Spark orders and hashes a UDT (ML vectors and matrices included) through its
        # underlying SQL type, so the UDT is fine exactly when that type is.
        return _problem(dt.sqlType(), path)
    return None


def _canonical(field: T.StructField, who: str) -> Column:
    """An expression Spark can hash and order that equals only for equal values of ``field``.

    Most types are their own canonical form. Top-level maps with orderable keys and values are
    replaced by their entries sorted by key (equal maps have equal sorted entries, whatever
    order they were built in). Strings with a non-binary collation are compared in binary so
    that 'A' and 'a' do not tie under UTF8_LCASE.
    """
    col = _quoted(field.name)
    dt = field.dataType
    if isinstance(dt, T.MapType):
        inner = _problem(dt.keyType, f"{field.name} keys") or _problem(
            dt.valueType, f"{field.name} values"
        )
        if inner is None:
            return F.array_sort(F.map_entries(col))
        problem = inner
    else:
        problem = _problem(dt, field.name)
    if problem is not None:
        raise InvalidInputError(
            f"{who}: column {field.name!r} cannot be hashed or ordered ({problem}). "
            f"Convert it before calling {who} (e.g. "
            f"df.withColumn({field.name!r}, F.to_json({field.name!r}))) or drop it."
        )
    if isinstance(dt, T.StringType) and getattr(dt, "collation", "UTF8_BINARY") != "UTF8_BINARY":
        return F.collate(col, "UTF8_BINARY")
    return col


def _fields(df: DataFrame, keys: Keys, who: str) -> list[T.StructField]:
    """The schema fields named by ``keys`` (all columns when None), validated."""
    schema = df.schema
    names = [f.name for f in schema.fields]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if keys is None:
        if not names:
            raise InvalidInputError(f"{who}: the DataFrame has no columns")
        if duplicated:
            raise InvalidInputError(
                f"{who}: column name {duplicated[0]!r} occurs more than once; rename the "
                "duplicates (e.g. after a join) or pass keys= naming unambiguous columns"
            )
        return list(schema.fields)
    wanted = [keys] if isinstance(keys, str) else list(keys)
    if not wanted:
        raise InvalidInputError(f"{who}: keys is empty; pass key column names or None for all")
    seen: set[str] = set()
    chosen = []
    for key in wanted:
        if not isinstance(key, str):
            raise InvalidInputError(f"{who}: key {key!r} is not a column name (str)")
        if key in seen:
            raise InvalidInputError(f"{who}: key column {key!r} is given twice")
        seen.add(key)
        if key not in names:
            raise InvalidInputError(
                f"{who}: key column {key!r} is not a column of the DataFrame "
                f"(columns: {', '.join(names)})"
            )
        if key in duplicated:
            raise InvalidInputError(
                f"{who}: key column {key!r} occurs more than once in the DataFrame; rename the "
                "duplicates first"
            )
        chosen.append(schema[key])
    return chosen


def _row_hash(fields: Iterable[T.StructField], who: str, *, seed: int | None = None) -> Column:
    """A 64-bit hash of the given columns of a row (xxhash64, plus null markers).

    Spark's hash skips nulls, so ``(null, 1)`` and ``(1, null)`` would hash alike; a boolean
    null marker per nullable column keeps them apart. Nulls nested inside arrays or structs
    keep that weakness: it only costs a hash collision, never determinism.
    """
    parts: list[Column] = [] if seed is None else [F.lit(seed).cast("long")]
    for field in fields:
        parts.append(_canonical(field, who))
        if field.nullable:
            parts.append(_quoted(field.name).isNull())
    return F.xxhash64(*parts)


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidInputError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _default_partitions(df: DataFrame) -> int:
    raw = df.sparkSession.conf.get("spark.sql.shuffle.partitions")
    try:
        return _positive_int(int(str(raw)), "spark.sql.shuffle.partitions")
    except (TypeError, ValueError):
        # "auto" (Databricks) or something else that is not a fixed number.
        return _SPARK_DEFAULT_SHUFFLE_PARTITIONS


# --------------------------------------------------------------------------------------------
# deterministic
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# deterministic_split
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# fingerprint
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# describe_input
# --------------------------------------------------------------------------------------------

#: Fields of :func:`describe_input`, each recorded as ``input.<name>.<field>``:
#:
#: - ``source``: comma-separated source folders (or single files), or ``in-memory``
#: - ``format``: ``delta``, ``parquet``, ``csv``, ``json``, ``orc``, ``avro``, ``text``
#:   (comma-separated when mixed); absent when unknown, e.g. for in-memory data
#: - ``files``: number of files read
#: - ``delta_version``: version of the Delta table(s), comma-separated like ``source``;
#:   only when every source is a Delta table
#: - ``delta_snapshot_match``: ``true`` when the files read are exactly that version's files;
#:   ``false`` when, e.g., a plain parquet read also picked up files the snapshot no longer has
#: - ``rows``, ``content_hash``, ``layout_hash``: see :class:`Fingerprint`
INPUT_FIELDS = (
    "source",
    "format",
    "files",
    "delta_version",
    "delta_snapshot_match",
    "rows",
    "content_hash",
    "layout_hash",
)

IN_MEMORY = "in-memory"
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
_PARTITION_DIR_RE = re.compile(r"^[^=/]+=[^/]*$")
_FORMATS = {
    "parquet": "parquet",
    "csv": "csv",
    "tsv": "csv",
    "json": "json",
    "jsonl": "json",
    "orc": "orc",
    "avro": "avro",
    "txt": "text",
    "text": "text",
}
_COMPRESSIONS = {"gz", "bz2", "snappy", "zst", "zstd", "lz4", "deflate", "xz", "br"}
# Tag values are limited to 8000 characters; a long list of sources is shortened.
_MAX_SOURCE_CHARS = 4000


def input_key(name: str, field: str) -> str:
    """The tracking key of one field of a described input: ``input.<name>.<field>``."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInputError(
            f"input name {name!r} is not valid; use letters, digits, '_' or '-' (e.g. 'training')"
        )
    if field not in INPUT_FIELDS:
        raise InvalidInputError(f"unknown input field {field!r}; known: {', '.join(INPUT_FIELDS)}")
    return f"input.{name}.{field}"


def _local_path(uri: str) -> str | None:
    """The local filesystem path of ``uri``, or None when it lives elsewhere (s3a://, ...)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return os.path.normpath(unquote(parsed.path))
    return None


def _format_of(filename: str) -> str | None:
    parts = filename.lower().split(".")[1:]
    while parts and parts[-1] in _COMPRESSIONS:
        parts.pop()
    return _FORMATS.get(parts[-1]) if parts else None


def _source_root(uri: str) -> tuple[str, bool]:
    """(root, is_local) of one input file: its folder without Hive-style ``k=v`` levels.

    A local folder holding ``_delta_log`` at any of those levels is the root (a Delta table).
    A lone file that does not look like a Spark/Delta part file is its own source.
    """
    local = _local_path(uri)
    if local is not None:
        folder = os.path.dirname(local)
        probe = folder
        while True:
            if os.path.isdir(os.path.join(probe, "_delta_log")):
                return probe, True
            if not _PARTITION_DIR_RE.match(os.path.basename(probe)):
                break
            probe = os.path.dirname(probe)
        return (probe if os.path.basename(local).startswith("part-") else local), True
    head = uri.rstrip("/").rsplit("/", 1)[0]
    while _PARTITION_DIR_RE.match(head.rsplit("/", 1)[-1]) and "/" in head:
        head = head.rsplit("/", 1)[0]
    return (head if uri.rsplit("/", 1)[-1].startswith("part-") else uri), False


def _delta_facts(
    root: str, is_local: bool, files: set[str], storage_options: dict[str, str] | None
) -> tuple[int, bool] | None:
    """(version, files read == snapshot files) when ``root`` is a Delta table, else None."""
    if is_local and not os.path.isdir(os.path.join(root, "_delta_log")):
        return None
    if not is_local and storage_options is None:
        return None  # remote detection needs credentials: opt in with storage_options
    from deltalake import DeltaTable

    try:
        table = DeltaTable(root, storage_options=storage_options)
        version = table.version()
        snapshot = {_normal(u) for u in table.file_uris()}
    except Exception:  # not a Delta table after all, unreadable log, no access
        return None
    read = {f for f in files if f == root or f.startswith(root.rstrip("/") + "/")}
    return version, read == snapshot


def _normal(uri: str) -> str:
    local = _local_path(uri)
    return local if local is not None else unquote(uri)


def describe_input(
    df: DataFrame,
    *,
    name: str = "training",
    storage_options: dict[str, str] | None = None,
) -> dict[str, str]:
    """What tracking records about a training input, keyed ``input.<name>.<field>``.

    Fields (see :data:`INPUT_FIELDS`): ``source`` (the folders or files read, from
    ``df.inputFiles()``, or ``in-memory``), ``format`` (from the file names, or ``delta`` when
    the source folder holds a ``_delta_log``), ``files``, ``delta_version`` and
    ``delta_snapshot_match`` (Delta sources only; the version is the table's current version,
    read with the ``deltalake`` package), ``rows``, ``content_hash`` and ``layout_hash`` (from
    :func:`fingerprint`: one Spark job).

    Delta tables on local disk are detected by their ``_delta_log`` folder. Remote ones
    (``s3://``, ``abfss://``, ...) are checked only when ``storage_options`` (as for
    ``deltalake.DeltaTable``) are given, so describing an input never waits on a remote store
    without being asked to.

    Raises:
        InvalidInputError: ``name`` is not made of letters, digits, ``_`` and ``-``, or a
            column cannot be hashed (named).
    """
    input_key(name, "source")  # validates the name before any work
    files = sorted(df.inputFiles())
    info: dict[str, str] = {}
    if not files:
        info[input_key(name, "source")] = IN_MEMORY
    else:
        roots: dict[str, bool] = {}
        for uri in files:
            root, is_local = _source_root(uri)
            roots.setdefault(root, is_local)
        normal_files = {_normal(u) for u in files}
        deltas = {r: _delta_facts(r, loc, normal_files, storage_options) for r, loc in roots.items()}
        ordered = sorted(roots)
        source = ",".join(ordered)
        if len(source) > _MAX_SOURCE_CHARS:
            source = source[:_MAX_SOURCE_CHARS] + f"... ({len(ordered)} sources)"
        info[input_key(name, "source")] = source
        if all(deltas[r] is not None for r in ordered):
            info[input_key(name, "format")] = "delta"
            facts = [deltas[r] for r in ordered]
            info[input_key(name, "delta_version")] = ",".join(str(f[0]) for f in facts if f)
            matched = all(f[1] for f in facts if f)
            info[input_key(name, "delta_snapshot_match")] = str(matched).lower()
        else:
            formats = {_format_of(u.rstrip("/").rsplit("/", 1)[-1]) for u in files}
            if None not in formats:
                info[input_key(name, "format")] = ",".join(sorted(f for f in formats if f))
    info[input_key(name, "files")] = str(len(files))
    fp = fingerprint(df)
    info[input_key(name, "rows")] = str(fp.row_count)
    info[input_key(name, "content_hash")] = fp.content_hash
    info[input_key(name, "layout_hash")] = fp.layout_hash
    return info
