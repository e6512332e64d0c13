"""The filter and order_by grammar: what parses into which tree, and what is rejected how."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sparktrack._search
from sparktrack.errors import InvalidFilterError, InvalidInputError
from sparktrack._search import (
    And,
    Comparison,
    Identifier,
    Not,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)


def M(key, aggregate="latest"):
    return Identifier("metric", key, aggregate)


def P(key):
    return Identifier("param", key)


def T(key):
    return Identifier("tag", key)


def A(key):
    return Identifier("attribute", key)


def C(ident, op, value=None):
    return Comparison(ident, op, value)


# -- public surface ---------------------------------------------------------------------------


def test_public_names_are_exactly_these_and_sorted():
    expected = [
        "AlignedSource",
        "And",
        "Comparison",
        "Identifier",
        "Node",
        "Not",
        "Or",
        "OrderKey",
        "ROW",
        "SearchSource",
        "filter_runs",
        "order_runs",
        "order_to_spark",
        "parse_filter",
        "parse_order_by",
        "take_rows",
        "to_spark_predicate",
    ]
    assert sparktrack._search.__all__ == sorted(expected)
    assert all(hasattr(sparktrack._search, name) for name in expected)


def test_search_imports_without_pyspark():
    code = "import sys, sparktrack._search; assert 'pyspark' not in sys.modules, 'pyspark imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("empty", [None, "", "   ", "\n\t"])
def test_empty_filter_is_none(empty):
    assert parse_filter(empty) is None


def test_nodes_are_frozen_and_hashable():
    node = parse_filter("metrics.a > 1 AND params.b = 'x'")
    assert hash(node) == hash(parse_filter("metrics.a > 1 and params.b = 'x'"))
    with pytest.raises(AttributeError):
        node.operands = ()


def test_invalid_filter_error_is_an_invalid_input_and_value_error():
    with pytest.raises(InvalidInputError):
        parse_filter("metrics.a >")
    with pytest.raises(ValueError):
        parse_filter("metrics.a >")


# -- valid clauses ------------------------------------------------------------------------------

VALID = [
    # metrics: both prefixes, every comparator, number spellings
    ("metrics.acc > 0.9", C(M("acc"), ">", 0.9)),
    ("metric.acc > 0.9", C(M("acc"), ">", 0.9)),
    ("metrics.acc = 1", C(M("acc"), "=", 1.0)),
    ("metrics.acc != 1", C(M("acc"), "!=", 1.0)),
    ("metrics.acc >= -2", C(M("acc"), ">=", -2.0)),
    ("metrics.acc < +2.5", C(M("acc"), "<", 2.5)),
    ("metrics.acc <= .5", C(M("acc"), "<=", 0.5)),
    ("metrics.acc <= 5.", C(M("acc"), "<=", 5.0)),
    ("metrics.acc > 1.5e3", C(M("acc"), ">", 1500.0)),
    ("metrics.acc > 2E-2", C(M("acc"), ">", 0.02)),
    ("metrics.acc>0.9", C(M("acc"), ">", 0.9)),
    ("metrics.acc>-1", C(M("acc"), ">", -1.0)),
    ("  metrics.acc  >  0.9  ", C(M("acc"), ">", 0.9)),
    ("metrics.loss.val > 1", C(M("loss.val"), ">", 1.0)),
    ("metrics.f1 > 1", C(M("f1"), ">", 1.0)),
    ("metrics.2nd > 1", C(M("2nd"), ">", 1.0)),
    # aggregates (Databricks), case-insensitive, with aliases and quoting
    ("MIN(metrics.loss) < 0.1", C(M("loss", "min"), "<", 0.1)),
    ("max(metrics.acc) >= 0.9", C(M("acc", "max"), ">=", 0.9)),
    ("Max(metric.acc) >= 0.9", C(M("acc", "max"), ">=", 0.9)),
    ("LATEST(metrics.acc) = 1", C(M("acc"), "=", 1.0)),
    ("latest( metrics.acc ) = 1", C(M("acc"), "=", 1.0)),
    ("MIN(metrics.`my loss`) < 1", C(M("my loss", "min"), "<", 1.0)),
    ('MAX(metrics."a-b") != 1', C(M("a-b", "max"), "!=", 1.0)),
    # params: every alias and comparator, quotes of both kinds
    ("params.model = 'lr'", C(P("model"), "=", "lr")),
    ("param.model = 'lr'", C(P("model"), "=", "lr")),
    ("parameter.model = 'lr'", C(P("model"), "=", "lr")),
    ("parameters.model = 'lr'", C(P("model"), "=", "lr")),
    ('params.model = "lr"', C(P("model"), "=", "lr")),
    ("params.model != 'lr'", C(P("model"), "!=", "lr")),
    ("params.model LIKE 'l%'", C(P("model"), "LIKE", "l%")),
    ("params.model like 'l_'", C(P("model"), "LIKE", "l_")),
    ("params.model ILIKE 'L%'", C(P("model"), "ILIKE", "L%")),
    ("params.model iLike 'L%'", C(P("model"), "ILIKE", "L%")),
    ("params.model IS NULL", C(P("model"), "IS NULL")),
    ("params.model is not null", C(P("model"), "IS NOT NULL")),
    ("params.model Is Not Null", C(P("model"), "IS NOT NULL")),
    ("params.model = ''", C(P("model"), "=", "")),
    # unquoted param/tag values (Databricks): the text as written
    ("params.elasticNetParam = 0.5", C(P("elasticNetParam"), "=", "0.5")),
    ("params.alpha = 1e-3", C(P("alpha"), "=", "1e-3")),
    ("params.alpha = -1", C(P("alpha"), "=", "-1")),
    ("params.alpha = 010", C(P("alpha"), "=", "010")),
    ("params.version = 1.0.2", C(P("version"), "=", "1.0.2")),
    ("params.depth = 3abc", C(P("depth"), "=", "3abc")),
    ("params.optimizer = adam", C(P("optimizer"), "=", "adam")),
    ("params.flag != true", C(P("flag"), "!=", "true")),
    ("tags.team = core", C(T("team"), "=", "core")),
    ("params.model LIKE lr", C(P("model"), "LIKE", "lr")),
    # tags
    ("tags.team = 'core'", C(T("team"), "=", "core")),
    ("tag.team = 'core'", C(T("team"), "=", "core")),
    ("tags.team != 'core'", C(T("team"), "!=", "core")),
    ("tags.team LIKE '%or%'", C(T("team"), "LIKE", "%or%")),
    ("tags.team ILIKE '%OR%'", C(T("team"), "ILIKE", "%OR%")),
    ("tags.team IS NULL", C(T("team"), "IS NULL")),
    ("tags.team IS NOT NULL", C(T("team"), "IS NOT NULL")),
    ("tags.mlflow.source.type = 'JOB'", C(T("mlflow.source.type"), "=", "JOB")),
    # key quoting: backticks, double and single quotes; spaces, dots, dashes, escapes
    ("metrics.`my metric` > 1", C(M("my metric"), ">", 1.0)),
    ('metrics."my metric" > 1', C(M("my metric"), ">", 1.0)),
    ("metrics.'my metric' > 1", C(M("my metric"), ">", 1.0)),
    ("metrics.`val-loss` > 1", C(M("val-loss"), ">", 1.0)),
    ("metrics.`train/loss` > 1", C(M("train/loss"), ">", 1.0)),
    ("metrics.`a:b` > 1", C(M("a:b"), ">", 1.0)),
    ("tags.`a``b` = 'x'", C(T("a`b"), "=", "x")),
    ('tags."say ""hi""" = \'x\'', C(T('say "hi"'), "=", "x")),
    ("tags.'it''s' = 'x'", C(T("it's"), "=", "x")),
    ("tags.`it's \"x\"` = 'x'", C(T("it's \"x\""), "=", "x")),
    ("`metrics`.acc > 1", C(M("acc"), ">", 1.0)),
    ("`params`.`my key` = 'x'", C(P("my key"), "=", "x")),
    ("params.`and` = 'x'", C(P("and"), "=", "x")),
    ("params.null = 'x'", C(P("null"), "=", "x")),
    # string literal escapes
    ("params.x = 'it''s'", C(P("x"), "=", "it's")),
    ("params.x = 'it\\'s'", C(P("x"), "=", "it's")),
    ('params.x = "say ""hi"""', C(P("x"), "=", 'say "hi"')),
    ('params.x = "say \\"hi\\""', C(P("x"), "=", 'say "hi"')),
    ("params.x = \"it's\"", C(P("x"), "=", "it's")),
    ("params.x = 'a\\\\b'", C(P("x"), "=", "a\\b")),
    ("params.x = 'a\\nb'", C(P("x"), "=", "a\\nb")),
    ("params.x LIKE 'a\\_b'", C(P("x"), "LIKE", "a\\_b")),
    ("params.x LIKE '100\\%'", C(P("x"), "LIKE", "100\\%")),
    ("params.x = 'AND metrics.a > 1'", C(P("x"), "=", "AND metrics.a > 1")),
    ("params.x = 'ünïcode ✓'", C(P("x"), "=", "ünïcode ✓")),
    # attributes: every key, every prefix alias and unprefixed
    ("attributes.status = 'FINISHED'", C(A("status"), "=", "FINISHED")),
    ("attribute.status = 'FINISHED'", C(A("status"), "=", "FINISHED")),
    ("attr.status = 'FINISHED'", C(A("status"), "=", "FINISHED")),
    ("run.status = 'FINISHED'", C(A("status"), "=", "FINISHED")),
    ("status = 'FINISHED'", C(A("status"), "=", "FINISHED")),
    ("run_id = 'abc'", C(A("run_id"), "=", "abc")),
    ("run_name != 'abc'", C(A("run_name"), "!=", "abc")),
    ("user_id LIKE 'a%'", C(A("user_id"), "LIKE", "a%")),
    ("artifact_uri ILIKE 's3://%'", C(A("artifact_uri"), "ILIKE", "s3://%")),
    ("lifecycle_stage = 'active'", C(A("lifecycle_stage"), "=", "active")),
    ("start_time > 1700000000000", C(A("start_time"), ">", 1700000000000)),
    ("attributes.end_time <= 5", C(A("end_time"), "<=", 5)),
    ("end_time != 5", C(A("end_time"), "!=", 5)),
    ("start_time >= 1.5", C(A("start_time"), ">=", 1.5)),
    ("start_time < -1", C(A("start_time"), "<", -1)),
    ("start_time < 99999999999999999999999", C(A("start_time"), "<", 1e23)),
    # MLflow's attribute aliases
    ("created > 5", C(A("start_time"), ">", 5)),
    ("Created > 5", C(A("start_time"), ">", 5)),
    ("attributes.created = 5", C(A("start_time"), "=", 5)),
    ("`Run name` = 'x'", C(A("run_name"), "=", "x")),
    ("`run name` = 'x'", C(A("run_name"), "=", "x")),
    ("`Run Name` = 'x'", C(A("run_name"), "=", "x")),
    ("attributes.`Run Name` = 'x'", C(A("run_name"), "=", "x")),
    ("attributes.run_name = 'x'", C(A("run_name"), "=", "x")),
    ('tags."mlflow.runName" = \'x\'', C(A("run_name"), "=", "x")),
    ("tags.`mlflow.runName` LIKE 'x%'", C(A("run_name"), "LIKE", "x%")),
    ("tag.mlflow.runName ILIKE 'X%'", C(A("run_name"), "ILIKE", "X%")),
    ("tags.'mlflow.runName' IS NULL", C(A("run_name"), "IS NULL")),
    ("tags.mlflow.runName = x", C(A("run_name"), "=", "x")),
    # IN / NOT IN
    ("run_id IN ('a')", C(A("run_id"), "IN", ("a",))),
    ("attributes.run_id IN ('a', \"b\",'c')", C(A("run_id"), "IN", ("a", "b", "c"))),
    ("run_id in('a','b')", C(A("run_id"), "IN", ("a", "b"))),
    ("run_id NOT IN ('a', 'b')", C(A("run_id"), "NOT IN", ("a", "b"))),
    ("run_id not in ('a')", C(A("run_id"), "NOT IN", ("a",))),
    ("status IN ('FINISHED', 'FAILED')", C(A("status"), "IN", ("FINISHED", "FAILED"))),
    ("run_name NOT IN ('x')", C(A("run_name"), "NOT IN", ("x",))),
]


