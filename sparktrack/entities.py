"""Plain, frozen records that the API returns: experiments, runs, metrics, params, tags, the
datasets a run used (its inputs), and the model registry's models, versions and aliases.

No pyspark and no Delta here: entities are what a caller holds after a read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "Dataset",
    "DatasetInput",
    "Experiment",
    "FileInfo",
    "InputTag",
    "LifecycleStage",
    "Metric",
    "ModelVersion",
    "Param",
    "RegisteredModel",
    "RegisteredModelAlias",
    "Run",
    "RunData",
    "RunInfo",
    "RunInputs",
    "RunStatus",
    "RunTag",
    "ViewType",
]


class RunStatus(StrEnum):
    """A run's status, as MLflow names them."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminated(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)


class LifecycleStage(StrEnum):
    """Whether an experiment or run is active or soft-deleted."""

    ACTIVE = "active"
    DELETED = "deleted"


class ViewType(StrEnum):
    """Which lifecycle stages a search returns."""

    ACTIVE_ONLY = "ACTIVE_ONLY"
    DELETED_ONLY = "DELETED_ONLY"
    ALL = "ALL"

    def admits(self, stage: str) -> bool:
        if self is ViewType.ALL:
            return True
        wanted = LifecycleStage.ACTIVE if self is ViewType.ACTIVE_ONLY else LifecycleStage.DELETED
        return stage == wanted


@dataclass(frozen=True, slots=True)
class Metric:
    """One point of a metric's history."""

    key: str
    value: float
    timestamp: int
    step: int


@dataclass(frozen=True, slots=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class RunTag:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment: a named group of runs with an artifact location."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run's metadata. Times are milliseconds since the epoch."""

    run_id: str
    experiment_id: str
    run_name: str
    status: str
    user_id: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str
    parent_run_id: str | None = None
    deleted_time: int | None = None

    @property
    def run_uuid(self) -> str:
        """MLflow's older name for :attr:`run_id`."""
        return self.run_id


@dataclass(frozen=True, slots=True)
class RunData:
    """What was logged: latest metric values, params and tags."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset as recorded with a run (MLflow's ``mlflow.entities.Dataset``).

    ``source`` is JSON describing where the data came from, in the shape of the dataset source
    named by ``source_type`` (e.g. ``delta_table``: ``{"path": ..., "delta_table_version": 3}``);
    ``schema`` is JSON (MLflow's ``{"mlflow_colspec": [...]}``) and ``profile`` is JSON with
    summary figures (sparktrack records the row count and fingerprints there).
    """

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class InputTag:
    """A tag of one dataset input of a run, e.g. ``mlflow.data.context = train``."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A dataset used by a run, with the tags of that use."""

    dataset: Dataset
    tags: list[InputTag] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunInputs:
    """What a run used: its dataset inputs, in the order they were first logged.

    ``model_inputs`` is MLflow's list of logged models used by the run; sparktrack has no
    logged models, so it is always empty.
    """

    dataset_inputs: list[DatasetInput] = field(default_factory=list)
    model_inputs: list = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Run:
    """A run: its info, its data and its inputs."""

    info: RunInfo
    data: RunData
    inputs: RunInputs = field(default_factory=RunInputs)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """An artifact: its path relative to the run's artifact root, and its size if a file."""

    path: str
    is_dir: bool
    file_size: int | None


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A version of a registered model (MLflow's ``ModelVersion``, same field names).

    ``version`` is an int, as MLflow's SQL registry returns it; times are milliseconds since
    the epoch; ``current_stage`` is one of None, Staging, Production, Archived (the string
    "None" for no stage, as in MLflow); ``status`` is always READY (registration is synchronous).
    """

    name: str
    version: int
    creation_timestamp: int
    last_updated_timestamp: int | None = None
    description: str | None = None
    user_id: str | None = None
    current_stage: str = "None"
    source: str | None = None
    run_id: str | None = None
    status: str = "READY"
    status_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    run_link: str | None = None
    aliases: list[str] = field(default_factory=list)
    model_id: str | None = None


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A registered model (MLflow's ``RegisteredModel``, same field names).

    ``latest_versions`` holds the newest version of each stage; ``aliases`` maps each alias to
    its version number.
    """

    name: str
    creation_timestamp: int | None = None
    last_updated_timestamp: int | None = None
    description: str | None = None
    latest_versions: list[ModelVersion] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RegisteredModelAlias:
    """An alias of a registered model and the version it points to."""

    alias: str
    version: int
