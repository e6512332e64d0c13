"""Dashboards render end to end from a fresh store: the job (in process) and the notebook."""

from __future__ import annotations

import json
import os
import sys

import pytest

from sparktrack import TrackingClient

pytestmark = pytest.mark.spark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86_400_000
CHARTS = {"best_over_time", "runs_per_user", "runs_per_day_and_status", "top_runs", "run_curves"}


@pytest.fixture(scope="module")
def dashboard_store(tmp_path_factory):
    """Eight runs of two users over three days, with rmse curves and mixed statuses."""
    uri = str(tmp_path_factory.mktemp("dashboard") / "store")
    client = TrackingClient(uri)
    experiment = client.create_experiment("dashboards")
    best = None
    for index in range(8):
        run = client.create_run(
            experiment, run_name=f"trial-{index}", tags={"mlflow.user": f"user{index % 2}"},
            start_time=1_700_000_000_000 + (index % 3) * DAY + index,
        )
        run_id = run.info.run_id
        final = 1.0 + ((index * 7) % 5) * 0.1
        for step in range(5):
            client.log_metric(run_id, "rmse", final + (4 - step) * 0.2, step=step)
            client.log_metric(run_id, "r2", 0.5 + step * 0.05, step=step)
        client.set_terminated(run_id, status="FAILED" if index == 5 else "FINISHED")
        if best is None or final < best[0]:
            best = (final, run_id)
    client.flush()
    return uri, best[1]


def _check_output(out_dir: str, best_run: str | None = None) -> None:
    pngs = {name[:-4] for name in os.listdir(out_dir) if name.endswith(".png")}
    assert pngs == CHARTS
    for name in pngs:
        with open(os.path.join(out_dir, f"{name}.png"), "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(out_dir, "index.html"), encoding="utf-8") as page:
        text = page.read()
    for name in CHARTS:
        assert f'src="{name}.png"' in text
    assert "rmse" in text
    if best_run:
        assert best_run in text  # the top-runs table


def test_dashboard_job(spark, dashboard_store, tmp_path, capsys):
    sys.path.insert(0, ROOT)
    from jobs.dashboard import main
    from sparktrack.spark.dashboard import build_dashboard

    uri, best_run = dashboard_store
    out = str(tmp_path / "job")
    assert main(["--store", uri, "--out", out, "--metric", "rmse"]) == 0
    assert "rmse" in capsys.readouterr().out
    _check_output(out, best_run)

    board = build_dashboard(spark, uri, str(tmp_path / "api"))
    # Both metrics are logged by every run: the tie goes to the first name, r2 (maximized).
    assert board.metric == "r2" and board.minimize is False
    assert board.frames["runs_per_user"].set_index("user")["count"].to_dict() == {
        "user0": 4, "user1": 4}
    per_day = board.frames["runs_per_day_and_status"]
    assert per_day.sum().to_dict() == {"FAILED": 1, "FINISHED": 7} and len(per_day) == 3
    best = board.frames["best_over_time"]["best"].tolist()
    assert best == sorted(best) and len(best) == 8  # higher is better: never decreases
    curves = board.frames["run_curves"]
    assert set(curves["key"]) == {"rmse", "r2"} and len(curves) == 10


def _kernel_name(tmp_path, monkeypatch) -> str:
    """python3 when it runs on this interpreter; else a kernel spec made for it."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
        if spec.argv[0] in ("python", "python3", sys.executable):
            return "python3"
    except NoSuchKernel:
        pass
    folder = tmp_path / "kernels" / "sparktrack-test"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sparktrack tests", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    return "sparktrack-test"


def test_dashboard_notebook_runs(dashboard_store, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    uri, best_run = dashboard_store
    out = str(tmp_path / "notebook")
    monkeypatch.setenv("SPARKTRACK_TRACKING_URI", uri)
    monkeypatch.setenv("SPARKTRACK_DASHBOARD_OUT", out)
    monkeypatch.setenv("SPARKTRACK_DASHBOARD_METRIC", "rmse")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    notebook = nbformat.read(os.path.join(ROOT, "notebooks", "dashboard.ipynb"), as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name=_kernel_name(tmp_path, monkeypatch),
        resources={"metadata": {"path": ROOT}},
    )
    client.execute()
    _check_output(out, best_run)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(CHARTS)
