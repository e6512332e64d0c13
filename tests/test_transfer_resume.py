"""An import killed mid-way (SIGKILL of a real process) and run again ends exactly as a
one-shot import: no run lost, none twice, no stray rows of the batch that was cut short."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pyarrow.compute as pc
import pytest

pytest.importorskip("mlflow")

from sparktrack import TrackingClient  # noqa: E402
from sparktrack._store import open_store  # noqa: E402
from sparktrack._transfer import import_mlflow  # noqa: E402
from test_transfer_import import fill_mlflow  # noqa: E402

pytestmark = pytest.mark.slow

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Kills its own process (SIGKILL: no exit hook, no flush) as the third batch is about to
# commit its runs' rows, after that batch's summaries, tags, params and metrics committed:
# the worst place for a kill, since those rows belong to runs the store does not have yet.
_KILLED_IMPORT = textwrap.dedent("""
    import os, signal, sys
    from sparktrack._store import open_store
    from sparktrack._transfer import import_mlflow

    runs = open_store(sys.argv[2]).tables["runs"]
    append, calls = runs.append, []

    def append_then_die(rows, **options):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return append(rows, **options)

    runs.append = append_then_die
    import_mlflow(sys.argv[1], store_uri=sys.argv[2], batch_runs=20, progress=False)
""")


@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow_big")
    artifact = folder / "report.txt"
    artifact.write_text("auc 0.81\n")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        uri = f"sqlite:///{folder}/mlflow.db"
        fill_mlflow(uri, str(artifact), extra_runs=100)
    finally:
        os.chdir(cwd)
    return uri


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": _REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _table_state(uri: str) -> dict:
    """Every row of the store's run tables, as sorted tuples (the times of the import aside)."""
    store = open_store(uri)
    state = {}
    for name, stamp in (("runs", "updated_at"), ("params", "logged_at"), ("tags", "updated_at"),
                        ("metrics", None)):
        rows = store.tables[name].read()
        if stamp:
            rows = rows.drop_columns([stamp])
        state[name] = sorted(tuple(str(v) for v in row.values()) for row in rows.to_pylist())
    summaries = store.tables["metric_summaries"].read()
    state["summary_counts"] = sorted(zip(summaries.column("run_id").to_pylist(),
                                         summaries.column("key").to_pylist(),
                                         summaries.column("count").to_pylist(), strict=True))
    state["summary_total"] = pc.sum(summaries.column("count")).as_py()
    return state


def _assert_same_store(resumed: str, one_shot: str, source: str) -> None:
    assert _table_state(resumed) == _table_state(one_shot)
    a, b = TrackingClient(resumed), TrackingClient(one_shot)
    for experiment in b.search_experiments(view_type="ALL"):
        ours = a.search_runs_frame([experiment.experiment_id], run_view_type="ALL",
                                   max_results=10_000)
        theirs = b.search_runs_frame([experiment.experiment_id], run_view_type="ALL",
                                     max_results=10_000)
        assert ours.drop(columns="artifact_uri").equals(theirs.drop(columns="artifact_uri"))


def test_an_import_killed_between_commits_resumes_to_a_one_shot_result(big_source, tmp_path):
    resumed, one_shot = str(tmp_path / "resumed"), str(tmp_path / "one-shot")
    killed = subprocess.run([sys.executable, "-c", _KILLED_IMPORT, big_source, resumed],
                            env=_env(), capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # The cut-short batch left rows of runs the store does not have.
    partial = open_store(resumed)
    assert partial.run_rows(None).num_rows < 100
    summary = import_mlflow(big_source, store_uri=resumed, progress=False)

    assert summary.partial_rows_removed > 0
    assert summary.runs + summary.runs_skipped == 105
    import_mlflow(big_source, store_uri=one_shot, progress=False)
    _assert_same_store(resumed, one_shot, big_source)


def test_a_cli_import_killed_at_any_moment_resumes_to_a_one_shot_result(big_source, tmp_path):
    resumed, one_shot = str(tmp_path / "resumed"), str(tmp_path / "one-shot")
    command = [sys.executable, "-m", "sparktrack.cli", "import", "--from", big_source,
               "--store", resumed, "--batch-runs", "10"]
    process = subprocess.Popen(command, env=_env(), stderr=subprocess.PIPE, text=True)
    try:
        # The bar prints a line per tenth of the runs when stderr is a pipe: kill after the
        # first, wherever the import then is (inside a commit, between two, copying files).
        for line in process.stderr:
            if line.startswith("importing runs ["):
                break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    finished = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]

    import_mlflow(big_source, store_uri=one_shot, progress=False)
    _assert_same_store(resumed, one_shot, big_source)
