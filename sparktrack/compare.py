"""Compare runs side by side: a table of params and metrics, and plots written as PNG files.

- :func:`compare_runs` is MLflow's "Compare runs" table as a pandas DataFrame.
- :func:`plot_parallel_coordinates`, :func:`plot_scatter` and :func:`plot_contour` each write
  one PNG and return its path; :func:`plot_comparison` writes the default set into a folder.

Plots are drawn on a :class:`matplotlib.figure.Figure` with its own Agg canvas: pyplot is never
imported, so a user's backend (interactive or not) and open figures are left alone, and nothing
needs a display. Columns are named as in ``search_runs``: ``params.<key>`` and
``metrics.<key>``. A param whose values all read as finite numbers is a numeric axis; any other
param is categorical (values in natural order: numbers by value, then text). A numeric axis
whose values are all positive and span two decades or more (a ``regParam`` grid such as 0.001,
0.01, 0.1, 1) is drawn on a log scale. A metric's value is its latest; NaN counts as missing on a
plot.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

from sparktrack import _tags
from sparktrack.entities import Run
from sparktrack.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "compare_runs",
    "plot_comparison",
    "plot_contour",
    "plot_parallel_coordinates",
    "plot_scatter",
]

PathLike = str | os.PathLike[str]

_KINDS = ("params", "metrics")
_MAX_LISTED_KEYS = 20
_MAX_POINT_LABELS = 30
_MAX_LEGEND_ENTRIES = 20
_LOG_SPAN = 100.0


# --- the table ---------------------------------------------------------------------------------


def compare_runs(runs: Sequence[Run], *, hide_identical: bool = False) -> pd.DataFrame:
    """Params and metrics of two or more runs side by side.

    Rows are ``params.<key>`` (sorted), then ``metrics.<key>`` (sorted, latest values); there is
    one column per run, in the order given, labelled by run name. When names repeat, each of
    those runs is labelled ``<name> (<first 8 characters of its run id>)``; a run without a name
    is labelled by that short id. ``frame.attrs["run_ids"]`` maps each label to its run id.
    A value a run did not log is None (params) or NaN (metrics).

    Args:
        runs: at least two distinct runs.
        hide_identical: drop the rows whose value is the same in every run (a key missing in
            one run and logged in another differs; NaN equals NaN).

    Raises:
        InvalidInputError: fewer than two runs, a run given twice, or an item not a Run.
    """
    import pandas as pd

    runs = _check_runs(runs)
    labels = _run_labels(runs)
    index: list[str] = []
    rows: list[list[object]] = []
    for key in _keys(runs, "params"):
        index.append(f"params.{key}")
        rows.append([run.data.params.get(key) for run in runs])
    for key in _keys(runs, "metrics"):
        index.append(f"metrics.{key}")
        rows.append([_metric(run, key) for run in runs])
    if hide_identical:
        kept = [i for i, row in enumerate(rows) if not _all_equal(row)]
        index = [index[i] for i in kept]
        rows = [rows[i] for i in kept]
    frame = pd.DataFrame(
        rows,
        index=pd.Index(index, name="key", dtype=object),
        columns=pd.Index(labels, name="run", dtype=object),
        dtype=object,
    )
    frame.attrs["run_ids"] = {
        label: run.info.run_id for label, run in zip(labels, runs, strict=True)
    }
    return frame


# --- the plots ---------------------------------------------------------------------------------


def plot_parallel_coordinates(
    runs: Sequence[Run],
    path: PathLike,
    *,
    params: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> str:
    """Write a parallel-coordinates plot of the runs as a PNG; returns ``path`` as a string.

    One vertical axis per param, then per metric, each scaled to its own range and marked with
    its extremes; a categorical param's values are marked at evenly spaced positions. Each run is
    a line, coloured by the last metric axis (grey where that metric is missing); a missing
    value breaks the line.

    Args:
        params: param keys (``"regParam"`` or ``"params.regParam"``); default: the params whose
            values differ between the runs. ``[]`` for none.
        metrics: metric keys; default: every metric. ``[]`` for none.

    Raises:
        InvalidInputError: fewer than two runs, an unknown key (the message lists the known
            ones), or no axis to draw.
    """
    runs = _check_runs(runs)
    columns = _select(runs, "params", params) + _select(runs, "metrics", metrics)
    if not columns:
        raise InvalidInputError(
            "nothing to plot: no param differs between the runs and no metric is selected; "
            f"pass params=[...] or metrics=[...] (params: {_listing(_keys(runs, 'params'))}; "
            f"metrics: {_listing(_keys(runs, 'metrics'))})"
        )
    return _draw_parallel_coordinates(runs, path, columns)


def plot_scatter(runs: Sequence[Run], path: PathLike, *, x: str, y: str) -> str:
    """Write a scatter plot of two keys over the runs as a PNG; returns ``path`` as a string.

    ``x`` and ``y`` are ``params.<key>`` or ``metrics.<key>``; a categorical param is drawn at
    evenly spaced positions labelled with its values. Points are labelled with run names (up to
    30 runs); runs missing either value are left out.

    Raises:
        InvalidInputError: fewer than two runs, a malformed or unknown key, or no run having
            both values.
    """
    runs = _check_runs(runs)
    cx, cy = _column(runs, x, "x"), _column(runs, y, "y")
    ax_x, ax_y = _axis(runs, cx), _axis(runs, cy)
    shown = [i for i in range(len(runs)) if _finite(ax_x.values[i]) and _finite(ax_y.values[i])]
    if not shown:
        raise InvalidInputError(f"no run has both {cx.name} and {cy.name}: nothing to plot")
    labels = _run_labels(runs)

    fig = _new_figure(7.0, 5.0)
    ax = fig.add_subplot()
    ax.scatter([ax_x.values[i] for i in shown], [ax_y.values[i] for i in shown], s=36, zorder=3)
    if len(shown) <= _MAX_POINT_LABELS:
        for i in shown:
            ax.annotate(
                labels[i], (ax_x.values[i], ax_y.values[i]), xytext=(4, 4),
                textcoords="offset points", fontsize=8,
            ).set_in_layout(False)  # labels may overhang; measuring each one is slow
    _label_axis(ax, "x", ax_x)
    _label_axis(ax, "y", ax_y)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{cy.name} vs {cx.name} ({len(shown)} of {len(runs)} runs)")
    return _save(fig, path)


def plot_contour(runs: Sequence[Run], path: PathLike, *, x: str, y: str, metric: str) -> str:
    """Write a filled contour of a metric over two numeric keys as a PNG; returns the path.

    The surface is interpolated linearly over a Delaunay triangulation of the runs' points, so
    a full grid is not needed. ``x`` and ``y`` are numeric ``params.<key>`` (or metrics);
    ``metric`` is ``"rmse"`` or ``"metrics.rmse"``. Runs with the same (x, y) are averaged;
    runs missing a value are left out.

    Raises:
        InvalidInputError: fewer than two runs, an unknown key, a non-numeric x or y, fewer than
            three distinct (x, y) points, or points all on one line.
    """
    import numpy as np
    from matplotlib.tri import Triangulation

    runs = _check_runs(runs)
    cx, cy = _column(runs, x, "x"), _column(runs, y, "y")
    cz = _column(runs, _prefixed("metrics", metric, "metric"), "metric")
    ax_x, ax_y, ax_z = _axis(runs, cx), _axis(runs, cy), _axis(runs, cz)
    for name, ax_ in (("x", ax_x), ("y", ax_y)):
        if ax_.categories is not None:
            raise InvalidInputError(
                f"{name}={ax_.column.name!r} is not numeric (values: {_listing(ax_.categories)}); "
                "a contour needs two numeric params or metrics: use plot_scatter or "
                "plot_parallel_coordinates for categorical ones"
            )
    groups: dict[tuple[float, float], list[float]] = {}
    for xv, yv, zv in zip(ax_x.values, ax_y.values, ax_z.values, strict=True):
        if _finite(xv) and _finite(yv) and _finite(zv):
            groups.setdefault((xv, yv), []).append(zv)
    # Triangulate where the points sit on screen: a log axis's regular grid stays regular.
    where = f"({cx.name}, {cy.name}) with a value of {cz.name}"
    if len(groups) < 3:
        raise InvalidInputError(
            f"a contour needs at least 3 runs at distinct {where}; found {len(groups)}: "
            f"{sorted(groups) or 'none'}"
        )
    xs = np.array([ax_x.position(p[0]) for p in groups], dtype=float)
    ys = np.array([ax_y.position(p[1]) for p in groups], dtype=float)
    zs = np.array([sum(v) / len(v) for v in groups.values()], dtype=float)
    if _collinear(xs, ys):
        raise InvalidInputError(
            f"the {len(groups)} points at distinct {where} all lie on one line, so there is no "
            f"surface to draw; runs must vary {cx.name} and {cy.name} independently"
        )
    try:
        triangulation = Triangulation(xs, ys)
    except (RuntimeError, ValueError) as exc:  # qhull on nearly degenerate input
        raise InvalidInputError(
            f"cannot triangulate the points at distinct {where}: {exc}"
        ) from exc

    fig = _new_figure(7.0, 5.5)
    ax = fig.add_subplot()
    lo, hi = float(zs.min()), float(zs.max())
    if lo == hi:  # one colour; explicit levels avoid matplotlib's "no levels" warning
        pad = abs(lo) * 0.01 or 0.5
        levels: int | list[float] = [lo - pad, hi + pad]
    else:
        levels = 12
    filled = ax.tricontourf(triangulation, zs, levels=levels, cmap="viridis")
    fig.colorbar(filled, ax=ax, label=cz.name)
    ax.plot(xs, ys, "o", color="black", markersize=4)
    _label_axis(ax, "x", ax_x, log10_positions=True)
    _label_axis(ax, "y", ax_y, log10_positions=True)
    ax.set_title(f"{cz.name} over {cx.name} and {cy.name} ({len(groups)} points)")
    return _save(fig, path)


def plot_comparison(
    runs: Sequence[Run],
    folder: PathLike,
    *,
    params: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    metric: str | None = None,
) -> list[str]:
    """Write the default set of comparison plots into ``folder``; returns their paths.

    - ``parallel_coordinates.png`` of the selected params and metrics;
    - ``scatter_<param>__<metric>.png`` for each selected param against ``metric``;
    - ``contour_<param>_<param>__<metric>.png`` for each pair of selected numeric params.

    Args:
        folder: created if missing; files of the same names are replaced.
        params: param keys; default: the params whose values differ between the runs.
        metrics: metric keys for the parallel coordinates; default: every metric.
        metric: the metric of the scatter and contour plots; default: the first of ``metrics``
            (sorted keys when ``metrics`` is not given). Without any metric only the parallel
            coordinates are drawn.

    A scatter or contour the data cannot make (no run with both values; fewer than three
    distinct points, or all on one line) is skipped rather than raised, since the set was not
    asked for by name.

    Raises:
        InvalidInputError: fewer than two runs, an unknown key, nothing to plot, or ``folder``
            is a file.
    """
    runs = _check_runs(runs)
    param_columns = _select(runs, "params", params)
    metric_columns = _select(runs, "metrics", metrics)
    target = None
    if metric is not None:
        target = _column(runs, _prefixed("metrics", metric, "metric"), "metric")
    elif metric_columns:
        target = metric_columns[0]

    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"folder {os.fspath(folder)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    paths: list[str] = []

    def attempt(stem: str, draw: Callable[[Path], str], *, required: bool = False) -> None:
        name = _unique_name(stem, used)
        try:
            paths.append(draw(out / f"{name}.png"))
        except InvalidInputError:
            if required:
                raise
            used.discard(name)

    attempt(
        "parallel_coordinates",
        lambda p: plot_parallel_coordinates(
            runs, p, params=[c.key for c in param_columns], metrics=[c.key for c in metric_columns]
        ),
        required=True,
    )
    if target is None:
        return paths
    for column in param_columns:
        attempt(
            f"scatter_{_safe(column.key)}__{_safe(target.key)}",
            lambda p, c=column: plot_scatter(runs, p, x=c.name, y=target.name),
        )
    numeric = [c for c in param_columns if _axis(runs, c).categories is None]
    for a, b in combinations(numeric, 2):
        attempt(
            f"contour_{_safe(a.key)}_{_safe(b.key)}__{_safe(target.key)}",
            lambda p, a=a, b=b: plot_contour(runs, p, x=a.name, y=b.name, metric=target.name),
        )
    return paths


# --- columns and values ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    kind: str  # "params" or "metrics"
    key: str

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.key}"


@dataclass(frozen=True, slots=True)
class _Axis:
    """One column's values per run as floats (NaN where missing); categories in position order."""

    column: _Column
    values: list[float]
    categories: list[str] | None

    @property
    def log(self) -> bool:
        """Positive numbers spanning two decades or more (a regParam grid): a log scale."""
        if self.categories is not None:
            return False
        finite = [v for v in self.values if _finite(v)]
        return bool(finite) and min(finite) > 0 and max(finite) / min(finite) >= _LOG_SPAN

    def position(self, value: float) -> float:
        """Where a value sits on this axis: log10 of it on a log scale."""
        return math.log10(value) if self.log and _finite(value) else value


