"""The model registry's operations, with MLflow's names and rules (SqlAlchemyStore's).

State lives in Delta tables beside the runs (:mod:`.tables`); every change also appends a
row to ``registry_events`` (:mod:`.events`). What must be unique is claimed with a
conflict-checked MERGE (:func:`sparktrack._delta.merge.insert_missing`):

* a model's name: (name, name_generation), the n-th model to take a name claims generation n;
* a version number: (model_id, version), max + 1, claimed again with the next number when
  another process took it first. Numbers are never reused: a deleted version keeps a
  tombstone row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import pyarrow as pa

from sparktrack._delta import merge
from sparktrack.config import Settings
from sparktrack.entities import ModelVersion, RegisteredModel
from sparktrack.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    StoreError,
)
from sparktrack._context import current_user
from sparktrack._registry.events import Events
from sparktrack._registry.names import (
    ACTIVE_STAGES,
    ALL_STAGES,
    DELETED_STAGE,
    STAGE_NONE,
    canonical_stage,
    validate_alias,
    validate_description,
    validate_model_name,
    validate_version,
)
from sparktrack._registry.tables import RegistryTables
from sparktrack._store.experiments import validated_tags
from sparktrack._store.rows import now_millis
from sparktrack._validation import quoted, validate_key

__all__ = ["Registry"]

# Attempts at claiming a version number; each lost one means another process registered a
# version in between, so this bounds the writers racing on one model, not the retries.
_MAX_VERSION_CLAIMS = 1000


class Registry:
    """The registry of one store root.

    Args:
        tables: the registry's Delta tables.
        settings: the store's limits (tag keys and values).
        run_artifact_uri: the artifact URI of a run, to resolve ``runs:/<id>/path`` sources.
    """

    def __init__(self, tables: RegistryTables, settings: Settings,
                 run_artifact_uri: Callable[[str], str]) -> None:
        self.tables = tables
        self.settings = settings
        self.events = Events(tables.events)
        self._run_artifact_uri = run_artifact_uri

    # == reading ============================================================================
    def _model_row(self, name: object) -> dict:
        name = validate_model_name(name)
        for row in self.tables.model_rows():
            if row["name"] == name:
                return row
        raise NotFoundError(
            f"Registered Model with name={name} not found. Create it with "
            "create_registered_model() or register_model(), or list models with "
            "search_registered_models()."
        )

    def _version_row(self, model: dict, version: object) -> dict:
        number = validate_version(version)
        for row in self.tables.version_rows([model["model_id"]]):
            if row["version"] == number and not row["deleted"]:
                return row
        raise NotFoundError(
            f"Model Version (name={model['name']}, version={number}) not found. List its "
            f"versions with search_model_versions(\"name = '{model['name']}'\")."
        )

    def _live_versions(self, model: dict) -> list[dict]:
        return [r for r in self.tables.version_rows([model["model_id"]]) if not r["deleted"]]

    def _aliases_by_version(self, model_ids: list[str]) -> dict[tuple[str, int], list[str]]:
        found: dict[tuple[str, int], list[str]] = {}
        for row in sorted(self.tables.alias_rows(model_ids), key=lambda r: r["alias"]):
            found.setdefault((row["model_id"], row["version"]), []).append(row["alias"])
        return found

    def version_entity(self, row: dict, aliases: list[str]) -> ModelVersion:
        return ModelVersion(
            name=row["name"],
            version=row["version"],
            creation_timestamp=row["creation_timestamp"],
            last_updated_timestamp=row["last_updated_timestamp"],
            description=row["description"],
            user_id=row["user_id"],
            current_stage=row["current_stage"],
            source=row["source"],
            run_id=row["run_id"],
            status=row["status"],
            tags=dict(row["tags"] or []),
            run_link=row["run_link"],
            aliases=list(aliases),
        )

    def model_entity(self, row: dict, versions: list[dict],
                     aliases: dict[str, int]) -> RegisteredModel:
        return RegisteredModel(
            name=row["name"],
            creation_timestamp=row["creation_timestamp"],
            last_updated_timestamp=row["last_updated_timestamp"],
            description=row["description"],
            latest_versions=[
                self.version_entity(v, sorted(a for a, n in aliases.items() if n == v["version"]))
                for v in _latest_per_stage(versions, ALL_STAGES)
            ],
            tags=dict(row["tags"] or []),
            aliases=dict(sorted(aliases.items())),
        )

    def get_registered_model(self, name: str) -> RegisteredModel:
        model = self._model_row(name)
        aliases = {r["alias"]: r["version"] for r in self.tables.alias_rows([model["model_id"]])}
        return self.model_entity(model, self._live_versions(model), aliases)

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        model = self._model_row(name)
        row = self._version_row(model, version)
        aliases = sorted(r["alias"] for r in self.tables.alias_rows([model["model_id"]])
                         if r["version"] == row["version"])
        return self.version_entity(row, aliases)

    def get_latest_versions(self, name: str, stages: Sequence[str] | None = None
                            ) -> list[ModelVersion]:
        model = self._model_row(name)
        if stages is not None and isinstance(stages, str):
            raise InvalidInputError(
                f"stages must be a list of stage names, got the string {quoted(stages)}; write "
                f"[{stages!r}]."
            )
        wanted = ALL_STAGES if not stages else tuple(canonical_stage(s) for s in stages)
        rows = _latest_per_stage(self._live_versions(model), wanted)
        aliases = self._aliases_by_version([model["model_id"]])
        return [self.version_entity(r, aliases.get((r["model_id"], r["version"]), []))
                for r in rows]

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        row = self._version_row(self._model_row(name), version)
        return row["storage_location"] or row["source"]

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        model = self._model_row(name)
        if isinstance(alias, str) and alias.lower() == "latest":
            live = self._live_versions(model)
            if not live:
                raise NotFoundError(f"Registered model {model['name']!r} has no versions yet.")
            return self.get_model_version(model["name"], live[-1]["version"])
        for row in self.tables.alias_rows([model["model_id"]]):
            if row["alias"] == alias:
                return self.get_model_version(model["name"], row["version"])
        # MLflow answers an unknown alias with INVALID_PARAMETER_VALUE, not "not found".
        raise InvalidInputError(
            f"Registered model alias {quoted(alias)} not found on model {model['name']!r}. Set "
            "it with set_registered_model_alias(name, alias, version)."
        )

    def history(self, name: str | None = None, *, since: int | None = None) -> list[dict]:
        """Rows of registry_events, oldest first: of the models ever named ``name`` (across
        renames; all models when None), at or after ``since`` (milliseconds)."""
        rows = self.tables.events.read().to_pylist()
        if name is not None:
            name = validate_model_name(name)
            ids = {r["model_id"] for r in rows if r["name"] == name or (
                r["event"] == "RENAME_REGISTERED_MODEL" and r["value"] == name)}
            rows = [r for r in rows if r["model_id"] in ids]
        if since is not None:
            rows = [r for r in rows if r["timestamp"] >= since]
        return sorted(rows, key=lambda r: (r["timestamp"], r["event_id"]))

    # == registered models ==================================================================
    def create_registered_model(self, name: str, tags: dict | None = None,
                                description: str | None = None) -> RegisteredModel:
        name = validate_model_name(name)
        tags = validated_tags(dict(tags or {}), settings=self.settings)
        description = validate_description(description)
        self._refuse_taken(name)
        now = now_millis()
        row = {
            "model_id": uuid.uuid4().hex, "name": name,
            "name_generation": self.tables.name_generations(name) + 1,
            "creation_timestamp": now, "last_updated_timestamp": now,
            "description": description, "user_id": current_user(), "tags": tags,
            "deleted": False,
        }
        self._claim_name(row)
        self.events.record([_event("CREATE_REGISTERED_MODEL", row, value=description)])
        return self.model_entity(row | {"tags": list(tags.items())}, [], {})

    def _refuse_taken(self, name: str) -> None:
        if any(row["name"] == name for row in self.tables.model_rows()):
            raise AlreadyExistsError(f"Registered Model (name={name}) already exists.")

    def _claim_name(self, row: dict) -> None:
        inserted = merge.insert_missing(self.tables.models, self.tables.model_table([row]),
                                        on=["name", "name_generation"])
        if not inserted:  # another process took the name between our check and our claim
            raise AlreadyExistsError(f"Registered Model (name={row['name']}) already exists.")

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        model = self._model_row(name)
        new_name = validate_model_name(new_name, what="new model name")
        if new_name == model["name"]:
            return self.get_registered_model(new_name)
        self._refuse_taken(new_name)
        now = now_millis()
        renamed = model | {"name": new_name, "last_updated_timestamp": now,
                           "name_generation": self.tables.name_generations(new_name) + 1}
        self._claim_name(renamed)
        versions = self.tables.version_rows([model["model_id"]])
        if versions:
            self.tables.write_versions([v | {"name": new_name} for v in versions])
        aliases = self.tables.alias_rows([model["model_id"]])
        if aliases:
            self.tables.write_aliases([a | {"name": new_name} for a in aliases])
        self.events.record([_event("RENAME_REGISTERED_MODEL", model, value=new_name)])
        return self.get_registered_model(new_name)

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        model = self._model_row(name)
        description = validate_description(description)
        self.tables.write_models([model | {"description": description,
                                           "last_updated_timestamp": now_millis()}])
        self.events.record([_event("UPDATE_REGISTERED_MODEL", model, value=description)])
        return self.get_registered_model(model["name"])

    def delete_registered_model(self, name: str) -> None:
        """Delete the model, its versions (tombstoned) and its aliases."""
        model = self._model_row(name)
        now = now_millis()
        versions = self._live_versions(model)
        if versions:
            self.tables.write_versions([_tombstone(v, now) for v in versions])
        aliases = self.tables.alias_rows([model["model_id"]])
        if aliases:
            self.tables.write_aliases([a | {"deleted": True} for a in aliases])
        self.tables.write_models([model | {"deleted": True, "last_updated_timestamp": now}])
        self.events.record([_event("DELETE_REGISTERED_MODEL", model)])

    def set_registered_model_tag(self, name: str, key: str, value: object) -> None:
        model = self._model_row(name)
        tag = validated_tags({key: value}, settings=self.settings)
        tags = dict(model["tags"] or []) | tag
        self.tables.write_models([model | {"tags": tags, "last_updated_timestamp": now_millis()}])
        self.events.record([_event("SET_REGISTERED_MODEL_TAG", model, key=key, value=tag[key])])

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        model = self._model_row(name)
        validate_key(key, kind="Tag", settings=self.settings)
        tags = dict(model["tags"] or [])
        if key not in tags:
            return  # MLflow: deleting a missing tag is a no-op
        del tags[key]
        self.tables.write_models([model | {"tags": tags, "last_updated_timestamp": now_millis()}])
        self.events.record([_event("DELETE_REGISTERED_MODEL_TAG", model, key=key)])

    # == model versions =====================================================================
    def resolve_source(self, source: str, run_id: str | None) -> tuple[str, str | None]:
        """``runs:/<run_id>/<path>`` becomes the run's artifact location of that path (and
        gives the run id), as MLflow's register_model does; other sources are kept."""
        if isinstance(source, str) and source.startswith("runs:/"):
            parts = source[len("runs:/"):].split("/", 1)
            if not parts[0]:
                raise InvalidInputError(
                    f"Invalid model URI {quoted(source)}: expected runs:/<run_id>/<path>."
                )
            artifact_uri = self._run_artifact_uri(parts[0])
            path = parts[1].strip("/") if len(parts) > 1 else ""
            return (f"{artifact_uri.rstrip('/')}/{path}" if path else artifact_uri), parts[0]
        return source, run_id

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict | None = None, run_link: str | None = None,
                             description: str | None = None) -> ModelVersion:
        model = self._model_row(name)
        if not isinstance(source, str) or not source:
            raise InvalidInputError(
                f"Invalid model version source {quoted(source)}: give the model's location "
                "(a path, a URI or runs:/<run_id>/<path>)."
            )
        tags = validated_tags(dict(tags or {}), settings=self.settings)
        description = validate_description(description)
        storage_location, resolved_run = self.resolve_source(source, run_id)
        now = now_millis()
        row = {
            "model_id": model["model_id"], "name": model["name"],
            "creation_timestamp": now, "last_updated_timestamp": now,
            "description": description, "user_id": current_user(),
            "current_stage": STAGE_NONE, "source": source,
            "storage_location": storage_location, "run_id": resolved_run or run_id,
            "run_link": run_link, "status": "READY", "tags": tags, "deleted": False,
        }
        row["version"] = self._claim_version(row)
        self.tables.write_models([model | {"last_updated_timestamp": now}])
        self.events.record([_event("CREATE_MODEL_VERSION", row, value=source)])
        return self.version_entity(row | {"tags": list(tags.items())}, [])

    def _claim_version(self, row: dict) -> int:
        for _ in range(_MAX_VERSION_CLAIMS):
            version = self.tables.max_version(row["model_id"]) + 1
            table: pa.Table = self.tables.version_table([row | {"version": version}])
            if merge.insert_missing(self.tables.versions, table, on=["model_id", "version"]):
                return version
        raise StoreError(
            f"Could not register a version of model {row['name']!r}: every number tried was "
            f"taken by another process first ({_MAX_VERSION_CLAIMS} attempts). Retry the call."
        )

    def update_model_version(self, name: str, version: str | int,
                             description: str | None) -> ModelVersion:
        model = self._model_row(name)
        row = self._version_row(model, version)
        description = validate_description(description)
        self.tables.write_versions([row | {"description": description,
                                           "last_updated_timestamp": now_millis()}])
        self.events.record([_event("UPDATE_MODEL_VERSION", row, value=description)])
        return self.get_model_version(model["name"], row["version"])

    def delete_model_version(self, name: str, version: str | int) -> None:
        """Tombstone the version (its number is never given again) and drop its aliases."""
        model = self._model_row(name)
        row = self._version_row(model, version)
        now = now_millis()
        dropped = [a for a in self.tables.alias_rows([model["model_id"]])
                   if a["version"] == row["version"]]
        if dropped:
            self.tables.write_aliases([a | {"deleted": True} for a in dropped])
        self.tables.write_versions([_tombstone(row, now)])
        self.tables.write_models([model | {"last_updated_timestamp": now}])
        self.events.record(
            [_event("DELETE_ALIAS", row, alias=a["alias"]) for a in dropped]
            + [_event("DELETE_MODEL_VERSION", row, previous_stage=row["current_stage"])]
        )

    def set_model_version_tag(self, name: str, version: str | int, key: str,
                              value: object) -> None:
        model = self._model_row(name)
        row = self._version_row(model, version)
        tag = validated_tags({key: value}, settings=self.settings)
        tags = dict(row["tags"] or []) | tag
        self.tables.write_versions([row | {"tags": tags, "last_updated_timestamp": now_millis()}])
        self.events.record([_event("SET_MODEL_VERSION_TAG", row, key=key, value=tag[key])])

    def delete_model_version_tag(self, name: str, version: str | int, key: str) -> None:
        model = self._model_row(name)
        row = self._version_row(model, version)
        validate_key(key, kind="Tag", settings=self.settings)
        tags = dict(row["tags"] or [])
        if key not in tags:
            return
        del tags[key]
        self.tables.write_versions([row | {"tags": tags, "last_updated_timestamp": now_millis()}])
        self.events.record([_event("DELETE_MODEL_VERSION_TAG", row, key=key)])

    # == stages =============================================================================
    def transition_model_version_stage(self, name: str, version: str | int, stage: str,
                                       archive_existing_versions: bool = False) -> ModelVersion:
        """Move a version to ``stage``; with ``archive_existing_versions`` (Staging and
        Production only) the model's other versions in that stage become Archived."""
        stage = canonical_stage(stage)
        if not isinstance(archive_existing_versions, bool):
            raise InvalidInputError(
                f"archive_existing_versions must be True or False, got "
                f"{quoted(archive_existing_versions)}."
            )
        if archive_existing_versions and stage not in ACTIVE_STAGES:
            raise InvalidInputError(
                "Model version transition cannot archive existing model versions because "
                f"{stage!r} is not an Active stage. Valid stages are {list(ACTIVE_STAGES)}; "
                "pass archive_existing_versions=False."
            )
        model = self._model_row(name)
        row = self._version_row(model, version)
        now = now_millis()
        archived = [
            v for v in self._live_versions(model)
            if archive_existing_versions and v["version"] != row["version"]
            and v["current_stage"] == stage
        ]
        changed = [row | {"current_stage": stage, "last_updated_timestamp": now}] + [
            v | {"current_stage": "Archived", "last_updated_timestamp": now} for v in archived
        ]
        self.tables.write_versions(changed)
        self.tables.write_models([model | {"last_updated_timestamp": now}])
        self.events.record([
            _event("TRANSITION_STAGE", old, stage=new["current_stage"],
                   previous_stage=old["current_stage"])
            for old, new in zip([row, *archived], changed, strict=True)
        ])
        return self.get_model_version(model["name"], row["version"])

    # == aliases ============================================================================
    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        alias = validate_alias(alias)
        model = self._model_row(name)
        row = self._version_row(model, version)
        previous = next((a["version"] for a in self.tables.alias_rows([model["model_id"]])
                         if a["alias"] == alias), None)
        if previous == row["version"]:
            return
        self.tables.write_aliases([{"model_id": model["model_id"], "name": model["name"],
                                    "alias": alias, "version": row["version"],
                                    "deleted": False}])
        self.tables.write_models([model | {"last_updated_timestamp": now_millis()}])
        self.events.record([_event("SET_ALIAS" if previous is None else "MOVE_ALIAS", row,
                                   alias=alias, previous_version=previous)])

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        alias = validate_alias(alias)
        model = self._model_row(name)
        current = next((a for a in self.tables.alias_rows([model["model_id"]])
                        if a["alias"] == alias), None)
        if current is None:
            return  # MLflow: deleting a missing alias is a no-op
        self.tables.write_aliases([current | {"deleted": True}])
        self.tables.write_models([model | {"last_updated_timestamp": now_millis()}])
        self.events.record([_event("DELETE_ALIAS", current, alias=alias)])


def _latest_per_stage(versions: list[dict], stages: Sequence[str]) -> list[dict]:
    """The highest version in each of ``stages``, in the order the stages first appear."""
    latest: dict[str, dict] = {}
    for row in sorted(versions, key=lambda r: r["version"]):
        stage = row["current_stage"]
        if stage in stages and (stage not in latest or latest[stage]["version"] < row["version"]):
            latest[stage] = row
    return list(latest.values())


def _tombstone(row: dict, now: int) -> dict:
    """What MLflow's SQL store leaves of a deleted version: the number, redacted locations."""
    return row | {
        "deleted": True, "current_stage": DELETED_STAGE, "last_updated_timestamp": now,
        "source": "REDACTED-SOURCE-PATH", "storage_location": None,
        "run_id": "REDACTED-RUN-ID", "run_link": "REDACTED-RUN-LINK",
    }


def _event(event: str, row: dict, **fields) -> dict:
    return {"event": event, "model_id": row["model_id"], "name": row["name"],
            "version": row.get("version"), "user_id": current_user(), **fields}
