"""Evaluate a parsed filter and an order over pyarrow tables.

Semantics (shared with :mod:`sparktrack._search.spark`, and MLflow 3.17's SQL store):

* A run that lacks a metric, param or tag (or whose attribute is null, such as the end_time
  of a running run) matches no comparison on it, ``!=`` included. ``IS NULL`` matches exactly
  those runs; ``NOT (...)`` is the complement within the candidate runs, so it matches them.
* NaN metric values match ``!=`` (any number) and no other comparison, as in IEEE and in
  MLflow's ``is_nan`` handling.
* Ordering puts, for every key and in both directions, real values first, then NaN, then
  runs without the key; ties fall back to start_time DESC (unless start_time is a key) and
  then run_id ASC, MLflow's natural order.
* LIKE is case-sensitive, ILIKE case-insensitive; ``%`` and ``_`` are the wildcards and a
  backslash escapes them.

The evaluator works on masks over ``source.runs()`` (one boolean per run): a clause on a key
asks the source for that key's (run_id, value) table once, finds the matching run ids and
marks them with ``pc.is_in``. AND, OR and NOT are then mask algebra, so no wide table of all
keys is ever built. A source that numbers its runs (an :class:`AlignedSource`) hands over a
key's values already aligned with its runs instead, and the joins on run ids disappear.
"""

from __future__ import annotations

from functools import reduce
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparktrack._search.like import like_regex
from sparktrack._search.nodes import And, Comparison, Identifier, Node, Not, Or, OrderKey

__all__ = ["ROW", "AlignedSource", "SearchSource", "filter_runs", "order_runs", "take_rows"]

#: The column of an :class:`AlignedSource`'s runs numbering them 0, 1, 2, ...
ROW = "__row"


@runtime_checkable
class SearchSource(Protocol):
    """What the evaluator needs from a store: the candidate runs and one table per key.

    Only the keys a filter or order names are asked for, each at most once per call.
    """

    def runs(self) -> pa.Table:
        """The candidate runs, one row each: run_id, experiment_id, run_name, status,
        user_id, start_time (int64 ms), end_time (int64 ms, nullable), artifact_uri,
        lifecycle_stage."""
        ...

    def metric(self, key: str, aggregate: str) -> pa.Table:
        """run_id (string), value (float64) of the runs having metric ``key``; ``aggregate``
        is "latest", "min" or "max"."""
        ...

    def param(self, key: str) -> pa.Table:
        """run_id, value (string) of the runs having param ``key``."""
        ...

    def tag(self, key: str) -> pa.Table:
        """run_id, value (string) of the runs having tag ``key``."""
        ...


@runtime_checkable
class AlignedSource(SearchSource, Protocol):
    """A source whose ``runs()`` has a ``ROW`` column numbering its rows 0, 1, 2, ... and that
    can give a key's values in that order (no join on run ids needed)."""

    def aligned(self, ident: Identifier) -> pa.Array | pa.ChunkedArray | None:
        """The value of ``ident`` (a metric, param or tag) for each row of ``runs()``, null where
        the run lacks it; None when this source cannot (the evaluator then joins)."""
        ...


class _Lookup:
    """The source's per-key tables for one call, each fetched once, null values dropped."""

    def __init__(self, source: SearchSource, run_id_type: pa.DataType) -> None:
        self.source = source
        self.run_id_type = run_id_type
        self.cache: dict[Identifier, pa.Table] = {}
        self.aligned_cache: dict[Identifier, pa.Array | pa.ChunkedArray | None] = {}

    def aligned(self, ident: Identifier) -> pa.Array | pa.ChunkedArray | None:
        """The values of ``ident`` in the order of ``source.runs()``, if the source has them."""
        if not isinstance(self.source, AlignedSource) or ident.kind == "attribute":
            return None
        if ident not in self.aligned_cache:
            self.aligned_cache[ident] = self.source.aligned(ident)
        return self.aligned_cache[ident]

    def table(self, ident: Identifier) -> pa.Table:
        if ident not in self.cache:
            if ident.kind == "metric":
                table = self.source.metric(ident.key, ident.aggregate)
            elif ident.kind == "param":
                table = self.source.param(ident.key)
            elif ident.kind == "alias":
                # Only the registry's version source has aliases (several rows per version).
                table = self.source.alias()
            else:
                table = self.source.tag(ident.key)
            table = table.select(["run_id", "value"])
            # A null value is no value: the run lacks the key, for filters and ordering alike.
            table = table.filter(pc.is_valid(table["value"]))
            if table.schema.field("run_id").type != self.run_id_type:
                table = table.set_column(0, "run_id", table["run_id"].cast(self.run_id_type))
            self.cache[ident] = table
        return self.cache[ident]


