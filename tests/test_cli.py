"""The ``sparktrack`` command end to end: every subcommand in-process through ``main``, one
real run of the installed console script, ``--help`` everywhere, and errors as one line on
stderr with exit 1 (refused) or 2 (usage).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from sparktrack import TrackingClient
from sparktrack.cli import main, parse_duration, parse_time_millis
from sparktrack.entities import Metric, Param, RunTag

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def cli(store_uri, capsys):
    """Run ``sparktrack --store <store> ARGS``; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--store", store_uri, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture()
def client(store_uri):
    return TrackingClient(store_uri)


@pytest.fixture()
def runs(client):
    """Experiment 'cli' with three finished runs started at 2025-01-01, -02 and -03 (UTC)."""
    experiment = client.create_experiment("cli")
    ids = {}
    for day, (model, lr, rmse) in enumerate(
        [("gbt", 0.1, 0.9), ("rf", 0.01, 0.5), ("gbt", 0.05, 0.7)], start=1
    ):
        start = int(datetime(2025, 1, day, tzinfo=timezone.utc).timestamp() * 1000)
        run_id = client.create_run(experiment, run_name=f"run{day}", start_time=start).info.run_id
        client.log_batch(
            run_id,
            params=[Param("model", model), Param("lr", lr), Param("seed", 7)],
            metrics=[Metric("rmse", rmse, start, 0), Metric("r2", 1 - rmse, start, 0)],
            tags=[RunTag("team", "=cmd|' /C calc'!A0")],
        )
        client.set_terminated(run_id, end_time=start + 60_000)
        ids[f"run{day}"] = run_id
    client.flush()
    ids["experiment"] = experiment
    return ids


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _stage(client: TrackingClient, run_id: str) -> str:
    return client.get_run_info(run_id).lifecycle_stage


