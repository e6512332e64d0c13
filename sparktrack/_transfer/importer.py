"""``sparktrack import``: copy an MLflow store (database or mlruns folder) into a store.

What is copied: experiments (name, tags, lifecycle, times; the id kept when it is free),
runs with their ids, times, status, name, user, source, lifecycle and parent links, their
params, tags, every metric point (step and timestamp), their artifacts (copied from where
MLflow put them, when that is on this disk), and the registry (:mod:`.registry_import`).

Idempotent and resumable:

* an experiment whose name the store already has is not written again (its runs go there);
* a run whose id the store already has is skipped, never overwritten: the store keeps what
  it has even if the run changed in MLflow since (the summary counts those that differ in
  status, end time, name or lifecycle, and names one);
* runs are written in batches, each committed with its ``runs`` rows last
  (:meth:`sparktrack._store.TrackingStore.import_runs`), so a run is in the store only once
  all of it is. Rows a killed import left of a batch are removed before that batch is
  written again, so an interrupted import that is run again ends as a one-shot import would.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from sparktrack import _tags
from sparktrack._artifact_repository import ArtifactRepository
from sparktrack._delta import join_uri
from sparktrack._store import TrackingStore, open_store
from sparktrack._store.experiments import ARTIFACTS_FOLDER, derive_experiment_id
from sparktrack._store.imports import ImportedRuns
from sparktrack._store.locations import resolve_location
from sparktrack.entities import LifecycleStage, ViewType
from sparktrack._transfer.progress import Progress
from sparktrack._transfer.registry_import import import_models
from sparktrack._transfer.source import (
    SourceExperiment,
    StoreSource,
    local_path,
    open_source,
)

__all__ = ["DEFAULT_BATCH_RUNS", "ImportSummary", "import_mlflow"]

# Runs per batch (a few Delta commits each): large enough that commits are a small part of
# the time, small enough that a killed import redoes little.
DEFAULT_BATCH_RUNS = 2000

# Run fields compared to tell a skipped run that changed in the source since its import.
_COMPARED = ("status", "end_time", "run_name", "lifecycle_stage")
_SYSTEM_TAGS = (_tags.RUN_NAME, _tags.PARENT_RUN_ID, _tags.USER, _tags.SOURCE_NAME,
                _tags.SOURCE_TYPE, _tags.GIT_COMMIT, _tags.GIT_BRANCH, _tags.GIT_REPO_URL)


@dataclass
class ImportSummary:
    """What an import copied and skipped (``lines()`` is the printed summary)."""

    source: str
    store: str
    experiments: int = 0
    experiments_skipped: int = 0
    runs: int = 0
    runs_skipped: int = 0
    runs_changed: list[str] = field(default_factory=list)
    params: int = 0
    tags: int = 0
    metric_rows: int = 0
    artifact_files: int = 0
    artifacts_elsewhere: list[str] = field(default_factory=list)
    partial_rows_removed: int = 0
    models: int = 0
    models_skipped: int = 0
    versions: int = 0
    versions_skipped: int = 0
    aliases: int = 0
    experiment_ids: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        lines = [
            f"Imported from {self.source} into {self.store}:",
            f"  experiments  {self.experiments:>9,}   skipped (already there) "
            f"{self.experiments_skipped:,}",
            f"  runs         {self.runs:>9,}   skipped (already there) {self.runs_skipped:,}",
            f"  params       {self.params:>9,}",
            f"  tags         {self.tags:>9,}",
            f"  metric rows  {self.metric_rows:>9,}",
            f"  artifacts    {self.artifact_files:>9,} files",
            f"  models       {self.models:>9,}   skipped (already there) {self.models_skipped:,}",
            f"  versions     {self.versions:>9,}   skipped (already there) "
            f"{self.versions_skipped:,}",
            f"  aliases      {self.aliases:>9,}",
        ]
        moved = {s: t for s, t in self.experiment_ids.items() if s != t}
        if moved:
            lines.append("  experiment ids changed (id taken, or the name already in the store): "
                         + ", ".join(f"{s} -> {t}" for s, t in sorted(moved.items())))
        if self.runs_changed:
            lines.append(
                f"  {len(self.runs_changed):,} skipped run(s) differ from the source (e.g. "
                f"{self.runs_changed[0]}); the store's copy was kept. To take the source's, "
                "delete the run in the store, run `sparktrack gc --older-than 0s`, and import "
                "again.")
        if self.artifacts_elsewhere:
            lines.append(
                f"  {len(self.artifacts_elsewhere):,} run(s) keep their artifacts outside this "
                f"machine's disk (e.g. {self.artifacts_elsewhere[0][:200]}): not copied.")
        if self.partial_rows_removed:
            lines.append(f"  resumed: {self.partial_rows_removed:,} row(s) of an interrupted "
                         "import removed and written again")
        return lines


def import_mlflow(
    source_uri: str,
    *,
    store_uri: str | None = None,
    batch_runs: int = DEFAULT_BATCH_RUNS,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Copy the MLflow store at ``source_uri`` into the store at ``store_uri`` (default: the
    current tracking URI); see the module's docstring for what is copied and kept.

    ``on_batch`` is called with the runs written so far after each batch (tests use it).

    Raises:
        InvalidInputError: ``source_uri`` is neither an MLflow database nor an mlruns folder.
    """
    from sparktrack.client import resolve_tracking_uri

    source = open_source(source_uri)
    store = open_store(resolve_tracking_uri(store_uri))
    summary = ImportSummary(source=source_uri, store=store.root)
    try:
        _Importer(source, store, summary, batch_runs=batch_runs, progress=progress,
                  on_batch=on_batch).run()
    finally:
        source.close()
    return summary