@pytest.mark.parametrize(("text", "tree"), VALID, ids=[t for t, _ in VALID])
def test_valid_clause(text, tree):
    assert parse_filter(text) == tree


a = C(M("a"), ">", 1.0)
b = C(P("b"), "=", "x")
c = C(T("c"), "IS NULL")

LOGIC = [
    ("metrics.a > 1 AND params.b = 'x'", And((a, b))),
    ("metrics.a > 1 and params.b = 'x' And tags.c is null", And((a, b, c))),
    ("metrics.a > 1 OR params.b = 'x'", Or((a, b))),
    ("metrics.a > 1 or params.b = 'x' OR tags.c IS NULL", Or((a, b, c))),
    ("NOT metrics.a > 1", Not(a)),
    ("not not metrics.a > 1", Not(Not(a))),
    ("(metrics.a > 1)", a),
    ("((metrics.a > 1))", a),
    # AND binds tighter than OR, NOT tighter than AND
    ("metrics.a > 1 OR params.b = 'x' AND tags.c IS NULL", Or((a, And((b, c))))),
    ("metrics.a > 1 AND params.b = 'x' OR tags.c IS NULL", Or((And((a, b)), c))),
    ("NOT metrics.a > 1 AND params.b = 'x'", And((Not(a), b))),
    ("NOT metrics.a > 1 OR params.b = 'x'", Or((Not(a), b))),
    ("metrics.a > 1 AND NOT params.b = 'x'", And((a, Not(b)))),
    ("NOT (metrics.a > 1 OR params.b = 'x')", Not(Or((a, b)))),
    ("(metrics.a > 1 OR params.b = 'x') AND tags.c IS NULL", And((Or((a, b)), c))),
    ("metrics.a > 1 AND (params.b = 'x' OR tags.c IS NULL)", And((a, Or((b, c))))),
    ("(metrics.a>1)AND(params.b='x')", And((a, b))),
    ("NOT(metrics.a > 1)", Not(a)),
    ("(metrics.a > 1 AND params.b = 'x') AND tags.c IS NULL", And((And((a, b)), c))),
    ("metrics.a > 1\nAND\tparams.b = 'x'", And((a, b))),
]


