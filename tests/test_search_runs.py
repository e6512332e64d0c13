"""search_runs end to end on a real store: MLflow's frame, each identifier type through the
store, aggregates over a metric's history, OR/NOT/parentheses, ordering, paging, view types,
experiment selection, and filters that try to be code.

The grammar itself is covered by test_search_grammar.py and test_search_evaluate.py; here every
search goes through the Delta tables.
"""

from __future__ import annotations

import base64
import glob
import json
import math
import os
import time

import pandas as pd
import pytest

import sparktrack
from sparktrack import TrackingClient
from sparktrack.entities import ViewType
from sparktrack.errors import ExperimentNotFoundError, InvalidFilterError, InvalidInputError

INFO_COLUMNS = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]


def _run(name: str, *, params=None, metrics=None, tags=None, status="FINISHED") -> str:
    """One run through the fluent API; a short pause keeps start times distinct."""
    time.sleep(0.003)
    with sparktrack.start_run(run_name=name) as run:
        if params:
            sparktrack.log_params(params)
        for key, points in (metrics or {}).items():
            for step, value in enumerate(points if isinstance(points, list) else [points]):
                sparktrack.log_metric(key, value, step=step)
        if tags:
            sparktrack.set_tags(tags)
    if status != "FINISHED":
        TrackingClient(sparktrack.get_tracking_uri()).set_terminated(run.info.run_id, status=status)
    return run.info.run_id


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """Experiment 'search-a' with four active runs and a deleted one; 'search-b' with one run.

    ====  ============  ======  ===================  ====  ========  =======
    run   model         lr      loss (history)       acc   team      status
    ====  ============  ======  ===================  ====  ========  =======
    r0    gbt           0.1     0.9, 0.5, 0.7        0.8   red       FINISHED
    r1    rf            0.01    0.3                  0.9   blue      FINISHED
    r2    gbt           --      0.6                  --    --        FAILED
    r3    --            --      --                   --    Red       FINISHED
    gone  gbt (deleted)         0.05
    ====  ============  ======  ===================  ====  ========  =======
    """
    uri = str(tmp_path_factory.mktemp("search") / "store")
    sparktrack.set_tracking_uri(uri)
    ids: dict[str, str] = {}
    sparktrack.set_experiment("search-b")
    ids["other"] = _run("other", params={"model": "gbt"}, metrics={"loss": 0.1},
                        tags={"team": "red"})
    experiment = sparktrack.set_experiment("search-a")
    ids["r0"] = _run("r0", params={"model": "gbt", "lr": 0.1},
                     metrics={"loss": [0.9, 0.5, 0.7], "acc": 0.8}, tags={"team": "red"})
    ids["r1"] = _run("r1", params={"model": "rf", "lr": 0.01},
                     metrics={"loss": 0.3, "acc": 0.9}, tags={"team": "blue"})
    ids["r2"] = _run("r2", params={"model": "gbt"}, metrics={"loss": 0.6}, status="FAILED")
    ids["r3"] = _run("r3", tags={"team": "Red"})
    ids["gone"] = _run("gone", params={"model": "gbt"}, metrics={"loss": 0.05})
    sparktrack.delete_run(ids["gone"])
    sparktrack.flush()
    return {"uri": uri, "ids": ids, "a": experiment.experiment_id,
            "b": sparktrack.get_experiment_by_name("search-b").experiment_id}


@pytest.fixture()
def ids(catalog):
    sparktrack.set_tracking_uri(catalog["uri"])
    sparktrack.set_experiment("search-a")
    return catalog["ids"]


def _names(frame: pd.DataFrame) -> list[str]:
    return list(frame["tags.mlflow.runName"]) if len(frame) else []


def _search(filter_string: str = "", **kwargs) -> list[str]:
    return _names(sparktrack.search_runs(filter_string=filter_string, **kwargs))


