"""The MLflow UI's metric charts on a sparktrack store: ``get_metric_history_bulk_interval``
(one call per chart, up to 100 runs) reads each run's history once, and returns MLflow's
sampling of it."""

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


def _count_reads(store) -> list[tuple[str, str]]:
    """Record every history the store's client reads (the real reads still happen)."""
    reads = []
    read = store.client.get_metric_history

    def counted(run_id, key):
        reads.append((run_id, key))
        return read(run_id, key)

    store.client.get_metric_history = counted
    return reads


@pytest.mark.parametrize("runs, steps, max_results", [(3, 5, 320), (4, 30, 10), (1, 1, 1)])
def test_bulk_interval_reads_each_history_once(tmp_path, runs, steps, max_results):
    store, ids = _store_with_histories(str(tmp_path / "store"), runs=runs, steps=steps)
    reads = _count_reads(store)
    points = store.get_metric_history_bulk_interval(ids, "loss", max_results, None, None)
    assert sorted(reads) == sorted((run_id, "loss") for run_id in ids)
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
