"""Compile a parsed filter or order into Spark columns over the data source's ``runs`` table.

The DataFrame shape::

    run_id, experiment_id, run_name, parent_run_id, user_id, status, lifecycle_stage,
    artifact_uri: string;  start_time, end_time: timestamp;
    metrics, metrics_min, metrics_max: map<string, double>;  params, tags: map<string, string>

Semantics are those of :mod:`sparktrack.search.evaluate` (missing keys match nothing but
IS NULL and NOT; NaN matches only ``!=``; order: values, then NaN, then missing). Spark needs
two guards to get there: it orders NaN above every number (so ``NaN > 1`` is true in Spark
SQL), and a comparison with a missing map entry is NULL, which ``NOT`` would keep NULL; every
clause is therefore NaN-guarded and coalesced to false. start_time/end_time literals are
milliseconds since the epoch and are compared with ``unix_millis`` of the timestamp column.

Literals are passed to Spark as values (``lit``, ``getItem``, ``like``), never as SQL text.
pyspark is imported inside the functions so that ``sparktrack.search`` imports without it.
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING

from sparktrack.search.nodes import (
    NUMERIC_ATTRIBUTES,
    And,
    Comparison,
    Identifier,
    Node,
    Not,
    Or,
    OrderKey,
)

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = ["order_to_spark", "to_spark_predicate"]

_METRIC_MAPS = {"latest": "metrics", "min": "metrics_min", "max": "metrics_max"}


def to_spark_predicate(tree: Node | None) -> Column:
    """Compile a filter tree into a boolean Spark column (never NULL).

    Args:
        tree: A tree from :func:`parse_filter`; None gives ``lit(True)``.

    Returns:
        A column to pass to ``DataFrame.filter`` on a DataFrame shaped like the data
        source's ``runs`` table. It selects the same runs as :func:`filter_runs`.
    """
    from pyspark.sql import functions as F

    if tree is None:
        return F.lit(True)
    return _predicate(tree)


def _predicate(node: Node) -> Column:
    from pyspark.sql import functions as F

    if isinstance(node, Comparison):
        # NULL (missing key) must read as false, or NOT would leave it NULL, not true.
        return F.coalesce(_compare(node), F.lit(False))
    if isinstance(node, Not):
        return ~_predicate(node.operand)
    if isinstance(node, And):
        return reduce(lambda a, b: a & b, (_predicate(child) for child in node.operands))
    if isinstance(node, Or):
        return reduce(lambda a, b: a | b, (_predicate(child) for child in node.operands))
    raise TypeError(f"not a filter node: {node!r}")


def _column(ident: Identifier) -> Column:
    from pyspark.sql import functions as F

    if ident.kind == "attribute":
        column = F.col(ident.key)
        return F.unix_millis(column) if ident.key in NUMERIC_ATTRIBUTES else column
    if ident.kind == "metric":
        return F.col(_METRIC_MAPS[ident.aggregate]).getItem(ident.key)
    return F.col("params" if ident.kind == "param" else "tags").getItem(ident.key)


def _compare(node: Comparison) -> Column:
    from pyspark.sql import functions as F

    column, op, value = _column(node.identifier), node.op, node.value
    if op == "IS NULL":
        return column.isNull()
    if op == "IS NOT NULL":
        return column.isNotNull()
    if op == "LIKE":
        return column.like(value)
    if op == "ILIKE":
        return column.ilike(value)
    if op == "IN":
        return column.isin(list(value))
    if op == "NOT IN":
        return ~column.isin(list(value))
    literal = F.lit(value)
    result = {
        "=": column == literal,
        "!=": column != literal,
        ">": column > literal,
        ">=": column >= literal,
        "<": column < literal,
        "<=": column <= literal,
    }[op]
    if node.identifier.kind == "metric":
        # Spark compares NaN as the largest double; IEEE (and MLflow) say only != holds.
        nan = F.isnan(column)
        result = nan | result if op == "!=" else ~nan & result
    return result


def order_to_spark(order: list[OrderKey]) -> list[Column]:
    """Compile sort keys into columns for ``DataFrame.orderBy``.

    Each key sorts values first (ASC or DESC), then NaN, then runs without the key; ties
    fall back to start_time DESC (unless it is a key) and run_id ASC, like
    :func:`order_runs`.
    """
    from pyspark.sql import functions as F

    columns = []
    for key in order:
        column = _column(key.identifier)
        rank = F.when(column.isNull(), 2)
        if key.identifier.kind == "metric":
            rank = rank.when(F.isnan(column), 1)
        columns.append(rank.otherwise(0).asc())
        columns.append(column.asc_nulls_last() if key.ascending else column.desc_nulls_last())
    if Identifier("attribute", "start_time") not in {key.identifier for key in order}:
        columns.append(F.col("start_time").desc_nulls_last())
    columns.append(F.col("run_id").asc_nulls_last())
    return columns
