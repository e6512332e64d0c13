"""The store's search source hands each key's values over aligned with its runs, and keeps
them with the state while it is current. Its answers must be those of the evaluator's join on
run ids over the same state: for every kind of key, view type and several experiments, and
after every kind of change (a new run, a new metric value, a deleted tag, a deleted and a
restored run), so a value kept from before a change is never used after it."""

from __future__ import annotations

import math

import pytest

from sparktrack import Metric, Param, RunTag, TrackingClient
from sparktrack.entities import ViewType
from sparktrack._search import AlignedSource, filter_runs, order_runs, parse_filter, parse_order_by
from sparktrack._store.search_source import StoreSearchSource

FILTERS = [
    None,
    "metrics.m < 0.5",
    "metrics.m != 0.25",
    "min(metrics.m) < 0.3 OR max(metrics.m) > 0.8",
    "params.p = 'b'",
    "(params.p = 'a' OR params.p = 'c') AND metrics.m >= 0.2",
    "tags.t LIKE 'x%'",
    "tags.t IS NULL",
    "NOT params.q IS NOT NULL",
    "metrics.none > 0",
]
ORDERS = [[], ["metrics.m DESC"], ["params.p", "metrics.m"], ["tags.t DESC"],
          ["max(metrics.m)"]]


class Joined:
    """The same source without ``aligned``: the evaluator joins on run ids."""

    def __init__(self, source: StoreSearchSource) -> None:
        self._source = source

    def runs(self):
        return self._source.runs()

    def metric(self, key, aggregate):
        return self._source.metric(key, aggregate)

    def param(self, key):
        return self._source.param(key)

    def tag(self, key):
        return self._source.tag(key)


def _answers(source) -> list[list[str]]:
    answers = []
    for text in FILTERS:
        matched = filter_runs(parse_filter(text), source)
        for order in ORDERS:
            for limit in (None, 3):
                ordered = order_runs(matched, parse_order_by(order), source, limit=limit)
                answers.append(ordered.column("run_id").to_pylist())
    return answers


def _check_same_answers(client: TrackingClient, experiment_ids: list[str]) -> None:
    from sparktrack._store import open_store

    store = open_store(client.store_root)
    for view_type in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL):
        for _ in range(2):  # the second search uses what the first kept
            source = StoreSearchSource(store, experiment_ids, view_type=view_type)
            assert isinstance(source, AlignedSource)
            assert _answers(source) == _answers(Joined(source)), view_type


def fill_two_experiments(client: TrackingClient, *, count: int, without_params=(),
                         without_metrics=(), without_tags=(7,)) -> tuple[list[str], list[str]]:
    """Experiments "one" and "two" with ``count`` runs between them (run-0, run-1, ...): a
    param p (and q on every fourth), a metric m with two steps (one NaN) and a tag t, except
    on the runs listed; run 3 deleted, run 4's tag deleted. Returns (experiments, run ids)."""
    experiments = [client.create_experiment(name) for name in ("one", "two")]
    runs = []
    for i in range(count):
        run = client.create_run(experiments[i % 2], run_name=f"run-{i}", start_time=1000 + i)
        run_id = run.info.run_id
        params = [Param("p", "abc"[i % 3])] if i not in without_params else []
        params += [Param("q", str(i))] if i % 4 == 0 else []
        values = [i / count, math.nan if i == 5 else (i % 5) / 5]
        metrics = [Metric("m", value, 1000 + step, step) for step, value in enumerate(values)]
        tags = [RunTag("t", f"x{i}" if i % 3 else f"y{i}")]
        client.log_batch(run_id, metrics=metrics if i not in without_metrics else [],
                         params=params, tags=tags if i not in without_tags else [])
        runs.append(run_id)
    client.delete_run(runs[3])
    client.delete_tag(runs[4], "t")
    client.flush()
    return experiments, runs


@pytest.fixture()
def two_experiments(tmp_path):
    client = TrackingClient(str(tmp_path / "store"))
    experiments, runs = fill_two_experiments(client, count=12)
    return client, experiments, runs


def test_aligned_values_answer_as_the_join_over_two_experiments(two_experiments):
    client, experiments, _ = two_experiments
    _check_same_answers(client, experiments)
    _check_same_answers(client, experiments[::-1])
    _check_same_answers(client, experiments[:1])


@pytest.mark.parametrize("change", [
    "new run", "new run without values", "run ended", "new metric value", "deleted tag",
    "deleted run", "restored run", "new param",
])
def test_values_kept_from_before_a_change_are_not_used_after_it(two_experiments, change):
    client, experiments, runs = two_experiments
    _check_same_answers(client, experiments)  # keeps aligned values of both experiments
    if change == "new run":
        run = client.create_run(experiments[0], run_name="late", start_time=5000)
        client.log_batch(run.info.run_id, metrics=[Metric("m", 0.01, 1, 0)],
                         params=[Param("p", "b")], tags=[RunTag("t", "x-late")])
    elif change == "new run without values":  # only the runs table changes
        client.create_run(experiments[0], run_name="bare", start_time=5000)
    elif change == "run ended":  # its newer row moves it among the runs' rows
        client.set_terminated(runs[0], status="FAILED")
    elif change == "new metric value":
        client.log_metric(runs[0], "m", 0.99, step=9)
    elif change == "deleted tag":
        client.delete_tag(runs[1], "t")
    elif change == "deleted run":
        client.delete_run(runs[2])
    elif change == "restored run":
        client.restore_run(runs[3])
    else:
        client.log_param(runs[1], "q", "late")
    client.flush()
    _check_same_answers(client, experiments)
