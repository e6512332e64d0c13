"""Pathological filters: the bounds the parser holds every filter to, lone surrogates, huge
inputs quoted in error messages, and search_runs / search_experiments answering (or refusing
with InvalidFilterError) the filters that used to raise untyped errors."""

from __future__ import annotations

import pytest

from sparktrack import TrackingClient
from sparktrack.errors import InvalidFilterError
from sparktrack._search import Or, filter_runs, parse_filter, parse_order_by
from sparktrack._search.limits import (
    MAX_CLAUSES,
    MAX_FILTER_LENGTH,
    MAX_LIKE_PATTERN_LENGTH,
    MAX_LIKE_WILDCARDS,
    shorten,
)
from sparktrack._search.spark import _balanced

try:  # tests/ is on sys.path in pytest's default import mode
    from test_search_evaluate import TableSource
except ImportError:  # tests/ became a package
    from tests.test_search_evaluate import TableSource

HUGE = "x" * 100_000


def _message(call) -> str:
    with pytest.raises(InvalidFilterError) as info:
        call()
    message = str(info.value)
    message.encode("utf-8")  # printable, loggable, sendable over Py4J
    return message


# -- error messages quote at most ~200 characters of the input ----------------------------------

# Each template puts a 100,000-character piece where an error message quotes the input.
LONG_INPUT_FILTERS = [
    "metrics.a > 1 {huge}",  # trailing junk: "unexpected ..." spans to the end
    "metrics.a > 1 AND params.b = '{huge}",  # unclosed string
    "metrics.{huge} LIKE 'a'",  # long key in "LIKE is not valid for metrics.<key>"
    "metrics.{huge} 1",  # "expected a comparator after metrics.<key>"
    "params.x = a.{huge}",  # "unquoted value ... is ambiguous; quote it: '...'"
    "{huge} = 'a'",  # "unknown attribute '<key>'; ... metrics.<key>, params.<key> ..."
    "{huge}.a = 'a'",  # unknown prefix
    "{huge}(metrics.a) > 1",  # unknown function
    "MIN(metrics.{huge} > 1",  # "expected ')' after MIN(<key>"
    "metrics.{huge}-x > 1",  # "unexpected character '-' in <word>"
    "params.x NOT LIKE '{huge}'",  # NOT after an identifier
    "params.{huge} NOT LIKE 'a'",  # ... names the identifier in the hint
    "params.x = 'a' AND {huge}",  # unknown attribute after many characters
    "metrics.a > '{huge}'",  # describe() of a long string token
    "params.x LIKE '{huge}'",  # LIKE pattern too long
    "params.x = 'a' " + "OR params.x = 'b' " * 20_000,  # too many clauses, long filter
    "(" * 500 + "metrics.a > 1" + ")" * 500,
]


@pytest.mark.parametrize("template", LONG_INPUT_FILTERS, ids=lambda t: t[:40])
@pytest.mark.parametrize("entity", ["run", "experiment"])
def test_error_messages_quote_at_most_about_200_characters(template, entity):
    text = template.replace("{huge}", HUGE)
    message = _message(lambda: parse_filter(text, entity=entity))
    assert message.startswith("Invalid filter clause ")
    # The clause (200) and a few names inside the reason (50 each), plus the explanation.
    assert len(message) < 1_000, message[:2_000]
    assert "x" * 201 not in message


@pytest.mark.parametrize(
    "order_by",
    [
        [f"metrics.a {HUGE}"],
        [f"{HUGE}"],
        [f"metrics.{HUGE}", f"metric.{HUGE} DESC"],  # named twice
        [f"metrics.{HUGE} DESC ASC"],
        f"metrics.{HUGE}",  # a bare string: the message shows the fix
        [["x" * 100_000]],  # not a string
    ],
    ids=["junk", "attribute", "twice", "asc", "bare", "list"],
)
def test_order_by_error_messages_are_short(order_by):
    message = _message(lambda: parse_order_by(order_by))
    assert len(message) < 1_000, message[:2_000]


def test_shorten_keeps_short_text_and_cuts_long_text_with_its_length():
    assert shorten("metrics.a > 1") == "metrics.a > 1"
    cut = shorten("y" * 100_000)
    assert cut == "y" * 200 + "... (100,000 characters)"
    assert shorten("a\ud800b") == "a\\ud800b"


