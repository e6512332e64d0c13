"""Compile a parsed filter or order into Spark columns over the data source's ``runs`` table.

The DataFrame shape::

    run_id, experiment_id, run_name, parent_run_id, user_id, status, lifecycle_stage,
    artifact_uri: string;  start_time, end_time: timestamp;
    metrics, metrics_min, metrics_max: map<string, double>;  params, tags: map<string, string>

Semantics are those of :mod:`sparktrack._search.evaluate` (missing keys match nothing but
IS NULL and NOT; NaN matches only ``!=``; order: values, then NaN, then missing). Spark needs
two guards to get there: it orders NaN above every number (so ``NaN > 1`` is true in Spark
SQL), and a comparison with a missing map entry is NULL, which ``NOT`` would keep NULL; every
clause is therefore NaN-guarded and coalesced to false. start_time/end_time literals are
milliseconds since the epoch and are compared with ``unix_millis`` of the timestamp column.

Literals are passed to Spark as values (``lit``, ``getItem``, ``like``), never as SQL text.
pyspark is imported inside the functions so that ``sparktrack._search`` imports without it.

What is compiled stays within what Spark and Java can take (the parser bounds the rest, see
:mod:`sparktrack._search.limits`):

* AND and OR of many clauses become balanced trees: Spark's analyzer recurses over the
  expression tree, and a left-deep chain of 10,000 clauses overflows the JVM stack where a
  balanced one is 14 levels deep.
* LIKE patterns Spark rewrites into string functions (``abc``, ``abc%``, ``%abc``,
  ``abc%def``, ``%abc%``) go to ``like``; every other pattern, and every ILIKE, is compiled
  here into a Java regex that cannot backtrack
  (:func:`sparktrack._search.like.like_regex`). Spark would run
  ``%a%a%b`` as ``.*a.*a.*b``, which takes time cubic in the value's length (a minute for a
  2,000-character value).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING

from sparktrack._search.like import like_regex
from sparktrack._search.nodes import (
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

__all__ = ["filter_condition", "order_to_spark", "to_spark_predicate"]

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
    if isinstance(tree, Not):  # never NULL already
        return _Compiler().condition(tree)
    return F.coalesce(_Compiler().condition(tree), F.lit(False))


def filter_condition(tree: Node) -> Column:
    """Like :func:`to_spark_predicate`, but NULL where a run does not match (as well as
    false): enough for ``DataFrame.filter``, which keeps TRUE rows only, and it lets Spark
    push the top-level clauses on attributes down to the data source."""
    return _Compiler().condition(tree)


class _Compiler:
    """One filter's compilation.

    Every Column operation is a Py4J round trip (several, with pyspark's call-site capture),
    so each identifier's column is made once, literals go into comparisons as values, and an
    OR of equalities on one string key is one ``isin``.
    """

    def __init__(self) -> None:
        from pyspark.sql import functions as F

        self.false = F.lit(False)
        self.columns: dict[Identifier | str, Column] = {}
        self.nans: dict[tuple[Identifier, bool], Column] = {}

    def condition(self, node: Node) -> Column:
        """TRUE where ``node`` matches; FALSE or NULL elsewhere.

        NULL (a missing key) may pass through AND and OR: in three-valued logic they are
        TRUE exactly when they would be with every NULL read as FALSE. NOT is where NULL
        must become FALSE first, or NOT would leave it NULL, not TRUE.
        """
        from pyspark.sql import functions as F

        if isinstance(node, Comparison):
            return self.compare(node)
        if isinstance(node, Not):
            return ~F.coalesce(self.condition(node.operand), self.false)
        if isinstance(node, And):
            return _balanced(operator.and_, [self.condition(child) for child in node.operands])
        if isinstance(node, Or):
            return _balanced(operator.or_, self.alternatives(node.operands))
        raise TypeError(f"not a filter node: {node!r}")

    def alternatives(self, operands: tuple[Node, ...]) -> list[Column]:
        """The conditions of OR's operands, equalities and IN lists on one string key merged
        into one IN: one Spark expression (a hash lookup) for thousands of values."""
        values: dict[Identifier, list[str]] = {}
        rest: list[Node] = []
        for node in operands:
            if _string_membership(node):
                values.setdefault(node.identifier, []).extend(
                    node.value if node.op == "IN" else [node.value]
                )
            else:
                rest.append(node)
        merged = [self.column(ident).isin(list(dict.fromkeys(v))) for ident, v in values.items()]
        return merged + [self.condition(node) for node in rest]

    def column(self, ident: Identifier) -> Column:
        from pyspark.sql import functions as F

        if ident not in self.columns:
            if ident.kind == "attribute":
                self.columns[ident] = _column(ident)
            else:  # a map lookup: the map column is shared by every key
                name = _map_name(ident)
                if name not in self.columns:
                    self.columns[name] = F.col(name)
                self.columns[ident] = self.columns[name].getItem(ident.key)
        return self.columns[ident]

    def compare(self, node: Comparison) -> Column:
        ident, op, value = node.identifier, node.op, node.value
        column = self.column(ident)
        if op == "IS NULL":
            return column.isNull()
        if op == "IS NOT NULL":
            return column.isNotNull()
        if op == "LIKE" and _spark_simplifies(value):
            return column.like(value)
        if op in ("LIKE", "ILIKE"):
            return column.rlike(like_regex(value, ignore_case=op == "ILIKE", dialect="java"))
        if op == "IN":
            return column.isin(list(value))
        if op == "NOT IN":
            return ~column.isin(list(value))
        result = _COMPARATORS[op](column, value)
        if ident.kind != "metric":
            return result
        # Spark compares NaN as the largest double; IEEE (and MLflow) say only != holds.
        if op == "!=":
            return result | self.nan(ident, is_nan=True)
        return result & self.nan(ident, is_nan=False)

    def nan(self, ident: Identifier, *, is_nan: bool) -> Column:
        """``isnan`` of the identifier's column, or its negation (each made once)."""
        from pyspark.sql import functions as F

        if (ident, is_nan) not in self.nans:
            nan = F.isnan(self.column(ident))
            self.nans[(ident, is_nan)] = nan if is_nan else ~nan
        return self.nans[(ident, is_nan)]


_COMPARATORS: dict[str, Callable[[Column, object], Column]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _string_membership(node: Node) -> bool:
    """``key = 'x'`` or ``key IN (...)`` on a string-valued key (not a number, whose IN
    would not follow the NaN and -0.0 rules of =)."""
    if not isinstance(node, Comparison) or node.op not in ("=", "IN"):
        return False
    kind, key = node.identifier.kind, node.identifier.key
    return kind in ("param", "tag") or (kind == "attribute" and key not in NUMERIC_ATTRIBUTES)


def _balanced(combine: Callable[[Column, Column], Column], columns: list[Column]) -> Column:
    """``columns`` joined by ``combine`` as a balanced tree, log2(n) deep rather than n."""
    while len(columns) > 1:
        paired = [combine(a, b) for a, b in zip(columns[::2], columns[1::2], strict=False)]
        columns = paired + columns[len(paired) * 2 :]
    return columns[0]


def _column(ident: Identifier) -> Column:
    from pyspark.sql import functions as F

    if ident.kind == "attribute":
        column = F.col(ident.key)
        return F.unix_millis(column) if ident.key in NUMERIC_ATTRIBUTES else column
    return F.col(_map_name(ident)).getItem(ident.key)


def _map_name(ident: Identifier) -> str:
    """The map column holding a metric, param or tag."""
    if ident.kind == "metric":
        return _METRIC_MAPS[ident.aggregate]
    return "params" if ident.kind == "param" else "tags"


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


def _spark_simplifies(pattern: str) -> bool:
    """True for the patterns Spark's optimizer turns into string functions (equality,
    startsWith, endsWith, contains): they also push down to the data source."""
    if "\\" in pattern or "_" in pattern:
        return False
    wildcards = pattern.count("%")
    return wildcards <= 1 or (
        wildcards == 2 and pattern.startswith("%") and pattern.endswith("%") and len(pattern) > 2
    )
