"""``sparktrack export``: one experiment of a store into an MLflow store, through MLflow's own
client (so any tracking URI MLflow accepts works: a database, a server, Databricks).

MLflow gives the runs new ids (its client cannot keep them); the summary maps each old id to
its new one, and parent links follow the new ids. Runs keep their names, start and end times,
status, params, tags, full metric histories and artifacts (when they are on this disk);
deleted runs are exported and then deleted in MLflow. The registry is not exported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sparktrack import _tags
from sparktrack.client import TrackingClient
from sparktrack.entities import Experiment, LifecycleStage, Run, RunStatus, ViewType
from sparktrack.errors import (
    ExperimentNotFoundError,
    InvalidInputError,
    MissingRequirementError,
)
from sparktrack._transfer.progress import Progress
from sparktrack._transfer.source import local_path

__all__ = ["ExportSummary", "export_experiment"]

# MLflow's log_batch limits (mlflow/utils/validation.py): metrics, params and tags per call.
_METRICS_PER_CALL = 1000
_PARAMS_PER_CALL = 100


@dataclass
class ExportSummary:
    """What an export wrote (``lines()`` is the printed summary)."""

    experiment: str
    destination: str
    experiment_id: str = ""
    runs: dict[str, str] = field(default_factory=dict)  # store run id -> MLflow run id
    params: int = 0
    metric_rows: int = 0
    artifact_files: int = 0

    def lines(self) -> list[str]:
        lines = [
            f"Exported experiment {self.experiment} to {self.destination} "
            f"(MLflow experiment {self.experiment_id}):",
            f"  runs {len(self.runs):,}, params {self.params:,}, metric rows "
            f"{self.metric_rows:,}, artifacts {self.artifact_files:,} files",
            "  run ids (sparktrack -> MLflow):",
        ]
        lines += [f"    {old} -> {new}" for old, new in self.runs.items()]
        return lines


def export_experiment(experiment: str, *, to_uri: str, store_uri: str | None = None,
                      progress: bool = True) -> ExportSummary:
    """Write the experiment named (or with the id) ``experiment`` into the MLflow store at
    ``to_uri``; an MLflow experiment of the same name is reused, else created.

    Raises:
        ExperimentNotFoundError: the store has no such experiment.
        MissingRequirementError: mlflow is not installed.
    """
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise MissingRequirementError(
            "sparktrack export writes through MLflow's client: pip install 'mlflow>=3.17,<3.18'."
        ) from exc
    from mlflow.exceptions import MlflowException

    client = TrackingClient(store_uri)
    found = _find_experiment(client, experiment)
    try:
        return _export(client, MlflowClient(tracking_uri=to_uri, registry_uri=to_uri), found,
                       to_uri=to_uri, progress=progress)
    except MlflowException as exc:
        raise InvalidInputError(
            f"MLflow at {to_uri[:200]!r} refused the export of experiment {found.name!r}: "
            f"{str(exc)[:200]}. Check the URI (as you would give it to mlflow.set_tracking_uri); "
            "runs exported before the error stay in MLflow."
        ) from exc


def _export(client: TrackingClient, mlflow, found: Experiment, *, to_uri: str,
            progress: bool) -> ExportSummary:
    summary = ExportSummary(experiment=f"{found.name!r} ({found.experiment_id})",
                            destination=to_uri)
    existing = mlflow.get_experiment_by_name(found.name)
    summary.experiment_id = (existing.experiment_id if existing is not None else
                             mlflow.create_experiment(found.name, tags=dict(found.tags)))
    runs = _parents_first(_all_runs(client, found.experiment_id))
    bar = Progress(label="exporting runs", total=len(runs), enabled=progress)
    try:
        for run in runs:
            _export_run(client, mlflow, run, summary)
            bar.advance()
    finally:
        bar.close()
    return summary


def _find_experiment(client: TrackingClient, experiment: str) -> Experiment:
    by_name = client.get_experiment_by_name(experiment)
    if by_name is not None:
        return by_name
    try:
        return client.get_experiment(experiment)
    except ExperimentNotFoundError:
        raise ExperimentNotFoundError(
            f"No experiment named or with id {experiment[:200]!r} in store {client.store_root}. "
            "List them with `sparktrack experiments list --view all`."
        ) from None


def _all_runs(client: TrackingClient, experiment_id: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.ALL,
                                  max_results=10_000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _parents_first(runs: list[Run]) -> list[Run]:
    """Runs ordered so that a parent comes before its children (then by start time)."""
    by_id = {run.info.run_id: run for run in runs}
    ordered: list[Run] = []
    placed: set[str] = set()

    def place(run: Run, seen: frozenset[str]) -> None:
        if run.info.run_id in placed:
            return
        parent = run.info.parent_run_id
        if parent in by_id and parent not in seen:
            place(by_id[parent], seen | {run.info.run_id})
        placed.add(run.info.run_id)
        ordered.append(run)

    for run in sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id)):
        place(run, frozenset())
    return ordered


def _export_run(client: TrackingClient, mlflow, run: Run, summary: ExportSummary) -> None:
    from mlflow.entities import Metric, Param

    info = run.info
    tags = {k: v for k, v in run.data.tags.items() if k != _tags.RUN_NAME}
    parent = tags.pop(_tags.PARENT_RUN_ID, None)
    if parent is not None:
        tags[_tags.PARENT_RUN_ID] = summary.runs.get(parent, parent)
    created = mlflow.create_run(summary.experiment_id, start_time=info.start_time, tags=tags,
                                run_name=info.run_name)
    run_id = created.info.run_id
    summary.runs[info.run_id] = run_id
    params = [Param(k, v) for k, v in run.data.params.items()]
    for start in range(0, len(params), _PARAMS_PER_CALL):
        mlflow.log_batch(run_id, params=params[start:start + _PARAMS_PER_CALL])
    metrics = [Metric(m.key, m.value, m.timestamp, m.step)
               for key in run.data.metrics for m in client.get_metric_history(info.run_id, key)]
    for start in range(0, len(metrics), _METRICS_PER_CALL):
        mlflow.log_batch(run_id, metrics=metrics[start:start + _METRICS_PER_CALL])
    summary.params += len(params)
    summary.metric_rows += len(metrics)
    folder = local_path(info.artifact_uri)
    if folder and Path(folder).is_dir() and any(Path(folder).iterdir()):
        mlflow.log_artifacts(run_id, folder)
        summary.artifact_files += sum(1 for p in Path(folder).rglob("*") if p.is_file())
    if info.status != RunStatus.RUNNING.value:
        mlflow.set_terminated(run_id, status=info.status, end_time=info.end_time)
    if info.lifecycle_stage == LifecycleStage.DELETED:
        mlflow.delete_run(run_id)
