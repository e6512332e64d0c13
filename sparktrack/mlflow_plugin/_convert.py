"""sparktrack's entities as MLflow's, and MLflow's logged values as sparktrack's.

The field names are the same on both sides (sparktrack's entities copy MLflow's); what differs
is the shape: MLflow keeps tags, params and metrics as lists of small entities, and reads
artifact locations as URIs (see :func:`~sparktrack.mlflow_plugin.uris.artifact_uri_for_mlflow`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlflow import entities as mlflow_entities
from mlflow.entities import model_registry as mlflow_registry

from sparktrack import entities
from sparktrack._validation import quoted
from sparktrack.errors import InvalidInputError
from sparktrack.mlflow_plugin.uris import artifact_uri_for_mlflow

__all__ = [
    "experiment",
    "metric",
    "model_version",
    "registered_model",
    "run",
    "run_info",
    "listed",
    "sparktrack_metrics",
    "sparktrack_params",
    "sparktrack_tags",
    "tag_dict",
    "tag_pair",
]


# -- sparktrack -> MLflow ---------------------------------------------------------------------
def experiment(item: entities.Experiment) -> mlflow_entities.Experiment:
    return mlflow_entities.Experiment(
        experiment_id=item.experiment_id,
        name=item.name,
        artifact_location=artifact_uri_for_mlflow(item.artifact_location),
        lifecycle_stage=str(item.lifecycle_stage),
        tags=[mlflow_entities.ExperimentTag(k, v) for k, v in item.tags.items()],
        creation_time=item.creation_time,
        last_update_time=item.last_update_time,
    )


def run_info(info: entities.RunInfo) -> mlflow_entities.RunInfo:
    return mlflow_entities.RunInfo(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        user_id=info.user_id,
        status=str(info.status),
        start_time=info.start_time,
        end_time=info.end_time,
        lifecycle_stage=str(info.lifecycle_stage),
        artifact_uri=artifact_uri_for_mlflow(info.artifact_uri),
        run_name=info.run_name,
    )


def metric(item: entities.Metric) -> mlflow_entities.Metric:
    return mlflow_entities.Metric(item.key, item.value, item.timestamp, item.step)


def run(item: entities.Run, latest: Sequence[mlflow_entities.Metric]) -> mlflow_entities.Run:
    """A run with ``latest`` as its metrics (MLflow's latest points carry step and time)."""
    data = mlflow_entities.RunData(
        metrics=list(latest),
        params=[mlflow_entities.Param(k, v) for k, v in item.data.params.items()],
        tags=[mlflow_entities.RunTag(k, v) for k, v in item.data.tags.items()],
    )
    inputs = mlflow_entities.RunInputs(
        dataset_inputs=[_dataset_input(d) for d in item.inputs.dataset_inputs], model_inputs=[]
    )
    return mlflow_entities.Run(run_info(item.info), data, run_inputs=inputs)


def _dataset_input(item: entities.DatasetInput) -> mlflow_entities.DatasetInput:
    d = item.dataset
    return mlflow_entities.DatasetInput(
        mlflow_entities.Dataset(d.name, d.digest, d.source_type, d.source, d.schema, d.profile),
        tags=[mlflow_entities.InputTag(t.key, t.value) for t in item.tags],
    )


def model_version(item: entities.ModelVersion) -> mlflow_registry.ModelVersion:
    return mlflow_registry.ModelVersion(
        name=item.name,
        version=str(item.version),
        creation_timestamp=item.creation_timestamp,
        last_updated_timestamp=item.last_updated_timestamp,
        description=item.description,
        user_id=item.user_id,
        current_stage=item.current_stage,
        source=item.source,
        run_id=item.run_id,
        status=item.status,
        status_message=item.status_message,
        tags=[mlflow_registry.ModelVersionTag(k, v) for k, v in item.tags.items()],
        run_link=item.run_link,
        aliases=list(item.aliases),
        model_id=item.model_id,
    )


def registered_model(item: entities.RegisteredModel) -> mlflow_registry.RegisteredModel:
    return mlflow_registry.RegisteredModel(
        name=item.name,
        creation_timestamp=item.creation_timestamp,
        last_updated_timestamp=item.last_updated_timestamp,
        description=item.description,
        latest_versions=[model_version(v) for v in item.latest_versions],
        tags=[mlflow_registry.RegisteredModelTag(k, v) for k, v in item.tags.items()],
        aliases=[mlflow_registry.RegisteredModelAlias(alias, str(version))
                 for alias, version in item.aliases.items()],
    )


# -- MLflow -> sparktrack ---------------------------------------------------------------------
def _items(values: Iterable[Any] | None, kind: str, fields: tuple[str, ...]) -> list[Any]:
    """``values`` (None: none), each checked to have ``fields``: MLflow's entities or alike."""
    if values is None:
        return []
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise InvalidInputError(
            f"{kind}s must be a list of MLflow {kind} entities, got {quoted(values)} "
            f"({type(values).__name__})."
        )
    items = list(values)
    for item in items:
        if not all(hasattr(item, name) for name in fields):
            raise InvalidInputError(
                f"Each {kind} must be an MLflow {kind} entity with {', '.join(fields)}; got "
                f"{quoted(item)} ({type(item).__name__})."
            )
    return items


def sparktrack_metrics(values: Iterable[Any] | None) -> list[entities.Metric]:
    return [entities.Metric(m.key, m.value, m.timestamp, m.step)
            for m in _items(values, "Metric", ("key", "value", "timestamp", "step"))]


def sparktrack_params(values: Iterable[Any] | None) -> list[entities.Param]:
    return [entities.Param(p.key, p.value) for p in _items(values, "Param", ("key", "value"))]


def sparktrack_tags(values: Iterable[Any] | None) -> list[entities.RunTag]:
    return [entities.RunTag(t.key, t.value) for t in _items(values, "RunTag", ("key", "value"))]


def tag_pair(tag: Any, kind: str = "tag") -> tuple[str, Any]:
    """The key and value of one of MLflow's tag entities."""
    (item,) = _items([tag], kind, ("key", "value"))
    return item.key, item.value


def tag_dict(values: Iterable[Any] | dict | None) -> dict[str, Any]:
    """MLflow's tag list (``ExperimentTag``, ``RegisteredModelTag``, ...) as a dict; a dict
    is taken as it is."""
    if isinstance(values, dict):
        return dict(values)
    return {t.key: t.value for t in _items(values, "tag", ("key", "value"))}


def listed(values: Any) -> Any:
    """A sequence MLflow's server passes (a protobuf repeated field) as a list; None and a
    bare string as they are (sparktrack's messages say what to pass instead)."""
    if values is None or isinstance(values, (str, bytes, list)):
        return values
    try:
        return list(values)
    except TypeError:
        return values
