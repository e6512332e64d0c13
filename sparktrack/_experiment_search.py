"""search_experiments: filter, order and page experiments with the search grammar.

The filter is parsed by :mod:`sparktrack._search` in its experiment mode (MLflow 3.17's
``search_experiments`` grammar plus OR, NOT and parentheses) and evaluated by the same pyarrow
evaluator as run filters, over a one-row-per-experiment table; nothing is pasted into SQL.

Semantics follow MLflow 3.17's SQL store: ``name`` and tag comparisons are case-sensitive
except ILIKE; an experiment without a tag matches no comparison on it (``!=`` included) but
``IS NULL``; the default order is ``creation_time DESC, experiment_id ASC``, and an explicit
order without ``experiment_id`` breaks ties by ``experiment_id DESC``, as MLflow does.
Experiment ids order as numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from sparktrack.entities import Experiment, ViewType
from sparktrack.errors import InvalidFilterError
from sparktrack._paging import check_max_results, offset_from_token, token_for
from sparktrack._search import And, Comparison, Identifier, OrderKey, filter_runs
from sparktrack._search import parse_filter, parse_order_by
from sparktrack._search.parser import check_like_pattern
from sparktrack._store import TrackingStore

__all__ = [
    "DEFAULT_ORDER",
    "MAX_RESULTS_LIMIT",
    "order_experiments",
    "search_experiment_page",
]

MAX_RESULTS_LIMIT = 50_000
"""MLflow's largest page of experiments (``SEARCH_MAX_RESULTS_THRESHOLD``)."""

_EXPERIMENT_ID = Identifier("attribute", "experiment_id")
DEFAULT_ORDER = (OrderKey(Identifier("attribute", "creation_time"), ascending=False),
                 OrderKey(_EXPERIMENT_ID, ascending=True))


class _ExperimentSource:
    """The evaluator's view of experiments: one row each, tags looked up per key.

    The evaluator keys rows by a ``run_id`` column; here it holds the experiment id.
    """

    def __init__(self, experiments: Sequence[Experiment]) -> None:
        self.experiments = experiments
        ids = [e.experiment_id for e in experiments]
        self.table = pa.table({
            "run_id": pa.array(ids, pa.string()),
            "experiment_id": pa.array(ids, pa.string()),
            "name": pa.array([e.name for e in experiments], pa.string()),
            "creation_time": pa.array([e.creation_time for e in experiments], pa.int64()),
            "last_update_time": pa.array([e.last_update_time for e in experiments], pa.int64()),
        })

    def runs(self) -> pa.Table:
        return self.table

    def tag(self, key: str) -> pa.Table:
        having = [e for e in self.experiments if key in e.tags]
        return pa.table({
            "run_id": pa.array([e.experiment_id for e in having], pa.string()),
            "value": pa.array([e.tags[key] for e in having], pa.string()),
        })

    def metric(self, key: str, aggregate: str) -> pa.Table:
        raise AssertionError("the experiment grammar has no metrics")

    def param(self, key: str) -> pa.Table:
        raise AssertionError("the experiment grammar has no params")


def _name_like_clause(name_like: object) -> Comparison:
    if not isinstance(name_like, str):
        raise InvalidFilterError(
            f"name_like must be a string such as 'churn%', got {type(name_like).__name__}"
        )
    # The bounds and checks of a LIKE in a filter (length, wildcards, lone surrogates).
    check_like_pattern(name_like, what="name_like", escapes=False)
    # name_like has always matched a backslash literally; in LIKE it escapes, so double it.
    return Comparison(Identifier("attribute", "name"), "LIKE", name_like.replace("\\", "\\\\"))


def _sort_value(experiment: Experiment, key: str) -> object:
    value = getattr(experiment, key)
    if key == "experiment_id":
        return (0, int(value), "") if value.isdigit() else (1, 0, value)
    return value


def order_experiments(
    experiments: Sequence[Experiment], order: Sequence[OrderKey]
) -> list[Experiment]:
    """``experiments`` sorted by ``order`` (keys from ``parse_order_by(entity="experiment")``;
    empty: the default order), ties broken by experiment id as MLflow does."""
    keys = list(order) if order else list(DEFAULT_ORDER)
    if _EXPERIMENT_ID not in {key.identifier for key in keys}:
        keys.append(OrderKey(_EXPERIMENT_ID, ascending=False))  # MLflow's tie-breaker
    ordered = list(experiments)
    for key in reversed(keys):  # stable sorts, least significant key first
        ordered.sort(key=lambda e, k=key.identifier.key: _sort_value(e, k),
                     reverse=not key.ascending)
    return ordered


def search_experiment_page(
    store: TrackingStore,
    *,
    view_type: ViewType = ViewType.ACTIVE_ONLY,
    max_results: int | None = 1000,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    page_token: str | None = None,
    name_like: str | None = None,
) -> tuple[list[Experiment], str | None]:
    """One page of matching experiments and the token of the next page (None on the last).

    ``max_results=None`` returns every match in one page. A bad filter or order raises
    ``InvalidFilterError`` before the store is read.
    """
    if max_results is not None:
        check_max_results(max_results, MAX_RESULTS_LIMIT)
    tree = parse_filter(filter_string, entity="experiment")
    if name_like is not None:
        clause = _name_like_clause(name_like)
        tree = clause if tree is None else And((tree, clause))
    if order_by is not None and not isinstance(order_by, str):  # a str gets parse's hint
        order_by = list(order_by)
    order = parse_order_by(order_by, entity="experiment")
    offset = offset_from_token(page_token)
    experiments = store.list_experiments(view_type=view_type)
    if tree is not None:
        source = _ExperimentSource(experiments)
        kept = set(filter_runs(tree, source).column("run_id").to_pylist())
        experiments = [e for e in experiments if e.experiment_id in kept]
    matching = order_experiments(experiments, order)
    if max_results is None:
        return matching[offset:], None
    end = offset + max_results
    return matching[offset:end], (token_for(end) if end < len(matching) else None)