# -- the frame ---------------------------------------------------------------------------------
def test_frame_has_mlflows_columns_and_dtypes(ids):
    frame = sparktrack.search_runs()
    assert list(frame.columns[:6]) == INFO_COLUMNS
    assert str(frame["start_time"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["end_time"].dtype) == "datetime64[ns, UTC]"
    for column in frame.columns:
        if column.startswith("metrics."):
            assert frame[column].dtype == "float64", column
        elif column.startswith(("params.", "tags.")) or column in (
            "run_id", "experiment_id", "status", "artifact_uri"
        ):
            assert frame[column].dtype == object, column
    assert {"metrics.loss", "metrics.acc", "params.model", "params.lr", "tags.team",
            "tags.mlflow.runName", "tags.mlflow.user"} <= set(frame.columns)
    prefixes = [c.split(".")[0] for c in frame.columns[6:]]
    assert prefixes == sorted(prefixes, key=["metrics", "params", "tags"].index)
    assert sorted(frame["run_id"]) == sorted(ids[k] for k in ("r0", "r1", "r2", "r3"))


def test_frame_values_latest_metric_nan_and_none_for_missing(ids, catalog):
    frame = sparktrack.search_runs().set_index("tags.mlflow.runName")
    assert frame.loc["r0", "metrics.loss"] == 0.7  # step 2 is the latest, not the minimum
    assert frame.loc["r0", "metrics.acc"] == 0.8
    assert math.isnan(frame.loc["r2", "metrics.acc"])
    assert math.isnan(frame.loc["r3", "metrics.loss"])
    assert frame.loc["r0", "params.lr"] == "0.1"
    assert frame.loc["r3", "params.model"] is None
    assert frame.loc["r2", "tags.team"] is None
    assert frame.loc["r2", "status"] == "FAILED"
    assert (frame["experiment_id"] == catalog["a"]).all()
    run = sparktrack.get_run(ids["r0"])
    assert frame.loc["r0", "start_time"] == pd.Timestamp(run.info.start_time, unit="ms", tz="UTC")
    assert frame.loc["r0", "end_time"] == pd.Timestamp(run.info.end_time, unit="ms", tz="UTC")
    assert frame.loc["r0", "artifact_uri"] == run.info.artifact_uri


def test_running_run_has_nat_end_time(tracking):
    sparktrack.start_run(run_name="open")
    frame = sparktrack.search_runs()
    assert frame["end_time"].isna().all()
    assert str(frame["end_time"].dtype) == "datetime64[ns, UTC]"
    assert list(frame["status"]) == ["RUNNING"]


def test_empty_result_keeps_the_info_columns_and_dtypes(ids):
    frame = sparktrack.search_runs(filter_string="params.model = 'svm'")
    assert list(frame.columns) == INFO_COLUMNS
    assert len(frame) == 0
    assert str(frame["start_time"].dtype) == "datetime64[ns, UTC]"


def test_list_output_gives_run_entities(ids):
    runs = sparktrack.search_runs(filter_string="attributes.run_name = 'r0'", output_format="list")
    assert [r.info.run_id for r in runs] == [ids["r0"]]
    assert runs[0].data.metrics == {"loss": 0.7, "acc": 0.8}
    assert runs[0].data.params == {"model": "gbt", "lr": "0.1"}
    assert runs[0].data.tags["team"] == "red"
    with pytest.raises(InvalidInputError, match="output_format"):
        sparktrack.search_runs(output_format="json")


# -- filters through the store -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        # metrics: the latest value
        ("metrics.acc > 0.85", ["r1"]),
        ("metrics.loss < 0.65", ["r2", "r1"]),
        ("metrics.loss = 0.7", ["r0"]),
        ("metrics.loss != 0.3", ["r2", "r0"]),  # r3 has no loss: no comparison matches it
        ("metrics.`loss` >= 0.3", ["r2", "r1", "r0"]),
        # aggregates over the history of r0's loss (0.9, 0.5, 0.7)
        ("MIN(metrics.loss) < 0.55", ["r1", "r0"]),
        ("MIN(metrics.loss) = 0.5", ["r0"]),
        ("MAX(metrics.loss) >= 0.9", ["r0"]),
        ("MAX(metrics.loss) < 0.65", ["r2", "r1"]),
        ("LATEST(metrics.loss) = 0.7", ["r0"]),
        # params: strings; unquoted numbers compare as their text
        ("params.model = 'gbt'", ["r2", "r0"]),
        ('params.model != "gbt"', ["r1"]),
        ("params.lr = 0.1", ["r0"]),
        ("params.lr = '0.01'", ["r1"]),
        ("params.model LIKE 'g%'", ["r2", "r0"]),
        ("params.model ILIKE 'RF'", ["r1"]),
        ("params.model IS NULL", ["r3"]),
        ("params.lr IS NOT NULL", ["r1", "r0"]),
        ("param.model = 'rf'", ["r1"]),
        # tags
        ("tags.team = 'red'", ["r0"]),
        ("tags.team ILIKE 'red'", ["r3", "r0"]),
        ("tags.team LIKE 'R%'", ["r3"]),
        ("tags.team IS NULL", ["r2"]),
        ("tags.`mlflow.runName` = 'r1'", ["r1"]),
        ('tags."mlflow.runName" LIKE \'r_\'', ["r3", "r2", "r1", "r0"]),
        # attributes
        ("attributes.run_name = 'r2'", ["r2"]),
        ("run_name ILIKE 'R3'", ["r3"]),
        ("attributes.status = 'FAILED'", ["r2"]),
        ("attributes.status != 'FAILED'", ["r3", "r1", "r0"]),
        ("attributes.end_time > 0", ["r3", "r2", "r1", "r0"]),
        # OR, NOT, parentheses
        ("params.model = 'rf' OR tags.team = 'Red'", ["r3", "r1"]),
        ("NOT params.model = 'gbt'", ["r3", "r1"]),
        ("NOT (params.model = 'gbt' OR tags.team IS NULL)", ["r3", "r1"]),
        ("(params.model = 'gbt' OR params.model = 'rf') AND metrics.acc > 0.85", ["r1"]),
        ("params.model = 'gbt' AND (metrics.loss < 0.65 OR tags.team = 'red')", ["r2", "r0"]),
        ("params.model = 'gbt' and not attributes.status = 'FAILED'", ["r0"]),
    ],
)
def test_filter_through_the_store(ids, filter_string, expected):
    assert _search(filter_string) == expected