def _check_runs(runs: Sequence[Run]) -> list[Run]:
    if isinstance(runs, Run | str | bytes) or not isinstance(runs, Iterable):
        raise InvalidInputError(
            f"runs must be a sequence of Run objects, got {type(runs).__name__}; "
            "pass a list of runs from TrackingClient.get_run or search_runs"
        )
    checked = list(runs)
    for i, run in enumerate(checked):
        if not isinstance(run, Run):
            raise InvalidInputError(
                f"runs[{i}] is a {type(run).__name__}, not a Run; "
                "fetch runs with TrackingClient.get_run or search_runs"
            )
    if len(checked) < 2:
        raise InvalidInputError(
            f"comparing needs at least two runs, got {len(checked)}"
        )
    seen: set[str] = set()
    for run in checked:
        if run.info.run_id in seen:
            raise InvalidInputError(f"run {run.info.run_id} is given more than once")
        seen.add(run.info.run_id)
    return checked


def _run_labels(runs: list[Run]) -> list[str]:
    names = [
        run.info.run_name or run.data.tags.get(_tags.RUN_NAME) or run.info.run_id[:8]
        for run in runs
    ]
    counts = Counter(names)
    labels = [
        f"{name} ({run.info.run_id[:8]})" if counts[name] > 1 else name
        for name, run in zip(names, runs, strict=True)
    ]
    counts = Counter(labels)
    if len(counts) < len(labels):  # short ids collide, or a name looks like a label
        labels = [
            f"{name} ({run.info.run_id})" if counts[label] > 1 else label
            for name, label, run in zip(names, labels, runs, strict=True)
        ]
    return labels


