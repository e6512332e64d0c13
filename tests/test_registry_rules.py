"""The registry's API and MLflow's rules: names, versions never reused, aliases, stages,
get_latest_versions, tags, descriptions; bad input raises a typed error and writes nothing."""

from __future__ import annotations

import pytest

from sparktrack import TrackingClient
from sparktrack._registry.registry import Registry
from sparktrack._registry.tables import RegistryTables
from sparktrack.entities import ModelVersion, RegisteredModel
from sparktrack.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    SparkTrackError,
)


@pytest.fixture()
def client(store_uri):
    return TrackingClient(store_uri)


def _row_counts(client) -> dict[str, int]:
    tables = client._registry.tables
    return {h.spec.name: h.read().num_rows
            for h in (tables.models, tables.versions, tables.aliases, tables.events)}


def _refused(client, error, call, match):
    before = _row_counts(client)
    with pytest.raises(error, match=match) as info:
        call()
    assert _row_counts(client) == before, "a refused call wrote rows"
    return info.value


def _model_with_versions(client, name="churn", count=3) -> None:
    client.create_registered_model(name)
    for i in range(count):
        client.create_model_version(name, f"/models/{name}/{i}")


# -- registered models -----------------------------------------------------------------------
def test_create_get_update_rename_delete_a_registered_model(client):
    created = client.create_registered_model("churn", tags={"team": "ml"}, description="d")
    assert isinstance(created, RegisteredModel)
    assert (created.name, created.tags, created.description) == ("churn", {"team": "ml"}, "d")
    assert created.creation_timestamp == created.last_updated_timestamp
    client.update_registered_model("churn", "better")
    assert client.get_registered_model("churn").description == "better"
    client.create_model_version("churn", "/m/1")
    client.set_registered_model_alias("churn", "champion", 1)
    renamed = client.rename_registered_model("churn", "churn-v2")
    assert renamed.name == "churn-v2" and renamed.aliases == {"champion": 1}
    assert client.get_model_version("churn-v2", 1).name == "churn-v2"
    _refused(client, NotFoundError, lambda: client.get_registered_model("churn"), "name=churn")
    client.delete_registered_model("churn-v2")
    _refused(client, NotFoundError, lambda: client.get_registered_model("churn-v2"), "not found")
    assert client.search_model_versions() == []


@pytest.mark.parametrize("name", ["a/b", "a:b", "", "  ", None, 3, "x" * 300])
def test_invalid_model_names_are_refused_and_nothing_is_written(client, name):
    error = _refused(client, InvalidInputError, lambda: client.create_registered_model(name),
                     "name")
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert len(error.message) < 400
    client.create_registered_model("ok")
    _refused(client, InvalidInputError, lambda: client.rename_registered_model("ok", name),
             "name")


def test_creating_an_existing_model_or_renaming_onto_one_is_refused(client):
    client.create_registered_model("a")
    client.create_registered_model("b")
    error = _refused(client, AlreadyExistsError, lambda: client.create_registered_model("a"),
                     r"name=a\) already exists")
    assert error.error_code == "RESOURCE_ALREADY_EXISTS"
    _refused(client, AlreadyExistsError, lambda: client.rename_registered_model("a", "b"),
             "already exists")


def test_unknown_models_and_versions_raise_not_found_and_write_nothing(client):
    _model_with_versions(client, count=1)
    calls = {
        "get": lambda: client.get_registered_model("nope"),
        "update": lambda: client.update_registered_model("nope", "d"),
        "delete": lambda: client.delete_registered_model("nope"),
        "version": lambda: client.create_model_version("nope", "/m"),
        "tag": lambda: client.set_registered_model_tag("nope", "k", "v"),
        "alias": lambda: client.set_registered_model_alias("nope", "champion", 1),
    }
    for call in calls.values():
        assert _refused(client, NotFoundError, call, "nope").error_code == \
            "RESOURCE_DOES_NOT_EXIST"
    for call in (
        lambda: client.get_model_version("churn", 7),
        lambda: client.update_model_version("churn", "7", "d"),
        lambda: client.delete_model_version("churn", 7),
        lambda: client.transition_model_version_stage("churn", 7, "Production"),
        lambda: client.set_registered_model_alias("churn", "champion", 7),
        lambda: client.set_model_version_tag("churn", 7, "k", "v"),
        lambda: client.get_model_version_download_uri("churn", 7),
    ):
        _refused(client, NotFoundError, call, r"name=churn, version=7\) not found")


@pytest.mark.parametrize("version", [0, -1, "abc", "1.5", True, None, 2**64])
def test_invalid_version_numbers_are_refused(client, version):
    _model_with_versions(client, count=1)
    _refused(client, InvalidInputError, lambda: client.get_model_version("churn", version),
             "Invalid model version")


