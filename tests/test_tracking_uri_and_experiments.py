"""Tracking URI resolution and the experiment lifecycle (MLflow names and semantics)."""

from __future__ import annotations

import os

import pytest

import sparktrack
from sparktrack import TrackingClient, ViewType
from sparktrack.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidInputError,
    InvalidStateError,
    LimitExceededError,
)


# -- tracking URI --------------------------------------------------------------------------------
def test_set_tracking_uri_is_where_runs_are_written(tmp_path):
    uri = str(tmp_path / "elsewhere")
    sparktrack.set_tracking_uri(uri)
    assert sparktrack.get_tracking_uri() == uri
    with sparktrack.start_run() as run:
        sparktrack.log_metric("loss", 1.0)
    sparktrack.flush()
    assert os.path.isdir(os.path.join(uri, "runs", "_delta_log"))
    assert TrackingClient(uri).get_run(run.info.run_id).data.metrics == {"loss": 1.0}


def test_set_tracking_uri_accepts_a_path_object(tmp_path):
    sparktrack.set_tracking_uri(tmp_path / "store")
    assert sparktrack.get_tracking_uri() == str(tmp_path / "store")


def test_tracking_uri_from_environment(tmp_path, monkeypatch):
    uri = str(tmp_path / "from-env")
    monkeypatch.setattr(sparktrack.client, "_tracking_uri", None)
    monkeypatch.setenv("SPARKTRACK_TRACKING_URI", uri)
    assert sparktrack.get_tracking_uri() == uri
    assert TrackingClient().tracking_uri == uri
    with sparktrack.start_run():
        sparktrack.log_param("p", 1)
    sparktrack.flush()
    assert os.path.isdir(os.path.join(uri, "params"))


def test_set_tracking_uri_wins_over_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKTRACK_TRACKING_URI", str(tmp_path / "env"))
    sparktrack.set_tracking_uri(str(tmp_path / "explicit"))
    assert sparktrack.get_tracking_uri() == str(tmp_path / "explicit")


def test_tracking_client_follows_set_tracking_uri(tmp_path, monkeypatch):
    """As ``MlflowClient()`` follows ``mlflow.set_tracking_uri``: no silent second store."""
    monkeypatch.chdir(tmp_path)  # where the default ./sparktrack-store would appear
    monkeypatch.setenv("SPARKTRACK_TRACKING_URI", str(tmp_path / "env"))
    uri = str(tmp_path / "chosen")
    sparktrack.set_tracking_uri(uri)
    client = TrackingClient()
    assert client.tracking_uri == uri
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "m", 1.0)
    assert sparktrack.get_run(run_id).data.metrics == {"m": 1.0}  # one store for both APIs
    client.flush()
    assert os.path.isdir(os.path.join(uri, "runs", "_delta_log"))
    assert sorted(os.listdir(tmp_path)) == ["chosen"]
    # A URI given to the client still wins; a client keeps the store it was created with.
    assert TrackingClient(str(tmp_path / "given")).tracking_uri == str(tmp_path / "given")
    sparktrack.set_tracking_uri(str(tmp_path / "later"))
    assert client.tracking_uri == uri
    assert TrackingClient().tracking_uri == str(tmp_path / "later")


def test_default_tracking_uri_is_a_folder_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sparktrack.client, "_tracking_uri", None)
    monkeypatch.delenv("SPARKTRACK_TRACKING_URI", raising=False)
    assert sparktrack.get_tracking_uri() == "./sparktrack-store"
    assert TrackingClient().tracking_uri == "./sparktrack-store"
    with sparktrack.start_run():
        sparktrack.log_metric("m", 1.0)
    sparktrack.flush()
    assert os.path.isdir(tmp_path / "sparktrack-store" / "metrics" / "_delta_log")


# -- creating and finding experiments --------------------------------------------------------------
def test_create_experiment_with_tags_and_artifact_location(tracking, tmp_path):
    location = str(tmp_path / "my-artifacts")
    experiment_id = sparktrack.create_experiment(
        "churn", artifact_location=location, tags={"team": "risk", "version": 2}
    )
    experiment = sparktrack.get_experiment(experiment_id)
    assert experiment.name == "churn"
    assert experiment.experiment_id == experiment_id
    assert experiment.artifact_location == location
    assert experiment.tags == {"team": "risk", "version": "2"}
    assert experiment.lifecycle_stage == "active"
    assert experiment.creation_time > 0
    with sparktrack.start_run(experiment_id=experiment_id) as run:
        pass
    assert run.info.artifact_uri.startswith(location + "/")
    assert run.info.experiment_id == experiment_id


