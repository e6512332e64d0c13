"""Search-grammar filters applied to DataFrames of the ``runs`` table."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["filter"]


def filter(  # noqa: A001 (the name users look for, like DataFrame.filter)
    df: DataFrame, filter_string: str | None, *, order_by: list[str] | None = None
) -> DataFrame:
    """Keep the rows of ``df`` that match an MLflow search filter; optionally sort them.

    Args:
        df: a DataFrame shaped like the data source's ``runs`` table (``metrics``, ``params``,
            ``tags`` maps, ``start_time`` timestamp, ...).
        filter_string: e.g. ``"metrics.rmse < 1 AND params.x = '0.5'"``; None or "" keeps all.
        order_by: e.g. ``["metrics.rmse ASC"]``, sorted like ``search_runs``.

    Raises:
        InvalidFilterError: the filter or an order_by clause does not parse, or exceeds the
            bounds ``search_runs`` holds filters to (the same error ``search_runs`` raises).

    The filter is parsed into a tree and compiled to Spark columns; it is never pasted into SQL.
    """
    # Imported here: executors load this package to read, and never need the search grammar.
    from sparktrack._search import order_to_spark, parse_filter, parse_order_by
    from sparktrack._search.spark import filter_condition

    tree = parse_filter(filter_string)
    result = df if tree is None else df.filter(filter_condition(tree))
    if order_by:
        result = result.orderBy(*order_to_spark(parse_order_by(order_by)))
    return result
