"""Run management on a real store: rename, tags, delete/restore (with descendants, in bulk) and
garbage collection that removes runs, their rows, their artifacts and the old files for real.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import time
from datetime import timedelta

import pytest
from deltalake import DeltaTable

import sparktrack
from sparktrack import TrackingClient
from sparktrack.entities import Metric, Param, RunTag, ViewType
from sparktrack.errors import (
    ExperimentNotFoundError,
    InvalidInputError,
    InvalidStateError,
    RunNotFoundError,
)

RUN_TABLES = ("runs", "params", "metrics", "tags", "metric_summaries")


@pytest.fixture()
def client(tracking):
    return TrackingClient(tracking)


@pytest.fixture()
def experiment(client):
    return client.create_experiment("management")


def _stage(client: TrackingClient, run_id: str) -> str:
    return client.get_run_info(run_id).lifecycle_stage


def _active_ids(client: TrackingClient, experiment_id: str) -> set[str]:
    return {r.info.run_id for r in client.search_runs([experiment_id])}


def _full_run(client: TrackingClient, experiment_id: str, name: str, **kwargs) -> str:
    """A finished run with a param, a metric history, a tag and an artifact."""
    run_id = client.create_run(experiment_id, run_name=name, **kwargs).info.run_id
    client.log_batch(
        run_id,
        params=[Param("name", name)],
        metrics=[Metric("loss", v, 1000 + i, i) for i, v in enumerate([0.5, 0.4, 0.3])],
        tags=[RunTag("owner", name)],
    )
    client.log_text(run_id, f"model of {name}", "model/weights.txt")
    client.set_terminated(run_id)
    return run_id


def _table_run_ids(store: str, table: str) -> set[str]:
    path = os.path.join(store, table)
    if not os.path.isdir(path):
        return set()
    return set(DeltaTable(path).to_pyarrow_table().column("run_id").to_pylist())


def _parquet_on_disk(store: str, table: str) -> set[str]:
    root = os.path.join(store, table)
    return {os.path.relpath(p, root)
            for p in glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True)}


# -- rename and tags ---------------------------------------------------------------------------
def test_rename_changes_run_name_and_the_run_name_tag(client, experiment):
    run_id = client.create_run(experiment, run_name="before").info.run_id
    client.update_run(run_id, name="after")
    client.flush()
    run = TrackingClient(client.tracking_uri).get_run(run_id)
    assert run.info.run_name == "after"
    assert run.data.tags["mlflow.runName"] == "after"
    found = client.search_runs([experiment], "attributes.run_name = 'after'")
    assert [r.info.run_id for r in found] == [run_id]
    assert list(client.search_runs([experiment], "tags.`mlflow.runName` = 'before'")) == []
    assert list(client.search_runs([experiment], "attributes.run_name = 'before'")) == []


def test_rename_keeps_status_and_rejects_bad_names(client, experiment):
    run_id = client.create_run(experiment, run_name="x").info.run_id
    client.set_terminated(run_id, status="FAILED")
    client.update_run(run_id, name="y")
    info = client.get_run_info(run_id)
    assert (info.run_name, info.status) == ("y", "FAILED")
    with pytest.raises(InvalidInputError):
        client.update_run(run_id, name="n" * 1000)
    assert client.get_run(run_id).info.run_name == "y"


def test_setting_the_run_name_tag_renames_the_run(client, experiment):
    # MLflow: set_tag(run_id, "mlflow.runName", ...) renames the run.
    run_id = client.create_run(experiment, run_name="old").info.run_id
    client.set_tag(run_id, "mlflow.runName", "new")
    assert client.get_run(run_id).info.run_name == "new"
    assert [r.info.run_name for r in client.search_runs([experiment], "run_name = 'new'")] == [
        "new"]
    sparktrack.set_experiment(experiment_id=experiment)
    with sparktrack.start_run(run_name="fluent") as run:
        sparktrack.set_tags({"mlflow.runName": "renamed", "other": "x"})
    assert sparktrack.get_run(run.info.run_id).info.run_name == "renamed"
    with pytest.raises(InvalidInputError):
        client.set_tag(run_id, "mlflow.runName", "n" * 1000)
    assert client.get_run(run_id).data.tags["mlflow.runName"] == "new"


def test_tags_set_edit_delete(client, experiment):
    run_id = client.create_run(experiment, run_name="tagged").info.run_id
    client.set_tag(run_id, "stage", "draft")
    client.set_tag(run_id, "keep", "yes")
    assert client.get_run(run_id).data.tags["stage"] == "draft"
    client.set_tag(run_id, "stage", "final")
    assert client.get_run(run_id).data.tags["stage"] == "final"
    assert [r.info.run_id for r in client.search_runs([experiment], "tags.stage = 'final'")] == [
        run_id]
    assert list(client.search_runs([experiment], "tags.stage = 'draft'")) == []
    client.delete_tag(run_id, "stage")
    tags = TrackingClient(client.tracking_uri).get_run(run_id).data.tags
    assert "stage" not in tags and tags["keep"] == "yes"
    assert [r.info.run_id for r in client.search_runs([experiment], "tags.stage IS NULL")] == [
        run_id]
    with pytest.raises(InvalidInputError, match="stage"):
        client.delete_tag(run_id, "stage")
    client.set_tag(run_id, "stage", "again")
    assert client.get_run(run_id).data.tags["stage"] == "again"


def test_tags_through_the_fluent_api_and_from_another_process_view(tracking):
    with sparktrack.start_run() as run:
        sparktrack.set_tags({"a": "1", "b": "2"})
        sparktrack.delete_tag("a")
        sparktrack.set_tag("b", "3")
    sparktrack.flush()
    fresh = TrackingClient(tracking)  # a new client shares the store; read the tables directly
    table = DeltaTable(os.path.join(tracking, "tags")).to_pyarrow_table().to_pylist()
    assert {(r["key"], r["value"], r["deleted"]) for r in table if r["key"] in "ab"} == {
        ("a", "1", False), ("a", None, True), ("b", "2", False), ("b", "3", False)}
    tags = fresh.get_run(run.info.run_id).data.tags
    assert "a" not in tags and tags["b"] == "3"


# -- delete / restore --------------------------------------------------------------------------
@pytest.fixture()
def family(client, experiment):
    """parent -> child -> grandchild, plus a sibling run outside the family."""
    parent = client.create_run(experiment, run_name="parent").info.run_id
    child = client.create_run(experiment, run_name="child", parent_run_id=parent).info.run_id
    grandchild = client.create_run(
        experiment, run_name="grandchild", parent_run_id=child).info.run_id
    other = client.create_run(experiment, run_name="other").info.run_id
    return {"parent": parent, "child": child, "grandchild": grandchild, "other": other}


def test_delete_run_with_descendants_two_levels(client, experiment, family):
    client.delete_run(family["parent"])
    for name in ("parent", "child", "grandchild"):
        info = client.get_run_info(family[name])
        assert info.lifecycle_stage == "deleted", name
        assert info.deleted_time is not None
    assert _active_ids(client, experiment) == {family["other"]}
    deleted = {r.info.run_id for r in client.search_runs([experiment], run_view_type="DELETED_ONLY")}
    assert deleted == {family["parent"], family["child"], family["grandchild"]}


def test_delete_run_without_descendants(client, experiment, family):
    client.delete_run(family["parent"], delete_descendants=False)
    assert _stage(client, family["parent"]) == "deleted"
    assert _active_ids(client, experiment) == {family["child"], family["grandchild"],
                                               family["other"]}


def test_delete_a_middle_run_takes_only_its_subtree(client, experiment, family):
    client.delete_run(family["child"])
    assert _active_ids(client, experiment) == {family["parent"], family["other"]}


def test_restore_run_with_and_without_descendants(client, experiment, family):
    client.delete_run(family["parent"])
    client.restore_run(family["parent"], restore_descendants=False)
    assert _active_ids(client, experiment) == {family["parent"], family["other"]}
    client.restore_run(family["parent"])
    assert _active_ids(client, experiment) == set(family.values())
    for run_id in family.values():
        assert client.get_run_info(run_id).deleted_time is None


def test_deleted_run_refuses_logging_until_restored(client, experiment, family):
    client.delete_run(family["other"])
    with pytest.raises(InvalidStateError, match="restore_run"):
        client.log_param(family["other"], "p", 1)
    with pytest.raises(InvalidStateError):
        client.set_tag(family["other"], "t", "v")
    client.restore_run(family["other"])
    client.log_param(family["other"], "p", 1)
    assert client.get_run(family["other"]).data.params == {"p": "1"}


def test_delete_unknown_run(client):
    with pytest.raises(RunNotFoundError):
        client.delete_run("0" * 32)
    with pytest.raises(RunNotFoundError):
        client.restore_run("f" * 32)


def test_deleting_twice_keeps_the_first_deleted_time(client, experiment, family):
    client.delete_run(family["other"])
    first = client.get_run_info(family["other"]).deleted_time
    time.sleep(0.005)
    client.delete_run(family["other"])
    assert client.get_run_info(family["other"]).deleted_time == first


# -- bulk delete_runs / restore_runs -----------------------------------------------------------
@pytest.fixture()
def timeline(client, experiment):
    """Five runs started at t=1000..5000 ms, and one at t=1000 in another experiment."""
    runs = {t: client.create_run(experiment, run_name=f"t{t}", start_time=t).info.run_id
            for t in (1000, 2000, 3000, 4000, 5000)}
    other = client.create_experiment("elsewhere")
    runs["other"] = client.create_run(other, run_name="other", start_time=1000).info.run_id
    runs["other_experiment"] = other
    return runs


def test_delete_runs_created_at_or_before(client, experiment, timeline):
    assert client.delete_runs(experiment, 3000) == 3
    assert _active_ids(client, experiment) == {timeline[4000], timeline[5000]}
    assert _stage(client, timeline["other"]) == "active"
    # Already deleted runs are not counted again.
    assert client.delete_runs(experiment, 3000) == 0
    assert client.delete_runs(experiment, 999) == 0


def test_delete_runs_max_runs_takes_the_oldest(client, experiment, timeline):
    assert client.delete_runs(experiment, 5000, max_runs=2) == 2
    assert _active_ids(client, experiment) == {timeline[3000], timeline[4000], timeline[5000]}
    assert client.delete_runs(experiment, 5000, max_runs=1) == 1
    assert _stage(client, timeline[3000]) == "deleted"
    assert client.delete_runs(experiment, 10**13) == 2
    assert _active_ids(client, experiment) == set()


@pytest.mark.parametrize("max_runs", [0, -1, 10_001, 1.5, "5", True, None])
def test_bulk_max_runs_outside_1_to_10000_is_rejected(client, experiment, timeline, max_runs):
    with pytest.raises(InvalidInputError, match="max_runs"):
        client.delete_runs(experiment, 5000, max_runs=max_runs)
    with pytest.raises(InvalidInputError, match="max_runs"):
        client.restore_runs(experiment, 0, max_runs=max_runs)
    assert len(_active_ids(client, experiment)) == 5


def test_bulk_max_runs_bounds_are_accepted(client, experiment, timeline):
    assert client.delete_runs(experiment, 1000, max_runs=1) == 1
    assert client.delete_runs(experiment, 5000, max_runs=10_000) == 4


@pytest.mark.parametrize("timestamp", [-1, 1.5, "1000", None])
def test_bulk_bad_timestamp_is_rejected(client, experiment, timeline, timestamp):
    with pytest.raises(InvalidInputError, match="timestamp_millis"):
        client.delete_runs(experiment, timestamp)
    with pytest.raises(InvalidInputError, match="timestamp_millis"):
        client.restore_runs(experiment, timestamp)


def test_bulk_on_unknown_experiment(client):
    with pytest.raises(ExperimentNotFoundError):
        client.delete_runs("123456", 5000)
    with pytest.raises(ExperimentNotFoundError):
        client.restore_runs("123456", 0)


def test_restore_runs_deleted_at_or_after(client, experiment, timeline):
    client.delete_run(timeline[1000])
    time.sleep(0.005)
    client.delete_runs(experiment, 3000)  # 2000 and 3000, at the same later moment or after
    cut = client.get_run_info(timeline[2000]).deleted_time
    assert client.get_run_info(timeline[1000]).deleted_time < cut
    assert client.restore_runs(experiment, cut) == 2  # inclusive
    assert _active_ids(client, experiment) == {timeline[t] for t in (2000, 3000, 4000, 5000)}
    assert client.get_run_info(timeline[2000]).deleted_time is None
    assert client.restore_runs(experiment, cut) == 0
    assert client.restore_runs(experiment, 0) == 1
    assert len(_active_ids(client, experiment)) == 5


def test_restore_runs_max_runs_cap(client, experiment, timeline):
    assert client.delete_runs(experiment, 5000) == 5
    assert client.restore_runs(experiment, 0, max_runs=2) == 2
    assert len(_active_ids(client, experiment)) == 2
    assert client.restore_runs(experiment, 0) == 3
    assert _stage(client, timeline["other"]) == "active"


# -- garbage collection ------------------------------------------------------------------------
@pytest.fixture()
def deleted_and_kept(client, experiment, tracking):
    """Two runs with full data in 'management': 'doomed' deleted, 'kept' active."""
    doomed = _full_run(client, experiment, "doomed")
    kept = _full_run(client, experiment, "kept")
    client.delete_run(doomed)
    client.flush()
    return doomed, kept


def test_gc_removes_runs_from_every_table(client, tracking, deleted_and_kept):
    doomed, kept = deleted_and_kept
    for table in RUN_TABLES:
        assert doomed in _table_run_ids(tracking, table), table
    result = client.gc(older_than=timedelta(0))
    assert result.run_ids == [doomed]
    for table in RUN_TABLES:
        assert doomed not in _table_run_ids(tracking, table), table
        assert kept in _table_run_ids(tracking, table), table
    with pytest.raises(RunNotFoundError):
        TrackingClient(tracking).get_run(doomed)
    with pytest.raises(RunNotFoundError):
        client.get_run(doomed)
    assert list(client.search_runs([client.get_run_info(kept).experiment_id],
                                   run_view_type=ViewType.DELETED_ONLY)) == []


def test_gc_leaves_other_runs_intact(client, tracking, deleted_and_kept):
    doomed, kept = deleted_and_kept
    before = client.get_run(kept)
    history = client.get_metric_history(kept, "loss")
    client.gc(older_than=timedelta(0))
    after = TrackingClient(tracking).get_run(kept)
    assert after.data.params == before.data.params == {"name": "kept"}
    assert after.data.metrics == before.data.metrics == {"loss": 0.3}
    assert after.data.tags == before.data.tags
    assert after.info == before.info
    assert client.get_metric_history(kept, "loss") == history
    assert [r.info.run_id for r in client.search_runs(
        [after.info.experiment_id], "MIN(metrics.loss) = 0.3 AND MAX(metrics.loss) = 0.5")] == [
        kept]


def test_gc_deletes_artifact_folders(client, tracking, deleted_and_kept):
    doomed, kept = deleted_and_kept
    doomed_dir = client.get_run_info(doomed).artifact_uri
    kept_dir = client.get_run_info(kept).artifact_uri
    assert os.path.isfile(os.path.join(doomed_dir, "model", "weights.txt"))
    assert doomed_dir.startswith(os.path.join(tracking, "artifacts"))
    client.gc(older_than=timedelta(0))
    assert not os.path.exists(doomed_dir)
    assert os.path.isfile(os.path.join(kept_dir, "model", "weights.txt"))
    assert [f.path for f in client.list_artifacts(kept)] == ["model"]


def test_gc_vacuums_old_files_from_disk(client, tracking, deleted_and_kept):
    before = {table: _parquet_on_disk(tracking, table) for table in RUN_TABLES}
    result = client.gc(older_than=timedelta(0))
    assert result.files_vacuumed > 0
    for table in RUN_TABLES:
        on_disk = _parquet_on_disk(tracking, table)
        root = os.path.join(tracking, table)
        live = {os.path.relpath(uri.removeprefix("file://"), root)
                for uri in DeltaTable(root).file_uris()}
        assert on_disk == live, table  # nothing unreferenced is left behind
        assert before[table] - on_disk, f"{table}: the files holding the removed run remain"


def _delete_days_ago(client, run_id: str, days: float, monkeypatch) -> None:
    import sparktrack._store.run_writes as tracking_store

    real = tracking_store.now_millis
    with monkeypatch.context() as patch:
        patch.setattr(tracking_store, "now_millis", lambda: real() - int(days * 86_400_000))
        client.delete_run(run_id)


def test_gc_spares_runs_deleted_less_long_ago(client, experiment, tracking, monkeypatch):
    ancient = _full_run(client, experiment, "ancient")
    old = _full_run(client, experiment, "old")
    recent = _full_run(client, experiment, "recent")
    _delete_days_ago(client, ancient, 31, monkeypatch)
    _delete_days_ago(client, old, 10, monkeypatch)
    client.delete_run(recent)
    assert client.gc().run_ids == [ancient]  # default: deleted more than 30 days ago
    assert client.gc(older_than=timedelta(days=7)).run_ids == [old]
    assert _stage(client, recent) == "deleted"
    assert recent in _table_run_ids(tracking, "metrics")
    client.restore_run(recent)
    assert client.get_run(recent).data.params == {"name": "recent"}
    assert os.path.isfile(os.path.join(client.get_run_info(recent).artifact_uri,
                                       "model", "weights.txt"))


def test_gc_never_touches_active_runs(client, experiment, tracking):
    active = _full_run(client, experiment, "active")
    client.flush()
    before = {table: _parquet_on_disk(tracking, table) for table in RUN_TABLES}
    result = client.gc(older_than=timedelta(0))
    assert result.run_ids == [] and result.files_vacuumed == 0
    assert {table: _parquet_on_disk(tracking, table) for table in RUN_TABLES} == before
    assert client.get_run(active).data.params == {"name": "active"}


def test_gc_with_experiment_ids_limits_the_scope(client, experiment, tracking):
    other = client.create_experiment("other")
    here = _full_run(client, experiment, "here")
    there = _full_run(client, other, "there")
    client.delete_run(here)
    client.delete_run(there)
    assert client.gc(older_than=timedelta(0), experiment_ids=[other]).run_ids == [there]
    assert _stage(client, here) == "deleted"
    assert here in _table_run_ids(tracking, "params")
    assert there not in _table_run_ids(tracking, "params")
    assert os.path.isdir(client.get_run_info(here).artifact_uri)
    assert client.gc(older_than=timedelta(0), experiment_ids=[experiment]).run_ids == [here]


def test_gc_removes_a_deleted_family(client, experiment, tracking, family):
    client.delete_run(family["parent"])
    removed = client.gc(older_than=timedelta(0)).run_ids
    assert sorted(removed) == sorted([family["parent"], family["child"], family["grandchild"]])
    assert _table_run_ids(tracking, "runs") == {family["other"]}


def test_gc_rejects_a_negative_age(client):
    with pytest.raises(InvalidInputError, match="older_than"):
        client.gc(older_than=timedelta(days=-1))
    with pytest.raises(InvalidInputError, match="older_than"):
        client.gc(older_than=30)


def test_store_works_for_logging_after_gc(client, experiment, tracking, deleted_and_kept):
    doomed, kept = deleted_and_kept
    client.gc(older_than=timedelta(0))
    sparktrack.set_experiment(experiment_id=experiment)
    with sparktrack.start_run(run_name="after-gc") as run:
        sparktrack.log_param("name", "after-gc")
        sparktrack.log_metric("loss", 0.1)
        sparktrack.set_tag("owner", "after-gc")
        sparktrack.log_text("hello", "note.txt")
    client.log_metric(kept, "loss", 0.05, step=10)
    sparktrack.flush()
    fresh = TrackingClient(tracking)
    assert fresh.get_run(run.info.run_id).data.metrics == {"loss": 0.1}
    assert fresh.get_run(kept).data.metrics == {"loss": 0.05}
    names = sorted(r.info.run_name for r in fresh.search_runs([experiment], "metrics.loss < 0.2"))
    assert names == ["after-gc", "kept"]
    for table in RUN_TABLES:
        assert _table_run_ids(tracking, table) == {kept, run.info.run_id}, table
    # A second gc with nothing to remove is harmless.
    assert client.gc(older_than=timedelta(0)).run_ids == []


def test_gc_keeps_rows_another_process_appends_while_it_rewrites(
    client, tracking, deleted_and_kept, monkeypatch
):
    """A writer commits to the partition between gc's read and its rewrite: nothing is lost."""
    import sparktrack._delta.rewrite as delta
    from sparktrack._store.tracking_store import TrackingStore

    doomed, kept = deleted_and_kept
    other_process = TrackingStore(tracking)  # its own tables and buffer, like another process
    real_commit = delta._commit_actions  # gc's rewrite commit (its files are written by then)
    raced = []

    def commit_with_a_race(table, actions, spec, **kwargs):
        if not raced:
            raced.append(True)
            other_process.log_batch(kept, metrics=[Metric("late", 1.0, 5000, 0)])
            other_process.flush()
        return real_commit(table, actions, spec, **kwargs)

    monkeypatch.setattr(delta, "_commit_actions", commit_with_a_race)
    assert client.gc(older_than=timedelta(0)).run_ids == [doomed]
    assert raced
    metrics = DeltaTable(os.path.join(tracking, "metrics")).to_pyarrow_table().to_pylist()
    assert {(m["run_id"], m["key"]) for m in metrics} == {(kept, "loss"), (kept, "late")}
    assert TrackingClient(tracking).get_run(kept).data.metrics == {"loss": 0.3, "late": 1.0}


@pytest.mark.skipif(importlib.util.find_spec("sparktrack.maintenance") is None,
                    reason="sparktrack.maintenance is not written yet")
def test_gc_removes_runs_from_the_materialized_runs_latest(client, tracking, deleted_and_kept):
    from sparktrack.maintenance import materialize_runs_latest

    doomed, kept = deleted_and_kept
    materialize_runs_latest(tracking)
    assert _table_run_ids(tracking, "runs_latest") == {doomed, kept}
    before = _parquet_on_disk(tracking, "runs_latest")
    assert client.gc(older_than=timedelta(0)).run_ids == [doomed]
    latest = DeltaTable(os.path.join(tracking, "runs_latest")).to_pyarrow_table().to_pylist()
    assert [row["run_id"] for row in latest] == [kept]
    assert dict(latest[0]["params"]) == {"name": "kept"}
    assert before - _parquet_on_disk(tracking, "runs_latest")  # old files vacuumed