def test_new_experiment_artifacts_default_to_the_store(tracking):
    experiment_id = sparktrack.create_experiment("plain")
    location = sparktrack.get_experiment(experiment_id).artifact_location
    assert location == f"{os.path.abspath(tracking)}/artifacts/{experiment_id}"


def test_experiment_ids_are_distinct_strings(tracking):
    ids = {sparktrack.create_experiment(f"exp-{i}") for i in range(5)}
    assert len(ids) == 5
    assert all(isinstance(i, str) and i.isdigit() for i in ids)


def test_duplicate_experiment_name_is_rejected_and_named(tracking):
    sparktrack.create_experiment("dup")
    with pytest.raises(AlreadyExistsError, match="'dup'"):
        sparktrack.create_experiment("dup")
    assert [e.name for e in sparktrack.search_experiments()].count("dup") == 1


def test_name_of_a_deleted_experiment_stays_taken(tracking):
    experiment_id = sparktrack.create_experiment("gone")
    sparktrack.delete_experiment(experiment_id)
    with pytest.raises(AlreadyExistsError, match="'gone'.*restore"):
        sparktrack.create_experiment("gone")


@pytest.mark.parametrize("name", ["", "   ", None])
def test_experiment_name_must_be_a_non_empty_string(tracking, name):
    with pytest.raises(InvalidInputError, match="non-empty"):
        sparktrack.create_experiment(name)


def test_experiment_name_length_limit(tracking):
    sparktrack.create_experiment("x" * 500)
    with pytest.raises(LimitExceededError, match="501 characters; the limit is 500"):
        sparktrack.create_experiment("y" * 501)


def test_get_experiment_by_name_and_unknown_experiments(tracking):
    experiment_id = sparktrack.create_experiment("found")
    assert sparktrack.get_experiment_by_name("found").experiment_id == experiment_id
    assert sparktrack.get_experiment_by_name("missing") is None
    with pytest.raises(ExperimentNotFoundError, match="'12345'"):
        sparktrack.get_experiment("12345")
    with pytest.raises(LookupError):
        sparktrack.get_experiment("12345")


def test_default_experiment_has_id_0(tracking):
    default = sparktrack.get_experiment("0")
    assert (default.experiment_id, default.name) == ("0", "Default")
    assert sparktrack.get_experiment_by_name("Default").experiment_id == "0"
    with sparktrack.start_run() as run:
        pass
    assert run.info.experiment_id == "0"
    with pytest.raises(InvalidStateError, match="Default"):
        sparktrack.delete_experiment("0")


def test_renamed_default_experiment_stays_renamed(tracking):
    sparktrack.set_experiment_tag("k", "v")  # on the Default experiment
    sparktrack.rename_experiment("0", "base")
    assert sparktrack.get_experiment_by_name("Default") is None
    default = sparktrack.get_experiment("0")
    assert (default.name, default.tags) == ("base", {"k": "v"})


# -- set_experiment ------------------------------------------------------------------------------
def test_set_experiment_by_name_creates_it_once(tracking):
    experiment = sparktrack.set_experiment("new-one")
    assert experiment.name == "new-one"
    again = sparktrack.set_experiment("new-one")
    assert again.experiment_id == experiment.experiment_id
    assert [e.name for e in sparktrack.search_experiments()].count("new-one") == 1
    with sparktrack.start_run() as run:
        pass
    assert run.info.experiment_id == experiment.experiment_id


def test_set_experiment_by_id(tracking):
    experiment_id = sparktrack.create_experiment("by-id")
    assert sparktrack.set_experiment(experiment_id=experiment_id).name == "by-id"
    with sparktrack.start_run() as run:
        pass
    assert run.info.experiment_id == experiment_id
    with pytest.raises(ExperimentNotFoundError):
        sparktrack.set_experiment(experiment_id="999")


def test_set_experiment_needs_exactly_one_of_name_and_id(tracking):
    with pytest.raises(InvalidInputError, match="exactly one"):
        sparktrack.set_experiment()
    with pytest.raises(InvalidInputError, match="exactly one"):
        sparktrack.set_experiment("a", experiment_id="0")


