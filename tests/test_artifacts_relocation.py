"""A store copied or moved to another folder reads, writes and garbage-collects the artifacts
under its own root: locations are stored relative to the root and resolved on read, and gc
deletes nothing outside the root it was given."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable

from sparktrack import TrackingClient
from sparktrack.entities import ViewType
from sparktrack.maintenance import materialize_runs_latest
from sparktrack.spark import _reader as reader
from sparktrack._delta import DeltaTableHandle
from sparktrack._store import open_store
from sparktrack._store.rows import next_version
from sparktrack._store.schemas import RUNS


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content (the store's tables included)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _stored(root: Path, table: str, column: str) -> dict[str, str]:
    rows = DeltaTable(str(root / table)).to_pyarrow_table().to_pylist()
    key = "run_id" if table == "runs" else "experiment_id"
    return {row[key]: row[column] for row in rows}


@pytest.fixture()
def original(tmp_path):
    """A store with an experiment, a finished run and an active run, both with artifacts,
    searched once (so its saved search state is on disk too), flushed and closed."""
    root = tmp_path / "original"
    client = TrackingClient(str(root))
    experiment = client.create_experiment("moving")
    finished = client.create_run(experiment, run_name="finished").info.run_id
    client.log_text(finished, "weights v1", "model/weights.txt")
    client.set_terminated(finished)
    active = client.create_run(experiment, run_name="active").info.run_id
    client.log_text(active, "still training", "notes.txt")
    client.log_param(active, "lr", "0.1")
    client.flush()
    assert len(client.search_runs([experiment])) == 2
    client.flush()  # waits for the search state, saved in the background
    return root, experiment, finished, active


def _copy(original_root: Path, name: str) -> Path:
    target = original_root.parent / name
    shutil.copytree(original_root, target)
    return target


def test_new_rows_store_locations_relative_to_the_root(original):
    root, experiment, finished, active = original
    client = TrackingClient(str(root))
    default_run = client.create_run("0", run_name="default").info.run_id
    client.flush()
    assert _stored(root, "experiments", "artifact_location") == {
        "0": "artifacts/0", experiment: f"artifacts/{experiment}",
    }
    assert _stored(root, "runs", "artifact_uri") == {
        finished: f"artifacts/{experiment}/{finished}",
        active: f"artifacts/{experiment}/{active}",
        default_run: f"artifacts/0/{default_run}",
    }
    # What readers see is absolute, under the root.
    assert client.get_run_info(finished).artifact_uri == f"{root}/artifacts/{experiment}/{finished}"
    assert client.get_experiment(experiment).artifact_location == f"{root}/artifacts/{experiment}"


def test_a_user_location_inside_the_store_is_stored_relative_outside_absolute(tmp_path):
    root = tmp_path / "store"
    client = TrackingClient(str(root))
    inside = client.create_experiment("inside", artifact_location=str(root / "mine"))
    outside = client.create_experiment("outside",
                                       artifact_location=f"file://{tmp_path / 'elsewhere'}")
    stored = _stored(root, "experiments", "artifact_location")
    assert stored[inside] == "mine"
    assert stored[outside] == str(tmp_path / "elsewhere")
    assert client.get_experiment(inside).artifact_location == f"{root}/mine"
    assert client.get_experiment(outside).artifact_location == str(tmp_path / "elsewhere")


@pytest.mark.parametrize("original_fate", ["deleted", "kept"])
def test_a_copied_store_reads_and_writes_its_own_artifacts(original, original_fate):
    root, experiment, finished, active = original
    copy = _copy(root, f"copy-{original_fate}")
    if original_fate == "deleted":
        shutil.rmtree(root)
    before = _tree(root) if original_fate == "kept" else None
    client = TrackingClient(str(copy))

    info = client.get_run_info(active)
    assert info.artifact_uri == f"{copy}/artifacts/{experiment}/{active}"
    assert client.get_experiment(experiment).artifact_location == f"{copy}/artifacts/{experiment}"
    assert client.get_experiment_by_name("moving").artifact_location.startswith(str(copy))
    assert [f.path for f in client.list_artifacts(finished)] == ["model"]
    assert client.download_artifacts(finished, "model/weights.txt")
    # Every way of reading runs sees the copy's locations.
    frame = client.search_runs_frame([experiment])
    assert set(frame["artifact_uri"]) == {f"{copy}/artifacts/{experiment}/{r}"
                                          for r in (finished, active)}
    assert {r.info.artifact_uri for r in client.search_runs([experiment])} == set(frame[
        "artifact_uri"])
    assert [r.info.run_id for r in client.search_runs(
        [experiment], f"attributes.artifact_uri LIKE '{copy}/%'")] != []
    # Writing through the copy lands in the copy, for existing and new runs.
    client.log_text(active, "more", "epoch2/notes.txt")
    client.log_artifact(active, str(copy / "artifacts" / experiment / active / "notes.txt"),
                        "again")
    new = client.create_run(experiment, run_name="in-the-copy").info.run_id
    client.log_text(new, "new", "f.txt")
    client.set_terminated(active)
    client.flush()
    assert (copy / "artifacts" / experiment / active / "epoch2" / "notes.txt").read_text() == "more"
    assert (copy / "artifacts" / experiment / active / "again" / "notes.txt").is_file()
    assert (copy / "artifacts" / experiment / new / "f.txt").read_text() == "new"
    if original_fate == "deleted":
        assert not root.exists()
    else:
        assert _tree(root) == before


def test_a_moved_store_works_from_its_new_place(original):
    root, experiment, finished, _ = original
    moved = root.parent / "moved"
    os.rename(root, moved)
    client = TrackingClient(str(moved))
    assert client.download_artifacts(finished, "model/weights.txt", moved.parent / "out")
    assert (moved.parent / "out" / "weights.txt").read_text() == "weights v1"
    assert not root.exists()


def test_gc_on_a_copy_never_touches_the_original(original):
    root, experiment, finished, active = original
    copy = _copy(root, "copy")
    before = _tree(root)
    client = TrackingClient(str(copy))
    client.delete_run(active)  # deleted in the copy only; still active in the original
    client.delete_run(finished)
    result = client.gc(older_than=timedelta(0))
    assert _tree(root) == before
    assert sorted(result.run_ids) == sorted([finished, active])
    assert result.skipped_artifacts == []
    assert not (copy / "artifacts" / experiment / active).exists()
    assert not (copy / "artifacts" / experiment / finished).exists()
    assert TrackingClient(str(root)).get_run_info(active).lifecycle_stage == "active"


def _rewrite_as_absolute(root: Path, run_id: str) -> str:
    """Append a newer version of a run's row whose artifact_uri is absolute, as stores
    written before relative locations hold it; returns that location."""
    handle = DeltaTableHandle(str(root), RUNS)
    rows = [r for r in handle.read().to_pylist() if r["run_id"] == run_id]
    row = max(rows, key=lambda r: r["updated_at"])
    absolute = f"{root}/{row['artifact_uri']}"
    row.update(artifact_uri=absolute, updated_at=next_version())
    import pyarrow as pa

    handle.append(pa.Table.from_pylist([row], schema=RUNS.schema))
    return absolute


def test_an_old_store_with_absolute_locations_keeps_working(original):
    root, experiment, finished, active = original
    absolute = _rewrite_as_absolute(root, finished)
    client = TrackingClient(str(root))
    open_store(client.store_root).release_caches()
    assert client.get_run_info(finished).artifact_uri == absolute
    assert [f.path for f in client.list_artifacts(finished)] == ["model"]
    # Inside its own root, gc deletes it as before.
    client.delete_run(finished)
    result = client.gc(older_than=timedelta(0))
    assert result.run_ids == [finished] and result.skipped_artifacts == []
    assert not Path(absolute).exists()


def test_gc_on_a_copy_of_an_old_store_skips_locations_outside_the_copy(original, caplog):
    root, experiment, finished, active = original
    absolute = _rewrite_as_absolute(root, finished)
    copy = _copy(root, "copy")
    before = _tree(root)
    client = TrackingClient(str(copy))
    # The old absolute location points into the original: still read from there.
    assert client.get_run_info(finished).artifact_uri == absolute
    assert [f.path for f in client.list_artifacts(finished)] == ["model"]
    client.delete_run(finished)
    with caplog.at_level("WARNING", logger="sparktrack"):
        result = client.gc(older_than=timedelta(0))
    assert _tree(root) == before
    assert result.run_ids == [finished]
    assert result.skipped_artifacts == [absolute]
    assert absolute in caplog.text and "not inside the store" in caplog.text


def _outside_run(client: TrackingClient, name: str, elsewhere: Path) -> str:
    experiment = client.create_experiment(name, artifact_location=str(elsewhere))
    run_id = client.create_run(experiment, run_name="r").info.run_id
    client.log_text(run_id, "keep me", "f.txt")
    client.delete_run(run_id)
    return run_id


def test_gc_skips_an_experiment_location_outside_the_store(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    client = TrackingClient(str(tmp_path / "store"))
    run_id = _outside_run(client, "outside", elsewhere)
    result = client.gc(older_than=timedelta(0))
    assert (elsewhere / run_id / "f.txt").read_text() == "keep me"
    assert result.run_ids == [run_id]
    assert result.skipped_artifacts == [str(elsewhere / run_id)]


def test_the_gc_command_reports_what_it_left_outside_the_store(tmp_path, capsys):
    from sparktrack.cli import main

    elsewhere = tmp_path / "elsewhere"
    store = tmp_path / "store"
    run_id = _outside_run(TrackingClient(str(store)), "outside", elsewhere)
    capsys.readouterr()
    assert main(["--store", str(store), "gc", "--older-than", "0s"]) == 0
    out = capsys.readouterr().out
    assert f"Left artifacts outside the store on disk: {elsewhere / run_id}" in out
    assert (elsewhere / run_id / "f.txt").is_file()


def test_gc_does_not_follow_a_run_folder_linked_outside_the_store(original, tmp_path):
    root, experiment, finished, _ = original
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("do not delete")
    folder = root / "artifacts" / experiment / finished
    shutil.rmtree(folder)
    folder.symlink_to(outside, target_is_directory=True)
    client = TrackingClient(str(root))
    client.delete_run(finished)
    result = client.gc(older_than=timedelta(0))
    assert (outside / "precious.txt").read_text() == "do not delete"
    assert result.skipped_artifacts == [str(folder)]


def test_the_data_source_and_runs_latest_resolve_against_the_store_read(original):
    root, experiment, finished, active = original
    copy = _copy(root, "copy")
    shutil.rmtree(root)
    expected = {f"{copy}/artifacts/{experiment}/{r}" for r in (finished, active)}
    # The data source's read path (what executors run), without a SparkSession.
    for table, column, want in (
        ("runs", "artifact_uri", expected),
        ("experiments", "artifact_location", {f"{copy}/artifacts/{experiment}"}),
    ):
        opts = reader.parse_options({"path": str(copy), "table": table,
                                     "experiment_ids": experiment})
        rows = [row for task in reader.plan(opts) for batch in reader.read_task(opts, task)
                for row in batch.to_pylist()]
        assert {row[column] for row in rows} == want, table
    materialize_runs_latest(str(copy))
    latest = DeltaTable(str(copy / "runs_latest")).to_pyarrow_table()
    assert set(latest.column("artifact_uri").to_pylist()) == expected


@pytest.mark.spark
def test_spark_runs_table_of_a_copy(spark, original):
    root, experiment, finished, active = original
    copy = _copy(root, "copy")
    shutil.rmtree(root)
    frame = spark.read.format("sparktrack").load(str(copy))
    assert {r.artifact_uri for r in frame.collect()} == {
        f"{copy}/artifacts/{experiment}/{r}" for r in (finished, active)
    }
    deleted_view = TrackingClient(str(copy)).search_runs([experiment],
                                                         run_view_type=ViewType.ALL)
    assert {r.info.artifact_uri for r in deleted_view} == {
        r.artifact_uri for r in frame.collect()
    }