class _Importer:
    def __init__(self, source: StoreSource, store: TrackingStore, summary: ImportSummary, *,
                 batch_runs: int, progress: bool, on_batch: Callable[[int], None] | None):
        self.source = source
        self.store = store
        self.summary = summary
        self.batch_runs = max(1, batch_runs)
        self.show_progress = progress
        self.on_batch = on_batch
        # source run id -> (its artifact URI in the source, its artifact URI in the store)
        self.artifact_uris: dict[str, tuple[str | None, str]] = {}

    def run(self) -> None:
        experiments = self.source.experiments()
        targets = {e.experiment_id: self._experiment(e) for e in experiments}
        self.summary.experiment_ids = targets
        plans = [(e, targets[e.experiment_id], self.source.runs(e.experiment_id))
                 for e in experiments]
        present = self._present_runs()
        new_counts = [sum(1 for r in runs.column("run_id").to_pylist() if r not in present)
                      for _, _, runs in plans]
        bar = Progress(label="importing runs", total=sum(new_counts), enabled=self.show_progress)
        try:
            for experiment, target, runs in plans:
                self._import_runs(experiment, target, runs, present, bar)
        finally:
            bar.close()
        import_models(self.store, self.source.models(), self.artifact_uris, self.summary,
                      progress=self.show_progress)

    # -- experiments -------------------------------------------------------------------------------
    def _experiment(self, experiment: SourceExperiment) -> str:
        """The store's id for a source experiment, writing the experiment if it is new."""
        known = self.store.list_experiments(view_type=ViewType.ALL)
        for existing in known:
            if existing.name == experiment.name:
                self.summary.experiments_skipped += 1
                return existing.experiment_id
        taken = {e.experiment_id for e in known}
        target = experiment.experiment_id
        if target in taken:
            target = derive_experiment_id(experiment.name, taken=taken)
        created = experiment.creation_time or 0
        self.store.import_experiment(
            experiment_id=target, name=experiment.name,
            lifecycle_stage=LifecycleStage(experiment.lifecycle_stage),
            creation_time=created, last_update_time=experiment.last_update_time or created,
            tags=experiment.tags,
        )
        self.summary.experiments += 1
        return target

    # -- runs --------------------------------------------------------------------------------------
    def _present_runs(self) -> dict[str, dict]:
        rows = self.store.run_rows(None, view_type=ViewType.ALL)
        return {row["run_id"]: row for row in rows.select(["run_id", *_COMPARED]).to_pylist()}

    def _import_runs(self, experiment: SourceExperiment, target: str, runs: pa.Table,
                     present: dict[str, dict], bar: Progress) -> None:
        rows = runs.to_pylist()
        fresh = []
        for row in rows:
            self.artifact_uris[row["run_id"]] = (
                row["artifact_uri"],
                resolve_location(self.store.root, join_uri(ARTIFACTS_FOLDER, target,
                                                           row["run_id"])),
            )
            held = present.get(row["run_id"])
            if held is None:
                fresh.append(row)
                continue
            self.summary.runs_skipped += 1
            if any(held[name] != row[name] for name in _COMPARED if row[name] is not None):
                self.summary.runs_changed.append(row["run_id"])
        if not fresh:
            return
        self.summary.partial_rows_removed += self.store.remove_partial_runs(
            target, [row["run_id"] for row in fresh])
        for batch in _batches(fresh, self.batch_runs):
            self._write_batch(experiment, target, batch)
            bar.advance(len(batch))
            if self.on_batch is not None:
                self.on_batch(self.summary.runs)

    def _write_batch(self, experiment: SourceExperiment, target: str, runs: list[dict]) -> None:
        run_ids = [row["run_id"] for row in runs]
        data = self.source.run_data(experiment.experiment_id, run_ids)
        system = _system_tags(data.tags)
        for row in runs:
            self._copy_artifacts(experiment.experiment_id, row)
        batch = ImportedRuns(
            runs=_run_rows(runs, target, system),
            tags=_with_columns(data.tags, target, deleted=False),
            params=_with_columns(data.params, target),
            metrics=_with_columns(_filled(data.metrics), target),
        )
        self.store.import_runs(batch)
        self.summary.runs += len(runs)
        self.summary.params += data.params.num_rows
        self.summary.tags += data.tags.num_rows
        self.summary.metric_rows += data.metrics.num_rows

    def _copy_artifacts(self, source_experiment: str, row: dict) -> None:
        folder = self.source.local_artifacts(source_experiment, row)
        if folder is None:
            uri = row.get("artifact_uri") or ""
            if uri and not _is_local(uri):
                self.summary.artifacts_elsewhere.append(uri)
            return
        destination = self.artifact_uris[row["run_id"]][1]
        # Copied again whole if a batch is redone: same files, same bytes.
        ArtifactRepository(destination).log_artifacts(folder)
        self.summary.artifact_files += sum(1 for p in Path(folder).rglob("*") if p.is_file())