@pytest.mark.parametrize(("text", "tree"), LOGIC, ids=[t for t, _ in LOGIC])
def test_boolean_structure_and_precedence(text, tree):
    assert parse_filter(text) == tree


def test_deep_nesting_is_parsed_up_to_a_limit():
    assert parse_filter("(" * 50 + "metrics.a > 1" + ")" * 50) == a
    with pytest.raises(InvalidFilterError, match="nests deeper than"):
        parse_filter("(" * 500 + "metrics.a > 1" + ")" * 500)
    with pytest.raises(InvalidFilterError, match="nests deeper than"):
        parse_filter("NOT " * 500 + "metrics.a > 1")


# -- rejected filters ---------------------------------------------------------------------------

INVALID = [
    # type rules: which comparators and values each identifier type takes
    ("metrics.acc > 'high'", ['"metrics.acc > \'high\'"', "metrics compare with numbers"]),
    ("metrics.acc = high", ["metrics compare with numbers", "'high'"]),
    ("metrics.acc LIKE '1%'", ["LIKE is not valid for metrics", "=, !=, >, >=, <, <="]),
    ("metrics.acc ILIKE '1%'", ["ILIKE is not valid for metrics"]),
    ("metrics.acc IS NULL", ["IS NULL is not valid for metrics"]),
    ("metrics.acc IN (1)", ["IN is not valid for metrics"]),
    ("MIN(metrics.acc) LIKE 'x'", ["LIKE is not valid for metrics"]),
    ("params.lr > 1", ['"params.lr > 1"', "> is not valid for params", "=, !=, LIKE, ILIKE, IS NULL, IS NOT NULL"]),
    ("params.lr >= '1'", [">= is not valid for params"]),
    ("params.lr < 1", ["< is not valid for params"]),
    ("params.lr IN ('1')", ["IN is not valid for params"]),
    ("params.lr NOT IN ('1')", ["NOT IN is not valid for params"]),
    ("tags.t <= 'a'", ["<= is not valid for tags"]),
    ("tags.t IN ('a')", ["IN is not valid for tags"]),
    ("status > 'A'", ["> is not valid for string attributes", "=, !=, LIKE, ILIKE, IN, NOT IN"]),
    ("status IS NULL", ["IS NULL is not valid for string attributes"]),
    ("run_id = 5", ["expected a quoted string after =", "run_id = 'value'"]),
    ("status = FINISHED", ["expected a quoted string after =", "'FINISHED'"]),
    ("start_time LIKE '1%'", ["LIKE is not valid for numeric attributes"]),
    ("start_time > '2024-01-01'", ["numeric attributes compare with numbers", "milliseconds"]),
    ("end_time IN (1)", ["IN is not valid for numeric attributes"]),
    ("tags.\"mlflow.runName\" IN ('a')", ["IN is not valid for tags"]),
    # values
    ("params.x = null", ["NULL is a keyword", "IS NULL"]),
    ("params.x = and", ["expected a quoted string"]),
    ("params.x = a.b", ["ambiguous", "'a.b'"]),
    ("params.x = (1)", ["expected a quoted string"]),
    ("params.x LIKE 'a\\b'", ["backslash must be followed by %, _"]),
    ("params.x LIKE 'ab\\'", ["never closed"]),
    ("params.x ILIKE 'a\\\\\\'", ["never closed"]),
    ("params.x LIKE 'a\\\\q'", ["backslash must be followed"]),
    ("params.x = 'abc", ["string starting with ' is never closed", "position 11"]),
    ('params.x = "abc', ['string starting with " is never closed']),
    # IN lists
    ("run_id IN ()", ["IN list is empty"]),
    ("run_id IN ('a',)", ["IN list items must be quoted strings"]),
    ("run_id IN (1, 2)", ["IN list items must be quoted strings", "'1'"]),
    ("run_id IN 'a'", ["IN takes a parenthesised list"]),
    ("run_id IN ('a' 'b')", ["expected ',' or ')' in IN list"]),
    ("run_id IN ('a'", ["expected ',' or ')'", "the end of the filter"]),
    ("run_id NOT ('a')", ["NOT after an identifier must be followed by IN"]),
    ("params.x NOT LIKE 'a%'", ["NOT after an identifier must be followed by IN", "NOT (params.x LIKE"]),
    # identifiers
    ("acc > 1", ["unknown attribute 'acc'", "metrics.acc, params.acc or tags.acc", "run_id"]),
    ("attributes.acc = 'x'", ["unknown attribute 'acc'", "lifecycle_stage"]),
    ("foo.bar = 'x'", ["unknown prefix 'foo'", "metrics (metric)", "attributes (attribute, attr, run)"]),
    ("datasets.name = 'x'", ["dataset search is not supported"]),
    ("METRICX.a > 1", ["unknown prefix 'METRICX'"]),
    ("metrics. > 1", ["expected a key after 'metrics.'"]),
    ("metrics.val-loss > 1", ['"metrics.val-loss"', "metrics.`val-loss`"]),
    ("metrics.`a b > 1", ["never closed"]),
    ("metrics.\"a\".b > 1", ["quote the whole key"]),
    ("metrics.a.\"b\" > 1", ["quote the whole key"]),
    ("metrics.`a`b > 1", ["a quoted key must be the whole key"]),
    ("\"metrics\".a > 1", ['"\"metrics\"."', "only backticks may quote a prefix"]),
    ("'metrics.a' > 1", ["expected a clause", "the string 'metrics.a'"]),
    ("5 > metrics.a", ["expected a clause", "got '5'"]),
    # functions
    ("AVG(metrics.a) > 1", ["unknown function 'AVG'", "MIN, MAX and LATEST"]),
    ("MIN(params.a) = 'x'", ["MIN() applies to metrics only"]),
    ("MAX(tags.a) = 'x'", ["MAX() applies to metrics only"]),
    ("MIN(status) = 'x'", ["MIN() applies to metrics only"]),
    ("MIN(metrics.a > 1", ["expected ')' after MIN(metrics.a"]),
    ("MIN() > 1", ["MIN() takes a metric"]),
    # comparators
    ("metrics.a == 1", ["use = instead of =="]),
    ("metrics.a <> 1", ["use != instead of <>"]),
    ("metrics.a 1", ["expected a comparator after metrics.a", "=, !=, >, >=, <, <="]),
    ("metrics.a", ["expected a comparator", "the end of the filter"]),
    ("metrics.a >", ["metrics compare with numbers", "the end of the filter"]),
    ("metrics.a ! 1", ["unexpected character '!'"]),
    ("metrics.a ~ 1", ["unexpected character '~'"]),
    ("tags.t IS 'x'", ["expected IS NULL or IS NOT NULL"]),
    ("tags.t IS NOT 'x'", ["expected IS NULL or IS NOT NULL"]),
    # structure
    ("metrics.a > 1 metrics.b > 2", ['"metrics.b > 2"', "position 14", "join clauses with AND or OR"]),
    ("metrics.a > 1 AND", ["expected a clause", "the end of the filter"]),
    ("AND metrics.a > 1", ["expected a clause", "got 'AND'"]),
    ("metrics.a > 1 AND AND metrics.b > 1", ["got 'AND'", "position 18"]),
    ("metrics.a > 1 OR", ["expected a clause"]),
    ("NOT", ["expected a clause"]),
    ("(metrics.a > 1", ["expected ')' to close the '(' at position 0"]),
    ("metrics.a > 1)", ["')' without a matching '('", "position 13"]),
    ("()", ["expected a clause", "got ')'"]),
    ("metrics.a > 1; DROP TABLE runs", ["unexpected character ';'"]),
    ("metrics.a > 1, metrics.b > 1", ["unexpected ','"]),
]


