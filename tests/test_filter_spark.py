"""sparktrack.spark.filter on pathological filters: what search_runs answers, the Spark filter
answers the same (no StackOverflowError, no regex blow-up), and what search_runs refuses, it
refuses with the same InvalidFilterError (no Py4JError, no SparkRuntimeException)."""

from __future__ import annotations

import random
import re
import time

import pyarrow as pa
import pytest

from sparktrack import TrackingClient
from sparktrack.errors import InvalidFilterError
from sparktrack._search import filter_runs, parse_filter, to_spark_predicate
from sparktrack._search.limits import MAX_CLAUSES
from sparktrack.spark import _filters as filters

pytestmark = pytest.mark.spark

BLOB = "a" * 2_500  # Java's backtracking regex for %a%a%b takes minutes on it


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """Four runs: params model (one run has none) and blob, metric acc, tag team."""
    uri = str(tmp_path_factory.mktemp("filter-spark") / "store")
    client = TrackingClient(uri)
    experiment = client.create_experiment("pathological")
    for index, model in enumerate(["lr", "gbt", "rf", None]):
        run_id = client.create_run(experiment, run_name=f"run-{index}").info.run_id
        if model is not None:
            client.log_param(run_id, "model", model)
        client.log_param(run_id, "blob", BLOB if index % 2 else BLOB + "b")
        client.log_metric(run_id, "acc", 0.5 + index / 10)
        client.set_tag(run_id, "team", "ml" if index < 2 else "ops")
        client.set_terminated(run_id)
    client.flush()
    return client, experiment, uri


@pytest.fixture(scope="module")
def runs(spark, tracked):
    _, _, uri = tracked
    return spark.read.format("sparktrack").load(uri).cache()


def _spark(runs, text):
    return {row["run_id"] for row in filters.filter(runs, text).select("run_id").collect()}


def _search(tracked, text):
    client, experiment, _ = tracked
    return {run.info.run_id for run in client.search_runs([experiment], text, max_results=100)}


def test_10000_ors_compile_and_run(runs, tracked):
    # Left-deep, this chain overflowed the JVM stack after most of a minute.
    ors = " OR ".join(f"params.model = 'm{i}'" for i in range(MAX_CLAUSES - 2))
    text = f"{ors} OR params.model = 'gbt' OR params.model = 'rf'"
    start = time.perf_counter()
    selected = _spark(runs, text)
    elapsed = time.perf_counter() - start
    assert selected == _search(tracked, text)
    assert len(selected) == 2
    assert elapsed < 120, f"{elapsed:.0f} s"  # a few seconds on a quiet machine


