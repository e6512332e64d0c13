"""Dashboards render end to end from a fresh store: the job (in process) and the notebook.
The best-over-time chart's time axis fits its runs and its best-so-far line is drawn."""

from __future__ import annotations

import json
import os
import sys

import pandas as pd
import pytest

from sparktrack import TrackingClient

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


@pytest.mark.spark
def test_dashboard_job(spark, dashboard_store, tmp_path, capsys):
    sys.path.insert(0, ROOT)
    from jobs.dashboard import main
    from sparktrack.spark.dashboard import build_dashboard, chart_best_over_time

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
    frame = board.frames["best_over_time"]
    _check_best_chart(chart_best_over_time(frame, "r2", minimize=False), frame["start_time"],
                      frame["value"].tolist(), minimize=False)
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


@pytest.mark.spark
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


# == the best-over-time chart ====================================================================
def _check_best_chart(figure, start_times, values: list[float], *, minimize: bool) -> None:
    """The x axis spans the start times with a margin of 5% (at least a second) per side, and the
    best-so-far line steps through the running best and on to the right edge."""
    from matplotlib.dates import num2date

    axes = figure.axes[0]
    times = pd.to_datetime(pd.Series(start_times), utc=True)
    first, last = times.min(), times.max()
    margin = max((last - first) * 0.05, pd.Timedelta(seconds=1))
    left, right = (pd.Timestamp(num2date(limit)) for limit in axes.get_xlim())
    tolerance = pd.Timedelta(milliseconds=1)
    assert abs(left - (first - margin)) <= tolerance and abs(right - (last + margin)) <= tolerance

    lines = [line for line in axes.get_lines() if line.get_label() == "best so far"]
    assert len(lines) == 1 and lines[0].get_visible()
    line = lines[0]
    assert line.get_drawstyle() == "steps-post"
    running, best = [], None
    for value in values:
        best = value if best is None else (min if minimize else max)(best, value)
        running.append(best)
    assert list(line.get_ydata()) == [*running, running[-1]]
    xs = pd.to_datetime(line.get_xdata(), utc=True)
    assert list(xs[:-1]) == list(times) and abs(xs[-1] - right) <= tolerance


BASE = pd.Timestamp("2023-11-14 22:13:20")


@pytest.mark.parametrize(
    "offsets",
    [
        [pd.Timedelta(0)],  # one run
        [pd.Timedelta(0)] * 4,  # runs started in the same millisecond
        [pd.Timedelta(milliseconds=3 * i) for i in range(4)],
        [pd.Timedelta(hours=i) for i in range(4)],  # a store of one day
        [pd.Timedelta(days=3 * i) for i in range(4)],
    ],
    ids=["one-run", "one-instant", "milliseconds", "one-day", "days"],
)
@pytest.mark.parametrize("minimize", [True, False])
def test_best_over_time_axis_fits_the_runs_and_draws_the_best_so_far(offsets, minimize):
    from sparktrack.spark.dashboard import chart_best_over_time

    values = [1.0, 0.9, 1.1, 0.8][: len(offsets)]
    frame = pd.DataFrame({"start_time": [BASE + offset for offset in offsets], "value": values})
    frame["best"] = frame["value"].cummin() if minimize else frame["value"].cummax()
    figure = chart_best_over_time(frame, "rmse", minimize=minimize)
    _check_best_chart(figure, frame["start_time"], values, minimize=minimize)
    figure.savefig(os.devnull, format="png")  # it renders


def test_best_over_time_takes_zone_aware_start_times():
    from sparktrack.spark.dashboard import chart_best_over_time

    times = [BASE.tz_localize("UTC") + pd.Timedelta(minutes=i) for i in range(3)]
    frame = pd.DataFrame({"start_time": times, "value": [3.0, 1.0, 2.0], "best": [3.0, 1.0, 1.0]})
    figure = chart_best_over_time(frame, "loss", minimize=True)
    _check_best_chart(figure, times, [3.0, 1.0, 2.0], minimize=True)