def _keys(runs: list[Run], kind: str) -> list[str]:
    keys: set[str] = set()
    for run in runs:
        keys.update(run.data.params if kind == "params" else run.data.metrics)
    return sorted(keys)


def _values(runs: list[Run], column: _Column) -> list[object]:
    if column.kind == "params":
        return [run.data.params.get(column.key) for run in runs]
    return [_metric(run, column.key) for run in runs]


def _metric(run: Run, key: str) -> float:
    value = run.data.metrics.get(key)
    return math.nan if value is None else float(value)


def _all_equal(values: list[object]) -> bool:
    def norm(v: object) -> object:
        if v is None:
            return ("missing",)
        if isinstance(v, float) and math.isnan(v):
            return ("nan",)
        return v

    return len({norm(v) for v in values}) == 1


def _listing(items: Sequence[object]) -> str:
    if not items:
        return "none"
    shown = ", ".join(repr(i) for i in items[:_MAX_LISTED_KEYS])
    more = len(items) - _MAX_LISTED_KEYS
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def _prefixed(kind: str, key: str, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"{what} must be a non-empty key string, got {key!r}")
    return key if key.startswith(f"{kind}.") else f"{kind}.{key}"


def _column(runs: list[Run], identifier: str, what: str) -> _Column:
    if not isinstance(identifier, str):
        raise InvalidInputError(
            f"{what} must be a string such as 'params.<key>', got {identifier!r}"
        )
    kind, dot, key = identifier.partition(".")
    if not dot or kind not in _KINDS or not key:
        near = [f"{k}.{identifier}" for k in _KINDS if identifier in _keys(runs, k)]
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise InvalidInputError(
            f"{what}={identifier!r} must be 'params.<key>' or 'metrics.<key>'{hint}"
        )
    available = _keys(runs, kind)
    if key not in available:
        raise InvalidInputError(
            f"{what}={identifier!r}: no run has {kind[:-1]} {key!r}; "
            f"available {kind}: {_listing(available)}"
        )
    return _Column(kind, key)


