"""Dashboards on the data source: the queries, their charts (PNG) and a static HTML page.

Used by ``jobs/dashboard.py`` and ``notebooks/dashboard.ipynb``. Every query runs in Spark on
``spark.read.format("sparktrack")``; only the small aggregated results reach pandas and
matplotlib. Figures are built without pyplot, so any matplotlib backend (a notebook's inline
one, a headless job) works.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "Dashboard",
    "best_metric_over_time",
    "build_dashboard",
    "default_metric",
    "metric_curves",
    "runs_per_day_and_status",
    "runs_per_user",
    "top_runs",
]

_LOWER_IS_BETTER = ("loss", "error", "rmse", "mse", "mae", "logloss", "perplexity")


def _read(spark: SparkSession, uri: str, table: str, experiment_ids: str | None) -> DataFrame:
    frame = spark.read.format("sparktrack").option("table", table)
    if experiment_ids:
        frame = frame.option("experiment_ids", experiment_ids)
    return frame.load(uri)


def default_metric(runs: DataFrame) -> str | None:
    """The metric logged by the most runs (ties: alphabetical), None if there is none."""
    from pyspark.sql import functions as F

    top = (
        runs.select(F.explode(F.map_keys("metrics")).alias("key"))
        .groupBy("key").count().orderBy(F.desc("count"), "key").first()
    )
    return None if top is None else top["key"]


def lower_is_better(metric: str) -> bool:
    """Guess the direction from the name (loss, rmse, error, ... are minimized)."""
    return any(word in metric.lower() for word in _LOWER_IS_BETTER)


def best_metric_over_time(runs: DataFrame, metric: str, *, minimize: bool) -> pd.DataFrame:
    """Per run, by start time: its latest ``metric`` and the best value of all runs so far."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    value = F.col("metrics").getItem(metric)
    so_far = Window.orderBy("start_time", "run_id").rowsBetween(Window.unboundedPreceding, 0)
    best = F.min("value") if minimize else F.max("value")
    return (
        runs.where(value.isNotNull() & ~F.isnan(value))
        .select("run_id", "run_name", "start_time", value.alias("value"))
        .withColumn("best", best.over(so_far))
        .orderBy("start_time", "run_id")
        .toPandas()
    )


def runs_per_user(runs: DataFrame) -> pd.DataFrame:
    """Number of runs started per user, most active first."""
    from pyspark.sql import functions as F

    return (
        runs.select(F.coalesce("user_id", F.lit("(unknown)")).alias("user"))
        .groupBy("user").count().orderBy(F.desc("count"), "user").toPandas()
    )


def runs_per_day_and_status(runs: DataFrame) -> pd.DataFrame:
    """Runs started per day (UTC), one column per status."""
    from pyspark.sql import functions as F

    counts = (
        runs.select(F.to_date("start_time").alias("day"), "status")
        .groupBy("day").pivot("status").count().na.fill(0).orderBy("day").toPandas()
    )
    return counts.set_index("day")


def top_runs(runs: DataFrame, metric: str, *, minimize: bool, limit: int = 10) -> pd.DataFrame:
    """The ``limit`` best runs by the latest value of ``metric``."""
    from pyspark.sql import functions as F

    value = F.col("metrics").getItem(metric)
    order = value.asc() if minimize else value.desc()
    return (
        runs.where(value.isNotNull() & ~F.isnan(value))
        .select("run_id", "run_name", "user_id", "status", value.alias(metric))
        .orderBy(order, "run_id").limit(limit).toPandas()
    )


def metric_curves(metrics: DataFrame, run_id: str) -> pd.DataFrame:
    """Every point of every metric of one run (key, step, value), by key and step."""
    return (
        metrics.where(metrics.run_id == run_id)
        .select("key", "step", "timestamp", "value").orderBy("key", "step", "timestamp")
        .toPandas()
    )


# == charts ======================================================================================
def _figure(title: str) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    return figure, axes


def _empty(axes: Any, text: str = "no data yet") -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def chart_best_over_time(frame: pd.DataFrame, metric: str, *, minimize: bool) -> Figure:
    """Each run's value by start time, and the best so far as a line up to the right edge.

    The time axis spans the runs with a margin of 5% (at least a second) on either side:
    left to matplotlib, runs started within the same instant get an axis of several years.
    """
    figure, axes = _figure(f"Best {metric} over time ({'lowest' if minimize else 'highest'})")
    if frame.empty:
        _empty(axes)
        return figure
    import numpy as np
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    times = _utc_times(frame["start_time"])
    left, right = _time_axis_limits(times)
    axes.scatter(times, frame["value"], s=14, alpha=0.6, label="run", zorder=3)
    # A best holds from the run that set it until a better one, the last up to the right edge
    # (else a single run, or runs of one instant, draw no line at all).
    best = frame["best"].to_numpy()
    axes.step(
        np.append(times.to_numpy(), right.to_datetime64()), np.append(best, best[-1]),
        where="post", color="C3", linewidth=2, zorder=2, label="best so far",
    )
    axes.set_xlim(left, right)
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_xlabel("run start time (UTC)")
    axes.set_ylabel(metric)
    axes.legend()
    return figure


def _utc_times(column: pd.Series) -> pd.Series:
    """Start times as naive UTC datetimes (Spark hands them over naive or zone-aware)."""
    import pandas as pd

    return pd.to_datetime(column, utc=True).dt.tz_localize(None)


