"""search_registered_models / search_model_versions: MLflow's grammars (compared with MLflow's
own SQLite registry) plus the filters MLflow users ask for (alias, stage, creation time)."""

from __future__ import annotations

import time
import warnings

import pytest

from sparktrack import TrackingClient
from sparktrack.errors import InvalidFilterError, InvalidInputError

MODELS = {
    "churn": {"team": "ml", "tier": "gold"},
    "churn-eu": {"team": "ml"},
    "fraud": {"team": "risk"},
    "Fraud_Legacy": {},
}
# (model, source, run_id, tags)
VERSIONS = [
    ("churn", "/src/churn/1", "run-a", {"validated": "yes"}),
    ("churn", "/src/churn/2", "run-b", {}),
    ("churn", "/other/churn/3", "run-a", {"validated": "no"}),
    ("churn-eu", "/src/eu/1", "run-c", {}),
    ("fraud", "/src/fraud/1", "run-d", {"validated": "yes"}),
    ("fraud", "/src/fraud/2", None, {}),
]
MODEL_FILTERS = [
    None,
    "name = 'churn'",
    "name != 'churn'",
    "name LIKE 'churn%'",
    "name ILIKE 'fraud%'",
    "name LIKE '%_%'",
    "tags.team = 'ml'",
    "tags.team != 'ml'",
    "tags.team LIKE 'r%'",
    "tags.tier ILIKE 'GOLD'",
    "name LIKE 'churn%' AND tags.tier = 'gold'",
    "name IN ('fraud', 'churn-eu')",
]
MODEL_ORDERS = [None, ["name DESC"], ["timestamp DESC"], ["last_updated_timestamp"]]
VERSION_FILTERS = [
    None,
    "name = 'churn'",
    "name LIKE 'churn%'",
    "name ILIKE 'FRAUD'",
    "run_id = 'run-a'",
    "run_id IN ('run-a', 'run-d')",
    "run_id != 'run-a'",
    "source_path LIKE '/src/%'",
    "source_path = '/src/churn/2'",
    "version_number > 1",
    "version_number = 2 AND name = 'fraud'",
    "tags.validated = 'yes'",
    "tags.validated != 'yes'",
    "tags.validated LIKE 'n%'",
    "name NOT IN ('churn')",
]
VERSION_ORDERS = [None, ["version_number ASC"], ["name DESC", "version_number ASC"],
                  ["creation_timestamp DESC"]]


def _populate(client) -> None:
    # Each model and version its own creation time (milliseconds), for the filters on time:
    # a registry change takes well under a millisecond.
    for name, tags in MODELS.items():
        _next_millisecond()
        client.create_registered_model(name, tags=tags)
    for name, source, run_id, tags in VERSIONS:
        _next_millisecond()
        client.create_model_version(name, source, run_id=run_id, tags=tags)


def _next_millisecond() -> None:
    start = int(time.time() * 1000)
    while int(time.time() * 1000) == start:
        time.sleep(0.0002)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    mlflow = pytest.importorskip("mlflow")
    folder = tmp_path_factory.mktemp("registries")
    db = f"sqlite:///{folder}/mlflow.db"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = mlflow.MlflowClient(tracking_uri=db, registry_uri=db)
        _populate(theirs)
    ours = TrackingClient(str(folder / "store"))
    _populate(ours)
    return ours, theirs


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


@pytest.mark.parametrize("order_by", MODEL_ORDERS)
@pytest.mark.parametrize("filter_string", MODEL_FILTERS)
def test_registered_model_search_matches_mlflow(both, filter_string, order_by):
    ours, theirs = both
    expected = [m.name for m in _quiet(lambda: theirs.search_registered_models(
        filter_string=filter_string, order_by=order_by))]
    assert [m.name for m in ours.search_registered_models(filter_string, order_by=order_by)] \
        == expected


@pytest.mark.parametrize("order_by", VERSION_ORDERS)
@pytest.mark.parametrize("filter_string", VERSION_FILTERS)
def test_model_version_search_matches_mlflow(both, filter_string, order_by):
    ours, theirs = both
    expected = [(v.name, int(v.version)) for v in _quiet(lambda: theirs.search_model_versions(
        filter_string=filter_string, order_by=order_by))]
    found = ours.search_model_versions(filter_string, order_by=order_by)
    assert [(v.name, v.version) for v in found] == expected