# -- the installed entry point -----------------------------------------------------------------
def test_installed_console_script_searches_the_store(store_uri, runs):
    script = os.path.join(os.path.dirname(sys.executable), "sparktrack")
    assert os.access(script, os.X_OK), f"console script missing: {script}"
    done = subprocess.run(
        [script, "--store", store_uri, "runs", "search", "--experiment-name", "cli",
         "--filter", "params.model = 'gbt' AND metrics.rmse < 0.8"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert runs["run3"] in done.stdout
    assert runs["run1"] not in done.stdout and runs["run2"] not in done.stdout
    assert "(1 runs)" in done.stdout


# -- --help ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ([], ["experiments", "runs", "gc", "maintain", "--store"]),
        (["experiments"], ["list", "create", "delete", "restore"]),
        (["experiments", "list"], ["--view", "--filter", "--order-by", "--max-results"]),
        (["experiments", "create"], ["name", "--artifact-location", "--tag"]),
        (["experiments", "delete"], ["experiment_id"]),
        (["experiments", "restore"], ["experiment_id"]),
        (["runs"], ["search", "delete", "restore", "compare"]),
        (["runs", "search"], ["--filter", "--order-by", "--experiment-id", "--experiment-name",
                              "--view", "--max-results", "--csv"]),
        (["runs", "delete"], ["run_ids", "--experiment-id", "--before", "--max-runs", "--only"]),
        (["runs", "restore"], ["run_ids", "--experiment-id", "--after", "--max-runs", "--only"]),
        (["runs", "compare"], ["run_ids", "--hide-identical", "--plot"]),
        (["gc"], ["--older-than", "--experiment-id"]),
        (["maintain"], []),
    ],
)
def test_help_of_every_command(capsys, command, mentions):
    assert main([*command, "--help"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: sparktrack {' '.join(command)}".rstrip())
    for word in mentions:
        assert word in out, word
    assert err == ""


# -- experiments -------------------------------------------------------------------------------
def test_experiments_create_list_delete_restore(cli, client):
    code, out, _ = cli("experiments", "create", "churn", "--tag", "team=ml", "--tag", "q=a=b")
    assert code == 0
    experiment_id = out.strip()
    experiment = client.get_experiment(experiment_id)
    assert experiment.name == "churn"
    assert experiment.tags == {"team": "ml", "q": "a=b"}

    code, out, _ = cli("experiments", "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["experiment_id", "name", "stage", "created", "updated"]
    assert any(line.split()[:3] == [experiment_id, "churn", "active"] for line in out.splitlines())

    code, out, _ = cli("experiments", "delete", experiment_id)
    assert code == 0 and "deleted" in out
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert experiment_id not in cli("experiments", "list")[1]
    assert experiment_id in cli("experiments", "list", "--view", "deleted")[1]
    assert experiment_id in cli("experiments", "list", "--view", "all")[1]

    code, out, _ = cli("experiments", "restore", experiment_id)
    assert code == 0 and "restored" in out
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"


def test_experiments_create_with_artifact_location(cli, client, tmp_path):
    code, out, _ = cli("experiments", "create", "located", "--artifact-location",
                       str(tmp_path / "art"))
    assert code == 0
    assert client.get_experiment(out.strip()).artifact_location == str(tmp_path / "art")


def test_experiments_errors_are_one_line(cli, runs):
    code, out, err = cli("experiments", "create", "cli")
    assert code == 1 and out == ""
    assert "'cli' already exists" in _one_line_error(err)
    code, _, err = cli("experiments", "delete", "424242")
    assert code == 1 and "424242" in _one_line_error(err)
    code, _, err = cli("experiments", "restore", runs["experiment"])
    assert code == 1 and "already active" in _one_line_error(err)
    code, _, err = cli("experiments", "create", "x", "--tag", "novalue")
    assert code == 2 and "KEY=VALUE" in _one_line_error(err)
    code, _, err = cli("experiments", "list", "--view", "gone")
    assert code == 2 and "--view" in _one_line_error(err)


def test_experiments_list_filter_order_and_max_results(cli, client):
    for name, team in (("churn-a", "ml"), ("churn-b", "data"), ("fraud", "ml")):
        client.create_experiment(name, tags={"team": team})

    def listed(*args):
        code, out, err = cli("experiments", "list", *args)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["experiment_id", "name", "stage", "created", "updated"]
        return [line.split()[1] for line in lines[1:-1]], lines[-1]

    assert listed("--filter", "name LIKE 'churn%'", "--order-by", "name") == (
        ["churn-a", "churn-b"], "(2 experiments)")
    assert listed("--filter", "tags.team = 'ml'", "--order-by", "name DESC") == (
        ["fraud", "churn-a"], "(2 experiments)")
    assert listed("--filter", "tags.team = 'ml' OR name = 'churn-b'", "--order-by",
                  "creation_time ASC") == (["churn-a", "churn-b", "fraud"], "(3 experiments)")
    assert listed("--order-by", "name", "--max-results", "1") == (
        ["churn-a"], "(1 experiment of 3; raise --max-results to see more)")
    assert listed("--filter", "name = 'nope'") == ([], "(0 experiments)")
    assert listed()[0] == ["fraud", "churn-b", "churn-a"]  # newest first by default
    fraud = client.get_experiment_by_name("fraud").experiment_id
    client.delete_experiment(fraud)
    assert listed("--view", "deleted", "--filter", "tags.team = 'ml'") == (
        ["fraud"], "(1 experiment)")


def test_experiments_list_refusals_are_one_line(cli):
    code, out, err = cli("experiments", "list", "--filter", "metrics.acc > 1")
    line = _one_line_error(err)
    assert code == 1 and out == ""
    assert 'Invalid filter clause "metrics.acc > 1"' in line and "search_runs" in line
    code, _, err = cli("experiments", "list", "--order-by", "tags.team")
    line = _one_line_error(err)
    assert code == 1 and "cannot be ordered by tags.team" in line
    code, _, err = cli("experiments", "list", "--filter", "name = 'a'\nOR name = 'b")
    assert code == 1 and "never closed" in _one_line_error(err)
    for bad in ("0", "-3", "many"):
        code, _, err = cli("experiments", "list", "--max-results", bad)
        assert code == 2 and "--max-results" in _one_line_error(err)


# -- runs search -------------------------------------------------------------------------------
def test_runs_search_prints_runs_newest_first(cli, runs):
    code, out, _ = cli("runs", "search", "--experiment-id", runs["experiment"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run_id", "name", "status", "started"]
    assert [line.split()[0] for line in lines[1:4]] == [runs["run3"], runs["run2"], runs["run1"]]
    assert "2025-01-03 00:00:00" in lines[1]
    assert "rmse=0.7" in lines[1] and "FINISHED" in lines[1]
    assert lines[-1] == "(3 runs)"


def test_runs_search_filter_order_and_limits(cli, runs):
    def ids(*args: str) -> list[str]:
        code, out, err = cli("runs", "search", "--experiment-name", "cli", *args)
        assert code == 0, err
        return [line.split()[0] for line in out.splitlines()[1:-1]]

    assert ids("--filter", "params.model = 'gbt'") == [runs["run3"], runs["run1"]]
    assert ids("--filter", "metrics.rmse < 0.8 OR params.lr = 0.1") == [
        runs["run3"], runs["run2"], runs["run1"]]
    assert ids("--order-by", "metrics.rmse ASC") == [runs["run2"], runs["run3"], runs["run1"]]
    assert ids("--order-by", "params.model DESC", "--order-by", "metrics.rmse") == [
        runs["run2"], runs["run3"], runs["run1"]]
    assert ids("--max-results", "1", "--order-by", "metrics.r2 DESC") == [runs["run2"]]
    assert ids("--filter", "attributes.run_name = 'run1'") == [runs["run1"]]
    assert ids("--view", "deleted") == []


def test_runs_search_without_experiment_searches_all(cli, client, runs):
    other = client.create_experiment("other")
    run_id = client.create_run(other, run_name="elsewhere").info.run_id
    code, out, _ = cli("runs", "search")
    assert code == 0
    assert run_id in out and runs["run1"] in out
    assert out.splitlines()[-1] == "(4 runs)"
    code, out, _ = cli("runs", "search", "--experiment-id", other)
    assert run_id in out and runs["run1"] not in out


def test_runs_search_csv(cli, runs, tmp_path):
    target = tmp_path / "out" / "runs.csv"
    target.parent.mkdir()
    code, out, _ = cli("runs", "search", "--experiment-name", "cli", "--order-by",
                       "metrics.rmse", "--csv", str(target))
    assert code == 0
    assert out.strip() == f"Wrote 3 runs to {target}"
    with open(target, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header[:8] == ["Start Time", "Duration", "Run ID", "Name", "Source Type",
                          "Source Name", "User", "Status"]
    assert {"model", "lr", "rmse", "r2", "team"} <= set(header)
    assert [row[2] for row in rows[1:]] == [runs["run2"], runs["run3"], runs["run1"]]
    team = rows[1][header.index("team")]
    assert team.startswith("'="), team  # formula injection guarded


def test_runs_search_csv_to_a_missing_folder_is_one_line(cli, runs, tmp_path):
    code, out, err = cli("runs", "search", "--csv", str(tmp_path / "no" / "such" / "x.csv"))
    assert code == 1 and out == ""
    assert "x.csv" in _one_line_error(err)


def test_runs_search_bad_filter_quotes_the_clause(cli, runs):
    code, out, err = cli("runs", "search", "--filter", "params.model = 'gbt' AND metrics.rmse = 'low'")
    assert code == 1 and out == ""
    line = _one_line_error(err)
    assert line.startswith("sparktrack: error: ")
    assert "metrics.rmse = 'low'" in line


def test_runs_search_bad_filter_with_a_newline_is_still_one_line(cli, runs):
    code, _, err = cli("runs", "search", "--filter", "params.model = 'gbt'\nAND bogus")
    assert code == 1
    _one_line_error(err)


def test_runs_search_refusals(cli, runs):
    code, _, err = cli("runs", "search", "--experiment-name", "nope")
    assert code == 1 and "nope" in _one_line_error(err)
    code, _, err = cli("runs", "search", "--max-results", "0")
    assert code == 1 and "max_results" in _one_line_error(err)
    code, _, err = cli("runs", "search", "--max-results", "many")
    assert code == 2 and "--max-results" in _one_line_error(err)
    code, _, err = cli("runs", "search", "--order-by", "metrics.rmse UP")
    line = _one_line_error(err)
    assert code == 1 and "order_by" in line and "UP" in line


# -- runs delete / restore ---------------------------------------------------------------------
def test_runs_delete_and_restore_by_id_with_descendants(cli, client, runs):
    child = client.create_run(runs["experiment"], run_name="child",
                              parent_run_id=runs["run1"]).info.run_id
    code, out, _ = cli("runs", "delete", runs["run1"], runs["run2"])
    assert code == 0 and out.strip() == "Deleted 3 run(s) (2 given, 1 nested)."
    assert _stage(client, runs["run1"]) == _stage(client, child) == "deleted"
    assert _stage(client, runs["run2"]) == "deleted"
    code, out, _ = cli("runs", "search", "--experiment-name", "cli", "--view", "deleted")
    assert out.splitlines()[-1] == "(3 runs)"

    code, out, _ = cli("runs", "restore", runs["run1"], "--only")
    assert code == 0 and out.strip() == "Restored 1 run(s)."
    assert _stage(client, runs["run1"]) == "active" and _stage(client, child) == "deleted"
    code, out, _ = cli("runs", "restore", runs["run1"], runs["run2"])
    assert code == 0
    assert out.strip() == ("Restored 2 run(s) (1 given, 1 nested). 1 given run(s) were already "
                           "active.")
    assert {_stage(client, r) for r in (runs["run1"], runs["run2"], child)} == {"active"}


def test_runs_delete_and_restore_count_nested_runs_at_every_depth(cli, client, runs):
    child = client.create_run(runs["experiment"], parent_run_id=runs["run1"]).info.run_id
    grandchild = client.create_run(runs["experiment"], parent_run_id=child).info.run_id
    code, out, _ = cli("runs", "delete", runs["run1"])
    assert code == 0 and out.strip() == "Deleted 3 run(s) (1 given, 2 nested)."
    assert _stage(client, grandchild) == "deleted"
    code, out, _ = cli("runs", "delete", runs["run1"], child)
    assert code == 0
    assert out.strip() == "Deleted 0 run(s). 2 given run(s) were already deleted."
    code, out, _ = cli("runs", "restore", child)  # the child and its own nested run
    assert code == 0 and out.strip() == "Restored 2 run(s) (1 given, 1 nested)."
    assert _stage(client, runs["run1"]) == "deleted" and _stage(client, grandchild) == "active"
    code, out, _ = cli("runs", "restore", runs["run1"], child)
    assert code == 0
    assert out.strip() == "Restored 1 run(s). 1 given run(s) were already active."


def test_runs_delete_only_leaves_children(cli, client, runs):
    child = client.create_run(runs["experiment"], run_name="child",
                              parent_run_id=runs["run1"]).info.run_id
    assert cli("runs", "delete", "--only", runs["run1"])[0] == 0
    assert _stage(client, runs["run1"]) == "deleted" and _stage(client, child) == "active"


def test_runs_delete_and_restore_in_bulk_by_time(cli, client, runs):
    code, out, _ = cli("runs", "delete", "--experiment-id", runs["experiment"],
                       "--before", "2025-01-02")
    assert code == 0 and out.strip() == "Deleted 2 run(s)."  # at or before midnight of the 2nd
    assert _stage(client, runs["run3"]) == "active"
    assert _stage(client, runs["run1"]) == _stage(client, runs["run2"]) == "deleted"

    cut = client.get_run_info(runs["run1"]).deleted_time
    code, out, _ = cli("runs", "restore", "--experiment-id", runs["experiment"],
                       "--after", str(cut), "--max-runs", "1")
    assert code == 0 and out.strip() == "Restored 1 run(s)."
    code, out, _ = cli("runs", "restore", "--experiment-id", runs["experiment"],
                       "--after", "2000-01-01T00:00:00+00:00")
    assert code == 0 and out.strip() == "Restored 1 run(s)."
    assert {_stage(client, runs[r]) for r in ("run1", "run2", "run3")} == {"active"}

    ms = int(datetime(2025, 1, 3, tzinfo=timezone.utc).timestamp() * 1000)
    code, out, _ = cli("runs", "delete", "--experiment-id", runs["experiment"],
                       "--before", str(ms), "--max-runs", "2")
    assert code == 0 and out.strip() == "Deleted 2 run(s)."
    assert _stage(client, runs["run3"]) == "active"  # the two oldest went


def test_runs_delete_and_restore_errors(cli, runs):
    code, _, err = cli("runs", "delete")
    assert code == 2 and "--before" in _one_line_error(err)
    code, _, err = cli("runs", "restore", "--experiment-id", runs["experiment"])
    assert code == 2 and "--after" in _one_line_error(err)
    code, _, err = cli("runs", "delete", "--experiment-id", runs["experiment"],
                       "--before", "yesterday")
    assert code == 2 and "invalid time 'yesterday'" in _one_line_error(err)
    code, _, err = cli("runs", "delete", "--experiment-id", runs["experiment"],
                       "--before", "2025-01-05", "--max-runs", "10001")
    assert code == 1 and "max_runs" in _one_line_error(err)
    code, _, err = cli("runs", "delete", "--experiment-id", "999", "--before", "2025-01-05")
    assert code == 1 and "999" in _one_line_error(err)
    code, _, err = cli("runs", "delete", "0" * 32)
    assert code == 1 and "0" * 32 in _one_line_error(err)
    code, _, err = cli("runs", "restore", "not-a-run-id")
    assert code == 1
    _one_line_error(err)


# -- runs compare ------------------------------------------------------------------------------
def test_runs_compare_table(cli, runs):
    code, out, _ = cli("runs", "compare", runs["run1"], runs["run2"], runs["run3"])
    assert code == 0
    assert "model" in out and "rmse" in out and "seed" in out
    code, out, _ = cli("runs", "compare", runs["run1"], runs["run2"], "--hide-identical")
    assert code == 0
    assert "model" in out and "seed" not in out


def test_runs_compare_writes_png_plots(cli, runs, tmp_path):
    folder = tmp_path / "plots"
    code, out, _ = cli("runs", "compare", runs["run1"], runs["run2"], runs["run3"],
                       "--plot", str(folder))
    assert code == 0
    written = sorted(folder.glob("*.png"))
    assert written, out
    assert any(p.name.startswith("parallel_coordinates") for p in written)
    for path in written:
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert f"Wrote {path}" in out


def test_runs_compare_errors(cli, runs):
    code, _, err = cli("runs", "compare", runs["run1"], "f" * 32)
    assert code == 1 and "f" * 32 in _one_line_error(err)
    code, _, err = cli("runs", "compare")
    assert code == 2
    _one_line_error(err)


# -- gc and maintain ---------------------------------------------------------------------------
def test_gc_older_than_0s_removes_deleted_runs(cli, client, runs, store_uri):
    from deltalake import DeltaTable

    client.log_text(runs["run1"], "weights", "model.txt")
    artifacts = client.get_run_info(runs["run1"]).artifact_uri
    assert cli("runs", "delete", runs["run1"])[0] == 0

    code, out, _ = cli("gc")  # default 30d: a run deleted just now stays
    assert code == 0 and out.startswith("Removed 0 run(s)")
    assert _stage(client, runs["run1"]) == "deleted"

    code, out, _ = cli("gc", "--older-than", "0s")
    assert code == 0 and out.startswith("Removed 1 run(s) for good")
    for table in ("runs", "params", "metrics", "tags", "metric_summaries"):
        ids = set(DeltaTable(os.path.join(store_uri, table)).to_pyarrow_table()
                  .column("run_id").to_pylist())
        assert runs["run1"] not in ids and runs["run2"] in ids, table
    assert not os.path.exists(artifacts)
    code, out, _ = cli("runs", "search", "--view", "all", "--experiment-name", "cli")
    assert out.splitlines()[-1] == "(2 runs)"


def test_gc_with_experiment_id_limits_the_scope(cli, client, runs):
    other = client.create_experiment("other")
    elsewhere = client.create_run(other, run_name="elsewhere").info.run_id
    client.delete_run(elsewhere)
    client.delete_run(runs["run1"])
    code, out, _ = cli("gc", "--older-than", "0s", "--experiment-id", other)
    assert code == 0 and out.startswith("Removed 1 run(s)")
    assert _stage(client, runs["run1"]) == "deleted"


@pytest.mark.parametrize("duration", ["3x", "30", "d", "-1d", ""])
def test_gc_bad_duration_is_a_usage_error(cli, duration):
    code, out, err = cli("gc", f"--older-than={duration}")
    assert code == 2 and out == ""
    line = _one_line_error(err)
    assert line.startswith("sparktrack gc: error: argument --older-than: invalid duration")


@pytest.mark.skipif(importlib.util.find_spec("sparktrack.maintenance") is None,
                    reason="sparktrack.maintenance is not written yet")
def test_maintain_runs(cli, client, runs):
    client.update_run(runs["run1"], name="renamed")
    client.flush()  # a second commit: the runs table now holds two small files
    code, out, err = cli("maintain")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["table", "files", "rewritten", "checkpoint", "vacuumed"]
    rows = {line.split()[0]: line for line in lines[1:-2]}
    assert {"experiments", "runs", "params", "metrics", "tags", "metric_summaries"} <= rows.keys()
    runs_row = rows["runs"].split()
    assert runs_row[1:4] == ["2", "->", "1"]
    assert "B ->" in rows["runs"] and rows["runs"].rstrip().endswith("0 file(s)")
    assert lines[-2] == "runs_latest rewritten with 3 run(s)."
    assert lines[-1].startswith("Done in ") and lines[-1].endswith(" s.")
    assert "MaintenanceReport(" not in out

    code, out, err = cli("maintain")  # nothing left to compact
    assert code == 0, err
    runs_row = next(line for line in out.splitlines() if line.startswith("runs ")).split()
    assert runs_row[1:5] == ["1", "->", "1", "-"]


def test_unknown_command_and_missing_command(cli):
    code, _, err = cli("frobnicate")
    assert code == 2 and "frobnicate" in _one_line_error(err)
    code, _, err = cli()
    assert code == 2
    _one_line_error(err)
    code, _, err = cli("runs")
    assert code == 2
    _one_line_error(err)


# -- argument parsers --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("15m", 900), ("90s", 90), ("2w", 1209600),
     ("0s", 0), ("1.5h", 5400), (" 7d ", 7 * 86400)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("text", "millis"),
    [("0", 0), ("1735689600000", 1735689600000), ("2025-01-01", 1735689600000),
     ("2025-01-01T01:00:00", 1735693200000), ("2025-01-01T01:00:00+01:00", 1735689600000)],
)
def test_parse_time_millis(text, millis):
    assert parse_time_millis(text) == millis
