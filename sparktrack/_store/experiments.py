"""Experiments of a store: created, renamed, deleted, restored and tagged.

Experiment changes are committed at once (not buffered): other processes look experiments
up by name. Each change appends a new version of the experiment's row; the newest is current
(:func:`sparktrack._store.current_rules.current_experiments`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

import pyarrow as pa

from sparktrack.config import Settings
from sparktrack.entities import Experiment, LifecycleStage, ViewType
from sparktrack.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidInputError,
    InvalidStateError,
)
from sparktrack._store.current_rules import current_experiments
from sparktrack._delta import DeltaTableHandle, join_uri
from sparktrack._store.locations import location_to_store, resolve_location
from sparktrack._store.rows import next_version, now_millis
from sparktrack._store.schemas import EXPERIMENTS
from sparktrack._validation import validate_experiment_name, validate_key, validate_tag_value

__all__ = [
    "ARTIFACTS_FOLDER",
    "DEFAULT_EXPERIMENT_ID",
    "DEFAULT_EXPERIMENT_NAME",
    "Experiments",
    "derive_experiment_id",
    "validated_tags",
]

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
EXPERIMENT_CACHE_SECONDS = 1.0
# Artifact locations are stored relative to the store root (sparktrack._store.locations).
ARTIFACTS_FOLDER = "artifacts"


def validated_tags(tags: dict[str, object], *, settings: Settings) -> dict[str, str]:
    """Tags (of an experiment or a run) with checked keys and values as text."""
    checked = {}
    for key, value in tags.items():
        validate_key(key, kind="Tag", settings=settings)
        checked[key] = validate_tag_value(key, value, settings=settings)
    return checked


class Experiments:
    """The experiments table of one store root."""

    def __init__(self, root: str, table: DeltaTableHandle, settings: Settings) -> None:
        self._root = root
        self._table = table
        self._settings = settings
        self._cache: tuple[float, list[Experiment]] | None = None

    def _all(self) -> list[Experiment]:
        # Experiments change rarely and starting a run looks its experiment up: a short-lived
        # cache keeps short runs cheap. Own writes invalidate it; other processes' writes are
        # seen within EXPERIMENT_CACHE_SECONDS.
        cached = self._cache
        if cached is not None and time.monotonic() - cached[0] < EXPERIMENT_CACHE_SECONDS:
            return cached[1]
        rows = current_experiments(self._table.read()).to_pylist()
        experiments = sorted(
            (_experiment(row, self._root) for row in rows),
            key=lambda e: (-e.creation_time, e.experiment_id),
        )
        self._cache = (time.monotonic(), experiments)
        return experiments

    def list_experiments(self, *, view_type: ViewType = ViewType.ACTIVE_ONLY) -> list[Experiment]:
        return [e for e in self._all() if view_type.admits(e.lifecycle_stage)]

    def get(self, experiment_id: str) -> Experiment:
        experiment_id = str(experiment_id)
        for experiment in self.list_experiments(view_type=ViewType.ALL):
            if experiment.experiment_id == experiment_id:
                return experiment
        if experiment_id == DEFAULT_EXPERIMENT_ID:
            return self._create_default()
        raise ExperimentNotFoundError(
            f"No experiment with id {experiment_id!r} in store {self._root}. "
            "List experiments with search_experiments()."
        )

    def get_by_name(self, name: str) -> Experiment | None:
        experiments = self.list_experiments(view_type=ViewType.ALL)
        for experiment in experiments:
            if experiment.name == name:
                return experiment
        # Create the Default experiment on first use only: once id 0 exists under another name
        # (renamed), writing it again would undo the rename and drop its tags.
        if name == DEFAULT_EXPERIMENT_NAME and all(
            e.experiment_id != DEFAULT_EXPERIMENT_ID for e in experiments
        ):
            return self._create_default()
        return None

    def create(
        self,
        name: str,
        *,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        validate_experiment_name(name, settings=self._settings)
        tags = validated_tags(tags or {}, settings=self._settings)
        existing = {e.experiment_id: e for e in self.list_experiments(view_type=ViewType.ALL)}
        for experiment in existing.values():
            if experiment.name == name:
                state = "" if experiment.lifecycle_stage == LifecycleStage.ACTIVE else (
                    " in deleted state; restore it with restore_experiment() or choose another name"
                )
                raise AlreadyExistsError(
                    f"Experiment {name!r} already exists (id {experiment.experiment_id}){state}."
                )
        experiment_id = _experiment_id_for(name, taken=existing.keys())
        created = now_millis()
        self._write(
            experiment_id=experiment_id,
            name=name,
            artifact_location=(location_to_store(self._root, artifact_location)
                               if artifact_location
                               else join_uri(ARTIFACTS_FOLDER, experiment_id)),
            lifecycle_stage=LifecycleStage.ACTIVE,
            creation_time=created,
            last_update_time=created,
            tags=tags,
        )
        return experiment_id

    def write_imported(
        self,
        *,
        experiment_id: str,
        name: str,
        lifecycle_stage: LifecycleStage,
        creation_time: int,
        last_update_time: int,
        tags: dict[str, str],
    ) -> None:
        """Write an experiment that exists elsewhere (an import from MLflow) with its id, times
        and lifecycle kept; its artifacts go to the store's own ``artifacts/<id>``. The caller
        has checked that neither the id nor the name is taken."""
        validate_experiment_name(name, settings=self._settings)
        self._write(
            experiment_id=str(experiment_id),
            name=name,
            artifact_location=join_uri(ARTIFACTS_FOLDER, str(experiment_id)),
            lifecycle_stage=LifecycleStage(lifecycle_stage),
            creation_time=creation_time,
            last_update_time=last_update_time,
            tags=validated_tags(tags, settings=self._settings),
        )

    def _create_default(self) -> Experiment:
        # Every process derives the same row, so concurrent creations agree.
        created = now_millis()
        self._write(
            experiment_id=DEFAULT_EXPERIMENT_ID,
            name=DEFAULT_EXPERIMENT_NAME,
            artifact_location=join_uri(ARTIFACTS_FOLDER, DEFAULT_EXPERIMENT_ID),
            lifecycle_stage=LifecycleStage.ACTIVE,
            creation_time=created,
            last_update_time=created,
            tags={},
        )
        return self.get(DEFAULT_EXPERIMENT_ID)

    def _write(
        self,
        *,
        creation_time: int,
        tags: dict[str, str],
        last_update_time: int | None = None,
        **fields,
    ) -> None:
        # A new experiment's last_update_time is its creation_time (as in MLflow); every later
        # version (rename, delete, restore, tag change) stamps the time of that change.
        row = {
            **fields,
            "creation_time": creation_time,
            "last_update_time": now_millis() if last_update_time is None else last_update_time,
            "tags": list(tags.items()),
            "updated_at": next_version(),
        }
        self._table.append(pa.Table.from_pylist([row], schema=EXPERIMENTS.schema))
        self._cache = None

    def _update(self, experiment: Experiment, **changes) -> None:
        current = {
            "experiment_id": experiment.experiment_id,
            "name": experiment.name,
            "artifact_location": location_to_store(self._root, experiment.artifact_location),
            "lifecycle_stage": experiment.lifecycle_stage,
            "creation_time": experiment.creation_time,
            "tags": dict(experiment.tags),
        }
        current.update(changes)
        self._write(**current)

    def rename(self, experiment_id: str, new_name: str) -> None:
        validate_experiment_name(new_name, settings=self._settings)
        experiment = self.get(experiment_id)
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidStateError(
                f"Cannot rename experiment {experiment_id}: it is deleted. Restore it first."
            )
        other = self.get_by_name(new_name)
        if other is not None and other.experiment_id != experiment.experiment_id:
            raise AlreadyExistsError(
                f"Cannot rename experiment {experiment_id} to {new_name!r}: experiment "
                f"{other.experiment_id} already has that name."
            )
        self._update(experiment, name=new_name)

    def set_lifecycle(self, experiment_id: str, stage: LifecycleStage) -> Experiment:
        """Delete or restore the experiment itself (its runs are the caller's: see
        :meth:`sparktrack._store.TrackingStore.set_experiment_lifecycle`); returns it as it
        was before."""
        experiment = self.get(experiment_id)
        if experiment.experiment_id == DEFAULT_EXPERIMENT_ID and stage == LifecycleStage.DELETED:
            raise InvalidStateError("The Default experiment (id 0) cannot be deleted.")
        if experiment.lifecycle_stage == stage:
            raise InvalidStateError(
                f"Experiment {experiment_id} is already {stage.value}; nothing to do."
            )
        self._update(experiment, lifecycle_stage=stage)
        return experiment

    def set_tag(self, experiment_id: str, key: str, value: str | None) -> None:
        """Set (or, with ``value=None``, delete) an experiment tag."""
        experiment = self.get(experiment_id)
        tags = dict(experiment.tags)
        if value is None:
            if key not in tags:
                raise InvalidInputError(
                    f"Experiment {experiment_id} has no tag {key!r} to delete."
                )
            del tags[key]
        else:
            tags.update(validated_tags({key: value}, settings=self._settings))
        self._update(experiment, tags=tags)

    def require_active(self, experiment_id: str) -> Experiment:
        """The experiment, if runs may start in it (it is not deleted)."""
        experiment = self.get(experiment_id)
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidStateError(
                f"Experiment {experiment_id} ({experiment.name!r}) is deleted; restore it with "
                "restore_experiment() before starting runs in it."
            )
        return experiment


def derive_experiment_id(name: str, *, taken: Iterable[str]) -> str:
    """The id ``create_experiment`` gives an experiment of that name, given the ids taken."""
    return _experiment_id_for(name, taken=taken)


def _experiment_id_for(name: str, *, taken: Iterable[str]) -> str:
    """A numeric id derived from the name, so processes creating it at once agree on it."""
    taken = set(taken)
    for attempt in range(1000):
        digest = hashlib.sha256(f"{name}\x00{attempt}".encode()).digest()
        candidate = str(10**17 + int.from_bytes(digest[:8], "big") % (9 * 10**17))
        if candidate not in taken:
            return candidate
    raise AlreadyExistsError(f"Could not derive a free experiment id for {name!r}.")


def _experiment(row: dict, root: str) -> Experiment:
    return Experiment(
        experiment_id=row["experiment_id"],
        name=row["name"],
        artifact_location=resolve_location(root, row["artifact_location"]),
        lifecycle_stage=row["lifecycle_stage"],
        creation_time=row["creation_time"],
        last_update_time=row["last_update_time"],
        tags=dict(row["tags"] or []),
    )
