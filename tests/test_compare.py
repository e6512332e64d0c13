"""compare_runs table and the comparison plots (real PNG files, no pyplot)."""

from __future__ import annotations

import itertools
import math
import sys

import matplotlib
import pandas as pd
import pytest

import sparktrack
from sparktrack.compare import (
    compare_runs,
    plot_comparison,
    plot_contour,
    plot_parallel_coordinates,
    plot_scatter,
)
from sparktrack.entities import Run, RunData, RunInfo
from sparktrack.errors import InvalidInputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_run(
    run_id: str,
    name: str = "run",
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
) -> Run:
    info = RunInfo(
        run_id=run_id,
        experiment_id="0",
        run_name=name,
        status="FINISHED",
        user_id="alice",
        start_time=0,
        end_time=1,
        lifecycle_stage="active",
        artifact_uri=f"/store/artifacts/0/{run_id}",
    )
    return Run(info, RunData(metrics=metrics or {}, params=params or {}))


def rid(i: int) -> str:
    return f"{i:08x}" + "f" * 24


def grid_runs() -> list[Run]:
    """A tuning grid: two numeric params (one log-spaced), one categorical, one constant."""
    runs = []
    for i, (reg, net, solver) in enumerate(
        itertools.product(["0.001", "0.01", "0.1", "1.0"], ["0.0", "0.5", "1.0"], ["auto", "lbfgs"])
    ):
        rmse = 1 + math.log10(float(reg)) ** 2 / 5 + float(net) * 0.3 + (solver == "auto") * 0.1
        runs.append(
            make_run(
                rid(i),
                f"lr-{i}",
                {"regParam": reg, "elasticNetParam": net, "solver": solver, "maxIter": "10"},
                {"rmse": rmse, "r2": 1 / rmse},
            )
        )
    return runs


def assert_png(path, expected) -> None:
    assert str(path) == str(expected)
    data = open(path, "rb").read()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # something was drawn, not an empty canvas


# --- the table ---------------------------------------------------------------------------------


def test_table_of_real_runs(tracking):
    with sparktrack.start_run(run_name="a") as a:
        sparktrack.log_params({"maxIter": "10", "regParam": "0.1"})
        sparktrack.log_metrics({"rmse": 0.5, "r2": 0.8})
    with sparktrack.start_run(run_name="b") as b:
        sparktrack.log_params({"maxIter": "10", "regParam": "0.01", "solver": "auto"})
        sparktrack.log_metrics({"rmse": 0.4})
    sparktrack.flush()
    client = sparktrack.TrackingClient(tracking)
    runs = [client.get_run(a.info.run_id), client.get_run(b.info.run_id)]

    frame = compare_runs(runs)

    assert list(frame.index) == [
        "params.maxIter", "params.regParam", "params.solver", "metrics.r2", "metrics.rmse"
    ]
    assert list(frame.columns) == ["a", "b"]
    assert frame.attrs["run_ids"] == {"a": a.info.run_id, "b": b.info.run_id}
    assert frame.loc["params.regParam"].tolist() == ["0.1", "0.01"]
    assert frame.loc["params.solver", "a"] is None
    assert frame.loc["params.solver", "b"] == "auto"
    assert frame.loc["metrics.rmse"].tolist() == [0.5, 0.4]
    assert frame.loc["metrics.r2", "a"] == 0.8
    assert math.isnan(frame.loc["metrics.r2", "b"])
    assert pd.isna(frame.loc["params.solver", "a"]) and pd.isna(frame.loc["metrics.r2", "b"])


def test_hide_identical_keeps_only_rows_that_differ():
    runs = [
        make_run(rid(1), "a", {"same": "1", "diff": "x", "partial": "p"},
                 {"same": 1.0, "diff": 0.1, "nan": math.nan, "half": 2.0}),
        make_run(rid(2), "b", {"same": "1", "diff": "y"},
                 {"same": 1.0, "diff": 0.2, "nan": math.nan}),
        make_run(rid(3), "c", {"same": "1", "diff": "x", "partial": "p"},
                 {"same": 1, "diff": 0.1, "nan": math.nan}),
    ]
    assert len(compare_runs(runs)) == 7
    shown = compare_runs(runs, hide_identical=True)
    assert list(shown.index) == [
        "params.diff", "params.partial", "metrics.diff", "metrics.half"
    ]
    assert list(shown.columns) == ["a", "b", "c"]


def test_identical_runs_hide_everything():
    runs = [make_run(rid(i), name, {"p": "1"}, {"m": 1.0}) for i, name in [(1, "a"), (2, "b")]]
    shown = compare_runs(runs, hide_identical=True)
    assert shown.empty and list(shown.columns) == ["a", "b"]


def test_repeated_names_get_a_short_run_id_suffix():
    runs = [
        make_run("1234abcd" + "0" * 24, "lr"),
        make_run("5678ef01" + "0" * 24, "lr"),
        make_run("9999aaaa" + "0" * 24, "gbt"),
        make_run("0badcafe" + "0" * 24, ""),
    ]
    assert list(compare_runs(runs).columns) == ["lr (1234abcd)", "lr (5678ef01)", "gbt", "0badcafe"]


