"""The lifecycle of runs: soft delete and restore (single, with descendants, in bulk) and
garbage collection that removes deleted runs for good.

Private: the client (``TrackingClient.delete_runs``, ``gc``, ...), the module API and the CLI
are the entry points. Not to be confused with :mod:`sparktrack.maintenance`, which changes
only the layout of a store's files (compaction, checkpoints, vacuum), never which runs it holds.

Bulk operations follow the Databricks API: ``delete_runs`` deletes runs created at or before a
time, ``restore_runs`` restores runs deleted at or after a time, at most ``max_runs``
(1..10,000) each, and both return how many runs they changed.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import pyarrow.compute as pc

from sparktrack._artifact_repository import ArtifactRepository
from sparktrack.entities import LifecycleStage, ViewType
from sparktrack.errors import InvalidInputError, StoreError
from sparktrack._store import TrackingStore
from sparktrack._store.rows import now_millis
from sparktrack._delta import DeltaTableHandle
from sparktrack._store.locations import relative_to_root
from sparktrack._store.schemas import (
    INPUTS,
    METRIC_SUMMARIES,
    METRICS,
    PARAMS,
    RUNS,
    RUNS_LATEST,
    TABLES,
    TAGS,
)

__all__ = ["GcResult", "collect_garbage", "delete_runs", "descendants_of", "restore_runs"]

logger = logging.getLogger("sparktrack")

MAX_BULK_RUNS = 10_000
GC_TIMEOUT_SECONDS = 120.0
"""How long gc keeps retrying a rewrite that conflicts with other writers by default."""
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
    """What a garbage collection removed: the runs, their rows per table, the files vacuumed.

    ``skipped_artifacts`` lists the artifact folders of removed runs that were left on disk
    because they are not inside the store garbage collection was given (a copied or moved
    store's old locations, an experiment's own ``artifact_location``): gc deletes nothing
    outside its store.
    """

    run_ids: list[str]
    files_vacuumed: int
    skipped_artifacts: list[str] = field(default_factory=list)
    rows_removed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


# Folders of the store that are never a run's artifact folder.
_STORE_FOLDERS = frozenset({*TABLES, RUNS_LATEST.name})


def _deletable(root: str, artifact_uri: str) -> bool:
    """Whether gc may delete ``artifact_uri``: a folder at least two levels inside the store
    root (``artifacts/<experiment>/<run>``, ``<location>/<run>``), not one of the store's
    tables, with links resolved on a local disk."""
    if "://" not in root and "://" not in artifact_uri.removeprefix("file://"):
        root = os.path.realpath(root)
        artifact_uri = os.path.realpath(artifact_uri.removeprefix("file://"))
    relative = relative_to_root(root, artifact_uri)
    if relative is None:
        return False
    parts = relative.split("/")
    return len(parts) >= 2 and ".." not in parts and parts[0] not in _STORE_FOLDERS and not (
        parts[0].startswith((".", "_"))
    )


def collect_garbage(
    store: TrackingStore,
    *,
    older_than: timedelta = timedelta(days=30),
    experiment_ids: list[str] | None = None,
    vacuum_retention_hours: int = 0,
    timeout_seconds: float = GC_TIMEOUT_SECONDS,
) -> GcResult:
    """Permanently remove runs deleted more than ``older_than`` ago, with their params, metrics,
    tags, summaries, inputs, ``runs_latest`` rows and artifacts, then vacuum the tables so their
    files are gone from disk.

    Safe beside processes that log: their appends never conflict with gc's rewrites. A rewrite
    that does conflict (a compaction or another gc removed the same files) is retried with
    backoff until ``timeout_seconds`` have passed; then StoreError says which experiments were
    finished and which were not (their runs stay, deleted; the next gc finishes them).
    Readers of the store retry once when a file they planned to read was vacuumed under them.
    """
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidInputError(f"older_than must be a non-negative timedelta, got {older_than!r}.")
    if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, (int, float)) or not (
        timeout_seconds > 0
    ):
        raise InvalidInputError(
            f"timeout_seconds must be a positive number of seconds, got {timeout_seconds!r}."
        )
    started = time.monotonic()
    deadline = started + timeout_seconds
    cutoff = now_millis() - int(older_than.total_seconds() * 1000)
    ids = [str(e) for e in experiment_ids] if experiment_ids is not None else None
    rows = store.run_rows(ids, view_type=ViewType.DELETED_ONLY)
    rows = rows.filter(pc.less_equal(rows.column("deleted_time"), cutoff))
    doomed: dict[str, list[str]] = defaultdict(list)
    for run_id, experiment_id in zip(rows.column("run_id").to_pylist(),
                                     rows.column("experiment_id").to_pylist(), strict=True):
        doomed[experiment_id].append(run_id)
    artifact_uris = dict(zip(rows.column("run_id").to_pylist(),
                             rows.column("artifact_uri").to_pylist(), strict=True))
    # The materialized runs_latest (written by maintenance) holds copies of the runs' data.
    latest = DeltaTableHandle(store.root, RUNS_LATEST, storage_options=store.storage_options)
    materialized = [latest] if doomed and latest.version() is not None else []
    rewritten = [
        *(store.tables[name] for name in (METRICS.name, METRIC_SUMMARIES.name, PARAMS.name,
                                          TAGS.name, INPUTS.name)),
        *materialized,
        store.tables[RUNS.name],
    ]
    rows_removed: dict[str, int] = defaultdict(int)
    removed: list[str] = []
    failures: dict[str, StoreError] = {}
    for experiment_id, run_ids in doomed.items():
        if not _SAFE_ID.match(experiment_id):
            raise StoreError(f"Refusing to rewrite partition of unexpected experiment id "
                             f"{experiment_id!r}.")
        try:
            # Runs last: until the end a failure leaves the runs visible and a later gc finishes.
            for handle in rewritten:
                rows_removed[handle.spec.name] += handle.remove_runs(
                    experiment_id, run_ids, deadline=deadline
                )
        except StoreError as exc:
            # Past the deadline the other experiments still get one attempt each.
            failures[experiment_id] = exc
        else:
            removed.extend(run_ids)
        # The saved search state holds copies of their params and tags too.
        store.drop_search_state(experiment_id)
    skipped = []
    for run_id in removed:
        uri = artifact_uris[run_id]
        if _deletable(store.root, uri):
            ArtifactRepository(uri, storage_options=store.storage_options).delete_all()
        else:
            skipped.append(uri)
            logger.warning(
                "gc left the artifacts at %s on disk: they are not inside the store %s, and gc "
                "deletes nothing outside it. Delete them by hand if no other store uses them.",
                uri, store.root,
            )
    store.forget_runs(removed)
    vacuumed = 0
    if removed:
        for handle in [*store.tables.values(), *materialized]:
            vacuumed += handle.vacuum(retention_hours=vacuum_retention_hours)
    result = GcResult(run_ids=removed, files_vacuumed=vacuumed, rows_removed=dict(rows_removed),
                      skipped_artifacts=skipped, seconds=time.monotonic() - started)
    if failures:
        raise StoreError(_unfinished_gc_message(result, doomed, failures, timeout_seconds))
    return result


def _unfinished_gc_message(result: GcResult, doomed: dict[str, list[str]],
                           failures: dict[str, StoreError], timeout_seconds: float) -> str:
    left_runs = sum(len(doomed[experiment_id]) for experiment_id in failures)
    first, error = next(iter(failures.items()))
    rows = ", ".join(f"{count} from {table}" for table, count in result.rows_removed.items()
                     if count) or "none"
    return (
        f"gc stopped after {result.seconds:.1f} s; experiment {first}: {error} "
        f"Done: {len(result.run_ids)} run(s) removed for good with their artifacts (rows "
        f"removed: {rows}); {result.files_vacuumed} file(s) vacuumed. Not done: {left_runs} "
        f"run(s) of experiment(s) {', '.join(sorted(failures))} are still in the store, "
        f"deleted. Run gc again to finish them (timeout_seconds={timeout_seconds:g} was the "
        "limit)."
    )
