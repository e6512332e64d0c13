"""One run read from the cached current state of its experiment (held once search read it)
answers exactly what a read of the tables answers, including what another process committed
since the cache was filled and tags deleted since."""

from __future__ import annotations

import multiprocessing

from sparktrack import Metric, Param, RunTag, TrackingClient
from sparktrack._store import open_store
from sparktrack._store.schemas import METRIC_SUMMARIES, PARAMS, RUNS, TAGS


def _as_seen(run) -> tuple:
    return (run.info.status, run.info.run_name, run.info.end_time, run.data.params,
            run.data.metrics, run.data.tags)


def _change_elsewhere(root: str, run_id: str) -> None:
    client = TrackingClient(root)
    client.log_batch(run_id, metrics=[Metric("loss", 0.1, 5, 9)], params=[Param("seed", "7")],
                     tags=[RunTag("stage", "late")])
    client.delete_tag(run_id, "team")
    client.set_terminated(run_id, "FAILED")
    client.flush()


def test_get_run_from_the_cached_state_equals_a_table_read(store_uri):
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("cached")
    runs = [client.create_run(experiment_id, run_name=f"r{i}").info.run_id for i in range(3)]
    for number, run_id in enumerate(runs):
        client.log_batch(run_id, metrics=[Metric("loss", 1.0 + number, 1, 0)],
                         params=[Param("lr", "0.1")],
                         tags=[RunTag("team", "ml"), RunTag("gone", "soon")])
    client.delete_tag(runs[0], "gone")
    client.flush()
    from_tables = _as_seen(client.get_run(runs[0]))

    client.search_runs([experiment_id])  # search holds the experiment's state from now on
    held = open_store(store_uri).current
    assert all(held[table].holds(experiment_id) for table in (RUNS.name, PARAMS.name,
                                                              TAGS.name, METRIC_SUMMARIES.name))
    assert _as_seen(client.get_run(runs[0])) == from_tables
    assert "gone" not in client.get_run(runs[0]).data.tags

    process = multiprocessing.get_context("spawn").Process(
        target=_change_elsewhere, args=(store_uri, runs[0]))
    process.start()
    process.join(120)
    assert process.exitcode == 0
    seen = client.get_run(runs[0])
    assert seen.info.status == "FAILED"
    assert seen.data.params == {"lr": "0.1", "seed": "7"}
    assert seen.data.metrics == {"loss": 0.1}
    assert "team" not in seen.data.tags and seen.data.tags["stage"] == "late"
    assert client.get_run(runs[1]).data.metrics == {"loss": 2.0}
