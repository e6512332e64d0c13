"""The registry part of ``sparktrack import``: models, versions (numbers kept), stages,
aliases, tags and descriptions, with their timestamps.

The registry's own operations number versions max + 1 and stamp the time; an import writes
the rows MLflow has instead, through the registry's tables and the same serial commits
(:meth:`sparktrack._registry.Registry.change`) that keep a name or a version number unique.
Idempotent and resumable by construction: a model whose name the store has is kept (its
missing versions and aliases are added), a version whose number the model has is skipped,
and each new model, version set and alias set is one commit.

A version's location is remapped to the copied artifacts: ``runs:/<run_id>/<path>`` stays
the source (run ids are kept) and its storage location becomes the run's artifact folder in
the store; a source under the run's old artifact URI is rewritten under the new one. Every
new thing also gets its event in ``registry_events`` (stamped with the import's time), carried
by its commit like every registry change's.
"""

from __future__ import annotations

import uuid

from sparktrack._context import current_user
from sparktrack._registry import registry_for
from sparktrack._registry.names import DELETED_STAGE, STAGE_NONE
from sparktrack._store import TrackingStore
from sparktrack._store.rows import now_millis
from sparktrack._transfer.progress import Progress
from sparktrack._transfer.source import SourceModel, SourceVersion

__all__ = ["import_models"]


def import_models(store: TrackingStore, models: list[SourceModel],
                  artifact_uris: dict[str, tuple[str | None, str]], summary, *,
                  progress: bool) -> None:
    """Copy ``models`` into the store's registry; counts go to ``summary`` (ImportSummary).

    ``artifact_uris`` maps a run id to its artifact URI in the source and in the store.
    """
    registry = registry_for(store)
    bar = Progress(label="importing models", total=len(models), enabled=progress)
    try:
        for model in models:
            _import_model(registry, model, artifact_uris, summary)
            bar.advance()
    finally:
        bar.close()


def _import_model(registry, model: SourceModel, artifact_uris, summary) -> None:
    tables = registry.tables
    with registry.current_state():
        found: dict = {}

        def decide_model() -> list[dict]:
            found["row"] = next((r for r in tables.model_rows() if r["name"] == model.name), None)
            if found["row"] is not None:
                return []  # the store has it (an earlier import, or another process)
            created = model.creation_timestamp or now_millis()
            found["row"] = {
                "model_id": uuid.uuid4().hex, "name": model.name,
                "name_generation": tables.name_generations(model.name) + 1,
                "creation_timestamp": created,
                "last_updated_timestamp": model.last_updated_timestamp or created,
                "description": model.description, "user_id": None, "tags": dict(model.tags),
                "deleted": False,
            }
            return [found["row"]]

        if registry.change(tables.model_state, decide_model, lambda rows: [
                _event("CREATE_REGISTERED_MODEL", rows[0], value=model.description)]):
            summary.models += 1
        else:
            summary.models_skipped += 1
        row = found["row"]

        def decide_versions() -> list[dict]:
            held = {v["version"] for v in tables.version_rows([row["model_id"]])}
            return [_version_row(row, v, artifact_uris) for v in model.versions
                    if v.version not in held]

        rows = registry.change(tables.version_state, decide_versions, lambda rows: [
            event for v in rows for event in _version_events(v)])
        summary.versions += len(rows)
        summary.versions_skipped += len(model.versions) - len(rows)

        def decide_aliases() -> list[dict]:
            live = {v["version"] for v in tables.version_rows([row["model_id"]])
                    if not v["deleted"]}
            have = {a["alias"] for a in tables.alias_rows([row["model_id"]])}
            return [{"model_id": row["model_id"], "name": row["name"], "alias": alias,
                     "version": version, "deleted": False}
                    for alias, version in sorted(model.aliases.items())
                    if alias not in have and version in live]

        aliases = registry.change(tables.alias_state, decide_aliases, lambda rows: [
            _event("SET_ALIAS", a, alias=a["alias"], version=a["version"]) for a in rows])
        summary.aliases += len(aliases)


def _version_row(model: dict, version: SourceVersion, artifact_uris) -> dict:
    created = version.creation_timestamp or now_millis()
    source, storage = _locations(version, artifact_uris)
    deleted = version.current_stage == DELETED_STAGE
    return {
        "model_id": model["model_id"], "name": model["name"], "version": version.version,
        "creation_timestamp": created,
        "last_updated_timestamp": version.last_updated_timestamp or created,
        "description": version.description, "user_id": version.user_id,
        "current_stage": version.current_stage or STAGE_NONE, "source": source,
        "storage_location": storage, "run_id": version.run_id, "run_link": version.run_link,
        "status": version.status or "READY", "tags": dict(version.tags), "deleted": deleted,
    }


def _locations(version: SourceVersion,
               artifact_uris: dict[str, tuple[str | None, str]]) -> tuple[str | None, str | None]:
    """The version's (source, storage location) pointing at the store's copy of its run's
    artifacts where they are under that run; left as they are otherwise."""
    source, storage = version.source, version.storage_location
    if source and source.startswith("runs:/"):
        run_id, _, path = source[len("runs:/"):].partition("/")
        if run_id in artifact_uris:
            store_uri = artifact_uris[run_id][1]
            return source, f"{store_uri}/{path.strip('/')}" if path.strip("/") else store_uri
        return source, storage
    if version.run_id in artifact_uris:
        old, new = artifact_uris[version.run_id]
        return _moved(source, old, new), _moved(storage, old, new)
    return source, storage


def _moved(location: str | None, old: str | None, new: str) -> str | None:
    if not location or not old:
        return location
    old = old.rstrip("/")
    if location == old or location.startswith(old + "/"):
        return new + location[len(old):]
    return location


def _version_events(row: dict) -> list[dict]:
    events = [_event("CREATE_MODEL_VERSION", row, value=row["source"])]
    if row["deleted"]:
        events.append(_event("DELETE_MODEL_VERSION", row, previous_stage=STAGE_NONE))
    elif row["current_stage"] != STAGE_NONE:
        events.append(_event("TRANSITION_STAGE", row, stage=row["current_stage"],
                             previous_stage=STAGE_NONE))
    return events


def _event(event: str, row: dict, **fields) -> dict:
    return {"event": event, "model_id": row["model_id"], "name": row["name"],
            "version": row.get("version"), "user_id": row.get("user_id") or current_user(),
            **fields}