def test_colliding_short_ids_fall_back_to_full_ids():
    runs = [make_run("abcdef01" + "1" * 24, "lr"), make_run("abcdef01" + "2" * 24, "lr")]
    assert list(compare_runs(runs).columns) == [
        "lr (abcdef01" + "1" * 24 + ")",
        "lr (abcdef01" + "2" * 24 + ")",
    ]


def test_table_bad_arguments():
    one = make_run(rid(1))
    with pytest.raises(InvalidInputError, match="at least two runs, got 0"):
        compare_runs([])
    with pytest.raises(InvalidInputError, match="at least two runs, got 1"):
        compare_runs([one])
    with pytest.raises(InvalidInputError, match="more than once"):
        compare_runs([one, one])
    with pytest.raises(InvalidInputError, match=r"runs\[1\] is a str"):
        compare_runs([one, rid(2)])
    with pytest.raises(InvalidInputError, match="sequence of Run"):
        compare_runs(one)


# --- plots -------------------------------------------------------------------------------------


def test_parallel_coordinates_png(tmp_path):
    runs = grid_runs()
    out = tmp_path / "pc.png"
    assert_png(plot_parallel_coordinates(runs, out), out)
    # Explicit selection, with and without the prefix; a categorical-only axis works too.
    out2 = tmp_path / "nested" / "pc2.png"
    assert_png(plot_parallel_coordinates(runs[:4], out2, params=["params.solver", "maxIter"],
                                         metrics=[]), out2)


def test_parallel_coordinates_with_missing_values(tmp_path):
    runs = [
        make_run(rid(1), "a", {"p": "1", "c": "x"}, {"m": 0.5}),
        make_run(rid(2), "b", {"p": "2"}, {}),
        make_run(rid(3), "c", {"c": "y"}, {"m": 0.7, "n": math.nan}),
    ]
    out = tmp_path / "pc.png"
    assert_png(plot_parallel_coordinates(runs, out), out)


def test_scatter_png(tmp_path):
    runs = grid_runs()
    # A log-spaced numeric x; a categorical x against a param.
    for x, y in [("params.regParam", "metrics.rmse"), ("params.solver", "params.elasticNetParam")]:
        out = tmp_path / f"{x}-{y}.png"
        assert_png(plot_scatter(runs, out, x=x, y=y), out)


def test_contour_png(tmp_path):
    runs = grid_runs()  # duplicates at each (regParam, elasticNetParam) are averaged
    out = tmp_path / "contour.png"
    assert_png(plot_contour(runs, out, x="params.regParam", y="params.elasticNetParam",
                            metric="rmse"), out)
    # Scattered points (not a grid) and a constant metric are fine too.
    scattered = [
        make_run(rid(i), f"r{i}", {"a": str(a), "b": str(b)}, {"m": 1.0})
        for i, (a, b) in enumerate([(0, 0), (1, 0.2), (0.3, 1), (0.7, 0.6)])
    ]
    out2 = tmp_path / "contour2.png"
    assert_png(plot_contour(scattered, out2, x="params.a", y="params.b", metric="metrics.m"), out2)


def test_contour_error_cases(tmp_path):
    out = tmp_path / "c.png"

    def runs_at(points, metric=0.5):
        return [
            make_run(rid(i), f"r{i}", {"a": str(a), "b": str(b), "cat": f"c{i}"}, {"m": metric})
            for i, (a, b) in enumerate(points)
        ]

    with pytest.raises(InvalidInputError, match="at least 3 runs at distinct .*found 2"):
        plot_contour(runs_at([(0, 0), (1, 1)]), out, x="params.a", y="params.b", metric="m")
    with pytest.raises(InvalidInputError, match="found 2"):  # a duplicate point counts once
        plot_contour(runs_at([(0, 0), (1, 1), (1, 1)]), out, x="params.a", y="params.b",
                     metric="m")
    with pytest.raises(InvalidInputError, match="all lie on one line"):
        plot_contour(runs_at([(0, 0), (1, 1), (2, 2), (3, 3)]), out, x="params.a",
                     y="params.b", metric="m")
    with pytest.raises(InvalidInputError, match="all lie on one line"):  # one param constant
        plot_contour(runs_at([(0, 5), (1, 5), (2, 5)]), out, x="params.a", y="params.b",
                     metric="m")
    with pytest.raises(InvalidInputError, match="found 0"):  # metric NaN everywhere
        plot_contour(runs_at([(0, 0), (1, 0), (0, 1)], metric=math.nan), out, x="params.a",
                     y="params.b", metric="m")
    with pytest.raises(InvalidInputError, match=r"x='params.cat' is not numeric .*'c0'"):
        plot_contour(runs_at([(0, 0), (1, 0), (0, 1)]), out, x="params.cat", y="params.b",
                     metric="m")
    with pytest.raises(InvalidInputError, match=r"has metric 'loss'; available metrics: 'm'$"):
        plot_contour(runs_at([(0, 0), (1, 0), (0, 1)]), out, x="params.a", y="params.b",
                     metric="loss")
    assert not out.exists()