def test_filter_on_start_time_user_and_run_ids(ids):
    r2 = sparktrack.get_run(ids["r2"]).info
    assert _search(f"attributes.start_time >= {r2.start_time}") == ["r3", "r2"]
    assert _search(f"attributes.start_time < {r2.start_time}") == ["r1", "r0"]
    assert _search(f"attributes.user_id = '{r2.user_id}'") == ["r3", "r2", "r1", "r0"]
    assert _search(f"attributes.run_id IN ('{ids['r0']}', '{ids['r3']}')") == ["r3", "r0"]
    assert _search(f"attributes.run_id NOT IN ('{ids['r0']}')") == ["r3", "r2", "r1"]
    assert _search(f"attributes.run_id = '{ids['r1']}'") == ["r1"]
    # a run of another experiment or a deleted run is not found by id either
    assert _search(f"attributes.run_id IN ('{ids['other']}', '{ids['gone']}')") == []


def test_invalid_filter_names_the_clause(ids):
    with pytest.raises(InvalidFilterError, match="metrics.loss"):
        sparktrack.search_runs(filter_string="metrics.loss = 'high'")
    with pytest.raises(InvalidFilterError, match="bogus"):
        sparktrack.search_runs(filter_string="bogus.x = 1")
    with pytest.raises(InvalidFilterError):
        sparktrack.search_runs(filter_string="params.model = 'gbt' AND")
    with pytest.raises(InvalidFilterError):
        sparktrack.search_runs(order_by=["metrics.loss SIDEWAYS"])


@pytest.mark.parametrize(
    "filter_string",
    [
        "params.model = 'a'' OR 1=1 --'",
        "params.model = 'gbt'' OR ''1''=''1'",
        "params.model = 'x' OR 1=1",
        "params.model = 'x'; DROP TABLE runs; --",
        'params.model = "x\\" OR \\"1\\"=\\"1"',
        "params.model = 'x') OR ('1'='1",
        "attributes.run_id IN ('x'') OR (''1''=''1')",
        "tags.team = 'x' UNION SELECT * FROM runs",
        "params.`model' OR '1'='1` = 'gbt'",
        "metrics.loss > 0 OR 1 = 1",
        "experiment_id = '1' OR experiment_id != '1'",
    ],
)
def test_quote_injection_is_data(ids, filter_string):
    try:
        found = _search(filter_string)
    except InvalidFilterError:
        found = []
    assert len(found) < 4, found
    assert len(_search()) == 4  # the store is untouched