def filter_runs(tree: Node | None, source: SearchSource) -> pa.Table:
    """Return the rows of ``source.runs()`` that match ``tree``, in their original order.

    Args:
        tree: A tree from :func:`parse_filter`; None matches every run.
        source: Where runs and per-key values come from.
    """
    runs = source.runs()
    if tree is None or runs.num_rows == 0:
        return runs
    lookup = _Lookup(source, runs.schema.field("run_id").type)
    return runs.filter(_mask(tree, runs, lookup))


def _mask(node: Node, runs: pa.Table, lookup: _Lookup) -> pa.ChunkedArray | pa.Array:
    """One non-null boolean per run."""
    if isinstance(node, Comparison):
        return _compare(node, runs, lookup)
    if isinstance(node, Not):
        return pc.invert(_mask(node.operand, runs, lookup))
    if isinstance(node, And):
        return reduce(pc.and_, (_mask(child, runs, lookup) for child in node.operands))
    if isinstance(node, Or):
        return reduce(pc.or_, (_mask(child, runs, lookup) for child in node.operands))
    raise TypeError(f"not a filter node: {node!r}")


def _compare(node: Comparison, runs: pa.Table, lookup: _Lookup) -> pa.ChunkedArray:
    ident, op = node.identifier, node.op
    if ident.kind == "attribute":
        column = runs[ident.key]
        if op == "IS NULL":
            return pc.is_null(column)
        if op == "IS NOT NULL":
            return pc.is_valid(column)
        return _match(column, op, node.value)
    aligned = lookup.aligned(ident)
    if aligned is not None:
        if op == "IS NULL":
            return pc.is_null(aligned)
        if op == "IS NOT NULL":
            return pc.is_valid(aligned)
        return _match(aligned, op, node.value)
    table = lookup.table(ident)
    if op in ("IS NULL", "IS NOT NULL"):
        present = pc.is_in(runs["run_id"], value_set=table["run_id"].combine_chunks())
        return pc.invert(present) if op == "IS NULL" else present
    matched = table["run_id"].filter(_match(table["value"], op, node.value))
    return pc.is_in(runs["run_id"], value_set=matched.combine_chunks())


def _match(values: pa.ChunkedArray, op: str, value: object) -> pa.ChunkedArray:
    """Compare a column with a literal; null (missing) never matches, NaN follows IEEE
    (only ``!=`` is true)."""
    if op in ("LIKE", "ILIKE") and "\\" in value:
        # Arrow's fast paths (abc%, %abc, %abc%) keep an escaped backslash doubled.
        regex = like_regex(value, ignore_case=op == "ILIKE", dialect="re2")
        result = pc.match_substring_regex(values, regex)
    elif op in ("LIKE", "ILIKE"):
        result = pc.match_like(values, value, ignore_case=op == "ILIKE")
    elif op in ("IN", "NOT IN"):
        result = pc.is_in(values, value_set=pa.array(value, type=values.type))
        if op == "NOT IN":
            result = pc.and_(pc.invert(result), pc.is_valid(values))
    else:
        function = {
            "=": pc.equal,
            "!=": pc.not_equal,
            ">": pc.greater,
            ">=": pc.greater_equal,
            "<": pc.less,
            "<=": pc.less_equal,
        }[op]
        result = function(values, pa.scalar(value))
    return pc.fill_null(result, False)