# -- versions ------------------------------------------------------------------------------------
def test_versions_count_from_1_and_a_deleted_number_is_never_reused(client):
    _model_with_versions(client, count=3)
    version = client.get_model_version("churn", "2")  # a string, as MLflow accepts
    assert isinstance(version, ModelVersion)
    assert (version.version, version.status, version.current_stage) == (2, "READY", "None")
    client.delete_model_version("churn", 3)
    client.delete_model_version("churn", 2)
    assert client.create_model_version("churn", "/m/new").version == 4
    assert [v.version for v in client.search_model_versions("name = 'churn'")] == [4, 1]
    _refused(client, NotFoundError, lambda: client.get_model_version("churn", 3), "not found")


def test_a_model_deleted_and_created_again_starts_again_at_1_as_in_mlflow(client):
    _model_with_versions(client, count=2)
    client.delete_registered_model("churn")
    client.create_registered_model("churn")
    assert client.create_model_version("churn", "/m").version == 1
    assert [v.version for v in client.search_model_versions("name='churn'")] == [1]


def test_a_name_freed_by_a_rename_or_a_delete_names_the_new_model_only(client, store_uri):
    _model_with_versions(client, "a", count=2)
    client.set_registered_model_alias("a", "champion", 2)
    client.rename_registered_model("a", "b")
    client.create_registered_model("a")  # the name is free again
    client.create_model_version("a", "/models/new-a/0")
    client.delete_registered_model("b")
    client.create_registered_model("b")
    client.rename_registered_model("a", "c")
    _refused(client, NotFoundError, lambda: client.get_registered_model("a"), "name=a")
    assert client.get_registered_model("b").latest_versions == []
    assert client.get_registered_model("b").aliases == {}
    assert [v.source for v in client.search_model_versions("name = 'c'")] == ["/models/new-a/0"]
    assert sorted(m.name for m in client.search_registered_models()) == ["b", "c"]
    # A registry that loads the tables whole (as a new process does) finds the same.
    used = client._registry
    fresh = Registry(RegistryTables(store_uri, storage_options=None, commit_retries=3),
                     used.settings, used._run_artifact_uri)
    with pytest.raises(NotFoundError, match="name=a"):
        fresh.get_registered_model("a")
    assert fresh.get_registered_model("b").latest_versions == []
    assert [v.source for v in fresh.get_latest_versions("c")] == ["/models/new-a/0"]


def test_register_model_creates_the_model_and_resolves_runs_uris(client):
    run = client.create_run("0")
    version = client.register_model(f"runs:/{run.info.run_id}/model", "fresh")
    assert (version.name, version.version, version.run_id) == ("fresh", 1, run.info.run_id)
    assert version.source == f"runs:/{run.info.run_id}/model"
    uri = client.get_model_version_download_uri("fresh", 1)
    assert uri == run.info.artifact_uri.rstrip("/") + "/model"
    assert client.register_model("/elsewhere/model", "fresh").version == 2
    assert client.get_model_version_download_uri("fresh", 2) == "/elsewhere/model"


def test_version_description_and_tags(client):
    _model_with_versions(client, count=1)
    client.update_model_version("churn", 1, "first")
    client.set_model_version_tag("churn", "1", "validated", True)
    client.set_registered_model_tag("churn", "team", "ml")
    version = client.get_model_version("churn", 1)
    assert (version.description, version.tags) == ("first", {"validated": "True"})
    client.delete_model_version_tag("churn", 1, "validated")
    client.delete_model_version_tag("churn", 1, "missing")  # a no-op, as in MLflow
    client.delete_registered_model_tag("churn", "team")
    assert client.get_model_version("churn", 1).tags == {}
    assert client.get_registered_model("churn").tags == {}
    _refused(client, InvalidInputError,
             lambda: client.set_model_version_tag("churn", 1, "bad..key/../", "v"), "key")


def test_tag_by_stage_needs_exactly_one_of_version_and_stage(client):
    _model_with_versions(client, count=2)
    client.transition_model_version_stage("churn", 1, "Staging")
    client.set_model_version_tag("churn", key="k", value="v", stage="staging")
    assert client.get_model_version("churn", 1).tags == {"k": "v"}
    _refused(client, InvalidInputError,
             lambda: client.set_model_version_tag("churn", 1, "k", "v", stage="Staging"),
             "exactly one")


# -- aliases ---------------------------------------------------------------------------------
@pytest.mark.parametrize("alias", ["latest", "LATEST", "v1", "V12", "has space", "a/b", "",
                                   "x" * 256])
def test_reserved_and_malformed_aliases_are_refused(client, alias):
    _model_with_versions(client, count=1)
    error = _refused(client, InvalidInputError,
                     lambda: client.set_registered_model_alias("churn", alias, 1), "lias")
    assert error.error_code == "INVALID_PARAMETER_VALUE"