def test_a_value_made_of_quotes_is_found_as_written(tracking):
    hostile = "a' OR 1=1 --"
    with sparktrack.start_run(run_name="hostile"):
        sparktrack.log_param("x", hostile)
        sparktrack.set_tag("note", 'say "hi"; DROP TABLE runs')
    with sparktrack.start_run(run_name="plain"):
        sparktrack.log_param("x", "a")
    assert _search("params.x = 'a'' OR 1=1 --'") == ["hostile"]
    assert _search("params.x = \"a' OR 1=1 --\"") == ["hostile"]
    assert _search("params.x = 'a'") == ["plain"]
    assert _search("tags.note LIKE '%DROP TABLE%'") == ["hostile"]
    assert _search("tags.note = 'say \"hi\"; DROP TABLE runs'") == ["hostile"]


# -- ordering ----------------------------------------------------------------------------------
def test_default_order_is_start_time_desc(ids):
    frame = sparktrack.search_runs()
    assert _names(frame) == ["r3", "r2", "r1", "r0"]
    assert frame["start_time"].is_monotonic_decreasing


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (["metrics.loss ASC"], ["r1", "r2", "r0", "r3"]),
        (["metrics.loss DESC"], ["r0", "r2", "r1", "r3"]),
        (["metrics.acc"], ["r0", "r1", "r3", "r2"]),  # missing last, then start_time DESC
        (["MIN(metrics.loss) ASC"], ["r1", "r0", "r2", "r3"]),
        (["MAX(metrics.loss) DESC"], ["r0", "r2", "r1", "r3"]),
        (["params.model ASC", "metrics.loss DESC"], ["r0", "r2", "r1", "r3"]),
        (["params.model DESC", "metrics.loss ASC"], ["r1", "r2", "r0", "r3"]),
        (["tags.team DESC"], ["r0", "r1", "r3", "r2"]),
        (["attributes.run_name DESC"], ["r3", "r2", "r1", "r0"]),
        (["attributes.start_time ASC"], ["r0", "r1", "r2", "r3"]),
        (["attributes.status ASC", "attributes.run_name DESC"], ["r2", "r3", "r1", "r0"]),
    ],
)
def test_order_by(ids, order_by, expected):
    assert _search(order_by=order_by) == expected


def test_order_with_filter(ids):
    assert _search("params.model = 'gbt'", order_by=["metrics.loss ASC"]) == ["r2", "r0"]


# -- paging ------------------------------------------------------------------------------------
@pytest.mark.parametrize("page_size", [1, 3, 4, 10])
def test_paging_with_tokens_has_no_duplicates_or_gaps(ids, catalog, page_size):
    client = TrackingClient(catalog["uri"])
    everything = [r.info.run_id for r in client.search_runs([catalog["a"]], order_by=None)]
    seen, token, pages = [], None, 0
    while True:
        page = client.search_runs([catalog["a"]], max_results=page_size, page_token=token)
        assert len(page) <= page_size
        seen += [r.info.run_id for r in page]
        pages += 1
        token = page.token
        if token is None:
            break
    assert seen == everything
    assert len(seen) == len(set(seen)) == 4
    assert pages == -(-4 // page_size)


def test_paging_keeps_the_order_and_filter(ids, catalog):
    client = TrackingClient(catalog["uri"])
    kwargs = {"filter_string": "metrics.loss >= 0", "order_by": ["metrics.loss ASC"],
              "max_results": 2}
    first = client.search_runs([catalog["a"]], **kwargs)
    second = client.search_runs([catalog["a"]], page_token=first.token, **kwargs)
    assert [r.info.run_name for r in first] == ["r1", "r2"]
    assert [r.info.run_name for r in second] == ["r0"]
    assert second.token is None


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "!!!!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(json.dumps({"offset": -1}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"offset": "3"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"page": 1}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1]).encode()).decode(),
    ],
)
def test_bad_page_token_is_an_invalid_input_error(ids, catalog, token):
    client = TrackingClient(catalog["uri"])
    with pytest.raises(InvalidInputError, match="page_token"):
        client.search_runs([catalog["a"]], page_token=token)


@pytest.mark.parametrize("max_results", [0, -1, 100_001, 2.5, "10", None, True])
def test_bad_max_results_is_an_invalid_input_error(ids, catalog, max_results):
    client = TrackingClient(catalog["uri"])
    with pytest.raises(InvalidInputError, match="max_results"):
        client.search_runs([catalog["a"]], max_results=max_results)


def test_max_results_limits_the_frame(ids):
    assert _search(max_results=2) == ["r3", "r2"]