def test_plot_key_errors_name_the_key_and_what_is_available(tmp_path):
    runs = grid_runs()[:3]
    out = tmp_path / "p.png"
    with pytest.raises(InvalidInputError, match=(
        r"x='params.nope': no run has param 'nope'; available params: "
        r"'elasticNetParam', 'maxIter', 'regParam', 'solver'"
    )):
        plot_scatter(runs, out, x="params.nope", y="metrics.rmse")
    with pytest.raises(InvalidInputError, match=r"y='rmse' must be .*did you mean 'metrics.rmse'"):
        plot_scatter(runs, out, x="params.regParam", y="rmse")
    with pytest.raises(
        InvalidInputError, match=r"no run has metric 'acc'; available metrics: 'r2', 'rmse'"
    ):
        plot_parallel_coordinates(runs, out, metrics=["acc"])
    with pytest.raises(InvalidInputError, match=r"params must be a list of keys"):
        plot_parallel_coordinates(runs, out, params="regParam")
    with pytest.raises(InvalidInputError, match="at least two runs, got 1"):
        plot_scatter(runs[:1], out, x="params.regParam", y="metrics.rmse")
    with pytest.raises(InvalidInputError, match="at least two runs, got 0"):
        plot_comparison([], tmp_path)
    assert not out.exists()


def test_scatter_needs_a_run_with_both_values(tmp_path):
    runs = [make_run(rid(1), "a", {"p": "1"}, {}), make_run(rid(2), "b", {}, {"m": 1.0})]
    with pytest.raises(InvalidInputError, match="no run has both params.p and metrics.m"):
        plot_scatter(runs, tmp_path / "s.png", x="params.p", y="metrics.m")


def test_parallel_coordinates_needs_an_axis(tmp_path):
    runs = [make_run(rid(1), "a", {"p": "1"}), make_run(rid(2), "b", {"p": "1"})]
    with pytest.raises(InvalidInputError, match="nothing to plot.*params: 'p'"):
        plot_parallel_coordinates(runs, tmp_path / "pc.png")


def test_plot_comparison_writes_the_default_set(tmp_path):
    folder = tmp_path / "plots"
    paths = plot_comparison(grid_runs(), folder, metric="metrics.rmse")
    names = [p.rsplit("/", 1)[-1] for p in paths]
    assert names == [
        "parallel_coordinates.png",
        "scatter_elasticNetParam__rmse.png",
        "scatter_regParam__rmse.png",
        "scatter_solver__rmse.png",
        "contour_elasticNetParam_regParam__rmse.png",
    ]
    for path in paths:
        assert_png(path, path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def test_plot_comparison_skips_what_the_data_cannot_make(tmp_path):
    # Two numeric params varied together: the contour would be a line, so it is skipped.
    runs = [make_run(rid(i), f"r{i}", {"a": str(i), "b": str(2 * i), "k/e y": "v"},
                     {"m": float(i)}) for i in range(3)]
    paths = plot_comparison(runs, tmp_path, params=["a", "b", "k/e y"])
    assert [p.rsplit("/", 1)[-1] for p in paths] == [
        "parallel_coordinates.png", "scatter_a__m.png", "scatter_b__m.png", "scatter_k_e_y__m.png"
    ]
    # Without metrics only the parallel coordinates are drawn.
    no_metrics = [make_run(rid(1), "a", {"p": "1"}), make_run(rid(2), "b", {"p": "2"})]
    paths = plot_comparison(no_metrics, tmp_path / "none")
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["parallel_coordinates.png"]
    with pytest.raises(InvalidInputError, match="is not a folder"):
        plot_comparison(no_metrics, paths[0])


def test_plots_leave_the_users_matplotlib_state_alone(tmp_path):
    had_pyplot = "matplotlib.pyplot" in sys.modules
    backend = matplotlib.rcParams._get_backend_or_none()
    runs = [make_run(rid(1), "a", {"p": "1"}), make_run(rid(2), "b", {"p": "2"})]
    assert len(plot_comparison(runs, tmp_path)) == 1
    assert matplotlib.rcParams._get_backend_or_none() == backend
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules


def test_axis_kinds_categories_in_natural_order_and_log_scale():
    from sparktrack.compare import _axis, _Column

    runs = [
        make_run(rid(i), f"r{i}", {"mixed": m, "reg": r, "num": n}, {"loss": loss})
        for i, (m, r, n, loss) in enumerate(
            [("10", "0.001", "3", 5.0), ("auto", "0.1", "-1", 0.5), ("2", "1", "2.5", -1.0)]
        )
    ]
    mixed = _axis(runs, _Column("params", "mixed"))
    assert mixed.categories == ["2", "10", "auto"]
    assert mixed.values == [1.0, 2.0, 0.0]
    reg = _axis(runs, _Column("params", "reg"))
    assert reg.categories is None and reg.log and reg.position(0.01) == -2
    num = _axis(runs, _Column("params", "num"))
    assert num.values == [3.0, -1.0, 2.5] and not num.log
    assert not _axis(runs, _Column("metrics", "loss")).log  # not all positive