def test_setting_a_deleted_experiment_is_an_error(tracking):
    experiment_id = sparktrack.create_experiment("deleted-one")
    sparktrack.delete_experiment(experiment_id)
    with pytest.raises(InvalidStateError, match="'deleted-one'.*restore_experiment"):
        sparktrack.set_experiment("deleted-one")
    with pytest.raises(InvalidStateError):
        sparktrack.set_experiment(experiment_id=experiment_id)
    with pytest.raises(InvalidStateError, match="restore_experiment"):
        sparktrack.start_run(experiment_id=experiment_id)
    assert sparktrack.active_run() is None


def test_experiment_name_from_environment(tracking, monkeypatch):
    monkeypatch.setenv("SPARKTRACK_EXPERIMENT_NAME", "env-named")
    with sparktrack.start_run() as run:
        pass
    experiment = sparktrack.get_experiment_by_name("env-named")
    assert experiment is not None
    assert run.info.experiment_id == experiment.experiment_id


def test_experiment_id_from_environment(tracking, monkeypatch):
    experiment_id = sparktrack.create_experiment("env-id")
    monkeypatch.setenv("SPARKTRACK_EXPERIMENT_ID", experiment_id)
    with sparktrack.start_run() as run:
        pass
    assert run.info.experiment_id == experiment_id


def test_experiment_name_and_id_from_environment_must_agree(tracking, monkeypatch):
    named = sparktrack.create_experiment("env-both")
    other = sparktrack.create_experiment("env-other")
    monkeypatch.setenv("SPARKTRACK_EXPERIMENT_NAME", "env-both")
    monkeypatch.setenv("SPARKTRACK_EXPERIMENT_ID", named)
    with sparktrack.start_run() as run:
        pass
    assert run.info.experiment_id == named
    monkeypatch.setenv("SPARKTRACK_EXPERIMENT_ID", other)
    with pytest.raises(InvalidInputError, match=f"SPARKTRACK_EXPERIMENT_ID='{other}'.*env-both"):
        sparktrack.start_run()
    assert sparktrack.active_run() is None


def test_unknown_experiment_id_from_environment(tracking, monkeypatch):
    monkeypatch.setenv("SPARKTRACK_EXPERIMENT_ID", "777")
    with pytest.raises(ExperimentNotFoundError, match="'777'"):
        sparktrack.start_run()


def test_set_experiment_wins_over_environment(tracking, monkeypatch):
    monkeypatch.setenv("SPARKTRACK_EXPERIMENT_NAME", "env-named")
    chosen = sparktrack.set_experiment("chosen")
    with sparktrack.start_run() as run:
        pass
    assert run.info.experiment_id == chosen.experiment_id
    assert sparktrack.get_experiment_by_name("env-named") is None


def test_changing_the_tracking_uri_forgets_the_active_experiment(tracking, tmp_path):
    sparktrack.set_experiment("in-first-store")
    sparktrack.set_tracking_uri(str(tmp_path / "second"))
    with sparktrack.start_run() as run:
        pass
    assert run.info.experiment_id == "0"


# -- search, rename, delete, restore, tags -----------------------------------------------------------
def test_search_experiments_by_view_type(tracking):
    kept = sparktrack.create_experiment("kept")
    dropped = sparktrack.create_experiment("dropped")
    sparktrack.delete_experiment(dropped)

    def ids(view_type):
        return {e.experiment_id for e in sparktrack.search_experiments(view_type=view_type)}

    assert kept in ids(ViewType.ACTIVE_ONLY) and dropped not in ids(ViewType.ACTIVE_ONLY)
    assert ids(ViewType.DELETED_ONLY) == {dropped}
    assert {kept, dropped} <= ids(ViewType.ALL)
    assert ids("DELETED_ONLY") == {dropped}
    assert ids(ViewType.ACTIVE_ONLY) == {e.experiment_id for e in sparktrack.search_experiments()}
    with pytest.raises(InvalidInputError, match="'SOME'"):
        sparktrack.search_experiments(view_type="SOME")