# -- view types and experiments ----------------------------------------------------------------
def test_deleted_runs_only_with_deleted_only_or_all(ids):
    assert "gone" not in _search()
    assert _search(run_view_type=ViewType.DELETED_ONLY) == ["gone"]
    assert _search(run_view_type="DELETED_ONLY") == ["gone"]
    assert _search(run_view_type=ViewType.ALL) == ["gone", "r3", "r2", "r1", "r0"]
    assert _search("params.model = 'gbt'", run_view_type="ALL") == ["gone", "r2", "r0"]
    with pytest.raises(InvalidInputError, match="run_view_type"):
        sparktrack.search_runs(run_view_type="SOME")


def test_restored_run_is_active_again(tracking):
    with sparktrack.start_run(run_name="back") as run:
        pass
    sparktrack.delete_run(run.info.run_id)
    assert _search() == []
    sparktrack.restore_run(run.info.run_id)
    assert _search() == ["back"]
    assert _search(run_view_type="DELETED_ONLY") == []


def test_other_experiments_never_appear(ids, catalog):
    everywhere = ["metrics.loss >= 0", "params.model = 'gbt'", "tags.team = 'red'", ""]
    for filter_string in everywhere:
        frame = sparktrack.search_runs(filter_string=filter_string, run_view_type="ALL")
        assert ids["other"] not in set(frame["run_id"])
        assert set(frame["experiment_id"]) <= {catalog["a"]}
    only_b = sparktrack.search_runs(experiment_ids=[catalog["b"]])
    assert list(only_b["run_id"]) == [ids["other"]]


def test_experiment_names_and_ids(ids, catalog):
    assert _search(experiment_names=["search-b"]) == ["other"]
    assert _search(experiment_names=["search-a"]) == ["r3", "r2", "r1", "r0"]
    assert _search(experiment_ids=[catalog["a"]], experiment_names=["search-b"]) == [
        "r3", "r2", "r1", "r0", "other"]
    assert _search(experiment_ids=[catalog["b"]], filter_string="tags.team = 'red'") == ["other"]
    with pytest.raises(ExperimentNotFoundError, match="no-such"):
        sparktrack.search_runs(experiment_names=["no-such"])


def test_search_all_experiments(ids):
    found = _search(search_all_experiments=True)
    assert sorted(found) == ["other", "r0", "r1", "r2", "r3"]
    assert _search("params.model = 'gbt'", search_all_experiments=True,
                   order_by=["metrics.loss ASC"]) == ["other", "r2", "r0"]


def test_without_ids_searches_the_active_experiment(ids):
    sparktrack.set_experiment("search-b")
    assert _search() == ["other"]
    assert _search(experiment_ids=[]) == ["other"]  # MLflow: [] is "not given"
    assert _search(experiment_ids=[], experiment_names=[]) == ["other"]
    assert sorted(_search(experiment_ids=[], search_all_experiments=True)) == [
        "other", "r0", "r1", "r2", "r3"]


def test_search_all_experiments_skips_deleted_experiments(tracking):
    # MLflow searches the active experiments only.
    sparktrack.set_experiment("kept")
    with sparktrack.start_run(run_name="kept-run"):
        pass
    gone = sparktrack.set_experiment("gone").experiment_id
    with sparktrack.start_run(run_name="gone-run"):
        pass
    sparktrack.set_experiment("kept")
    sparktrack.delete_experiment(gone)
    assert _search(search_all_experiments=True, run_view_type="ALL") == ["kept-run"]
    assert _search(experiment_ids=[gone], run_view_type="ALL") == ["gone-run"]


def test_search_reads_only_the_selected_experiments_files(tracking):
    """Experiment b's files are removed from disk: searching a must not need them."""
    sparktrack.set_experiment("b")
    with sparktrack.start_run(run_name="b-run"):
        sparktrack.log_param("model", "gbt")
        sparktrack.log_metric("loss", 0.1)
        sparktrack.set_tag("team", "red")
    b = sparktrack.get_experiment_by_name("b").experiment_id
    a = sparktrack.set_experiment("a").experiment_id
    with sparktrack.start_run(run_name="a-run"):
        sparktrack.log_param("model", "gbt")
        sparktrack.log_metric("loss", 0.2)
        sparktrack.set_tag("team", "red")
    sparktrack.flush()
    removed = 0
    for table in ("runs", "params", "tags", "metrics", "metric_summaries"):
        for path in glob.glob(os.path.join(tracking, table, f"experiment_id={b}", "*.parquet")):
            os.remove(path)
            removed += 1
    assert removed >= 5
    frame = sparktrack.search_runs(
        experiment_ids=[a],
        filter_string="params.model = 'gbt' AND metrics.loss < 1 AND tags.team = 'red' "
        "AND MAX(metrics.loss) > 0",
        order_by=["metrics.loss DESC", "params.model", "tags.team"],
    )
    assert _names(frame) == ["a-run"]
    assert frame.loc[0, "metrics.loss"] == 0.2


