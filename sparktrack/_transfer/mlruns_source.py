"""Reading the folder of MLflow's old file store (``mlruns``), which MLflow 3.13+ no longer
opens without ``MLFLOW_ALLOW_FILE_STORE=true``.

The layout (MLflow's ``store/tracking/file_store.py`` and ``store/model_registry/file_store.py``)::

    mlruns/<experiment_id>/meta.yaml         name, artifact_location, lifecycle_stage, times
    mlruns/<experiment_id>/tags/<key>        one file per tag, the value as its content
    mlruns/<experiment_id>/<run_id>/meta.yaml            the run's info (status as a number)
    mlruns/<experiment_id>/<run_id>/{params,tags}/<key>  one file per param or tag
    mlruns/<experiment_id>/<run_id>/metrics/<key>        "<timestamp> <value> <step>" lines
    mlruns/<experiment_id>/<run_id>/artifacts/           the artifacts (by default)
    mlruns/.trash/<experiment_id>/...                    deleted experiments, same layout
    mlruns/models/<name>/meta.yaml, tags/<key>, aliases/<alias> (holds the version number)
    mlruns/models/<name>/version-<n>/meta.yaml, tags/<key>

Keys holding ``/`` are nested folders. An mlruns folder copied elsewhere (rsync to a cluster)
keeps its old absolute ``artifact_uri``: when that path is gone, the run's own ``artifacts``
folder beside its meta.yaml is used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import yaml

from sparktrack.errors import InvalidInputError
from sparktrack._transfer.source import (
    SourceExperiment,
    SourceModel,
    SourceRunData,
    SourceVersion,
    local_path,
    metric_table,
    run_table,
    status_name,
    text_table,
)
from sparktrack._validation import quoted

__all__ = ["MlrunsSource"]

_TRASH = ".trash"
_RESERVED = {"tags", "datasets", "traces", "models", _TRASH}


class MlrunsSource:
    """An ``mlruns`` folder opened for reading."""

    def __init__(self, root: str, *, uri: str) -> None:
        self.uri = uri
        self._root = Path(root)
        if not self._root.is_dir():
            raise InvalidInputError(
                f"No mlruns folder at {quoted(uri)} ({root} is not a folder). Give the folder "
                "MLflow wrote (its default is ./mlruns), or a database URI such as "
                "sqlite:///mlflow.db."
            )
        self._folders = self._experiment_folders()
        if not self._folders and not (self._root / "models").is_dir():
            raise InvalidInputError(
                f"{quoted(uri)} is not an mlruns folder: it has no <experiment_id>/meta.yaml "
                "and no models/ folder. Give the folder MLflow's file store wrote."
            )

    def _experiment_folders(self) -> dict[str, Path]:
        folders = {}
        for base in (self._root / _TRASH, self._root):  # a live copy wins over a trashed one
            if not base.is_dir():
                continue
            for child in base.iterdir():
                if child.name.isdigit() and (child / "meta.yaml").is_file():
                    folders[child.name] = child
        return dict(sorted(folders.items(), key=lambda item: int(item[0])))

    # -- tracking --------------------------------------------------------------------------------
    def experiments(self) -> list[SourceExperiment]:
        experiments = []
        for experiment_id, folder in self._folders.items():
            meta = _yaml(folder / "meta.yaml")
            deleted = folder.parent.name == _TRASH
            experiments.append(SourceExperiment(
                experiment_id=experiment_id, name=meta.get("name") or f"experiment_{experiment_id}",
                artifact_location=meta.get("artifact_location"),
                lifecycle_stage="deleted" if deleted else meta.get("lifecycle_stage", "active"),
                creation_time=meta.get("creation_time"),
                last_update_time=meta.get("last_update_time"),
                tags=_files(folder / "tags"),
            ))
        return experiments

    def _run_folders(self, experiment_id: str) -> list[Path]:
        folder = self._folders[experiment_id]
        return [child for child in folder.iterdir()
                if child.name not in _RESERVED and (child / "meta.yaml").is_file()]

    def runs(self, experiment_id: str) -> pa.Table:
        rows = []
        for folder in self._run_folders(experiment_id):
            meta = _yaml(folder / "meta.yaml")
            rows.append((
                meta.get("run_uuid") or meta.get("run_id") or folder.name,
                meta.get("run_name") or meta.get("name") or None,
                status_name(meta.get("status", 3)),
                meta.get("user_id"),
                meta.get("source_type") if isinstance(meta.get("source_type"), str) else None,
                meta.get("source_name") or None,
                meta.get("start_time") or 0,
                meta.get("end_time"),
                meta.get("lifecycle_stage") or "active",
                meta.get("deleted_time"),
                meta.get("artifact_uri"),
            ))
        rows.sort(key=lambda row: (row[6], row[0]))
        return run_table(rows)

    def run_data(self, experiment_id: str, run_ids: list[str]) -> SourceRunData:
        folder = self._folders[experiment_id]
        tags, params, metrics = [], [], []
        for run_id in run_ids:
            run = folder / run_id
            tags += [(run_id, k, v) for k, v in _files(run / "tags").items()]
            params += [(run_id, k, v) for k, v in _files(run / "params").items()]
            for key, text in _files(run / "metrics").items():
                for line in text.splitlines():
                    if line.strip():
                        metrics.append((run_id, key, *_metric_line(line, run / "metrics" / key)))
        return SourceRunData(tags=text_table(tags), params=text_table(params),
                             metrics=metric_table(metrics))

    def local_artifacts(self, experiment_id: str, run: dict) -> str | None:
        path = local_path(run.get("artifact_uri"))
        if path and os.path.isdir(path):
            return path
        beside = self._folders[experiment_id] / run["run_id"] / "artifacts"
        return str(beside) if beside.is_dir() else None

    # -- registry --------------------------------------------------------------------------------
    def models(self) -> list[SourceModel]:
        base = self._root / "models"
        if not base.is_dir():
            return []
        models = []
        for folder in sorted(p for p in base.iterdir() if (p / "meta.yaml").is_file()):
            meta = _yaml(folder / "meta.yaml")
            versions = [
                _version(child) for child in folder.iterdir()
                if child.name.startswith("version-") and (child / "meta.yaml").is_file()
            ]
            aliases = {alias: int(text.strip())
                       for alias, text in _files(folder / "aliases").items()
                       if text.strip().isdigit()}
            models.append(SourceModel(
                name=meta.get("name") or folder.name,
                creation_timestamp=meta.get("creation_timestamp"),
                last_updated_timestamp=meta.get("last_updated_timestamp"),
                description=meta.get("description") or None, tags=_files(folder / "tags"),
                versions=sorted(versions, key=lambda v: v.version), aliases=aliases,
            ))
        return models

    def close(self) -> None:
        pass


def _version(folder: Path) -> SourceVersion:
    meta = _yaml(folder / "meta.yaml")
    return SourceVersion(
        version=int(meta["version"]), creation_timestamp=meta.get("creation_timestamp"),
        last_updated_timestamp=meta.get("last_updated_timestamp"),
        description=meta.get("description") or None, user_id=meta.get("user_id") or None,
        current_stage=meta.get("current_stage") or "None", source=meta.get("source"),
        storage_location=meta.get("storage_location"), run_id=meta.get("run_id") or None,
        run_link=meta.get("run_link") or None, status=meta.get("status") or "READY",
        tags=_files(folder / "tags"),
    )


def _yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(
            f"Cannot read {quoted(str(path))} of the mlruns folder: {str(exc)[:200]}. Fix or "
            "remove that file, then import again (what was imported is kept)."
        ) from exc
    return loaded if isinstance(loaded, dict) else {}


def _files(folder: Path) -> dict[str, str]:
    """{key: content} of every file below ``folder`` (keys with '/' are nested folders)."""
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _metric_line(line: str, path: Path) -> tuple[float, int, int]:
    parts = line.split()
    try:
        timestamp, value = int(parts[0]), float(parts[1])
        step = int(parts[2]) if len(parts) > 2 else 0
    except (ValueError, IndexError):
        raise InvalidInputError(
            f"Malformed metric line {quoted(line)} in {path}: expected '<timestamp> <value> "
            "<step>'. Fix or remove the line, then import again."
        ) from None
    return value, timestamp, step
