"""Maintenance (compaction, checkpoints, vacuum, runs_latest) and gc on an S3 store."""

from __future__ import annotations

from datetime import timedelta

from sparktrack import TrackingClient
from sparktrack.maintenance import Maintenance
from s3_server import s3, s3_store  # noqa: F401  (fixtures)


def _runs(client: TrackingClient, experiment_id: str, count: int) -> list[str]:
    run_ids = []
    for index in range(count):
        run = client.create_run(experiment_id)
        client.log_param(run.info.run_id, "i", str(index))
        client.log_metric(run.info.run_id, "m", float(index))
        client.set_terminated(run.info.run_id)
        client.flush()  # one commit per run: files for compaction to merge
        run_ids.append(run.info.run_id)
    return run_ids


def test_maintenance_on_s3(s3, s3_store):
    options = s3.storage_options()
    client = TrackingClient(s3_store, storage_options=options)
    experiment_id = client.create_experiment("maintained")
    run_ids = _runs(client, experiment_id, 4)

    report = Maintenance(s3_store, storage_options=options).run(retention_hours=0)
    assert report.compacted  # some table had files to merge
    assert report.runs_latest_rows == 4
    keys = s3.keys(s3_store)
    assert any(key.endswith(".checkpoint.parquet") for key in keys)
    assert any("/runs_latest/_delta_log/" in key for key in keys)

    # The store reads the same after compaction and vacuum (fresh process view).
    reader = TrackingClient(s3_store, storage_options=options)
    found = reader.search_runs([experiment_id], "metrics.m >= 2")
    assert sorted(r.info.run_id for r in found) == sorted(run_ids[2:])


def test_gc_removes_rows_and_artifacts_on_s3(s3, s3_store, tmp_path):
    client = TrackingClient(s3_store, storage_options=s3.storage_options())
    experiment_id = client.create_experiment("collected")
    keep, doomed = _runs(client, experiment_id, 2)
    note = tmp_path / "n.txt"
    note.write_text("x")
    for run_id in (keep, doomed):
        client.log_artifact(run_id, note)
    doomed_uri = client.get_run(doomed).info.artifact_uri
    client.delete_run(doomed)

    result = client.gc(older_than=timedelta(0))
    assert result.run_ids == [doomed] and result.skipped_artifacts == []
    assert [r.info.run_id for r in client.search_runs([experiment_id],
                                                      run_view_type="ALL")] == [keep]
    prefix = doomed_uri.removeprefix(f"s3://{s3.bucket}/")
    assert not [key for key in s3.keys(s3_store) if key.startswith(prefix + "/")]
    assert [f.path for f in client.list_artifacts(keep)] == ["n.txt"]
