"""Model URI parsing (MLflow's grammar) and resolution through any client with MLflow's
registry method names; bad URIs are a typed InvalidInputError quoting the URI."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sparktrack._models import uris
from sparktrack._models.uris import Location, ModelsUri, RunsUri
from sparktrack.errors import InvalidInputError, NotFoundError


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("runs:/0123abcd/model", RunsUri("0123abcd", "model")),
        ("runs:///0123abcd/a/b/", RunsUri("0123abcd", "a/b")),
        ("models:/churn/3", ModelsUri("churn", version="3")),
        ("models:/churn/007", ModelsUri("churn", version="7")),
        ("models:/churn/latest", ModelsUri("churn")),
        ("models:/churn/LATEST", ModelsUri("churn")),
        ("models:/churn/Production", ModelsUri("churn", stage="Production")),
        ("models:/churn/staging", ModelsUri("churn", stage="staging")),
        ("models:/churn@champion", ModelsUri("churn", alias="champion")),
        ("models:/a@b@c", ModelsUri("a@b", alias="c")),  # MLflow splits at the last '@'
        ("/data/models/m1", Location("/data/models/m1")),
        ("relative/m1", Location("relative/m1")),
        ("file:///data/m1", Location("file:///data/m1")),
        ("s3://bucket/m1", Location("s3://bucket/m1")),
    ],
)
def test_accepted_forms(uri, parsed):
    assert uris.parse(uri) == parsed


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        (None, "non-empty"),
        (42, "non-empty"),
        ("runs:", "no '/'"),
        ("runs:abc/model", "no '/'"),
        ("runs:/", "no valid run id"),
        ("runs:/abc", "no artifact path"),
        ("runs:/abc/", "no artifact path"),
        ("runs:/ab c/model", "no valid run id"),
        ("runs:/abc/../../etc", "not allowed"),
        ("runs:/abc/a\\b", "not allowed"),
        ("models:", "no registered model"),
        ("models:/", "no registered model"),
        ("models:/m/", "empty version or stage"),
        ("models:/m/ ", "empty version or stage"),
        ("models:/a/b/c", "more than a name"),
        ("models://x", "registry host"),
        ("models://profile@databricks/m/1", "registry host"),
        ("models:/m@", "empty model name or alias"),
        ("models:/@champ", "empty model name or alias"),
        ("models:/m@a/1", "both an alias"),
        ("models:/m-0123456789abcdef", "logged model id"),
    ],
)
def test_malformed_uris_are_invalid_input_naming_the_uri(uri, why):
    with pytest.raises(InvalidInputError, match=why) as caught:
        uris.parse(uri)
    message = caught.value.message
    assert repr(uri)[:150] in message
    assert "runs:/<run_id>/<artifact path>" in message  # how to fix it


def test_long_uris_are_quoted_shortened():
    uri = "models:/" + "x" * 5000 + "/a/b"
    with pytest.raises(InvalidInputError) as caught:
        uris.parse(uri)
    assert len(caught.value.message) < 600


class Registry:
    """A client answering with MLflow's registry method names; records the calls."""

    def __init__(self, versions, download):
        self.versions = versions  # [(version, stage, aliases)]
        self.download = download
        self.calls = []

    def get_latest_versions(self, name, stages=None):
        self.calls.append(("get_latest_versions", name, stages))
        latest = {}
        for version, stage, _ in self.versions:
            if stages is None or stage.lower() in [s.lower() for s in stages]:
                latest[stage] = max(latest.get(stage, 0), version)
        return [SimpleNamespace(version=str(v)) for v in latest.values()]

    def get_model_version_by_alias(self, name, alias):
        self.calls.append(("get_model_version_by_alias", name, alias))
        (version,) = [v for v, _, aliases in self.versions if alias in aliases]
        return SimpleNamespace(version=str(version))

    def get_model_version_download_uri(self, name, version):
        self.calls.append(("get_model_version_download_uri", name, version))
        return self.download(version)

    def get_run_info(self, run_id):
        self.calls.append(("get_run_info", run_id))
        return SimpleNamespace(artifact_uri=f"/store/artifacts/1/{run_id}/")


VERSIONS = [(1, "Archived", ()), (2, "Production", ("champion",)), (3, "Staging", ()),
            (4, "None", ())]


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        ("models:/churn/2", "2"),
        ("models:/churn/latest", "4"),
        ("models:/churn/Production", "2"),
        ("models:/churn/production", "2"),
        ("models:/churn@champion", "2"),
    ],
)
def test_models_uris_resolve_through_the_registry_methods(uri, version):
    client = Registry(VERSIONS, lambda v: f"runs:/run{v}/model")
    assert uris.resolve(uri, client) == f"/store/artifacts/1/run{version}/model"
    assert ("get_model_version_download_uri", "churn", version) in client.calls


def test_a_download_uri_that_is_a_location_is_used_as_it_is():
    client = Registry(VERSIONS, lambda v: f"s3://bucket/models/{v}")
    assert uris.resolve("models:/churn/3", client) == "s3://bucket/models/3"


def test_a_download_uri_that_is_another_models_uri_is_refused():
    client = Registry(VERSIONS, lambda v: "models:/other/1")
    with pytest.raises(InvalidInputError, match="another models:/ URI"):
        uris.resolve("models:/churn/3", client)


def test_no_version_in_a_stage_is_not_found_naming_model_and_stage():
    client = Registry(VERSIONS, lambda v: f"runs:/run{v}/model")
    with pytest.raises(NotFoundError, match="'churn' has no version in stage 'Canary'"):
        uris.resolve("models:/churn/Canary", client)


def test_runs_and_locations_resolve_without_the_registry():
    client = Registry([], lambda v: None)
    assert uris.resolve("runs:/abc/nested/model", client) == "/store/artifacts/1/abc/nested/model"
    assert uris.resolve("/some/folder", client) == "/some/folder"
    assert [c[0] for c in client.calls] == ["get_run_info"]