def test_aliases_set_move_delete_and_appear_everywhere(client):
    _model_with_versions(client, count=3)
    client.set_registered_model_alias("churn", "champion", 1)
    client.set_registered_model_alias("churn", "challenger", "2")
    client.set_registered_model_alias("churn", "champion", 2)  # moves
    assert client.get_registered_model("churn").aliases == {"challenger": 2, "champion": 2}
    assert client.get_model_version("churn", 2).aliases == ["challenger", "champion"]
    assert client.get_model_version("churn", 1).aliases == []
    assert client.get_model_version_by_alias("churn", "champion").version == 2
    found = client.search_model_versions("name = 'churn'")
    assert {v.version: v.aliases for v in found} == {3: [], 2: ["challenger", "champion"], 1: []}
    assert client.search_registered_models()[0].aliases == {"challenger": 2, "champion": 2}
    # latest is the highest live version
    assert client.get_model_version_by_alias("churn", "latest").version == 3
    client.delete_registered_model_alias("churn", "challenger")
    client.delete_registered_model_alias("churn", "never-set")  # a no-op
    assert client.get_registered_model("churn").aliases == {"champion": 2}


def test_an_unknown_alias_is_invalid_parameter_value_as_in_mlflow(client):
    _model_with_versions(client, count=1)
    error = _refused(client, InvalidInputError,
                     lambda: client.get_model_version_by_alias("churn", "nope"), "'nope'")
    assert error.error_code == "INVALID_PARAMETER_VALUE"


def test_deleting_a_version_drops_its_aliases(client):
    _model_with_versions(client, count=2)
    client.set_registered_model_alias("churn", "champion", 2)
    client.set_registered_model_alias("churn", "old", 1)
    client.delete_model_version("churn", 2)
    assert client.get_registered_model("churn").aliases == {"old": 1}
    _refused(client, InvalidInputError,
             lambda: client.get_model_version_by_alias("churn", "champion"), "champion")


# -- stages ----------------------------------------------------------------------------------
def test_stages_are_canonical_case_insensitively(client):
    _model_with_versions(client, count=1)
    assert client.transition_model_version_stage("churn", 1, "production").current_stage == \
        "Production"
    assert client.transition_model_version_stage("churn", 1, "NONE").current_stage == "None"


@pytest.mark.parametrize("stage", ["bogus", "", None, "Deleted_Internal"])
def test_invalid_stages_are_refused(client, stage):
    _model_with_versions(client, count=1)
    _refused(client, InvalidInputError,
             lambda: client.transition_model_version_stage("churn", 1, stage),
             "Invalid Model Version stage")


def test_archive_existing_versions_archives_the_others_in_that_stage_only(client):
    _model_with_versions(client, count=4)
    client.transition_model_version_stage("churn", 1, "Production")
    client.transition_model_version_stage("churn", 2, "Production")
    client.transition_model_version_stage("churn", 3, "Staging")
    client.transition_model_version_stage("churn", 4, "Production",
                                          archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in client.search_model_versions("name='churn'")}
    assert stages == {1: "Archived", 2: "Archived", 3: "Staging", 4: "Production"}


@pytest.mark.parametrize("stage", ["None", "Archived", "archived"])
def test_archive_existing_versions_only_for_staging_and_production(client, stage):
    _model_with_versions(client, count=2)
    _refused(client, InvalidInputError,
             lambda: client.transition_model_version_stage("churn", 1, stage, True),
             "not an Active stage")


def test_get_latest_versions_per_stage(client):
    _model_with_versions(client, count=5)
    client.transition_model_version_stage("churn", 1, "Production")
    client.transition_model_version_stage("churn", 2, "Production")
    client.transition_model_version_stage("churn", 3, "Staging")
    latest = client.get_latest_versions("churn", ["production", "Staging"])
    assert sorted((v.current_stage, v.version) for v in latest) == [("Production", 2),
                                                                    ("Staging", 3)]
    every = client.get_latest_versions("churn")
    assert sorted((v.current_stage, v.version) for v in every) == [
        ("None", 5), ("Production", 2), ("Staging", 3)]
    assert client.get_latest_versions("churn", ["Archived"]) == []
    assert {v.current_stage for v in client.get_registered_model("churn").latest_versions} == \
        {"None", "Production", "Staging"}
    _refused(client, InvalidInputError, lambda: client.get_latest_versions("churn", ["Prod"]),
             "stage")
    _refused(client, InvalidInputError,
             lambda: client.get_latest_versions("churn", "Production"), "list")


def test_every_registry_error_is_a_sparktrack_error(client):
    with pytest.raises(SparkTrackError):
        client.get_registered_model("missing")