def _select(runs: list[Run], kind: str, keys: Sequence[str] | None) -> list[_Column]:
    if keys is None:
        columns = [_Column(kind, key) for key in _keys(runs, kind)]
        if kind == "params":
            columns = [c for c in columns if not _all_equal(_values(runs, c))]
        return columns
    if isinstance(keys, str) or not isinstance(keys, Iterable):
        raise InvalidInputError(f"{kind} must be a list of keys, e.g. [{keys!r}], got {keys!r}")
    columns = [_column(runs, _prefixed(kind, key, kind), kind) for key in keys]
    return list(dict.fromkeys(columns))


def _axis(runs: list[Run], column: _Column) -> _Axis:
    raw = _values(runs, column)
    if column.kind == "metrics":
        return _Axis(column, [float(v) for v in raw], None)  # type: ignore[arg-type]
    numbers = [_as_finite_float(v) for v in raw]
    if all(n is not None for n, v in zip(numbers, raw, strict=True) if v is not None):
        return _Axis(column, [math.nan if n is None else n for n in numbers], None)
    categories = sorted({str(v) for v in raw if v is not None}, key=_natural_key)
    position = {c: float(i) for i, c in enumerate(categories)}
    return _Axis(column, [math.nan if v is None else position[str(v)] for v in raw], categories)


