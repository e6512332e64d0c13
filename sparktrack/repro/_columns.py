"""Which columns can be hashed and ordered, their canonical forms, and row hashes."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparktrack.errors import InvalidInputError

Keys = str | Sequence[str] | None


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
