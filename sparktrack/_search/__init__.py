"""Search filters: parse MLflow-style filter and order_by strings, evaluate them.

``parse_filter`` / ``parse_order_by`` turn strings into a tree of frozen dataclasses
(:mod:`sparktrack._search.nodes`); ``filter_runs`` / ``order_runs`` evaluate the tree with
pyarrow over a :class:`SearchSource`; ``to_spark_predicate`` / ``order_to_spark`` compile it
into Spark columns (pyspark is imported only when they are called). A filter is data: it is
never pasted into SQL.
"""

from __future__ import annotations

from sparktrack._search.evaluate import (
    ROW,
    AlignedSource,
    SearchSource,
    filter_runs,
    order_runs,
    take_rows,
)
from sparktrack._search.nodes import And, Comparison, Identifier, Node, Not, Or, OrderKey
from sparktrack._search.parser import parse_filter, parse_order_by
from sparktrack._search.spark import order_to_spark, to_spark_predicate

__all__ = [
    "AlignedSource",
    "And",
    "Comparison",
    "Identifier",
    "Node",
    "Not",
    "Or",
    "OrderKey",
    "ROW",
    "SearchSource",
    "filter_runs",
    "order_runs",
    "order_to_spark",
    "parse_filter",
    "parse_order_by",
    "take_rows",
    "to_spark_predicate",
]