def _as_finite_float(value: object) -> float | None:
    if value is None:
        return None
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _natural_key(text: str) -> tuple[int, float, str]:
    number = _as_finite_float(text)
    return (0, number, text) if number is not None else (1, 0.0, text)


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _collinear(xs: np.ndarray, ys: np.ndarray) -> bool:
    import numpy as np

    def scaled(v: np.ndarray) -> np.ndarray:
        span = v.max() - v.min()
        return (v - v.min()) / span if span > 0 else np.zeros_like(v)

    points = np.column_stack([scaled(xs), scaled(ys)])
    centered = points - points.mean(axis=0)
    singular = np.linalg.svd(centered, compute_uv=False)
    return bool(singular[1] <= 1e-9 * max(singular[0], 1e-300))


# --- drawing -----------------------------------------------------------------------------------


def _draw_parallel_coordinates(runs: list[Run], path: PathLike, columns: list[_Column]) -> str:
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    axes_data = [_axis(runs, c) for c in columns]
    scaled: list[list[float]] = []
    for data in axes_data:
        positions = [data.position(v) for v in data.values]
        finite = [v for v in positions if _finite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
        if data.categories is not None:
            lo, hi = 0.0, float(max(len(data.categories) - 1, 0))
        span = hi - lo
        scaled.append([
            (v - lo) / span if span > 0 else 0.5 if _finite(v) else math.nan for v in positions
        ])
    ys = np.array(scaled, dtype=float).T  # one row per run
    xs = np.arange(len(columns), dtype=float)
    labels = _run_labels(runs)

    colour_axis = next((a for a in reversed(axes_data) if a.column.kind == "metrics"), None)
    cmap = colormaps["viridis"]
    mappable = None
    if colour_axis is not None and any(_finite(v) for v in colour_axis.values):
        finite = [v for v in colour_axis.values if _finite(v)]
        norm = Normalize(min(finite), max(finite) if max(finite) > min(finite) else min(finite) + 1)
        grey = (0.6, 0.6, 0.6, 1.0)
        colours = [cmap(norm(v)) if _finite(v) else grey for v in colour_axis.values]
        mappable = ScalarMappable(norm=norm, cmap=cmap)
    else:
        palette = colormaps["tab10"]
        colours = [palette(i % 10) for i in range(len(runs))]

    fig = _new_figure(max(6.0, 1.7 * len(columns) + 2.5), 5.0)
    ax = fig.add_subplot()
    for i in range(len(runs)):
        ax.plot(xs, ys[i], color=colours[i], marker="o", markersize=4, linewidth=1.5, alpha=0.85,
                label=labels[i])
    for x, data in zip(xs, axes_data, strict=True):
        ax.axvline(x, color="0.3", linewidth=1, zorder=0)
        for y, text in _axis_marks(data):
            ax.text(x + 0.04, y, text, fontsize=8, va="center", ha="left", color="0.2",
                    in_layout=False)
    ax.set_xticks(xs, [c.name for c in columns], rotation=20, ha="right")
    ax.set_yticks([])
    ax.set_xlim(-0.25, len(columns) - 0.4)
    ax.set_ylim(-0.06, 1.06)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if mappable is not None:
        fig.colorbar(mappable, ax=ax, label=colour_axis.column.name, pad=0.02)
    if len(runs) <= _MAX_LEGEND_ENTRIES:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.22), ncols=4,
                  frameon=False)
    ax.set_title(f"{len(runs)} runs")
    return _save(fig, path)


