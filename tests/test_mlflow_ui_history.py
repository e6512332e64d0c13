"""The MLflow UI's metric charts on a sparktrack store: ``get_metric_history_bulk_interval``
(one call per chart, up to 100 runs) reads all the runs' histories in one read, and returns
MLflow's sampling of them."""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow")

from sparktrack import Metric, TrackingClient  # noqa: E402


def _store_with_histories(root: str, *, runs: int, steps: int) -> tuple[object, list[str]]:
    from sparktrack.mlflow_plugin.tracking_store import SparkTrackStore

    client = TrackingClient(root)
    experiment_id = client.create_experiment("charts")
    ids = []
    for i in range(runs):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (s + 1 + i), 1000 + s, s)
                                          for s in range(steps)]
                         + [Metric("acc", 0.5, 1000, 0)])
        ids.append(run_id)
    client.flush()
    return SparkTrackStore(store_uri=f"sparktrack://{root}"), ids


def _count_reads(store) -> list[tuple[tuple[str, ...], str]]:
    """Record every history read of the store's client (the real reads still happen)."""
    reads = []
    one, many = store.client.get_metric_history, store.client.get_metric_histories

    def one_counted(run_id, key):
        reads.append(((run_id,), key))
        return one(run_id, key)

    def many_counted(run_ids, key):
        reads.append((tuple(run_ids), key))
        return many(run_ids, key)

    store.client.get_metric_history = one_counted
    store.client.get_metric_histories = many_counted
    return reads


@pytest.mark.parametrize("runs, steps, max_results", [(3, 5, 320), (4, 30, 10), (1, 1, 1)])
def test_bulk_interval_reads_all_histories_in_one_read(tmp_path, runs, steps, max_results):
    store, ids = _store_with_histories(str(tmp_path / "store"), runs=runs, steps=steps)
    reads = _count_reads(store)
    points = store.get_metric_history_bulk_interval(ids, "loss", max_results, None, None)
    assert reads == [(tuple(ids), "loss")]
    assert {p.run_id for p in points} == set(ids)


def test_bulk_interval_samples_as_mlflow_does(tmp_path):
    """The same points as MLflow's own sampling over the same histories."""
    from mlflow.store.tracking.abstract_store import AbstractStore

    store, ids = _store_with_histories(str(tmp_path / "store"), runs=3, steps=40)
    for max_results, start, end in [(320, None, None), (7, None, None), (5, 10, 30)]:
        ours = store.get_metric_history_bulk_interval(ids, "loss", max_results, start, end)
        theirs = AbstractStore.get_metric_history_bulk_interval(
            store, ids, "loss", max_results, start, end)
        assert [(p.run_id, p.step, p.value, p.timestamp) for p in ours] == \
            [(p.run_id, p.step, p.value, p.timestamp) for p in theirs]
        assert ours  # something to chart


def test_get_metric_histories_equals_the_history_of_each_run(tmp_path):
    """The bulk read answers what one read per run answers, across experiments, for runs that
    never logged the key, and for a run id given twice; an unknown run is RunNotFoundError."""
    from sparktrack.errors import RunNotFoundError

    store, ids = _store_with_histories(str(tmp_path / "store"), runs=3, steps=4)
    client = store.client
    other = client.create_run(client.create_experiment("other")).info.run_id
    client.log_metric(other, "loss", 7.0, step=2)
    silent = client.create_run(client.create_experiment("silent")).info.run_id
    asked = [*ids, other, silent, ids[0]]
    histories = client.get_metric_histories(asked, "loss")
    assert list(histories) == [*ids, other, silent]
    for run_id in asked:
        assert histories[run_id] == client.get_metric_history(run_id, "loss")
    assert histories[silent] == [] and histories[other][0].value == 7.0
    assert client.get_metric_histories([], "loss") == {}
    with pytest.raises(RunNotFoundError, match="0" * 32):
        client.get_metric_histories([ids[0], "0" * 32], "loss")
