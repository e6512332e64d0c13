"""The data source's planning (on the driver) reads Delta logs only: input partitions carry
file lists and the executors read the data files. Proved without Spark by planning a store
whose data files are gone: planning still succeeds and hands out every file, and reading the
tasks is what fails."""

from __future__ import annotations

import glob
import os
import shutil

import pytest

from sparktrack import TrackingClient
from sparktrack.spark import _reader as reader

TABLES = sorted(reader.OUTPUT_SCHEMAS)


@pytest.fixture()
def store(tmp_path):
    """Runs in two experiments (one deleted, one deleted and restored), metrics, params,
    tags, an input, a registered model with an alias; one flush per run."""
    from sparktrack.entities import Dataset, DatasetInput

    root = str(tmp_path / "store")
    client = TrackingClient(root)
    experiments = [client.create_experiment("alpha"), client.create_experiment("beta")]
    runs = []
    for index in range(4):
        run_id = client.create_run(experiments[index % 2]).info.run_id
        client.log_metric(run_id, "loss", float(index), step=0)
        client.log_param(run_id, "lr", str(index))
        client.set_tag(run_id, "stage", "x")
        client.set_terminated(run_id)
        client.flush()
        runs.append(run_id)
    client.log_inputs(runs[0], [DatasetInput(Dataset("train", "ab12", "spark", "{}"))])
    client.delete_run(runs[1])
    client.delete_run(runs[2])
    client.restore_run(runs[2])
    client.create_registered_model("churn")
    client.create_model_version("churn", f"{root}/model", run_id=runs[0])
    client.set_registered_model_alias("churn", "champion", 1)
    client.flush()
    return root, runs


def _data_files(root: str, table: str) -> set[str]:
    folder = os.path.join(root, table)
    return {os.path.relpath(path, folder)
            for path in glob.glob(os.path.join(folder, "**", "*.parquet"), recursive=True)
            if "_delta_log" not in path}


def _remove_data_files(root: str, *, keep: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Delete every data file of every table but ``keep`` (the Delta logs stay); return what
    each table had."""
    had = {}
    for table in sorted(os.listdir(root)):
        if not os.path.isdir(os.path.join(root, table, "_delta_log")):
            continue
        had[table] = _data_files(root, table)
        if table not in keep:
            for path in had[table]:
                os.remove(os.path.join(root, table, path))
    shutil.rmtree(os.path.join(root, "_search_state"), ignore_errors=True)
    return had


def _planned(opts) -> dict[str, set[str]]:
    files: dict[str, set[str]] = {}
    for task in reader.plan(opts):
        for file in [*task.files, *task.run_files]:
            files.setdefault(file.table, set()).add(file.path)
    return files


@pytest.mark.parametrize("table", TABLES)
def test_planning_opens_no_data_file(store, table):
    root, _ = store
    opts = reader.parse_options({"path": root, "table": table})
    expected = _planned(opts)
    had = _remove_data_files(root)
    planned = _planned(opts)  # would raise if planning opened a data file
    assert planned == expected
    for raw, paths in planned.items():
        assert paths and paths <= had[raw]
    with pytest.raises(Exception):  # the executors' part needs the files
        for task in reader.plan(opts):
            list(reader.read_task(opts, task))


@pytest.mark.parametrize("table", ["runs", "metrics", "params", "tags", "inputs",
                                   "metric_summaries"])
def test_planning_a_query_for_some_runs_opens_no_data_file(store, table):
    root, runs = store
    opts = reader.parse_options({"path": root, "table": table}).with_conditions(
        [("in", "run_id", (runs[0], runs[1]))])
    expected = _planned(opts)
    _remove_data_files(root)
    assert _planned(opts) == expected


def test_experiment_names_read_only_the_experiments_table(store):
    root, _ = store
    opts = reader.parse_options({"path": root, "table": "metrics", "experiment_names": "beta"})
    expected = _planned(opts)
    _remove_data_files(root, keep=("experiments",))  # names become ids there
    assert _planned(opts) == expected


def _read(opts) -> list[dict]:
    return [row for task in reader.plan(opts) for batch in reader.read_task(opts, task)
            for row in batch.to_pylist()]


@pytest.mark.parametrize("table", ["metrics", "params", "tags", "metric_summaries"])
def test_executors_leave_out_the_runs_deleted_now(store, table):
    root, runs = store  # runs[1] deleted, runs[2] deleted then restored
    opts = reader.parse_options({"path": root, "table": table})
    assert {row["run_id"] for row in _read(opts)} == {runs[0], runs[2], runs[3]}
    everything = reader.parse_options({"path": root, "table": table, "include_deleted": "true"})
    assert {row["run_id"] for row in _read(everything)} == set(runs)
    for run_id, found in ((runs[1], set()), (runs[2], {runs[2]})):
        one = opts.with_conditions([("=", "run_id", run_id)])
        assert {row["run_id"] for row in _read(one)} == found


def test_only_experiments_with_a_deletion_hand_out_runs_files(tmp_path):
    root = str(tmp_path / "store")
    client = TrackingClient(root)
    kept, touched = client.create_experiment("kept"), client.create_experiment("touched")
    runs = {}
    for experiment in (kept, touched, touched):
        run_id = client.create_run(experiment).info.run_id
        client.log_metric(run_id, "loss", 1.0)
        client.flush()
        runs.setdefault(experiment, []).append(run_id)
    opts = reader.parse_options({"path": root, "table": "metrics", "minPartitions": "8"})
    assert all(not task.run_files for task in reader.plan(opts))  # nothing deleted: no reads
    client.delete_run(runs[touched][0])
    client.flush()
    for task in reader.plan(opts):
        owners = {file.experiment_id for file in task.files}
        assert bool(task.run_files) == (touched in owners)
        assert {file.experiment_id for file in task.run_files} <= {touched}
    assert {row["run_id"] for row in _read(opts)} == {runs[kept][0], runs[touched][1]}