def _time_axis_limits(times: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
    import pandas as pd

    first, last = times.min(), times.max()
    margin = max((last - first) * 0.05, pd.Timedelta(seconds=1))
    return first - margin, last + margin


def chart_runs_per_user(frame: pd.DataFrame) -> Figure:
    figure, axes = _figure("Runs started per user")
    if frame.empty:
        _empty(axes)
        return figure
    axes.barh(frame["user"][::-1], frame["count"][::-1])
    axes.set_xlabel("runs")
    return figure


def chart_runs_per_day(frame: pd.DataFrame) -> Figure:
    figure, axes = _figure("Runs per day and status")
    if frame.empty:
        _empty(axes)
        return figure
    bottom = None
    labels = [str(day) for day in frame.index]
    for status in frame.columns:
        axes.bar(labels, frame[status], bottom=bottom, label=status)
        bottom = frame[status] if bottom is None else bottom + frame[status]
    axes.set_ylabel("runs")
    axes.legend()
    axes.tick_params(axis="x", labelrotation=45)
    return figure


def chart_top_runs(frame: pd.DataFrame, metric: str) -> Figure:
    figure, axes = _figure(f"Top runs by {metric}")
    if frame.empty:
        _empty(axes)
        return figure
    names = [f"{name or ''} ({run_id[:8]})" for name, run_id in zip(frame["run_name"],
                                                                     frame["run_id"])]
    axes.barh(names[::-1], frame[metric][::-1])
    axes.set_xlabel(metric)
    return figure


def chart_metric_curves(frame: pd.DataFrame, run_label: str) -> Figure:
    figure, axes = _figure(f"Metric curves of run {run_label}")
    if frame.empty:
        _empty(axes)
        return figure
    for key, points in frame.groupby("key", sort=True):
        axes.plot(points["step"], points["value"], marker="o", markersize=3, label=key)
    axes.set_xlabel("step")
    axes.legend()
    return figure


# == the page ====================================================================================
@dataclass
class Dashboard:
    """What :func:`build_dashboard` produced: the data, the PNG files and the HTML page."""

    out_dir: str
    metric: str | None
    minimize: bool
    run_id: str | None
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    html_path: str = ""


def _page(dashboard: Dashboard, uri: str) -> str:
    def esc(value: object) -> str:
        return html.escape(str(value), quote=True)

    sections = []
    for name, path in dashboard.images.items():
        sections.append(
            f'<figure><img src="{esc(os.path.basename(path))}" alt="{esc(name)}">'
            f"<figcaption>{esc(name.replace('_', ' '))}</figcaption></figure>"
        )
    top = dashboard.frames.get("top_runs")
    table = "" if top is None or top.empty else top.to_html(index=False, escape=True,
                                                            classes="top-runs")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>sparktrack dashboard</title><style>body{font-family:sans-serif;margin:2em}"
        "img{max-width:100%}figure{margin:1em 0}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>\n"
        f"<h1>sparktrack dashboard</h1><p>Store <code>{esc(uri)}</code>, generated {generated}."
        f" Metric <b>{esc(dashboard.metric or '-')}</b> "
        f"({'lower' if dashboard.minimize else 'higher'} is better).</p>\n"
        + "\n".join(sections)
        + (f"\n<h2>Top runs</h2>\n{table}" if table else "")
        + "\n</body></html>\n"
    )


def build_dashboard(
    spark: SparkSession,
    uri: str,
    out_dir: str,
    *,
    metric: str | None = None,
    minimize: bool | None = None,
    run_id: str | None = None,
    experiment_ids: str | None = None,
    top: int = 10,
) -> Dashboard:
    """Query the store, write one PNG per chart and ``index.html`` into ``out_dir``.

    Args:
        metric: the metric to rank by; default the one most runs logged.
        minimize: whether lower is better; default guessed from the name (loss, rmse, ...).
        run_id: the run whose curves to draw; default the best run.
        experiment_ids: comma-separated experiments to include (default all).
    """
    os.makedirs(out_dir, exist_ok=True)
    runs = _read(spark, uri, "runs", experiment_ids).cache()
    try:
        metric = metric or default_metric(runs)
        minimize = lower_is_better(metric or "") if minimize is None else minimize
        dashboard = Dashboard(out_dir=out_dir, metric=metric, minimize=minimize, run_id=run_id)
        frames = dashboard.frames
        frames["runs_per_user"] = runs_per_user(runs)
        frames["runs_per_day_and_status"] = runs_per_day_and_status(runs)
        figures = {}
        if metric is not None:
            frames["best_over_time"] = best_metric_over_time(runs, metric, minimize=minimize)
            frames["top_runs"] = top_runs(runs, metric, minimize=minimize, limit=top)
            figures["best_over_time"] = chart_best_over_time(
                frames["best_over_time"], metric, minimize=minimize)
        figures["runs_per_user"] = chart_runs_per_user(frames["runs_per_user"])
        figures["runs_per_day_and_status"] = chart_runs_per_day(frames["runs_per_day_and_status"])
        if metric is not None:
            figures["top_runs"] = chart_top_runs(frames["top_runs"], metric)
            if dashboard.run_id is None and not frames["top_runs"].empty:
                dashboard.run_id = str(frames["top_runs"]["run_id"].iloc[0])
        if dashboard.run_id is not None:
            metrics = _read(spark, uri, "metrics", experiment_ids)
            frames["run_curves"] = metric_curves(metrics, dashboard.run_id)
            figures["run_curves"] = chart_metric_curves(frames["run_curves"],
                                                        dashboard.run_id[:8])
    finally:
        runs.unpersist()
    for name, figure in figures.items():
        path = os.path.join(out_dir, f"{name}.png")
        figure.savefig(path, dpi=100)
        dashboard.images[name] = path
    dashboard.html_path = os.path.join(out_dir, "index.html")
    with open(dashboard.html_path, "w", encoding="utf-8") as page:
        page.write(_page(dashboard, uri))
    return dashboard
