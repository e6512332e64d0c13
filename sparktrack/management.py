"""Run management: soft delete and restore (single, with descendants, in bulk) and garbage
collection that removes deleted runs for good.

Bulk operations follow the Databricks API: ``delete_runs`` deletes runs created at or before a
time, ``restore_runs`` restores runs deleted at or after a time, at most ``max_runs``
(1..10,000) each, and both return how many runs they changed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import pyarrow.compute as pc

from sparktrack.artifacts import ArtifactRepository
from sparktrack.entities import LifecycleStage, ViewType
from sparktrack.errors import InvalidInputError, StoreError
from sparktrack.store import TrackingStore
from sparktrack.store.rows import now_millis
from sparktrack.store.delta import DeltaTableHandle
from sparktrack.store.schemas import (
    INPUTS,
    METRIC_SUMMARIES,
    METRICS,
    PARAMS,
    RUNS,
    RUNS_LATEST,
    TAGS,
)

__all__ = ["GcResult", "collect_garbage", "delete_runs", "descendants_of", "restore_runs"]

MAX_BULK_RUNS = 10_000
# Run and experiment ids are validated against this before they enter a Delta predicate.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,255}$")


def _check_max_runs(max_runs: int) -> None:
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or not (
        1 <= max_runs <= MAX_BULK_RUNS
    ):
        raise InvalidInputError(
            f"max_runs must be an integer between 1 and {MAX_BULK_RUNS}, got {max_runs!r}."
        )


def _check_time(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(
            f"{name} must be a non-negative integer number of milliseconds since the epoch, "
            f"got {value!r}."
        )


def descendants_of(store: TrackingStore, run_id: str, experiment_id: str) -> list[str]:
    """Ids of the runs nested under ``run_id`` at any depth (same experiment)."""
    rows = store.run_rows([experiment_id], view_type=ViewType.ALL)
    children: dict[str, list[str]] = defaultdict(list)
    for child, parent in zip(rows.column("run_id").to_pylist(),
                             rows.column("parent_run_id").to_pylist(), strict=True):
        if parent:
            children[parent].append(child)
    found, frontier = [], [run_id]
    while frontier:
        current = frontier.pop()
        for child in children.get(current, []):
            if child not in found:
                found.append(child)
                frontier.append(child)
    return found


def delete_runs(
    store: TrackingStore, experiment_id: str, max_timestamp_millis: int, *, max_runs: int = 10_000
) -> int:
    """Soft-delete active runs started at or before the time, oldest first; returns the count."""
    _check_time("max_timestamp_millis", max_timestamp_millis)
    _check_max_runs(max_runs)
    store.get_experiment(str(experiment_id))
    rows = store.run_rows([str(experiment_id)], view_type=ViewType.ACTIVE_ONLY)
    rows = rows.filter(pc.less_equal(rows.column("start_time"), max_timestamp_millis))
    rows = rows.sort_by([("start_time", "ascending"), ("run_id", "ascending")]).slice(0, max_runs)
    for run_id in rows.column("run_id").to_pylist():
        store.set_run_lifecycle(run_id, LifecycleStage.DELETED)
    return rows.num_rows


def restore_runs(
    store: TrackingStore, experiment_id: str, min_timestamp_millis: int, *, max_runs: int = 10_000
) -> int:
    """Restore runs deleted at or after the time, most recently deleted first; returns the count."""
    _check_time("min_timestamp_millis", min_timestamp_millis)
    _check_max_runs(max_runs)
    store.get_experiment(str(experiment_id))
    rows = store.run_rows([str(experiment_id)], view_type=ViewType.DELETED_ONLY)
    rows = rows.filter(pc.greater_equal(rows.column("deleted_time"), min_timestamp_millis))
    rows = rows.sort_by([("deleted_time", "descending"), ("run_id", "ascending")])
    rows = rows.slice(0, max_runs)
    for run_id in rows.column("run_id").to_pylist():
        store.set_run_lifecycle(run_id, LifecycleStage.ACTIVE)
    return rows.num_rows


@dataclass(frozen=True, slots=True)
class GcResult:
    """What a garbage collection removed."""

    run_ids: list[str]
    files_vacuumed: int


def collect_garbage(
    store: TrackingStore,
    *,
    older_than: timedelta = timedelta(days=30),
    experiment_ids: list[str] | None = None,
    vacuum_retention_hours: int = 0,
) -> GcResult:
    """Permanently remove runs deleted more than ``older_than`` ago, with their params, metrics,
    tags, summaries, inputs, ``runs_latest`` rows and artifacts, then vacuum the tables so their
    files are gone from disk.

    Readers of the store retry once when a file they planned to read was vacuumed under them.
    """
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidInputError(f"older_than must be a non-negative timedelta, got {older_than!r}.")
    cutoff = now_millis() - int(older_than.total_seconds() * 1000)
    ids = [str(e) for e in experiment_ids] if experiment_ids is not None else None
    rows = store.run_rows(ids, view_type=ViewType.DELETED_ONLY)
    rows = rows.filter(pc.less_equal(rows.column("deleted_time"), cutoff))
    doomed: dict[str, list[str]] = defaultdict(list)
    for run_id, experiment_id in zip(rows.column("run_id").to_pylist(),
                                     rows.column("experiment_id").to_pylist(), strict=True):
        doomed[experiment_id].append(run_id)
    artifact_uris = rows.column("artifact_uri").to_pylist()
    # The materialized runs_latest (written by maintenance) holds copies of the runs' data.
    latest = DeltaTableHandle(store.root, RUNS_LATEST, storage_options=store.storage_options)
    materialized = [latest] if doomed and latest.version() is not None else []
    rewritten = [
        *(store.tables[name] for name in (METRICS.name, METRIC_SUMMARIES.name, PARAMS.name,
                                          TAGS.name, INPUTS.name)),
        *materialized,
        store.tables[RUNS.name],
    ]
    for experiment_id, run_ids in doomed.items():
        if not _SAFE_ID.match(experiment_id):
            raise StoreError(f"Refusing to rewrite partition of unexpected experiment id "
                             f"{experiment_id!r}.")
        # Runs last: until the end a crash leaves the runs visible and a later gc finishes.
        for handle in rewritten:
            handle.remove_runs(experiment_id, run_ids)
        # The saved search state holds copies of their params and tags too.
        store.drop_search_state(experiment_id)
    for uri in artifact_uris:
        ArtifactRepository(uri).delete_all()
    removed = [run_id for run_ids in doomed.values() for run_id in run_ids]
    store.forget_runs(removed)
    vacuumed = 0
    if removed:
        for handle in [*store.tables.values(), *materialized]:
            vacuumed += handle.vacuum(retention_hours=vacuum_retention_hours)
    return GcResult(run_ids=removed, files_vacuumed=vacuumed)