@pytest.mark.parametrize(("text", "fragments"), INVALID, ids=[t for t, _ in INVALID])
def test_invalid_filter_message_names_clause_and_fix(text, fragments):
    with pytest.raises(InvalidFilterError) as info:
        parse_filter(text)
    message = str(info.value)
    assert message.startswith("Invalid filter clause ")
    assert "at position " in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_error_quotes_the_faulty_clause_among_others():
    text = "metrics.a > 1 AND (params.b > 2 OR tags.c = 'x')"
    with pytest.raises(InvalidFilterError) as info:
        parse_filter(text)
    assert str(info.value).startswith('Invalid filter clause "params.b > 2" at position 19: ')


def test_non_string_filter_is_rejected():
    with pytest.raises(InvalidFilterError, match="filter must be a string"):
        parse_filter(42)


# -- order_by -----------------------------------------------------------------------------------

ORDER_VALID = [
    (["metrics.acc"], [OrderKey(M("acc"))]),
    (["metrics.acc DESC"], [OrderKey(M("acc"), ascending=False)]),
    (["metric.acc asc"], [OrderKey(M("acc"))]),
    (["metrics.`my metric` Desc"], [OrderKey(M("my metric"), ascending=False)]),
    (["MIN(metrics.loss)"], [OrderKey(M("loss", "min"))]),
    (["max(metrics.acc) DESC"], [OrderKey(M("acc", "max"), ascending=False)]),
    (["LATEST(metrics.acc)"], [OrderKey(M("acc"))]),
    (["params.model", "tags.team DESC"], [OrderKey(P("model")), OrderKey(T("team"), False)]),
    (["parameters.model"], [OrderKey(P("model"))]),
    (["start_time"], [OrderKey(A("start_time"))]),
    (["attributes.start_time DESC"], [OrderKey(A("start_time"), ascending=False)]),
    (["created desc"], [OrderKey(A("start_time"), ascending=False)]),
    (["end_time", "run_id DESC"], [OrderKey(A("end_time")), OrderKey(A("run_id"), False)]),
    (["run.status", "attr.user_id"], [OrderKey(A("status")), OrderKey(A("user_id"))]),
    (["run_name", "artifact_uri", "lifecycle_stage"], [OrderKey(A(k)) for k in ("run_name", "artifact_uri", "lifecycle_stage")]),
    (['tags."mlflow.runName" DESC'], [OrderKey(A("run_name"), ascending=False)]),
    (["  metrics.acc   DESC  "], [OrderKey(M("acc"), ascending=False)]),
    (["metrics.acc", "MIN(metrics.acc)", "MAX(metrics.acc)"], [OrderKey(M("acc", g)) for g in ("latest", "min", "max")]),
    ([], []),
    (None, []),
]