def test_run_ids_or_chain(runs, tracked):
    run_ids = sorted(_search(tracked, ""))
    text = " OR ".join(f"run_id = '{run_id}'" for run_id in (run_ids[:2] * (MAX_CLAUSES // 2)))
    assert _spark(runs, text) == set(run_ids[:2])


AGREEMENT = [
    "run_name = 'run-0' OR run_name IN ('run-2', 'x') OR params.model = 'gbt'",
    "NOT (params.model = 'lr' OR params.model = 'gbt')",  # the run without a model matches
    "params.model = 'lr' OR tags.team = 'ops' OR params.model = 'rf'",
    "(params.model = 'lr' OR params.model = 'x') AND metrics.acc > 0.4",
    "NOT (params.model != 'lr' AND metrics.acc < 0.7)",
    "params.model != 'lr' OR NOT tags.team = 'ml'",
    "params.blob LIKE '%a%a%b' OR params.model ILIKE 'G_T'",
    "NOT params.blob ILIKE '%A%A%B'",
    " AND ".join(f"metrics.acc > {i / 10_000}" for i in range(120)),
    " OR ".join(f"(tags.team = 'x{i}' AND NOT params.model LIKE '%{i}_')" for i in range(60)),
]


@pytest.mark.parametrize("text", AGREEMENT, ids=lambda t: t[:60])
def test_spark_filter_selects_what_search_runs_selects(runs, tracked, text):
    assert _spark(runs, text) == _search(tracked, text)


def test_like_patterns_that_backtrack_in_java_run_in_linear_time(runs, tracked):
    # Spark runs %a%a%b as the Java regex .*a.*a.*b: cubic in the value's length (minutes
    # for 2,500 characters). The compiled regex never backtracks.
    start = time.perf_counter()
    for text in ["params.blob LIKE '%a%a%b'", "params.blob ILIKE '%A%_%a%B'",
                 "params.blob LIKE '_%a%a%a%a%a%a%a%b%'"]:
        assert _spark(runs, text) == _search(tracked, text)
        assert len(_spark(runs, text)) == 2
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"{elapsed:.0f} s"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("params.model LIKE '" + "_%" * 10_000 + "'", "a LIKE pattern may be at most"),
        ("params.model LIKE '" + "_%" * 1_000 + "'", "at most 100 wildcards"),
        (" OR ".join(["params.model = 'lr'"] * (MAX_CLAUSES + 1)), "at most 10,000 clauses"),
        ("params.model = '\ud800'", "lone surrogate"),
        ("params.`\ud800` = 'x'", "lone surrogate"),
        ("params.model LIKE '%\udfff'", "lone surrogate"),
    ],
    ids=["10000-like", "wildcards", "clauses", "value", "key", "like"],
)
def test_spark_filter_refuses_what_search_runs_refuses(runs, tracked, text, fragment):
    client, experiment, _ = tracked
    with pytest.raises(InvalidFilterError) as spark_error:
        filters.filter(runs, text)
    with pytest.raises(InvalidFilterError) as search_error:
        client.search_runs([experiment], text)
    assert str(spark_error.value) == str(search_error.value)
    assert fragment in str(spark_error.value)
    assert len(str(spark_error.value)) < 1_000


def test_order_by_with_a_surrogate_is_refused(runs):
    with pytest.raises(InvalidFilterError, match="lone surrogate"):
        filters.filter(runs, "", order_by=["params.\ud800"])


# -- LIKE and ILIKE: Spark (like or the compiled regex) selects what search_runs selects --------

ALPHABET = ["a", "b", "A", "B", "%", "_", "\\", ".", "*", "(", "[", "$", "^", "?", "\n", " ",
            "é", "É", "\U0001f600", "'", "E"]


def _random_pattern(rng: random.Random) -> str:
    tokens = ["%", "%", "_", "\\%", "\\_", "\\\\", *[c for c in ALPHABET if c not in "%_\\"]]
    return "".join(rng.choice(tokens) for _ in range(rng.randint(0, 7)))


def _instance(rng: random.Random, pattern: str) -> str:
    """A value that matches ``pattern``, or nearly does."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i + 1])
            i += 1
        elif char == "%":
            out.extend(rng.choice(ALPHABET) for _ in range(rng.randint(0, 3)))
        elif char == "_":
            out.append(rng.choice(ALPHABET))
        else:
            out.append(char.swapcase() if rng.random() < 0.2 else char)
        i += 1
    return "".join(out)


def _literal(pattern: str) -> str:
    """``pattern`` as a filter's string literal (a backslash and a quote are doubled)."""
    return "'" + pattern.replace("\\", "\\\\").replace("'", "''") + "'"


def test_compiled_like_matches_arrow_like(spark):
    rng = random.Random(20240601)
    patterns = [_random_pattern(rng) for _ in range(60)]
    patterns += ["", "%", "%%", "_", "a%", "%a", "%a%", "a%b", "%a%b%", "\\%%", "%\\_", "a__b"]
    values = [_instance(rng, p) for p in patterns] + ["".join(rng.choices(ALPHABET, k=6))
                                                      for _ in range(20)] + [""]
    frame = spark.createDataFrame(
        pa.table({"run_id": [str(i) for i in range(len(values))],
                  "params": pa.array([[("v", v)] for v in values],
                                     pa.map_(pa.string(), pa.string()))})
    )
    clauses = [(op, p) for p in patterns for op in ("LIKE", "ILIKE")]
    columns = [
        to_spark_predicate(parse_filter(f"params.v {op} {_literal(p)}")).alias(f"c{i}")
        for i, (op, p) in enumerate(clauses)
    ]
    rows = sorted(frame.repartition(1).select("run_id", *columns).collect(),
                  key=lambda row: int(row["run_id"]))
    source = _ParamSource(values)
    for i, (op, pattern) in enumerate(clauses):
        # What search_runs selects (Arrow), checked against Python's re for the same pattern.
        selected = set(filter_runs(parse_filter(f"params.v {op} {_literal(pattern)}"),
                                   source)["run_id"].to_pylist())
        expected = [str(index) in selected for index in range(len(values))]
        assert expected == [_python_like(pattern, v, op == "ILIKE") for v in values], pattern
        assert [row[f"c{i}"] for row in rows] == expected, (op, pattern)


def _python_like(pattern: str, value: str, ignore_case: bool) -> bool:
    """LIKE by Python's re: an independent reference for both engines."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(re.escape(pattern[i + 1]))
            i += 1
        else:
            out.append({"%": ".*", "_": "."}.get(char) or re.escape(char))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch("".join(out), value, flags) is not None


class _ParamSource:
    """Runs "0".."n-1", run i having param v = values[i]."""

    def __init__(self, values):
        self.ids = pa.array([str(i) for i in range(len(values))])
        self.values = pa.array(values)

    def runs(self):
        return pa.table({"run_id": self.ids})

    def param(self, key):
        return pa.table({"run_id": self.ids, "value": self.values})