def _is_local(uri: str) -> bool:
    return local_path(uri) is not None


def _batches(rows: list[dict], size: int):
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _system_tags(tags: pa.Table) -> dict[tuple[str, str], str]:
    """{(run_id, tag key): value} of the system tags that fill the runs' columns."""
    wanted = tags.filter(pc.is_in(tags.column("key"), value_set=pa.array(_SYSTEM_TAGS)))
    return {(r["run_id"], r["key"]): r["value"] for r in wanted.to_pylist()}


def _run_rows(runs: list[dict], target: str, system: dict[tuple[str, str], str]) -> pa.Table:
    def tag(row: dict, key: str) -> str | None:
        return system.get((row["run_id"], key))

    rows = [{
        "run_id": row["run_id"],
        "experiment_id": target,
        "run_name": row["run_name"] or tag(row, _tags.RUN_NAME),
        "parent_run_id": tag(row, _tags.PARENT_RUN_ID),
        "status": row["status"],
        "user_id": row["user_id"] or tag(row, _tags.USER),
        "source_type": row["source_type"] or tag(row, _tags.SOURCE_TYPE),
        "source_name": row["source_name"] or tag(row, _tags.SOURCE_NAME),
        "git_commit": tag(row, _tags.GIT_COMMIT),
        "git_branch": tag(row, _tags.GIT_BRANCH),
        "git_repo_url": tag(row, _tags.GIT_REPO_URL),
        "start_time": row["start_time"] or 0,
        "end_time": row["end_time"],
        "lifecycle_stage": row["lifecycle_stage"] or LifecycleStage.ACTIVE.value,
        "deleted_time": row["deleted_time"],
        # Relative to the store root, as the logging path writes it.
        "artifact_uri": join_uri(ARTIFACTS_FOLDER, target, row["run_id"]),
    } for row in runs]
    names = [name for name in rows[0]] if rows else []
    return pa.Table.from_pylist(rows).select(names)


def _filled(metrics: pa.Table) -> pa.Table:
    """MLflow's schema allows a NULL timestamp; the store's does not (0, as MLflow reads it)."""
    index = metrics.schema.get_field_index("timestamp")
    return metrics.set_column(index, "timestamp", pc.fill_null(metrics.column("timestamp"), 0))


def _with_columns(table: pa.Table, experiment_id: str, **constants) -> pa.Table:
    """``table`` with the target experiment id (and constant columns) added."""
    table = table.add_column(1, "experiment_id",
                             pa.array([experiment_id] * table.num_rows, type=pa.string()))
    for name, value in constants.items():
        table = table.append_column(name, pa.array([value] * table.num_rows))
    return table