def order_runs(
    runs: pa.Table, order: list[OrderKey], source: SearchSource, *, limit: int | None = None
) -> pa.Table:
    """Return ``runs`` sorted by ``order``, then start_time DESC, then run_id ASC (only the
    first ``limit`` of them when given).

    For each key, in both directions, runs with a value come first, then runs whose metric is
    NaN, then runs without the key. An empty ``order`` gives MLflow's default order
    (start_time DESC, run_id ASC).

    Args:
        runs: Rows shaped like ``source.runs()`` (typically the output of
            :func:`filter_runs`).
        order: Keys from :func:`parse_order_by`.
        source: Asked only for the metrics, params and tags named in ``order``.
    """
    if runs.num_rows <= 1:
        return runs
    lookup = _Lookup(source, runs.schema.field("run_id").type)
    columns: dict[str, pa.Array] = {}
    sort_keys: list[tuple[str, str]] = []
    for i, key in enumerate(order):
        values = _values_for(key.identifier, runs, lookup)
        if pa.types.is_floating(values.type):
            nan = pc.fill_null(pc.is_nan(values), False)
            rank = pc.if_else(nan, 1, pc.if_else(pc.is_null(values), 2, 0))
            # Rank already places NaN; null it so the value sort never sees it.
            values = pc.if_else(nan, pa.scalar(None, values.type), values)
        else:
            rank = pc.if_else(pc.is_null(values), 2, 0)
        columns[f"rank{i}"], columns[f"value{i}"] = rank, values
        sort_keys.append((f"rank{i}", "ascending"))
        sort_keys.append((f"value{i}", "ascending" if key.ascending else "descending"))
    if Identifier("attribute", "start_time") not in {key.identifier for key in order}:
        columns["start_time"] = runs["start_time"].combine_chunks()
        sort_keys.append(("start_time", "descending"))
    columns["run_id"] = runs["run_id"].combine_chunks()
    sort_keys.append(("run_id", "ascending"))
    # Nulls sort last by default (only tie-break columns can hold them; ranks cover keys).
    keys = pa.table(columns)
    if limit is not None and limit < runs.num_rows:
        # A page of a large result: select its runs (linear), then sort just those. The
        # keys end with run_id, unique, so which runs are first is fully determined.
        first = pc.select_k_unstable(keys, k=limit, sort_keys=sort_keys)
        keys, runs = keys.take(first), take_rows(runs, first)
    return take_rows(runs, pc.sort_indices(keys, sort_keys=sort_keys))


def take_rows(table: pa.Table, indices: pa.Array) -> pa.Table:
    """``table.take(indices)``, taking from each chunk of ``table`` apart.

    Arrow's take from a column of several chunks first joins them into one: a page of 100
    runs out of a million (one chunk per experiment) copied every run's strings.
    """
    batches = [batch for batch in table.to_batches() if batch.num_rows]
    if len(batches) <= 1 or len(indices) >= table.num_rows // 2:
        return table.take(indices)
    wanted = np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    starts = np.cumsum([0] + [batch.num_rows for batch in batches])
    batch_of = np.searchsorted(starts, wanted, side="right") - 1
    parts, placed = [], []
    for number in np.unique(batch_of):
        at = np.flatnonzero(batch_of == number)
        parts.append(batches[number].take(pa.array(wanted[at] - starts[number])))
        placed.append(at)
    taken = pa.Table.from_batches(parts, schema=table.schema)
    if not placed:
        return taken
    # ``taken`` holds the rows batch by batch: put them back in the order asked for.
    order = np.empty(len(wanted), dtype=np.int64)
    order[np.concatenate(placed)] = np.arange(len(wanted))
    return taken.take(pa.array(order))


def _values_for(ident: Identifier, runs: pa.Table, lookup: _Lookup) -> pa.Array:
    """The sort value of every run (null where the run lacks it), aligned with ``runs``."""
    if ident.kind == "attribute":
        return runs[ident.key].combine_chunks()
    aligned = lookup.aligned(ident)
    if aligned is not None:
        values = pc.take(aligned, runs[ROW])
        return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    table = lookup.table(ident)
    positions = pc.index_in(runs["run_id"], value_set=table["run_id"].combine_chunks())
    return table["value"].combine_chunks().take(positions.combine_chunks())