def _axis_marks(data: _Axis) -> list[tuple[float, str]]:
    if data.categories is not None:
        n = len(data.categories)
        return [(i / (n - 1) if n > 1 else 0.5, c) for i, c in enumerate(data.categories)]
    finite = [v for v in data.values if _finite(v)]
    if not finite:
        return []
    lo, hi = min(finite), max(finite)
    if lo == hi:
        return [(0.5, f"{lo:.4g}")]
    scale = " (log)" if data.log else ""
    return [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}{scale}")]


def _label_axis(ax: Axes, which: str, data: _Axis, *, log10_positions: bool = False) -> None:
    """Name an axis and mark categories; a log axis is either matplotlib's log scale or, when
    the plotted positions are already log10 values (contour), ticks labelled ``10 ** v``."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_label_text(data.column.name + (" (log scale)" if data.log else ""))
    if data.categories is not None:
        axis.set_ticks(range(len(data.categories)), data.categories)
        if which == "x":
            ax.tick_params(axis="x", labelrotation=20)
    elif data.log and log10_positions:
        axis.set_major_locator(MaxNLocator(integer=True))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{10**v:.4g}"))
    elif data.log:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # an Agg canvas for this figure only: no global backend change
    return fig


def _save(fig: Figure, path: PathLike) -> str:
    target = os.fspath(path)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, format="png")
    return target


def _safe(key: str) -> str:
    return re.sub(r"[^\w.-]+", "_", key).strip("._") or "key"


def _unique_name(stem: str, used: set[str]) -> str:
    name, n = stem, 2
    while name in used:
        name, n = f"{stem}-{n}", n + 1
    used.add(name)
    return name