# -- the bounds --------------------------------------------------------------------------------


def _or_chain(count: int) -> str:
    return " OR ".join(f"params.p = 'v{i}'" for i in range(count))


@pytest.mark.parametrize("entity", ["run", "experiment"])
def test_clauses_are_bounded(entity):
    key = "params.p" if entity == "run" else "tags.p"
    tree = parse_filter(_or_chain(MAX_CLAUSES).replace("params.p", key), entity=entity)
    assert isinstance(tree, Or) and len(tree.operands) == MAX_CLAUSES
    text = _or_chain(MAX_CLAUSES + 1).replace("params.p", key)
    message = _message(lambda: parse_filter(text, entity=entity))
    assert "at most 10,000 clauses" in message
    assert f"\"{key} = 'v10000'\"" in message  # the first clause past the bound


def test_clauses_are_counted_at_any_depth_and_in_and_chains():
    half = MAX_CLAUSES // 2
    nested = f"({_or_chain(half)}) AND NOT ({_or_chain(half)})"
    assert parse_filter(nested) is not None
    with pytest.raises(InvalidFilterError, match="at most 10,000 clauses"):
        parse_filter(nested + " AND metrics.a > 1")
    chain = " AND ".join(["metrics.a > 1"] * (MAX_CLAUSES + 1))
    with pytest.raises(InvalidFilterError, match="at most 10,000 clauses"):
        parse_filter(chain)


def test_filter_length_is_bounded():
    inside = "params.p = '" + "v" * (MAX_FILTER_LENGTH - 13) + "'"
    assert len(inside) == MAX_FILTER_LENGTH
    assert parse_filter(inside) is not None
    message = _message(lambda: parse_filter(inside + " "))
    assert "at most 1,000,000 characters long, this one is 1,000,001" in message
    with pytest.raises(InvalidFilterError, match="at most 1,000,000 characters"):
        parse_order_by(["metrics." + "a" * MAX_FILTER_LENGTH])