def test_paging_matches_mlflow(both):
    ours, theirs = both
    first = ours.search_registered_models(max_results=3)
    second = ours.search_registered_models(max_results=3, page_token=first.token)
    assert second.token is None
    assert [m.name for m in first + second] == [m.name for m in _quiet(
        lambda: theirs.search_registered_models())]


@pytest.fixture()
def client(store_uri):
    client = TrackingClient(store_uri)
    _populate(client)
    return client


def _versions(client, filter_string):
    order = ["name", "version_number DESC"]
    return [(v.name, v.version) for v in client.search_model_versions(filter_string,
                                                                      order_by=order)]


def test_versions_filter_by_alias_stage_and_time(client):
    client.set_registered_model_alias("churn", "champion", 2)
    client.set_registered_model_alias("fraud", "champion", 1)
    client.set_registered_model_alias("fraud", "shadow", 1)
    client.transition_model_version_stage("churn", 3, "Production")
    found = client.search_model_versions("alias = 'champion'", order_by=["name"])
    assert [(v.name, v.version, v.aliases) for v in found] == [
        ("churn", 2, ["champion"]), ("fraud", 1, ["champion", "shadow"])]
    assert _versions(client, "alias IS NULL AND name = 'fraud'") == [("fraud", 2)]
    assert _versions(client, "aliases LIKE 'sha%'") == [("fraud", 1)]
    assert _versions(client, "current_stage = 'Production'") == [("churn", 3)]
    assert _versions(client, "stage = 'Production' OR alias = 'champion'") == [
        ("churn", 3), ("churn", 2), ("fraud", 1)]
    third = client.get_model_version("churn", 3).creation_timestamp
    assert _versions(client, f"creation_timestamp > {third}") == [
        ("churn-eu", 1), ("fraud", 2), ("fraud", 1)]
    created = client.get_registered_model("fraud").creation_timestamp
    older = client.search_registered_models(f"creation_timestamp < {created} AND NOT "
                                            "name = 'churn'")
    assert [m.name for m in older] == ["churn-eu"]


def test_deleted_versions_and_models_are_not_found_by_search(client):
    client.delete_model_version("churn", 2)
    client.delete_registered_model("fraud")
    assert _versions(client, "name LIKE '%'") == [("churn", 3), ("churn", 1), ("churn-eu", 1)]
    assert [m.name for m in client.search_registered_models()] == [
        "Fraud_Legacy", "churn", "churn-eu"]


@pytest.mark.parametrize(("search", "text", "match"), [
    ("models", "metrics.acc > 1", "unknown prefix 'metrics'"),
    ("models", "run_id = 'x'", "unknown attribute 'run_id'"),
    ("models", "name = ", "expected a quoted string"),
    ("versions", "version_number > 'a'", "compare with numbers"),
    ("versions", "stage LIKE", "expected a quoted string"),
    ("versions", "MAX(version_number) > 1", "functions"),
    ("versions", "params.x = '1'", "unknown prefix 'params'"),
])
def test_bad_filters_name_the_clause(client, search, text, match):
    call = (client.search_registered_models if search == "models"
            else client.search_model_versions)
    with pytest.raises(InvalidFilterError, match=match):
        call(text)


def test_bad_order_and_page_size_are_refused(client):
    with pytest.raises(InvalidFilterError, match="cannot be ordered by tags.team"):
        client.search_registered_models(order_by=["tags.team"])
    with pytest.raises(InvalidFilterError, match="unknown attribute 'run_id'"):
        client.search_registered_models(order_by=["run_id"])
    with pytest.raises(InvalidInputError, match="between 1 and 1000"):
        client.search_registered_models(max_results=1001)
    with pytest.raises(InvalidInputError, match="between 1 and 200000"):
        client.search_model_versions(max_results=0)


def test_module_level_search_and_register(tracking):
    import sparktrack

    version = sparktrack.register_model("/m/1", "mod")
    assert version.version == 1
    sparktrack.set_model_version_tag("mod", "1", "k", "v")
    assert [m.name for m in sparktrack.search_registered_models()] == ["mod"]
    found = sparktrack.search_model_versions(filter_string="tags.k = 'v'")
    assert [(v.name, v.version) for v in found] == [("mod", 1)]
    assert sparktrack.search_model_versions(max_results=1, filter_string="name='mod'")[0] \
        .version == 1