@pytest.mark.parametrize(("items", "keys"), ORDER_VALID, ids=[repr(i) for i, _ in ORDER_VALID])
def test_valid_order_by(items, keys):
    assert parse_order_by(items) == keys


def test_parse_order_by_does_not_mutate_its_argument():
    items = ["metrics.a DESC", "params.b"]
    parse_order_by(items)
    assert items == ["metrics.a DESC", "params.b"]


ORDER_INVALID = [
    (["metrics.acc upward"], ['"upward"', "order_by[0]", "expected ASC, DESC or the end"]),
    (["metrics.acc DESC ASC"], ["expected ASC, DESC or the end", "got 'ASC'"]),
    (["metrics.a", "bogus"], ['"bogus"', "order_by[1]", "unknown attribute 'bogus'"]),
    (["metrics.a", "metric.a DESC"], ["order_by[1]", "already ordered on by order_by[0]"]),
    (["run_name", 'tags."mlflow.runName"'], ["already ordered on"]),
    (["metrics.a > 1"], ["expected ASC, DESC or the end", "got '>'"]),
    (["AVG(metrics.a)"], ["unknown function 'AVG'"]),
    (["MIN(params.a)"], ["MIN() applies to metrics only"]),
    (["DESC"], ["expected a clause"]),
    (["foo.x"], ["unknown prefix 'foo'"]),
    (["metrics.`x"], ["never closed"]),
    ([""], ["order_by[0]", "expected a string"]),
    ([None], ["order_by[0]", "expected a string"]),
    (["metrics.a, metrics.b"], ["order_by[0]", "got ','"]),
]