def test_search_experiments_name_like_and_max_results(tracking):
    for name in ("cv_a", "cv_b", "tvs_a"):
        sparktrack.create_experiment(name)
    assert {e.name for e in sparktrack.search_experiments(name_like="cv%")} == {"cv_a", "cv_b"}
    assert {e.name for e in sparktrack.search_experiments(name_like="%_a")} == {"cv_a", "tvs_a"}
    assert sparktrack.search_experiments(name_like="cv.a") == []
    assert len(sparktrack.search_experiments(max_results=2)) == 2


def test_rename_experiment(tracking):
    experiment_id = sparktrack.create_experiment("old-name")
    with sparktrack.start_run(experiment_id=experiment_id) as run:
        pass
    sparktrack.rename_experiment(experiment_id, "new-name")
    assert sparktrack.get_experiment(experiment_id).name == "new-name"
    assert sparktrack.get_experiment_by_name("old-name") is None
    assert sparktrack.get_experiment_by_name("new-name").experiment_id == experiment_id
    assert sparktrack.get_run(run.info.run_id).info.experiment_id == experiment_id
    # The old name is free again.
    assert sparktrack.create_experiment("old-name") != experiment_id


def test_rename_to_a_taken_name_is_rejected(tracking):
    first = sparktrack.create_experiment("first")
    sparktrack.create_experiment("second")
    with pytest.raises(AlreadyExistsError, match="'second'"):
        sparktrack.rename_experiment(first, "second")
    assert sparktrack.get_experiment(first).name == "first"


def test_delete_experiment_deletes_its_runs_and_restore_brings_them_back(tracking):
    experiment_id = sparktrack.create_experiment("lifecycle")
    other_id = sparktrack.create_experiment("bystander")
    run_ids = []
    for _ in range(3):
        with sparktrack.start_run(experiment_id=experiment_id) as run:
            sparktrack.log_metric("m", 1.0)
        run_ids.append(run.info.run_id)
    with sparktrack.start_run(experiment_id=other_id) as bystander:
        pass

    sparktrack.delete_experiment(experiment_id)
    assert sparktrack.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert {sparktrack.get_run(r).info.lifecycle_stage for r in run_ids} == {"deleted"}
    assert all(sparktrack.get_run(r).info.deleted_time for r in run_ids)
    assert sparktrack.get_run(bystander.info.run_id).info.lifecycle_stage == "active"
    with pytest.raises(InvalidStateError, match="already deleted"):
        sparktrack.delete_experiment(experiment_id)

    sparktrack.restore_experiment(experiment_id)
    assert sparktrack.get_experiment(experiment_id).lifecycle_stage == "active"
    assert {sparktrack.get_run(r).info.lifecycle_stage for r in run_ids} == {"active"}
    assert sparktrack.get_run(run_ids[0]).data.metrics == {"m": 1.0}


def test_delete_unknown_experiment(tracking):
    with pytest.raises(ExperimentNotFoundError):
        sparktrack.delete_experiment("424242")


def test_experiment_tags(tracking):
    experiment = sparktrack.set_experiment("tagged")
    sparktrack.set_experiment_tag("owner", "ana")
    sparktrack.set_experiment_tags({"stage": "dev", "priority": 1})
    sparktrack.set_experiment_tag("owner", "bo")
    assert sparktrack.get_experiment(experiment.experiment_id).tags == {
        "owner": "bo", "stage": "dev", "priority": "1",
    }
    client = TrackingClient(tracking)
    client.delete_experiment_tag(experiment.experiment_id, "stage")
    assert client.get_experiment(experiment.experiment_id).tags == {"owner": "bo", "priority": "1"}
    with pytest.raises(InvalidInputError, match="'stage'"):
        client.delete_experiment_tag(experiment.experiment_id, "stage")


def test_experiment_tag_keys_are_validated(tracking):
    experiment = sparktrack.set_experiment("tag-rules")
    with pytest.raises(InvalidInputError, match="'bad!key'"):
        sparktrack.set_experiment_tag("bad!key", "v")
    assert sparktrack.get_experiment(experiment.experiment_id).tags == {}


def test_experiments_are_visible_to_a_new_client_of_the_same_store(tracking):
    experiment_id = sparktrack.create_experiment("persisted", tags={"k": "v"})
    from sparktrack._store import TrackingStore

    fresh = TrackingStore(tracking)  # a separate instance reads only what is on disk
    experiment = fresh.get_experiment(experiment_id)
    assert (experiment.name, experiment.tags) == ("persisted", {"k": "v"})
