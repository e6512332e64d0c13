"""The MLflow UI on a sparktrack store, in a real browser.

One ``mlflow server`` (one worker, the plugin's ``sparktrack:`` URI) serves a store that an
autologged CrossValidator, three plain runs and a registered model fill; headless Chromium
loads each page the UI has for that data and the tests assert on the rendered text: run names,
parameter and metric values, the child runs grouped under their parent, the alias and the stage,
and no error banner. Each page's screenshot goes to ``tests/output/ui/`` (gitignored).

Chromium and its driver come from Debian (``make test`` installs them). Missing, the tests
fail under CI (``CI`` set) and are skipped with the install command elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402

from browser import Browser, chromium_paths  # noqa: E402
from mlflow_server import REPO, MlflowServer, entry_point_folder  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SHOTS = REPO / "tests" / "output" / "ui"
MODEL = "cv-model"
BASELINES = {"baseline-b": 0.61, "baseline-a": 0.72, "baseline-c": 0.55}  # logged in this order
DESCRIPTION = "Tuning the regularisation of a logistic regression"


def _missing(reason: str):
    """Fail under CI, where `make test` installed everything; skip elsewhere, saying why."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    """Checked first (a session fixture, like ``spark``, and requested before it), so a machine
    without the browser does not start Spark and fit models for nothing."""
    try:
        import mlflow  # noqa: F401
        import selenium  # noqa: F401
    except ImportError as exc:
        _missing(f"{exc}: install the dev extra (`pip install -e '.[dev]'`).")
    try:
        return chromium_paths()
    except RuntimeError as exc:
        _missing(str(exc))


def _training_frame(spark):
    from pyspark.ml.feature import VectorAssembler

    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 2))
    label = (x[:, 0] + rng.normal(scale=0.8, size=60) > 0).astype(float)
    frame = spark.createDataFrame(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": label}))
    return VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(frame)


def _fit_autologged_cv(spark) -> None:
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    lr = LogisticRegression(maxIter=5)
    tuner = CrossValidator(
        estimator=lr,
        estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, [0.01, 5.0]).build(),
        evaluator=BinaryClassificationEvaluator(), numFolds=2, seed=7,
    )
    sparktrack.autolog()  # defaults: the best model is logged, so it can be registered
    try:
        tuner.fit(_training_frame(spark))
    finally:
        sparktrack.autolog(disable=True)


@pytest.fixture(scope="module")
def filled(chromium, spark, tmp_path_factory):
    """A store with an autologged CrossValidator (a parent, two children), three top-level
    runs with a ``score`` metric, and ``cv-model`` v1 (alias ``champion``, stage Staging)."""
    store = str(tmp_path_factory.mktemp("ui") / "store")
    sparktrack.set_tracking_uri(store)
    sparktrack.set_experiment("cv-demo")
    _fit_autologged_cv(spark)
    for name, score in BASELINES.items():
        time.sleep(0.01)  # distinct start times: the table's default order is by start time
        with sparktrack.start_run(run_name=name):
            sparktrack.log_param("kind", "baseline")
            sparktrack.log_metric("score", score)
    sparktrack.flush()

    client = TrackingClient(store)
    experiment = client.get_experiment_by_name("cv-demo")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    parent = next(r for r in runs.values()
                  if "mlflow.parentRunId" not in r.data.tags and r.info.run_name not in BASELINES)
    children = sorted((r for r in runs.values()
                       if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
                      key=lambda r: r.data.params["regParam"])
    assert len(children) == 2, sorted(runs)
    client.set_tag(parent.info.run_id, "mlflow.note.content", DESCRIPTION)
    version = client.register_model(f"runs:/{parent.info.run_id}/best_model", MODEL)
    client.set_registered_model_alias(MODEL, "champion", version.version)
    client.transition_model_version_stage(MODEL, version.version, "Staging")
    with open(client.download_artifacts(parent.info.run_id, "best_parameters.json")) as handle:
        best_parameters = json.load(handle)
    return {
        "store": store,
        "experiment_id": experiment.experiment_id,
        "parent": parent,
        "children": children,  # regParam 0.01, then 5.0
        "version": str(version.version),
        "best_parameters": best_parameters,
    }


@pytest.fixture(scope="module")
def server(filled, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    shim = entry_point_folder(folder / "entry-points")
    server = MlflowServer(f"sparktrack://{filled['store']}", shim=shim, workers=1,
                          log_path=folder / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(server):
    """The browser, on the server's origin, with MLflow's assistant panel closed (it opens on
    the first visit to a local server and would hide half of every screenshot)."""
    browser = Browser(shots=SHOTS, timeout=45)
    try:
        browser.base = server.url
        _forget_view_state(browser)
        yield browser
    finally:
        browser.close()


def _forget_view_state(page) -> None:
    """Start from the UI's defaults: the runs table keeps its sort and filter in the browser's
    storage, so a test that sorts would change what the next one sees."""
    page.open(f"{page.base}/health")  # same origin, outside the app: the next open reloads it
    page.driver.execute_script(
        "localStorage.clear(); sessionStorage.clear();"
        "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
        "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');")


def _go(page, route: str, *texts: str) -> str:
    """Open ``#/<route>`` afresh, wait until every one of ``texts`` is rendered, check no error
    shows; return the page text."""
    _forget_view_state(page)
    page.open(f"{page.base}/#/{route}")
    page.wait_text(*texts)
    return page.assert_no_errors()


def _js_number(value: float) -> str:
    """How the UI prints a metric value (JavaScript's number to string)."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def _assert_pair(text: str, key: str, value: str, *, regex: bool = False) -> None:
    """``key`` shown with ``value`` next to it (a table row or a tag)."""
    pattern = rf"(^|\s){re.escape(key)}\s+{value if regex else re.escape(value)}(\s|$)"
    assert re.search(pattern, text), f"{key} = {value} not shown: {text[:3000]!r}"


def _table_rows(page) -> list[str]:
    """The run names of the runs table, top to bottom (the pinned name column's rows)."""
    from selenium.webdriver.common.by import By

    rows = page.driver.find_elements(By.CSS_SELECTOR, ".ag-pinned-left-cols-container [row-id]")
    ordered = sorted(rows, key=lambda row: int(row.get_attribute("row-index")))
    names = []
    for row in ordered:
        links = row.find_elements(By.CSS_SELECTOR, "a[href*='/runs/']")
        names += [link.text for link in links if link.text]
    return names


def _wait_rows(page, expected: list[str], what: str) -> None:
    page.wait_for(lambda: _table_rows(page) == expected, what=f"{what}: rows {expected}")


# -- the pages, in the order a user meets them ---------------------------------------------------
def test_experiments_list(page, filled):
    _go(page, "experiments", "cv-demo", "Default")
    page.screenshot("01-experiments")


def test_runs_table_groups_child_runs_under_their_parent(page, filled):
    from selenium.webdriver.common.by import By

    parent, children = filled["parent"], filled["children"]
    _go(page, f"experiments/{filled['experiment_id']}/runs", parent.info.run_name,
        "6 matching runs")
    # Newest first; the children are folded under their parent.
    _wait_rows(page, ["baseline-c", "baseline-a", "baseline-b", parent.info.run_name],
               "the top-level runs")
    page.driver.find_element(
        By.CSS_SELECTOR, f".ag-pinned-left-cols-container [row-id='{parent.info.run_id}'] "
                         "button[data-component-id*='runnamecellrenderer']").click()
    names = page.wait_for(lambda: len(_table_rows(page)) == 6 and _table_rows(page),
                          what="the expanded parent")
    at = names.index(parent.info.run_name)
    assert sorted(names[at + 1:at + 3]) == sorted(c.info.run_name for c in children), names
    page.assert_no_errors(settle=0)
    page.screenshot("02-runs-table-nested")


def _sort_by(page, key: str, *, ascending: bool) -> None:
    from selenium.webdriver.common.by import By

    def open_menu():
        page.driver.find_element(By.XPATH, "//button[contains(., 'Sort:')]").click()
        return page.wait_css("[data-testid='sort-select-asc']")

    open_menu()
    page.driver.find_element(By.CSS_SELECTOR, f"[data-testid='sort-select-{key}']").click()
    open_menu()
    direction = "asc" if ascending else "desc"
    page.driver.find_element(By.CSS_SELECTOR, f"[data-testid='sort-select-{direction}']").click()
    page.wait_for(lambda: f"orderByAsc={str(ascending).lower()}" in page.driver.current_url
                  and "score" in page.driver.current_url, what=f"sort by {key} {direction}")


def test_runs_table_sorts_by_a_metric(page, filled):
    _go(page, f"experiments/{filled['experiment_id']}/runs", "baseline-a")
    by_score = sorted(BASELINES, key=BASELINES.get)
    _sort_by(page, "score", ascending=True)
    page.wait_for(lambda: _table_rows(page)[:3] == by_score, what=f"ascending {by_score}")
    _sort_by(page, "score", ascending=False)
    page.wait_for(lambda: _table_rows(page)[:3] == by_score[::-1],
                  what=f"descending {by_score[::-1]}")
    page.assert_no_errors(settle=0)
    page.screenshot("03-runs-table-sorted")


def _search(page, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = page.wait_css("input[data-testid='search-box']")[0]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text, Keys.ENTER)


def test_runs_table_search_box_filters(page, filled):
    _go(page, f"experiments/{filled['experiment_id']}/runs", "baseline-a")
    _search(page, "metrics.score > 0.6")
    _wait_rows(page, ["baseline-a", "baseline-b"], "runs with score > 0.6")
    page.wait_text("2 matching runs")
    # A filter on the children's parameter keeps the parent as the group of the one child.
    parent = filled["parent"]
    _search(page, "params.regParam = '5.0'")
    _wait_rows(page, [parent.info.run_name], "the parent of the matching child")
    page.assert_no_errors()
    page.screenshot("04-runs-table-filtered")


def test_run_page(page, filled):
    parent = filled["parent"]
    text = _go(page, f"experiments/{filled['experiment_id']}/runs/{parent.info.run_id}",
               parent.info.run_name, DESCRIPTION, "Parameters", "Registered models", MODEL,
               f"v{filled['version']}")
    params = parent.data.params
    _assert_pair(text, "numFolds", params["numFolds"])
    _assert_pair(text, "seed", params["seed"])
    _assert_pair(text, "estimator_name", ":\\s*CrossValidator", regex=True)  # a tag
    metric, value = sorted(parent.data.metrics.items())[0]
    _assert_pair(text, metric, _js_number(value))
    for child in filled["children"]:
        assert child.info.run_name in text  # "Child runs"
    page.screenshot("05-run-page")


def test_child_run_page_shows_its_values(page, filled):
    child = filled["children"][1]
    metric = child.data.metrics["avg_areaUnderROC"]
    text = _go(page, f"experiments/{filled['experiment_id']}/runs/{child.info.run_id}",
               child.info.run_name, "avg_areaUnderROC", _js_number(metric))
    _assert_pair(text, "regParam", "5.0")
    assert filled["parent"].info.run_name in text  # the parent link


def test_metric_chart_shows_the_history(page, filled):
    child = filled["children"][0]
    _go(page, f"experiments/{filled['experiment_id']}/runs/{child.info.run_id}/model-metrics",
        "fold_areaUnderROC", "Step", f"{child.info.run_name} (fold_areaUnderROC)")
    page.wait_css(".js-plotly-plot, svg.main-svg, canvas")
    page.screenshot("06-metric-charts")


def test_artifacts_tree_and_file_preview(page, filled):
    from selenium.webdriver.common.by import By

    parent = filled["parent"]
    _go(page, f"experiments/{filled['experiment_id']}/runs/{parent.info.run_id}/artifacts",
        "best_model", "best_parameters.json", "search_results.csv")
    page.driver.find_element(By.XPATH, "//*[normalize-space(text())='best_parameters.json']"
                             ).click()
    key = next(iter(filled["best_parameters"]))
    page.wait_text(key)
    page.assert_no_errors()
    page.screenshot("07-artifacts-preview")


def test_compare_runs(page, filled):
    first, second = filled["children"]
    runs = json.dumps([first.info.run_id, second.info.run_id], separators=(",", ":"))
    experiments = json.dumps([filled["experiment_id"]], separators=(",", ":"))
    text = _go(page, f"compare-runs?runs={runs}&experiments={experiments}",
               "Comparing 2 Runs", first.info.run_name, second.info.run_name)
    assert re.search(r"regParam\s+0\.01\s+5\.0|regParam\s+5\.0\s+0\.01", text), text[:2000]
    page.screenshot("08-compare-runs")


def test_registered_models_list(page, filled):
    text = _go(page, "models", MODEL, f"Version {filled['version']}", "champion")
    assert re.search(r"@\s*champion", text), text[:3000]
    page.screenshot("09-registered-models")


def test_model_page_shows_the_alias(page, filled):
    text = _go(page, f"models/{MODEL}", MODEL, f"Version {filled['version']}", "champion")
    assert re.search(r"@\s*champion", text), text[:3000]
    page.screenshot("10-model-page")


def test_version_page_shows_stage_alias_and_source_run(page, filled):
    text = _go(page, f"models/{MODEL}/versions/{filled['version']}",
               f"Version {filled['version']}", "Staging", "champion",
               filled["parent"].info.run_name)
    assert re.search(r"Stage[^\n]*\n:\n?Staging", text), text[:2000]
    page.screenshot("11-model-version")


def test_traces_and_logged_models_tabs_show_empty_states(page, filled):
    experiment = filled["experiment_id"]
    _go(page, f"experiments/{experiment}/traces", "Traces")
    page.screenshot("12-traces-empty")
    _go(page, f"experiments/{experiment}/models", "Create version")
    page.screenshot("13-logged-models-empty")


def test_server_answered_every_request_without_a_server_error(page, server):
    time.sleep(1)  # the last page's late requests
    failures = [line for line in server.output().splitlines()
                if re.search(r'" 5\d\d ', line)]
    assert not failures, "\n".join(failures[:20])