@pytest.mark.parametrize(("items", "fragments"), ORDER_INVALID, ids=[repr(i) for i, _ in ORDER_INVALID])
def test_invalid_order_by_message(items, fragments):
    with pytest.raises(InvalidFilterError) as info:
        parse_order_by(items)
    message = str(info.value)
    assert message.startswith("Invalid order_by clause ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_order_by_as_a_bare_string_is_rejected_with_the_fix():
    with pytest.raises(InvalidFilterError, match=r'write \["metrics.a DESC"\]'):
        parse_order_by("metrics.a DESC")


# -- agreement with MLflow's own parser on the grammar both accept -------------------------------

MLFLOW_TYPES = {"metric": "metric", "param": "parameter", "tag": "tag", "attribute": "attribute"}
MLFLOW_ALIASES = {"created": "start_time", "Created": "start_time", "run name": "run_name",
                  "Run name": "run_name", "Run Name": "run_name"}  # fmt: skip

MLFLOW_ACCEPTS = [
    "metrics.acc > 0.9",
    "metric.`my metric` <= -1.5e3",
    "metrics.\"a-b\" != 2 and params.model = 'lr'",
    "params.x LIKE '%a_' AND param.y ilike \"B%\" and parameters.z != 'q'",
    "tags.t = 'v' and tag.`u v` IS NULL and tags.w is not null",
    "attributes.status = 'FINISHED' and attr.run_name LIKE 'x%' and run.user_id != 'a'",
    "run_id IN ('a', 'b') AND attributes.run_id NOT IN ('c')",
    "start_time > 1000 and attributes.end_time <= 2000 and created >= 5",
    "`Run Name` = 'x' and artifact_uri ILIKE 's3%'",
    "params.x = 'it''s'",
]


@pytest.mark.parametrize("text", MLFLOW_ACCEPTS)
def test_same_clauses_as_mlflow(text):
    search_utils = pytest.importorskip("mlflow.utils.search_utils")
    expected = search_utils.SearchUtils.parse_search_filter(text)
    tree = parse_filter(text)
    clauses = tree.operands if isinstance(tree, And) else (tree,)
    assert len(clauses) == len(expected)
    for ours, theirs in zip(clauses, expected):
        assert MLFLOW_TYPES[ours.identifier.kind] == theirs["type"]
        assert ours.identifier.key == MLFLOW_ALIASES.get(theirs["key"], theirs["key"])
        assert ours.op == theirs["comparator"].upper()
        value = theirs["value"]
        if ours.identifier.kind == "metric":
            value = float(value)
        if text == "params.x = 'it''s'":
            value = "it's"  # MLflow keeps the doubled quote; a SQL string literal does not
        assert ours.value == value


MLFLOW_REJECTS = [
    "metrics.acc > 'x'",
    "params.x > '1'",
    "tags.x < 'a'",
    "status > 'a'",
    "start_time LIKE 'a'",
    "acc > 1",
    "foo.x = 'a'",
    "metrics.acc LIKE 1",
    "metrics.acc IS NULL",
    "run_id IN ()",
    "metrics.a == 1",
]


@pytest.mark.parametrize("text", MLFLOW_REJECTS)
def test_rejects_what_mlflow_rejects(text):
    search_utils = pytest.importorskip("mlflow.utils.search_utils")
    from mlflow.exceptions import MlflowException

    utils = search_utils.SearchUtils
    with pytest.raises(MlflowException):
        # MLflow checks comparators per type only when a store applies the clause.
        for clause in utils.parse_search_filter(text):
            kind, comparator = clause["type"], clause["comparator"].upper()
            key = utils.translate_key_alias(clause["key"])
            utils.is_metric(kind, comparator) or utils.is_param(kind, comparator)
            utils.is_tag(kind, comparator) or utils.is_attribute(kind, key, comparator)
    with pytest.raises(InvalidFilterError):
        parse_filter(text)