def test_search_never_reads_the_metric_history(tracking):
    """Latest, MIN and MAX come from the summaries: the history's files can be gone."""
    with sparktrack.start_run(run_name="r"):
        for step, value in enumerate([0.9, 0.2, 0.5]):
            sparktrack.log_metric("loss", value, step=step)
            sparktrack.flush()
    history = glob.glob(os.path.join(tracking, "metrics", "**", "*.parquet"), recursive=True)
    assert history
    for path in history:
        os.remove(path)
    frame = sparktrack.search_runs(
        filter_string="MIN(metrics.loss) = 0.2 AND MAX(metrics.loss) = 0.9 AND metrics.loss = 0.5",
        order_by=["MIN(metrics.loss)"],
    )
    assert _names(frame) == ["r"]
    assert frame.loc[0, "metrics.loss"] == 0.5


def test_nan_metric_is_kept_and_matches_only_not_equal(tracking):
    with sparktrack.start_run(run_name="nan"):
        sparktrack.log_metric("loss", float("nan"))
    with sparktrack.start_run(run_name="one"):
        sparktrack.log_metric("loss", 1.0)
    frame = sparktrack.search_runs(order_by=["metrics.loss ASC"])
    assert _names(frame) == ["one", "nan"]
    assert math.isnan(frame.loc[1, "metrics.loss"])
    # Compare as sets: both runs may start in the same millisecond, then run_id breaks the tie.
    assert sorted(_search("metrics.loss != 5")) == ["nan", "one"]
    assert _search("metrics.loss < 5") == ["one"]


def test_search_sees_unflushed_writes_of_this_process(tracking):
    with sparktrack.start_run(run_name="fresh"):
        sparktrack.log_metric("loss", 0.25)
        assert _search("metrics.loss = 0.25") == ["fresh"]


def test_pandas_frame_is_the_frame_of_the_run_entities(tracking):
    """search_runs builds its frame column by column; it must equal runs_to_frame(entities)
    for missing keys, NaN, deleted tags, a running run (no end time) and an empty result."""
    from sparktrack._run_search import runs_to_frame

    _run("a", params={"p": "1", "only_a": "x"}, metrics={"m": [0.5, float("nan")]},
         tags={"t": "1"})
    _run("b", params={"p": "2"}, metrics={"m": 2.0, "n": [3.0, 1.0]})
    c = _run("c", tags={"t": "gone", "u": "kept"})
    client = TrackingClient(sparktrack.get_tracking_uri())
    client.delete_tag(c, "t")
    running = sparktrack.start_run(run_name="running")
    sparktrack.log_metric("m", 1.0)
    experiment_id = running.info.experiment_id
    for filter_string, order_by in (("", None), ("metrics.m > 0.7", ["metrics.m DESC"]),
                                    ("params.p = 'nothing'", None)):
        frame = sparktrack.search_runs([experiment_id], filter_string, order_by=order_by)
        entities = client.search_runs(experiment_id, filter_string, order_by=order_by)
        pd.testing.assert_frame_equal(frame, runs_to_frame(entities))
    sparktrack.end_run()
    everything = sparktrack.search_runs([experiment_id])
    assert everything.loc[everything["run_id"] == c, "tags.u"].item() == "kept"
    assert everything.loc[everything["run_id"] == c, "tags.t"].isna().item()
    assert math.isnan(everything.loc[everything["tags.mlflow.runName"] == "a", "metrics.m"]
                      .item())


def test_order_by_given_as_a_bare_string_says_how_to_write_it(tracking):
    _run("a", metrics={"m": 1.0})
    with pytest.raises(InvalidFilterError, match=r'write \["metrics.m DESC"\]'):
        sparktrack.search_runs(order_by="metrics.m DESC")
