"""Tracking and search on an S3-compatible store (moto on 127.0.0.1, see s3_server.py):
configured by ``storage_options`` or by the usual ``AWS_*`` environment variables."""

from __future__ import annotations

import multiprocessing

import sparktrack
from sparktrack import TrackingClient
from s3_server import s3, s3_store  # noqa: F401  (fixtures)


def _log_runs(client: TrackingClient, experiment_id: str, count: int) -> list[str]:
    run_ids = []
    for index in range(count):
        run = client.create_run(experiment_id, run_name=f"r{index}", tags={"team": "a"})
        client.log_param(run.info.run_id, "alpha", str(index))
        for step in range(3):
            client.log_metric(run.info.run_id, "loss", 1.0 / (index + 1) + step, step=step)
        client.set_tag(run.info.run_id, "parity", "even" if index % 2 == 0 else "odd")
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    return run_ids


def test_client_with_storage_options_logs_and_reads_back(s3, s3_store):
    client = TrackingClient(s3_store, storage_options=s3.storage_options())
    experiment_id = client.create_experiment("s3-tracking")
    run_ids = _log_runs(client, experiment_id, 3)

    run = client.get_run(run_ids[1])
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "1"}
    assert run.data.metrics == {"loss": 0.5 + 2}
    assert run.data.tags["parity"] == "odd" and run.data.tags["team"] == "a"
    assert [m.step for m in client.get_metric_history(run_ids[1], "loss")] == [0, 1, 2]
    assert run.info.artifact_uri.startswith(s3_store + "/artifacts/")

    # The rows are Delta tables under the prefix, in the bucket.
    keys = s3.keys(s3_store)
    for table in ("experiments", "runs", "params", "metrics", "tags", "metric_summaries"):
        assert any(key.endswith(f"/{table}/_delta_log/00000000000000000000.json") for key in keys)
    # Search state files are a local-store cache: none are written to the bucket.
    assert not [key for key in keys if "/_search_state/" in key]


def test_search_on_s3(s3, s3_store):
    client = TrackingClient(s3_store, storage_options=s3.storage_options())
    experiment_id = client.create_experiment("s3-search")
    run_ids = _log_runs(client, experiment_id, 4)

    found = client.search_runs([experiment_id], "metrics.loss > 2.4 AND params.alpha != '3'")
    assert sorted(r.info.run_id for r in found) == sorted(run_ids[:2])
    by_tag = client.search_runs([experiment_id], "tags.parity = 'odd'",
                                order_by=["params.alpha DESC"])
    assert [r.info.run_id for r in by_tag] == [run_ids[3], run_ids[1]]
    frame = client.search_runs_frame([experiment_id], "attributes.status = 'FINISHED'")
    assert len(frame) == 4 and "metrics.loss" in frame.columns


def _search_in_new_process(store: str, options: dict[str, str], experiment_id: str,
                           queue) -> None:
    client = TrackingClient(store, storage_options=options)
    queue.put(sorted(r.info.run_id for r in client.search_runs([experiment_id],
                                                                 "params.alpha = '2'")))


def test_a_new_process_searches_what_another_logged(s3, s3_store):
    client = TrackingClient(s3_store, storage_options=s3.storage_options())
    experiment_id = client.create_experiment("s3-new-process")
    run_ids = _log_runs(client, experiment_id, 3)
    client.flush()  # what another process reads is what was committed
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_search_in_new_process,
                            args=(s3_store, s3.storage_options(), experiment_id, queue))
    child.start()
    found = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert found == [run_ids[2]]


def test_fluent_api_configured_by_environment(s3, s3_store, monkeypatch, tmp_path):
    for key, value in s3.environment().items():
        monkeypatch.setenv(key, value)
    sparktrack.set_tracking_uri(s3_store)
    try:
        sparktrack.set_experiment("s3-fluent")
        with sparktrack.start_run() as run:
            sparktrack.log_params({"lr": 0.1, "depth": 3})
            sparktrack.log_metrics({"auc": 0.9}, step=1)
            sparktrack.set_tag("stage", "dev")
            sparktrack.log_text("hello", "notes/readme.txt")
        frame = sparktrack.search_runs(filter_string="metrics.auc >= 0.9")
        assert frame["run_id"].tolist() == [run.info.run_id]
        assert frame["params.lr"].tolist() == ["0.1"]
        assert [f.path for f in sparktrack.list_artifacts("notes", run_id=run.info.run_id)] == [
            "notes/readme.txt"]
    finally:
        sparktrack.set_tracking_uri(str(tmp_path / "local-store"))
    assert any(key.endswith("/notes/readme.txt") for key in s3.keys(s3_store))


def test_storage_options_are_used_not_the_environment(s3, s3_store, monkeypatch):
    # Nothing in the environment points at the endpoint: only storage_options do.
    for key in s3.environment():
        monkeypatch.delenv(key, raising=False)
    client = TrackingClient(s3_store, storage_options=s3.storage_options())
    experiment_id = client.create_experiment("s3-options-only")
    assert client.get_experiment(experiment_id).name == "s3-options-only"
