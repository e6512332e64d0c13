"""The model registry's operations, with MLflow's names and rules (SqlAlchemyStore's).

State lives in Delta tables beside the runs (:mod:`.tables`), mirrored in memory and brought
up to date from the Delta log at the start of every operation; every change also appends a row
to ``registry_events`` (:mod:`.events`), committed by a background writer a moment after the
change (:mod:`.event_ledger`).

Every change is decided on the current state and committed as the next version of its table,
or decided again on the newer state when another process committed first (:meth:`change`).
So what must be unique stays unique across processes:

* a model's name: (name, name_generation), the n-th model to take a name claims generation n;
* a version number: (model_id, version), max + 1. Numbers are never reused: a deleted version
  keeps a tombstone row.

And no change is lost: a change overwrites a row only if it was decided on that row's newest
state.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sparktrack.config import Settings
from sparktrack.entities import ModelVersion, RegisteredModel
from sparktrack.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    StoreError,
)
from sparktrack._context import current_user
from sparktrack._registry.event_ledger import EVENTS_KEY
from sparktrack._store.summary_repair import writer_metadata
from sparktrack._registry.events import complete as complete_events
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
from sparktrack._registry.tables import RegistryTables, TableMirror
from sparktrack._store.experiments import validated_tags
from sparktrack._store.rows import now_millis
from sparktrack._validation import quoted, validate_key

__all__ = ["Registry"]

# Attempts at committing one change; each lost one means another process committed to the same
# table in between, so this bounds the writers racing on one table, not the retries.
_MAX_ATTEMPTS = 1000


def _on_current_state(method):
    """Run a registry operation on the current state: under the registry's lock, after
    reading what other processes committed since the last operation."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.current_state():
            return method(self, *args, **kwargs)
    return wrapper


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
        self._run_artifact_uri = run_artifact_uri

    @contextmanager
    def current_state(self) -> Iterator[RegistryTables]:
        """The tables, up to date, under the registry's lock (reentrant)."""
        with self.tables.lock:
            self.tables.refresh()
            yield self.tables

    def change(self, mirror: TableMirror, decide: Callable[[], list[dict]],
               events: Callable[[list[dict]], list[dict]] | None = None) -> list[dict]:
        """Commit the rows ``decide`` returns for ``mirror``'s table, decided on the current
        state; decide again on the newer state whenever another process committed first.

        ``decide`` raises when the change is no longer valid (the version was deleted, the
        name was taken), and returns [] when there is nothing to change. ``events`` gives the
        change's ``registry_events`` rows from the rows committed: they travel in the commit
        and are handed to the ledger's background writer (:mod:`.event_ledger`).
        """
        for _ in range(_MAX_ATTEMPTS):
            rows = decide()
            if not rows:
                return rows
            recorded = complete_events(events(rows)) if events is not None else []
            metadata = ({EVENTS_KEY: json.dumps(recorded), **_writer_metadata(os.getpid())}
                        if recorded else None)
            if mirror.commit(rows, metadata=metadata):
                if recorded:
                    self.tables.ledger.record(mirror.name, mirror.version, recorded)
                return rows
            self.tables.refresh()
        raise StoreError(
            f"Could not commit a registry change to {mirror.handle.uri}: another process "
            f"committed first {_MAX_ATTEMPTS} times in a row. Retry the call."
        )

    # == reading ============================================================================
    def _model_row(self, name: object) -> dict:
        name = validate_model_name(name)
        row = self.tables.live_model(name)
        if row is not None:
            return row
        raise NotFoundError(
            f"Registered Model with name={name} not found. Create it with "
            "create_registered_model() or register_model(), or list models with "
            "search_registered_models()."
        )

    def _model_by_id(self, model_id: str) -> dict | None:
        return self.tables.model_state.current.get((model_id,))

    def _version_row(self, model: dict, version: object) -> dict:
        number = validate_version(version)
        row = self.tables.version_state.current.get((model["model_id"], number))
        if row is not None and not row["deleted"]:
            return row
        raise NotFoundError(
            f"Model Version (name={model['name']}, version={number}) not found. List its "
            f"versions with search_model_versions(\"name = '{model['name']}'\")."
        )

    def _live_versions(self, model: dict) -> list[dict]:
        return [r for r in self.tables.version_rows([model["model_id"]]) if not r["deleted"]]

    def aliases_by_version(self, model_ids: list[str]) -> dict[tuple[str, int], list[str]]:
        """(model id, version) -> its aliases in name order, for the given models (call under
        :meth:`current_state`)."""
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

    @_on_current_state
    def get_registered_model(self, name: str) -> RegisteredModel:
        model = self._model_row(name)
        aliases = {r["alias"]: r["version"] for r in self.tables.alias_rows([model["model_id"]])}
        return self.model_entity(model, self._live_versions(model), aliases)

    @_on_current_state
    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        model = self._model_row(name)
        row = self._version_row(model, version)
        aliases = sorted(r["alias"] for r in self.tables.alias_rows([model["model_id"]])
                         if r["version"] == row["version"])
        return self.version_entity(row, aliases)

    @_on_current_state
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
        aliases = self.aliases_by_version([model["model_id"]])
        return [self.version_entity(r, aliases.get((r["model_id"], r["version"]), []))
                for r in rows]

    @_on_current_state
    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        row = self._version_row(self._model_row(name), version)
        return row["storage_location"] or row["source"]

    @_on_current_state
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
        rows = self.tables.events.read().to_pylist()  # complete first (HistoryTable)
        if name is not None:
            name = validate_model_name(name)
            ids = {r["model_id"] for r in rows if r["name"] == name or (
                r["event"] == "RENAME_REGISTERED_MODEL" and r["value"] == name)}
            rows = [r for r in rows if r["model_id"] in ids]
        if since is not None:
            rows = [r for r in rows if r["timestamp"] >= since]
        return sorted(rows, key=lambda r: (r["timestamp"], r["event_id"]))

    # == registered models ==================================================================
    @_on_current_state
    def create_registered_model(self, name: str, tags: dict | None = None,
                                description: str | None = None) -> RegisteredModel:
        name = validate_model_name(name)
        tags = validated_tags(dict(tags or {}), settings=self.settings)
        description = validate_description(description)
        model_id = uuid.uuid4().hex

        def decide() -> list[dict]:
            self._refuse_taken(name)
            now = now_millis()
            return [{
                "model_id": model_id, "name": name,
                "name_generation": self.tables.name_generations(name) + 1,
                "creation_timestamp": now, "last_updated_timestamp": now,
                "description": description, "user_id": current_user(), "tags": tags,
                "deleted": False,
            }]

        [row] = self.change(self.tables.model_state, decide, lambda rows: [
            _event("CREATE_REGISTERED_MODEL", rows[0], value=description)])
        return self.model_entity(row | {"tags": list(tags.items())}, [], {})

    def _refuse_taken(self, name: str) -> None:
        if self.tables.live_model(name) is not None:
            raise AlreadyExistsError(f"Registered Model (name={name}) already exists.")

    @_on_current_state
    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        new_name = validate_model_name(new_name, what="new model name")
        before: dict = {}

        def decide() -> list[dict]:
            model = before["model"] = self._model_row(name)
            if new_name == model["name"]:
                return []
            self._refuse_taken(new_name)
            return [model | {"name": new_name, "last_updated_timestamp": now_millis(),
                             "name_generation": self.tables.name_generations(new_name) + 1}]

        if not self.change(self.tables.model_state, decide, lambda rows: [
                _event("RENAME_REGISTERED_MODEL", before["model"], value=new_name)]):
            return self.get_registered_model(new_name)
        model_id = before["model"]["model_id"]
        self.change(self.tables.version_state, lambda: [
            v | {"name": new_name} for v in self.tables.version_rows([model_id])])
        self.change(self.tables.alias_state, lambda: [
            a | {"name": new_name} for a in self.tables.alias_rows([model_id])])
        return self.get_registered_model(new_name)

    def _update_model(self, name: str, change: Callable[[dict], dict | None],
                      event: Callable[[dict], dict]) -> dict | None:
        """Commit ``change`` of the model's current row (None: nothing to change) with the
        ``event`` of the row it changed; that row."""
        before: dict = {}

        def decide() -> list[dict]:
            model = before["model"] = self._model_row(name)
            changed = change(model)
            return [] if changed is None else [changed]

        changed = self.change(self.tables.model_state, decide,
                              lambda rows: [event(before["model"])])
        return before["model"] if changed else None

    @_on_current_state
    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        description = validate_description(description)
        model = self._update_model(
            name, lambda m: m | {"description": description,
                                 "last_updated_timestamp": now_millis()},
            lambda m: _event("UPDATE_REGISTERED_MODEL", m, value=description))
        return self.get_registered_model(model["name"])

    @_on_current_state
    def delete_registered_model(self, name: str) -> None:
        """Delete the model, then tombstone its versions and drop its aliases (a deleted
        model's versions and aliases are unreachable already, should the process die)."""
        model = self._update_model(
            name, lambda m: m | {"deleted": True, "last_updated_timestamp": now_millis()},
            lambda m: _event("DELETE_REGISTERED_MODEL", m))
        model_id = model["model_id"]
        self.change(self.tables.version_state, lambda: [
            _tombstone(v, now_millis()) for v in self.tables.version_rows([model_id])
            if not v["deleted"]])
        self.change(self.tables.alias_state, lambda: [
            a | {"deleted": True} for a in self.tables.alias_rows([model_id])])

    @_on_current_state
    def set_registered_model_tag(self, name: str, key: str, value: object) -> None:
        tag = validated_tags({key: value}, settings=self.settings)
        self._update_model(
            name, lambda m: m | {"tags": dict(m["tags"] or []) | tag,
                                 "last_updated_timestamp": now_millis()},
            lambda m: _event("SET_REGISTERED_MODEL_TAG", m, key=key, value=tag[key]))

    @_on_current_state
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._model_row(name)
        validate_key(key, kind="Tag", settings=self.settings)

        def without_key(model: dict) -> dict | None:
            tags = dict(model["tags"] or [])
            if key not in tags:
                return None  # MLflow: deleting a missing tag is a no-op
            del tags[key]
            return model | {"tags": tags, "last_updated_timestamp": now_millis()}

        self._update_model(name, without_key,
                           lambda m: _event("DELETE_REGISTERED_MODEL_TAG", m, key=key))

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

    @_on_current_state
    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict | None = None, run_link: str | None = None,
                             description: str | None = None) -> ModelVersion:
        self._model_row(name)
        if not isinstance(source, str) or not source:
            raise InvalidInputError(
                f"Invalid model version source {quoted(source)}: give the model's location "
                "(a path, a URI or runs:/<run_id>/<path>)."
            )
        tags = validated_tags(dict(tags or {}), settings=self.settings)
        description = validate_description(description)
        storage_location, resolved_run = self.resolve_source(source, run_id)

        def decide() -> list[dict]:
            # The next number, claimed by committing it as the next version of the table:
            # another process that claimed it first makes this commit fail, and we take the
            # number after theirs.
            model = self._model_row(name)
            now = now_millis()
            return [{
                "model_id": model["model_id"], "name": model["name"],
                "version": self.tables.max_version(model["model_id"]) + 1,
                "creation_timestamp": now, "last_updated_timestamp": now,
                "description": description, "user_id": current_user(),
                "current_stage": STAGE_NONE, "source": source,
                "storage_location": storage_location, "run_id": resolved_run or run_id,
                "run_link": run_link, "status": "READY", "tags": tags, "deleted": False,
            }]

        [row] = self.change(self.tables.version_state, decide, lambda rows: [
            _event("CREATE_MODEL_VERSION", rows[0], value=source)])
        self._touch_model(row["model_id"], row["creation_timestamp"])
        return self.version_entity(row | {"tags": list(tags.items())}, [])

    def _touch_model(self, model_id: str, now: int) -> None:
        """Set the model's last update time (as MLflow does when a version is created or
        deleted), unless the model was deleted meanwhile."""
        def decide() -> list[dict]:
            model = self._model_by_id(model_id)
            if model is None or model["deleted"] or model["last_updated_timestamp"] >= now:
                return []
            return [model | {"last_updated_timestamp": now}]

        self.change(self.tables.model_state, decide)

    def _update_version(self, name: str, version: str | int,
                        change: Callable[[dict], dict | None],
                        event: Callable[[dict], dict]) -> dict | None:
        """Commit ``change`` of the version's current row (None: nothing to change) with the
        ``event`` of the row it changed; that row."""
        before: dict = {}

        def decide() -> list[dict]:
            row = before["row"] = self._version_row(self._model_row(name), version)
            changed = change(row)
            return [] if changed is None else [changed]

        changed = self.change(self.tables.version_state, decide,
                              lambda rows: [event(before["row"])])
        return before["row"] if changed else None

    @_on_current_state
    def update_model_version(self, name: str, version: str | int,
                             description: str | None) -> ModelVersion:
        description = validate_description(description)
        row = self._update_version(
            name, version, lambda r: r | {"description": description,
                                          "last_updated_timestamp": now_millis()},
            lambda r: _event("UPDATE_MODEL_VERSION", r, value=description))
        return self.get_model_version(row["name"], row["version"])

    @_on_current_state
    def delete_model_version(self, name: str, version: str | int) -> None:
        """Drop the version's aliases, then tombstone it (its number is never given again)."""
        model = self._model_row(name)
        number = self._version_row(model, version)["version"]
        self.change(self.tables.alias_state, lambda: [
            a | {"deleted": True} for a in self.tables.alias_rows([model["model_id"]])
            if a["version"] == number
        ], lambda dropped: [_event("DELETE_ALIAS", a, alias=a["alias"]) for a in dropped])
        now = now_millis()
        self._update_version(
            name, number, lambda r: _tombstone(r, now),
            lambda r: _event("DELETE_MODEL_VERSION", r, previous_stage=r["current_stage"]))
        self._touch_model(model["model_id"], now)

    @_on_current_state
    def set_model_version_tag(self, name: str, version: str | int, key: str,
                              value: object) -> None:
        self._version_row(self._model_row(name), version)
        tag = validated_tags({key: value}, settings=self.settings)
        self._update_version(
            name, version, lambda r: r | {"tags": dict(r["tags"] or []) | tag,
                                          "last_updated_timestamp": now_millis()},
            lambda r: _event("SET_MODEL_VERSION_TAG", r, key=key, value=tag[key]))

    @_on_current_state
    def delete_model_version_tag(self, name: str, version: str | int, key: str) -> None:
        self._version_row(self._model_row(name), version)
        validate_key(key, kind="Tag", settings=self.settings)

        def without_key(row: dict) -> dict | None:
            tags = dict(row["tags"] or [])
            if key not in tags:
                return None
            del tags[key]
            return row | {"tags": tags, "last_updated_timestamp": now_millis()}

        self._update_version(name, version, without_key,
                             lambda r: _event("DELETE_MODEL_VERSION_TAG", r, key=key))

    # == stages =============================================================================
    @_on_current_state
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
        before: list[dict] = []

        def decide() -> list[dict]:
            model = self._model_row(name)
            row = self._version_row(model, version)
            archived = [
                v for v in self._live_versions(model)
                if archive_existing_versions and v["version"] != row["version"]
                and v["current_stage"] == stage
            ]
            before[:] = [row, *archived]
            now = now_millis()
            return [row | {"current_stage": stage, "last_updated_timestamp": now}] + [
                v | {"current_stage": "Archived", "last_updated_timestamp": now}
                for v in archived
            ]

        changed = self.change(self.tables.version_state, decide, lambda rows: [
            _event("TRANSITION_STAGE", old, stage=new["current_stage"],
                   previous_stage=old["current_stage"])
            for old, new in zip(before, rows, strict=True)
        ])
        # The version as committed (the mirror holds it now): no second look at the log.
        row = self.tables.version_state.current[(changed[0]["model_id"], changed[0]["version"])]
        aliases = self.aliases_by_version([row["model_id"]])
        return self.version_entity(row, aliases.get((row["model_id"], row["version"]), []))

    # == aliases ============================================================================
    @_on_current_state
    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        alias = validate_alias(alias)
        moved: dict = {}

        def decide() -> list[dict]:
            model = self._model_row(name)
            row = moved["row"] = self._version_row(model, version)
            current = self.tables.alias_state.current.get((model["model_id"], alias))
            previous = moved["previous"] = (
                None if current is None or current["deleted"] else current["version"])
            if previous == row["version"]:
                return []
            return [{"model_id": model["model_id"], "name": model["name"], "alias": alias,
                     "version": row["version"], "deleted": False}]

        self.change(self.tables.alias_state, decide, lambda rows: [
            _event("SET_ALIAS" if moved["previous"] is None else "MOVE_ALIAS", moved["row"],
                   alias=alias, previous_version=moved["previous"])])

    @_on_current_state
    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        alias = validate_alias(alias)

        def decide() -> list[dict]:
            model = self._model_row(name)
            current = self.tables.alias_state.current.get((model["model_id"], alias))
            if current is None or current["deleted"]:
                return []  # MLflow: deleting a missing alias is a no-op
            return [current | {"deleted": True}]

        self.change(self.tables.alias_state, decide,
                    lambda rows: [_event("DELETE_ALIAS", rows[0], alias=alias)])


@functools.lru_cache(maxsize=1)
def _writer_metadata(pid: int) -> dict[str, str]:
    """This process's name in a change's commit (host, pid and start time: reading them is
    a tenth of a change's time), once per process."""
    return writer_metadata()


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
            "version": row.get("version"), **fields}
