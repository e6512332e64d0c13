"""`sparktrack export`: one experiment back into MLflow through MLflow's client, compared with
the store it came from (run ids are new in MLflow and mapped in the summary)."""

from __future__ import annotations

import math
import os

import pytest

pytest.importorskip("mlflow")

from sparktrack import TrackingClient  # noqa: E402
from sparktrack.cli import main  # noqa: E402
from sparktrack.errors import ExperimentNotFoundError, InvalidInputError  # noqa: E402
from sparktrack._transfer import import_mlflow  # noqa: E402
from sparktrack._transfer.exporter import export_experiment  # noqa: E402
from test_transfer_import import artifact_file, fill_mlflow  # noqa: E402, F401


@pytest.fixture(scope="module")
def imported(tmp_path_factory, artifact_file):  # noqa: F811
    """A store holding what MLflow's client logged (the round trip's start)."""
    folder = tmp_path_factory.mktemp("export_source")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        ids = fill_mlflow(f"sqlite:///{folder}/mlflow.db", artifact_file)
    finally:
        os.chdir(cwd)
    store = str(folder / "store")
    import_mlflow(f"sqlite:///{folder}/mlflow.db", store_uri=store, progress=False)
    return store, ids


def test_export_round_trip_of_one_experiment(imported, tmp_path):
    from mlflow import MlflowClient

    store, ids = imported
    target = f"sqlite:///{tmp_path}/exported.db"
    summary = export_experiment("churn", to_uri=target, store_uri=store, progress=False)

    ours = TrackingClient(store)
    theirs = MlflowClient(tracking_uri=target)
    experiment = theirs.get_experiment(summary.experiment_id)
    assert (experiment.name, experiment.tags) == ("churn", {"team": "ml", "nested/key": "x"})
    assert set(summary.runs) == {ids["parent"], *ids["children"], ids["deleted"]}
    for old, new in summary.runs.items():
        mine, exported = ours.get_run(old), theirs.get_run(new)
        for name in ("run_name", "status", "start_time", "end_time", "lifecycle_stage"):
            assert getattr(exported.info, name) == getattr(mine.info, name), name
        assert exported.data.params == mine.data.params
        parent = mine.data.tags.get("mlflow.parentRunId")
        expected_tags = {**mine.data.tags, **(
            {"mlflow.parentRunId": summary.runs[parent]} if parent else {})}
        assert exported.data.tags == expected_tags
        for key in mine.data.metrics:
            history = sorted((m.step, m.timestamp, m.value)
                             for m in ours.get_metric_history(old, key))
            back = sorted((m.step, m.timestamp, m.value)
                          for m in theirs.get_metric_history(new, key))
            assert [(s, t) for s, t, _ in back] == [(s, t) for s, t, _ in history]
            assert all(a == b or (math.isnan(a) and math.isnan(b))
                       for (_, _, a), (_, _, b) in zip(back, history, strict=True))
    new_parent = summary.runs[ids["parent"]]
    assert [f.path for f in theirs.list_artifacts(new_parent, "reports")] == [
        "reports/report.txt"]
    children = theirs.search_runs([summary.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{new_parent}'")
    assert len(children) == 2
    assert all(line in "\n".join(summary.lines()) for line in (
        f"{ids['parent']} -> {new_parent}",))


def test_export_by_id_through_the_cli(imported, tmp_path, capsys):
    store, ids = imported
    target = f"sqlite:///{tmp_path}/cli.db"
    assert main(["--store", store, "export", "--to", target, "--experiment", ids["experiment"],
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{ids['parent']} -> " in out and "runs 4," in out


def test_exporting_an_unknown_experiment_names_it(imported, tmp_path):
    store, _ = imported
    with pytest.raises(ExperimentNotFoundError, match="no-such-experiment.*experiments list"):
        export_experiment("no-such-experiment", to_uri=f"sqlite:///{tmp_path}/x.db",
                          store_uri=store, progress=False)


def test_an_mlflow_refusal_is_a_typed_error_naming_the_destination(imported, tmp_path):
    store, _ = imported
    with pytest.raises(InvalidInputError, match="nosuchscheme://x.*refused"):
        export_experiment("churn", to_uri="nosuchscheme://x", store_uri=store, progress=False)
