"""search_experiments: MLflow's experiment filter and order_by, paging with tokens, view types,
the fluent list, and the experiment mode of the filter parser. No Spark needed."""

from __future__ import annotations

import time

import pytest

import sparktrack
from sparktrack import Experiment, TrackingClient, ViewType
from sparktrack.client import PagedList
from sparktrack._experiment_search import order_experiments
from sparktrack.errors import InvalidFilterError, InvalidInputError
from sparktrack._paging import offset_from_token, token_for
from sparktrack._search import Comparison, Identifier, OrderKey, parse_filter, parse_order_by

NAMES = ["alpha", "beta", "Gamma", "delta_1", "deltaX1", "it's", "gone"]
TAGS = {
    "alpha": {"team": "ml", "stage": "prod", "k 2": "x y", "a.b": "dotted"},
    "beta": {"team": "ML", "stage": "dev"},
    "Gamma": {"team": "data", "note": "50% off_peak"},
    "delta_1": {},
    "deltaX1": {"team": ""},
    "it's": {"quote": "it's"},
    "gone": {"team": "ml"},
}


def _tick() -> None:
    """Let the millisecond clock move, so creation and update times differ."""
    start = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 <= start + 1:
        time.sleep(0.001)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Seven experiments created in NAMES order (distinct creation times); alpha is updated
    last; gone is deleted. Read-only for the tests: module-scoped to keep them fast."""
    uri = str(tmp_path_factory.mktemp("experiments") / "store")
    client = TrackingClient(uri)
    ids = {}
    for name in NAMES:
        ids[name] = client.create_experiment(name, tags=TAGS[name])
        _tick()
    client.delete_experiment(ids["gone"])
    _tick()
    client.set_experiment_tag(ids["alpha"], "touched", "yes")  # alpha: newest last_update_time
    return uri, ids


@pytest.fixture()
def client(store):
    return TrackingClient(store[0])


@pytest.fixture()
def ids(store):
    return store[1]


@pytest.fixture()
def exp(client, ids):
    """name -> Experiment as stored."""
    return {name: client.get_experiment(ids[name]) for name in NAMES}


def names(client, filter_string=None, **kwargs):
    kwargs.setdefault("view_type", ViewType.ALL)
    return {e.name for e in client.search_experiments(filter_string=filter_string, **kwargs)}


def ordered(client, order_by=None, **kwargs):
    return [e.name for e in client.search_experiments(order_by=order_by, **kwargs)]


ACTIVE = set(NAMES) - {"gone"}


# -- the store keeps the times a search compares --------------------------------------------------
def test_times_are_maintained(tmp_path):
    client = TrackingClient(str(tmp_path / "store"))
    experiment_id = client.create_experiment("timed")
    created = client.get_experiment(experiment_id)
    assert created.last_update_time == created.creation_time
    last = created.last_update_time
    for change in (lambda: client.rename_experiment(experiment_id, "timed2"),
                   lambda: client.set_experiment_tag(experiment_id, "k", "v"),
                   lambda: client.delete_experiment_tag(experiment_id, "k"),
                   lambda: client.delete_experiment(experiment_id),
                   lambda: client.restore_experiment(experiment_id)):
        _tick()
        change()
        now = client.get_experiment(experiment_id)
        assert now.creation_time == created.creation_time
        assert now.last_update_time > last
        last = now.last_update_time


# -- attributes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 'alpha'", {"alpha"}),
        ("name = 'ALPHA'", set()),  # = is case-sensitive, as in MLflow
        ("name != 'alpha'", ACTIVE - {"alpha"}),
        ("name LIKE 'delta%'", {"delta_1", "deltaX1"}),
        ("name LIKE 'g%'", set()),  # LIKE is case-sensitive
        ("name ILIKE 'g%'", {"Gamma"}),
        ("name ILIKE '%A'", {"alpha", "beta", "Gamma"}),
        ("name LIKE 'delta_1'", {"delta_1", "deltaX1"}),  # _ is one character
        ("name LIKE 'delta\\_1'", {"delta_1"}),  # \_ is a literal underscore
        ("name LIKE '%'", ACTIVE),
        ("name IN ('alpha', 'beta', 'nope')", {"alpha", "beta"}),
        ("name NOT IN ('alpha', 'beta')", ACTIVE - {"alpha", "beta"}),
        ("name = 'it''s'", {"it's"}),
        ("name = \"it's\"", {"it's"}),
        ("name = 'it\\'s'", {"it's"}),
    ],
)
def test_name(client, text, expected):
    assert names(client, text, view_type=ViewType.ACTIVE_ONLY) == expected


@pytest.mark.parametrize("spelling", ["name", "attribute.name", "attributes.name", "attr.name",
                                      "`name`", '"name"', "'name'", "attribute.`name`"])
def test_attribute_spellings(client, spelling):
    assert names(client, f"{spelling} = 'beta'") == {"beta"}


@pytest.mark.parametrize("key", ["creation_time", "last_update_time"])
@pytest.mark.parametrize(
    ("op", "picks"),
    [
        ("=", lambda t, pivot: t == pivot),
        ("!=", lambda t, pivot: t != pivot),
        (">", lambda t, pivot: t > pivot),
        (">=", lambda t, pivot: t >= pivot),
        ("<", lambda t, pivot: t < pivot),
        ("<=", lambda t, pivot: t <= pivot),
    ],
)
def test_times(client, exp, key, op, picks):
    pivot = getattr(exp["Gamma"], key)
    expected = {name for name in ACTIVE if picks(getattr(exp[name], key), pivot)}
    assert expected  # the pivot is in the middle: no comparison is trivially empty
    assert names(client, f"{key} {op} {pivot}", view_type=ViewType.ACTIVE_ONLY) == expected


def test_last_update_time_differs_from_creation_time_after_a_change(client, exp):
    newest = max(e.last_update_time for e in exp.values())
    assert names(client, f"last_update_time >= {newest}") == {"alpha"}
    assert names(client, f"creation_time >= {exp['alpha'].last_update_time}") == set()


def test_experiment_id(client, ids):
    assert names(client, f"experiment_id = '{ids['beta']}'") == {"beta"}
    assert names(client, f"attribute.experiment_id != '{ids['beta']}'") == set(NAMES) - {"beta"}
    assert names(client, f"experiment_id IN ('{ids['beta']}', '{ids['gone']}')") == {
        "beta", "gone"}
    assert names(client, f"experiment_id NOT IN ('{ids['beta']}')") == set(NAMES) - {"beta"}
    assert names(client, "experiment_id = '12345'") == set()


# -- tags -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tags.team = 'ml'", {"alpha"}),
        ("tags.team != 'ml'", {"beta", "Gamma", "deltaX1"}),  # untagged experiments never match !=
        ("tags.team = ''", {"deltaX1"}),
        ("tags.team LIKE 'm%'", {"alpha"}),
        ("tags.team ILIKE 'm%'", {"alpha", "beta"}),
        ("tags.team LIKE '%'", {"alpha", "beta", "Gamma", "deltaX1"}),
        ("tags.team IS NULL", {"delta_1", "it's"}),
        ("tags.team IS NOT NULL", {"alpha", "beta", "Gamma", "deltaX1"}),
        ("tag.stage = 'dev'", {"beta"}),
        ("tags.note LIKE '50\\% off\\_%'", {"Gamma"}),
        ("tags.note LIKE '50\\%off%'", set()),
        ("tags.`k 2` = 'x y'", {"alpha"}),
        ("tags.\"k 2\" = 'x y'", {"alpha"}),
        ("tags.'k 2' = 'x y'", {"alpha"}),
        ("tags.a.b = 'dotted'", {"alpha"}),
        ("tags.`a.b` = 'dotted'", {"alpha"}),
        ("tags.quote = 'it''s'", {"it's"}),
        ("tags.missing = 'x'", set()),
        ("tags.missing IS NULL", ACTIVE),
        ("tags.team = ml", {"alpha"}),  # an unquoted word, as in the run grammar
    ],
)
def test_tags(client, text, expected):
    assert names(client, text, view_type=ViewType.ACTIVE_ONLY) == expected


# -- combining clauses ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name LIKE 'delta%' AND tags.team IS NULL", {"delta_1"}),
        ("name LIKE '%a%' and tags.team = 'ml' AND tags.stage = 'prod'", {"alpha"}),
        ("name = 'alpha' OR name = 'beta'", {"alpha", "beta"}),
        ("NOT name LIKE 'delta%'", ACTIVE - {"delta_1", "deltaX1"}),
        ("NOT tags.team = 'ml'", ACTIVE - {"alpha"}),  # NOT also keeps the untagged ones
        ("(name = 'alpha' OR name = 'beta') AND tags.stage = 'dev'", {"beta"}),
        ("name = 'alpha' OR name = 'beta' AND tags.stage = 'dev'", {"alpha", "beta"}),
        ("tags.team ILIKE 'ml' AND NOT (tags.stage = 'prod' OR tags.stage = 'qa')", {"beta"}),
    ],
)
def test_and_or_not_parentheses(client, text, expected):
    assert names(client, text, view_type=ViewType.ACTIVE_ONLY) == expected


def test_empty_filter_matches_every_experiment(client):
    for empty in (None, "", "  "):
        assert names(client, empty, view_type=ViewType.ACTIVE_ONLY) == ACTIVE


# -- view types -----------------------------------------------------------------------------------
def test_view_types_with_a_filter(client):
    assert names(client, "tags.team = 'ml'", view_type=ViewType.ACTIVE_ONLY) == {"alpha"}
    assert names(client, "tags.team = 'ml'", view_type=ViewType.DELETED_ONLY) == {"gone"}
    assert names(client, "tags.team = 'ml'", view_type="ALL") == {"alpha", "gone"}
    assert names(client, view_type=ViewType.DELETED_ONLY) == {"gone"}
    assert {e.lifecycle_stage for e in client.search_experiments(
        view_type=ViewType.DELETED_ONLY)} == {"deleted"}
    assert names(client, view_type="ACTIVE_ONLY") == ACTIVE
    with pytest.raises(InvalidInputError, match="'DELETED'"):
        client.search_experiments(view_type="DELETED")


# -- invalid filters ------------------------------------------------------------------------------
INVALID = [
    ("name > 'a'", ['"name > \'a\'"', "> is not valid for string attributes",
                    "=, !=, LIKE, ILIKE, IN, NOT IN"]),
    ("name IS NULL", ["IS NULL is not valid for string attributes"]),
    ("name = alpha", ["expected a quoted string after =", "'value'"]),
    ("experiment_id LIKE '1%'", ["LIKE is not valid for experiment_id",
                                 "valid comparators for experiment_id are =, !=, IN, NOT IN"]),
    ("experiment_id > '1'", ["> is not valid for experiment_id"]),
    ("creation_time > 1.5", ['"creation_time > 1.5"', "whole milliseconds since the epoch"]),
    ("creation_time > '5'", ["whole milliseconds", "got the string '5'"]),
    ("last_update_time LIKE '5'", ["LIKE is not valid for numeric attributes",
                                   "=, !=, >, >=, <, <="]),
    ("creation_time IN ('1')", ["IN is not valid for numeric attributes"]),
    ("tags.team > 'a'", ["> is not valid for tags", "=, !=, LIKE, ILIKE, IS NULL, IS NOT NULL"]),
    ("tags.team IN ('a')", ["IN is not valid for tags"]),
    ("metrics.acc > 0.9", ["unknown prefix 'metrics'", "metrics and params belong to runs",
                           "search_runs"]),
    ("params.model = 'lr'", ["unknown prefix 'params'"]),
    ("run.name = 'x'", ["unknown prefix 'run'", "attribute, attributes, attr"]),
    ("foo.bar = 'x'", ["unknown prefix 'foo'"]),
    ("status = 'FINISHED'", ["unknown attribute 'status'",
                             "creation_time, experiment_id, last_update_time, name",
                             "tags.status"]),
    ("lifecycle_stage = 'deleted'", ["unknown attribute 'lifecycle_stage'", "view_type"]),
    ("start_time > 5", ["unknown attribute 'start_time'"]),
    ("MAX(metrics.acc) > 1", ["'MAX(' is not valid in an experiment filter"]),
    ("name = 'a' AND", ["expected a clause such as name = 'churn'", "the end of the filter"]),
    ("name = 'a' name = 'b'", ["join clauses with AND or OR"]),
    ("(name = 'a'", ["expected ')'"]),
    ("name == 'a'", ["use = instead of =="]),
    ("name = 'a", ["never closed"]),
    ("tags.`team = 'a'", ["never closed"]),
    ("tags.k@2 = 'a'", ["unexpected character '@'", "backticks"]),
    ("name LIKE 'a\\b'", ["backslash must be followed by %, _ or another backslash"]),
]


@pytest.mark.parametrize(("text", "fragments"), INVALID, ids=[t for t, _ in INVALID])
def test_invalid_filter_message(client, text, fragments):
    with pytest.raises(InvalidFilterError) as info:
        client.search_experiments(filter_string=text)
    message = str(info.value)
    assert message.startswith("Invalid filter clause ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_non_string_filter_is_rejected(client):
    with pytest.raises(InvalidFilterError, match="filter must be a string"):
        client.search_experiments(filter_string=42)


# -- order_by -------------------------------------------------------------------------------------
def test_default_order_is_creation_time_desc(client, ids):
    expected = list(reversed([n for n in NAMES if n != "gone"]))
    assert ordered(client) == expected
    assert ordered(client, []) == expected
    assert ordered(client, ["creation_time DESC", "experiment_id ASC"]) == expected


@pytest.mark.parametrize("key", ["name", "experiment_id", "creation_time", "last_update_time"])
@pytest.mark.parametrize("direction", ["", " ASC", " asc", " DESC", " desc"])
def test_order_by_each_key_and_direction(client, exp, key, direction):
    descending = direction.strip().upper() == "DESC"

    def value(name):
        v = getattr(exp[name], key)
        return int(v) if key == "experiment_id" else v

    expected = sorted(ACTIVE, key=value, reverse=descending)
    assert ordered(client, [f"{key}{direction}"]) == expected
    assert ordered(client, [f"attribute.{key}{direction}"]) == expected


def test_name_order_is_by_code_point_like_mlflow(client):
    # Upper case sorts before "_", "_" before lower case, as in SQLite (binary) and Python.
    assert ordered(client, ["name"]) == ["Gamma", "alpha", "beta", "deltaX1", "delta_1", "it's"]


def test_ties_fall_back_to_experiment_id():
    # MLflow: the default order ends with experiment_id ASC; an explicit order without
    # experiment_id breaks ties with experiment_id DESC. Ids order as numbers.
    def make(experiment_id, name, created, updated):
        return Experiment(experiment_id, name, "loc", "active", created, updated)

    experiments = [make("9", "a", 5, 7), make("10", "b", 5, 7), make("100000000000000000",
                                                                      "c", 6, 7)]
    order = parse_order_by(["last_update_time DESC"], entity="experiment")
    assert [e.name for e in order_experiments(experiments, order)] == ["c", "b", "a"]
    order = parse_order_by(["creation_time"], entity="experiment")
    assert [e.name for e in order_experiments(experiments, order)] == ["b", "a", "c"]
    assert [e.name for e in order_experiments(experiments, [])] == ["c", "a", "b"]
    order = parse_order_by(["experiment_id DESC"], entity="experiment")
    assert [e.name for e in order_experiments(experiments, order)] == ["c", "b", "a"]


def test_order_by_combined_with_a_filter(client):
    assert ordered(client, ["name DESC"], filter_string="tags.team IS NOT NULL") == [
        "deltaX1", "beta", "alpha", "Gamma"]


INVALID_ORDER = [
    (["tags.team"], ["experiments cannot be ordered by tags.team",
                     "name, experiment_id, creation_time or last_update_time"]),
    (["metrics.acc DESC"], ["unknown prefix 'metrics'"]),
    (["lifecycle_stage"], ["unknown attribute 'lifecycle_stage'"]),
    (["start_time"], ["unknown attribute 'start_time'"]),
    (["name UP"], ['"UP"', "expected ASC, DESC or the end"]),
    (["name", "attribute.name DESC"], ["order_by[1]", "already ordered on by order_by[0]"]),
    ([""], ["order_by[0]", "expected a string"]),
    ([7], ["order_by[0]"]),
]


@pytest.mark.parametrize(("items", "fragments"), INVALID_ORDER,
                         ids=[repr(i) for i, _ in INVALID_ORDER])
def test_invalid_order_by_message(client, items, fragments):
    with pytest.raises(InvalidFilterError) as info:
        client.search_experiments(order_by=items)
    message = str(info.value)
    assert message.startswith("Invalid order_by clause ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_order_by_as_a_bare_string_is_rejected_with_the_fix(client):
    with pytest.raises(InvalidFilterError, match=r'write \["name DESC"\]'):
        client.search_experiments(order_by="name DESC")


# -- paging ---------------------------------------------------------------------------------------
def test_pages_with_tokens_cover_every_match_once(client):
    expected = ordered(client, ["name"], view_type=ViewType.ALL)
    seen, token, pages = [], None, 0
    while True:
        page = client.search_experiments(view_type=ViewType.ALL, order_by=["name"],
                                         max_results=3, page_token=token)
        assert isinstance(page, PagedList) and len(page) <= 3
        seen += [e.name for e in page]
        pages += 1
        token = page.token
        if token is None:
            break
    assert seen == expected and pages == 3  # 7 experiments: 3 + 3 + 1


def test_paging_with_a_filter_and_an_exact_last_page(client):
    text = "name ILIKE '%A' OR name = 'it''s'"
    first = client.search_experiments(filter_string=text, order_by=["name"], max_results=2)
    assert [e.name for e in first] == ["Gamma", "alpha"] and first.token
    second = client.search_experiments(filter_string=text, order_by=["name"], max_results=2,
                                       page_token=first.token)
    assert [e.name for e in second] == ["beta", "it's"]
    assert second.token is None  # no empty page after an exactly full one
    assert offset_from_token(first.token) == 2


def test_a_token_past_the_end_gives_an_empty_last_page(client):
    page = client.search_experiments(page_token=token_for(100))
    assert list(page) == [] and page.token is None


def test_max_results(client):
    assert len(client.search_experiments(max_results=1)) == 1
    everything = client.search_experiments(max_results=None, view_type=ViewType.ALL)
    assert len(everything) == len(NAMES) and everything.token is None
    assert client.search_experiments(max_results=50_000).token is None


@pytest.mark.parametrize("bad", [0, -1, 50_001, 2.0, "2", True])
def test_max_results_out_of_range(client, bad):
    with pytest.raises(InvalidInputError, match="max_results must be an integer between 1 and "
                                                "50000"):
        client.search_experiments(max_results=bad)


@pytest.mark.parametrize("bad", ["xyz", "e30=", token_for(-1), "eyJvZmZzZXQiOiB0cnVlfQ=="])
def test_invalid_page_token(client, bad):
    with pytest.raises(InvalidInputError, match="Invalid page_token"):
        client.search_experiments(page_token=bad)


# -- name_like and the fluent API -----------------------------------------------------------------
def test_name_like_is_anded_with_the_filter(client):
    assert names(client, "tags.team IS NULL", name_like="delta%") == {"delta_1"}
    assert names(client, name_like="delta_1") == {"delta_1", "deltaX1"}
    assert names(client, name_like="it's") == {"it's"}
    with pytest.raises(InvalidFilterError, match="name_like must be a string"):
        client.search_experiments(name_like=3)


def test_name_like_matches_a_backslash_literally(tmp_path):
    client = TrackingClient(str(tmp_path / "store"))
    client.create_experiment("a\\b")
    client.create_experiment("ab")
    assert [e.name for e in client.search_experiments(name_like="a\\b")] == ["a\\b"]


@pytest.fixture()
def fluent(store):
    before = sparktrack.get_tracking_uri()
    sparktrack.set_tracking_uri(store[0])
    yield
    sparktrack.set_tracking_uri(before)


def test_fluent_returns_a_plain_list_of_every_match(fluent):
    found = sparktrack.search_experiments(filter_string="tags.team IS NOT NULL",
                                          order_by=["name"])
    assert type(found) is list
    assert [e.name for e in found] == ["Gamma", "alpha", "beta", "deltaX1"]
    assert [e.name for e in sparktrack.search_experiments(
        ViewType.ALL, 2, "tags.team = 'ml'", ["name DESC"])] == ["gone", "alpha"]
    assert len(sparktrack.search_experiments(max_results=3)) == 3
    assert {e.name for e in sparktrack.search_experiments(name_like="delta%")} == {
        "delta_1", "deltaX1"}
    with pytest.raises(InvalidInputError, match="max_results must be a positive integer"):
        sparktrack.search_experiments(max_results=0)
    with pytest.raises(InvalidFilterError, match="unknown prefix 'metrics'"):
        sparktrack.search_experiments(filter_string="metrics.a > 1")


# -- the parser's experiment mode -----------------------------------------------------------------
def test_parse_filter_experiment_mode_trees():
    name = Identifier("attribute", "name")
    assert parse_filter("attribute.name = 'a'", entity="experiment") == Comparison(name, "=", "a")
    assert parse_filter("creation_time >= 5", entity="experiment") == Comparison(
        Identifier("attribute", "creation_time"), ">=", 5)
    # No run alias applies: tags.mlflow.runName stays a tag of the experiment.
    assert parse_filter("tags.`mlflow.runName` = 'a'", entity="experiment") == Comparison(
        Identifier("tag", "mlflow.runName"), "=", "a")
    assert parse_order_by(["name DESC"], entity="experiment") == [OrderKey(name, False)]


def test_run_grammar_is_unchanged_by_the_experiment_mode():
    with pytest.raises(InvalidFilterError, match="unknown attribute 'name'"):
        parse_filter("name = 'a'")
    with pytest.raises(InvalidFilterError, match="unknown attribute 'creation_time'"):
        parse_filter("creation_time > 1")
    with pytest.raises(InvalidFilterError, match="expected a clause"):
        parse_filter("\"status\" = 'FINISHED'")
    assert parse_filter("start_time > 1.5") == Comparison(
        Identifier("attribute", "start_time"), ">", 1.5)
    assert parse_filter("tags.`mlflow.runName` = 'a'") == Comparison(
        Identifier("attribute", "run_name"), "=", "a")
    # A param or tag named like a numeric attribute compares as a string.
    assert parse_filter("params.start_time = 'x'") == Comparison(
        Identifier("param", "start_time"), "=", "x")


@pytest.mark.parametrize("entity", ["runs", "model", None])
def test_unknown_entity_is_a_value_error(entity):
    with pytest.raises(ValueError, match="entity must be 'run' or 'experiment'"):
        parse_filter("name = 'a'", entity=entity)
    with pytest.raises(ValueError, match="entity must be 'run' or 'experiment'"):
        parse_order_by(["name"], entity=entity)


# -- agreement with MLflow's own experiment filter ------------------------------------------------
MLFLOW_ACCEPTS = [
    "name = 'alpha'",
    "name != 'alpha'",
    "name LIKE 'delta%'",
    "name ILIKE 'G%'",
    "attribute.name LIKE '%a'",
    "tags.team = 'ml'",
    "tags.team != 'ml'",
    "tags.team LIKE '%L'",
    "tags.team ILIKE '%L'",
    "tag.stage = 'dev' AND name LIKE 'b%'",
    "tags.`k 2` = 'x y'",
    "tags.team IS NULL",
    "tags.team IS NOT NULL",
]


@pytest.mark.parametrize("text", MLFLOW_ACCEPTS)
def test_same_experiments_as_mlflow(client, text):
    search_utils = pytest.importorskip("mlflow.utils.search_utils")
    from mlflow.entities import Experiment as MlflowExperiment
    from mlflow.entities import ExperimentTag

    ours = client.search_experiments(max_results=None, view_type=ViewType.ALL)
    theirs = [
        MlflowExperiment(e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage,
                         [ExperimentTag(k, v) for k, v in e.tags.items()],
                         e.creation_time, e.last_update_time)
        for e in ours
    ]
    expected = {e.name for e in search_utils.SearchExperimentsUtils.filter(theirs, text)}
    assert names(client, text) == expected