@pytest.mark.parametrize("op", ["LIKE", "ILIKE"])
@pytest.mark.parametrize("entity", ["run", "experiment"])
def test_like_patterns_are_bounded(op, entity):
    key = "params.x" if entity == "run" else "tags.x"
    wildcards = "_%" * (MAX_LIKE_WILDCARDS // 2)
    assert parse_filter(f"{key} {op} '{wildcards}'", entity=entity) is not None
    # Escaped wildcards are literal characters: they do not count.
    assert parse_filter(f"{key} {op} '{wildcards}\\%\\_'", entity=entity) is not None
    message = _message(lambda: parse_filter(f"{key} {op} '{wildcards}_'", entity=entity))
    assert f"at most {MAX_LIKE_WILDCARDS} wildcards" in message
    assert "this one holds 101" in message
    message = _message(lambda: parse_filter(f"{key} {op} '{'_%' * 2_000}'", entity=entity))
    assert "this one holds 4,000" in message
    longest = "a" * MAX_LIKE_PATTERN_LENGTH
    assert parse_filter(f"{key} {op} '{longest}'", entity=entity) is not None
    message = _message(lambda: parse_filter(f"{key} {op} '{longest}a'", entity=entity))
    assert "at most 10,000 characters long, this one is 10,001" in message


def test_whole_numbers_of_any_length_parse():
    # int() refuses more than 4,300 digits; such numbers are out of int64 anyway.
    many = "9" * 5_000
    tree = parse_filter(f"start_time > {many}")
    assert tree.value == float("inf")
    assert parse_filter(f"creation_time < -{many}", entity="experiment").value == float("-inf")
    assert parse_filter("creation_time > 99999999999999999999", entity="experiment").value == 1e20
    assert parse_filter("creation_time > 9223372036854775807", entity="experiment").value == (
        2**63 - 1
    )
    source = TableSource()
    assert filter_runs(parse_filter(f"start_time > {many}"), source).num_rows == 0
    everything = filter_runs(parse_filter(f"start_time > -{many}"), source).num_rows
    assert everything == source.runs().num_rows


# -- lone surrogates ---------------------------------------------------------------------------

SURROGATE_FILTERS = [
    "params.model = '\ud800'",
    "params.model LIKE '%\udfff'",
    "params.model ILIKE '\ud800%'",
    "params.`\ud800` = 'x'",
    "tags.\"a\udc00\" IS NULL",
    "run_id IN ('a', '\ud800')",
    "run_name != '\ud83d'",  # the first half of an emoji's pair
    "metrics.a > 1 AND \ud800",
]


@pytest.mark.parametrize("text", SURROGATE_FILTERS, ids=ascii)
def test_lone_surrogates_are_rejected_by_position(text):
    message = _message(lambda: parse_filter(text))
    assert "is a lone surrogate" in message
    assert f"at position {next(i for i, c in enumerate(text) if 0xD800 <= ord(c) < 0xE000)}" in (
        message
    )


def test_lone_surrogates_are_rejected_in_experiment_filters_and_order_by():
    message = _message(lambda: parse_filter("name = '\ud800'", entity="experiment"))
    assert "lone surrogate" in message
    assert "lone surrogate" in _message(lambda: parse_order_by(["params.\ud800"]))


def test_a_surrogate_pair_is_a_character():
    assert parse_filter("params.model = '\U0001f600'").value == "\U0001f600"


# -- the pyarrow side: answers fast or InvalidFilterError, never an untyped error ---------------


def test_balanced_combines_in_logarithmic_depth():
    def depth(tree):
        return 1 + max(depth(tree[0]), depth(tree[1])) if isinstance(tree, tuple) else 0

    tree = _balanced(lambda a, b: (a, b), list(range(10_000)))
    assert depth(tree) == 14  # ceil(log2(10,000))
    flat = []

    def leaves(t):
        if isinstance(t, tuple):
            leaves(t[0]), leaves(t[1])
        else:
            flat.append(t)

    leaves(tree)
    assert flat == list(range(10_000))
    assert _balanced(lambda a, b: (a, b), ["only"]) == "only"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three runs with params and a metric, and two experiments."""
    client = TrackingClient(str(tmp_path_factory.mktemp("bounds") / "store"))
    experiment = client.create_experiment("bounds", tags={"team": "ml"})
    client.create_experiment("other")
    run_ids = []
    for index, model in enumerate(["lr", "gbt", "rf"]):
        run_id = client.create_run(experiment, run_name=f"run-{index}").info.run_id
        client.log_param(run_id, "model", model)
        client.log_metric(run_id, "acc", 0.5 + index / 10)
        client.set_terminated(run_id)
        run_ids.append(run_id)
    client.flush()
    return client, experiment, run_ids


def _search(store, text):
    client, experiment, _ = store
    return {run.info.run_id for run in client.search_runs([experiment], text, max_results=100)}


def test_search_runs_answers_10000_term_chains(store):
    _, _, run_ids = store
    ors = " OR ".join(f"params.model = 'm{i}'" for i in range(MAX_CLAUSES - 1))
    assert _search(store, ors + " OR params.model = 'gbt'") == {run_ids[1]}
    ands = " AND ".join(f"metrics.acc > {i / 100_000}" for i in range(MAX_CLAUSES))
    assert _search(store, ands) == set(run_ids)
    likes = " OR ".join(["params.model LIKE '_%'"] * MAX_CLAUSES)
    assert _search(store, likes) == set(run_ids)
    ids = " OR ".join(f"run_id = '{run_id}'" for run_id in run_ids * 3_000)
    assert _search(store, ids) == set(run_ids)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (" OR ".join(["params.model = 'lr'"] * (MAX_CLAUSES + 1)), "at most 10,000 clauses"),
        ("params.model LIKE '" + "_%" * 10_000 + "'", "a LIKE pattern may be at most"),
        ("params.model LIKE '" + "_%" * 1_000 + "'", "at most 100 wildcards"),
        ("params.model ILIKE '" + "a" * 20_000 + "'", "at most 10,000 characters"),
        ("params.model = '\ud800'", "lone surrogate"),
        ("params.`\ud800` = 'x'", "lone surrogate"),
        ("run_id IN ('\ud800')", "lone surrogate"),
        ("params.model LIKE '\ud800%'", "lone surrogate"),
    ],
    ids=["clauses", "10000-like", "wildcards", "pattern-length", "value", "key", "in-list", "like"],
)
def test_search_runs_refuses_what_is_out_of_bounds(store, text, fragment):
    client, experiment, _ = store
    assert fragment in _message(lambda: client.search_runs([experiment], text))
    assert fragment in _message(lambda: client.search_runs_frame([experiment], text))


def test_search_runs_order_by_with_a_surrogate_is_refused(store):
    client, experiment, _ = store
    message = _message(lambda: client.search_runs([experiment], "", order_by=["params.\ud800"]))
    assert "lone surrogate" in message


def test_search_runs_with_huge_numbers(store):
    _, _, run_ids = store
    assert _search(store, "start_time > " + "9" * 5_000) == set()
    assert _search(store, "start_time > -" + "9" * 5_000) == set(run_ids)


def _experiments(store, **options):
    client, _, _ = store
    return {e.name for e in client.search_experiments(view_type="ALL", **options)}


def test_search_experiments_bounds_and_numbers(store):
    assert _experiments(store, filter_string="creation_time > 99999999999999999999") == set()
    assert _experiments(store, filter_string="creation_time < " + "9" * 5_000) >= {"bounds"}
    ors = " OR ".join(f"name = 'e{i}'" for i in range(MAX_CLAUSES - 1)) + " OR name = 'other'"
    assert _experiments(store, filter_string=ors) == {"other"}
    for text, fragment in [
        ("name = '\ud800'", "lone surrogate"),
        ("tags.team LIKE '" + "_%" * 1_000 + "'", "at most 100 wildcards"),
        (" OR ".join(["name = 'x'"] * (MAX_CLAUSES + 1)), "at most 10,000 clauses"),
    ]:
        assert fragment in _message(lambda text=text: _experiments(store, filter_string=text))


@pytest.mark.parametrize(
    ("name_like", "fragment"),
    [
        ("\ud800%", "lone surrogate"),
        ("_%" * 1_000, "at most 100 wildcards"),
        ("b" * 20_000, "at most 10,000 characters"),
    ],
    ids=["surrogate", "wildcards", "length"],
)
def test_search_experiments_name_like_is_bounded(store, name_like, fragment):
    message = _message(lambda: _experiments(store, name_like=name_like))
    assert message.startswith('Invalid name_like "')
    assert fragment in message
    assert len(message) < 1_000


def test_search_experiments_name_like_within_bounds(store):
    assert _experiments(store, name_like="bou%") == {"bounds"}
    assert _experiments(store, name_like="%" + "_" * 50 + "%") == set()


# -- LIKE with an escaped backslash (Arrow's fast paths do not unescape it) ---------------------

ESCAPED_BACKSLASH = [
    ("%\\\\b", ["x\\b", "\\b", "x\\\\b"]),
    ("\\\\b%", ["\\b", "\\bz"]),
    ("%\\\\b%", ["x\\b", "\\b", "x\\bz", "\\bz", "x\\\\b"]),
    ("x\\\\b", ["x\\b"]),
    ("%\\%b", ["x%b"]),
    ("%\\_b%", ["x_b"]),
]


@pytest.mark.parametrize(("pattern", "matches"), ESCAPED_BACKSLASH, ids=ascii)
@pytest.mark.parametrize("op", ["LIKE", "ILIKE"])
def test_like_with_escapes_matches_what_it_says(pattern, matches, op):
    values = ["x\\b", "\\b", "x\\bz", "\\bz", "x%b", "x_b", "xb", "x\\\\b"]
    literal = pattern.replace("\\", "\\\\")
    tree = parse_filter(f"params.v {op} '{literal}'")
    assert tree.value == pattern
    source = _ValuesSource(values)
    selected = filter_runs(tree, source)["run_id"].to_pylist()
    assert [values[int(i)] for i in selected] == matches


class _ValuesSource:
    """Runs 0..n-1, run i having param v = values[i]."""

    def __init__(self, values):
        import pyarrow as pa

        self.values = values
        self.ids = pa.array([str(i) for i in range(len(values))])

    def runs(self):
        import pyarrow as pa

        return pa.table({"run_id": self.ids})

    def param(self, key):
        import pyarrow as pa

        return pa.table({"run_id": self.ids, "value": pa.array(self.values)})
