"""MLflow's ``mlflow.artifacts``: download, list and load artifacts by URI or run id.

An artifact URI is either ``runs:/<run_id>/<path>`` (the run is looked up in the store of
``tracking_uri``, else the current tracking URI) or a location: a local path, a ``file://``
URI or an object-store URI such as ``s3://bucket/path`` (``run.info.artifact_uri + "/f.txt"``
is one). ``import sparktrack as mlflow`` then ``mlflow.artifacts.load_dict(...)`` works as in
MLflow.

Unlike MLflow, a download always copies: without ``dst_path`` the files go to a new temporary
folder, never handed out from inside the store.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparktrack import _pending as pending
from sparktrack._artifact_repository import ArtifactRepository, os_errors
from sparktrack.entities import FileInfo
from sparktrack.errors import InvalidInputError, MissingRequirementError

if TYPE_CHECKING:
    from sparktrack.client import TrackingClient

__all__ = ["download_artifacts", "list_artifacts", "load_dict", "load_image", "load_text"]

_RUNS_URI = re.compile(r"^runs:/+(?P<run_id>[^/]*)(?:/(?P<path>.*))?$")


def download_artifacts(
    artifact_uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    dst_path: str | os.PathLike | None = None,
    tracking_uri: str | None = None,
) -> str:
    """Copy an artifact file or folder to a local folder; returns the local path of the copy.

    Args:
        artifact_uri: ``runs:/<run_id>/<path>``, a registered model's ``models:/<name>/<version>``
            (also ``/latest``, ``/<stage>`` or ``@<alias>``: its model folder), a local path, a
            ``file://`` or object-store URI. Give it or ``run_id``, not both.
        run_id: the run whose artifacts to download (with ``artifact_path``).
        artifact_path: with ``run_id``, the file or folder inside the run ("": all of it).
        dst_path: the local folder to copy into (created if needed); a new temporary folder
            by default.
        tracking_uri: the store of ``run_id`` / ``runs:/`` URIs (default: the current one).
    """
    if (artifact_uri is None) == (run_id is None):
        raise InvalidInputError(
            "Give exactly one of artifact_uri (e.g. 'runs:/<run_id>/model') or run_id to "
            "download_artifacts."
        )
    if artifact_uri is not None and artifact_path is not None:
        raise InvalidInputError(
            "artifact_path goes with run_id; with artifact_uri put the path in the URI "
            "('runs:/<run_id>/<artifact_path>')."
        )
    destination = _destination(dst_path)
    if run_id is not None:
        return _client(tracking_uri).download_artifacts(run_id, artifact_path, destination)
    if _is_models_uri(artifact_uri):
        folder, path = _model_folder(artifact_uri, tracking_uri)
        return ArtifactRepository(folder).download_artifacts(path, destination)
    parsed = _parse(artifact_uri)
    if isinstance(parsed, tuple):
        run, path = parsed
        return _client(tracking_uri).download_artifacts(run, path, destination)
    pending.wait_all()  # the location may be a run of this process with a save still running
    parent, name = _split(parsed)
    return ArtifactRepository(parent).download_artifacts(name, destination)


def list_artifacts(
    artifact_uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    tracking_uri: str | None = None,
) -> list[FileInfo]:
    """The files and folders directly under an artifact URI, or under ``artifact_path`` of
    ``run_id`` (arguments as in :func:`download_artifacts`)."""
    if (artifact_uri is None) == (run_id is None):
        raise InvalidInputError(
            "Give exactly one of artifact_uri (e.g. 'runs:/<run_id>/plots') or run_id to "
            "list_artifacts."
        )
    if artifact_uri is not None and artifact_path is not None:
        raise InvalidInputError(
            "artifact_path goes with run_id; with artifact_uri put the path in the URI."
        )
    if run_id is not None:
        return _client(tracking_uri).list_artifacts(run_id, artifact_path)
    if _is_models_uri(artifact_uri):
        folder, path = _model_folder(artifact_uri, tracking_uri)
        return ArtifactRepository(folder).list_artifacts(path)
    parsed = _parse(artifact_uri)
    if isinstance(parsed, tuple):
        run, path = parsed
        return _client(tracking_uri).list_artifacts(run, path)
    pending.wait_all()
    parent, name = _split(parsed)
    return ArtifactRepository(parent).list_artifacts(name)


def load_text(artifact_uri: str) -> str:
    """The content of a UTF-8 text artifact (``runs:/<run_id>/notes.txt`` or a location)."""
    with tempfile.TemporaryDirectory(prefix="sparktrack-load-") as folder:
        return _read_text(download_artifacts(artifact_uri, dst_path=folder), artifact_uri)


def load_dict(artifact_uri: str) -> dict[str, Any]:
    """A JSON artifact as Python objects; a ``.yaml``/``.yml`` one is read as YAML (PyYAML)."""
    if str(artifact_uri).lower().endswith((".yaml", ".yml")):
        yaml = _import_yaml(artifact_uri)  # before downloading: fail fast without PyYAML
        text = load_text(artifact_uri)
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InvalidInputError(
                f"Artifact {_shown(artifact_uri)} is not valid YAML: {str(error)[:200]}"
            ) from None
    text = load_text(artifact_uri)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"Artifact {_shown(artifact_uri)} is not valid JSON ({error.msg} at line "
            f"{error.lineno}, column {error.colno}); load_dict reads .json files, and .yaml/.yml "
            "files as YAML."
        ) from None


def load_image(artifact_uri: str):
    """An image artifact as a loaded ``PIL.Image.Image`` (needs Pillow)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise MissingRequirementError(
            "load_image needs Pillow: install it with `pip install Pillow`."
        ) from None
    with tempfile.TemporaryDirectory(prefix="sparktrack-load-") as folder:
        local = download_artifacts(artifact_uri, dst_path=folder)
        _require_file(local, artifact_uri)
        # Read while the temporary copy exists, from a file this function closes itself.
        with os_errors(local), open(local, "rb") as stream:
            try:
                image = Image.open(stream)
                image.load()
            except (UnidentifiedImageError, OSError, SyntaxError) as error:
                raise InvalidInputError(
                    f"Artifact {_shown(artifact_uri)} is not an image Pillow can read: "
                    f"{str(error)[:200]}"
                ) from None
    return image


# -- helpers ---------------------------------------------------------------------------------
def _client(tracking_uri: str | None) -> TrackingClient:
    from sparktrack.client import TrackingClient
    from sparktrack._fluent import get_tracking_uri

    return TrackingClient(tracking_uri or get_tracking_uri())


def _destination(dst_path: str | os.PathLike | None) -> str:
    if dst_path is None:
        return tempfile.mkdtemp(prefix="sparktrack-artifacts-")
    with os_errors(dst_path):
        Path(dst_path).mkdir(parents=True, exist_ok=True)
    return os.fspath(dst_path)


def _parse(artifact_uri: Any) -> tuple[str, str] | str:
    """(run_id, path) of a ``runs:/`` URI, else the location as a string."""
    if isinstance(artifact_uri, os.PathLike):
        artifact_uri = os.fspath(artifact_uri)
    if not isinstance(artifact_uri, str) or not artifact_uri.strip():
        raise InvalidInputError(
            f"artifact_uri must be a non-empty string such as 'runs:/<run_id>/model', got "
            f"{_shown(artifact_uri)}."
        )
    if artifact_uri.startswith("runs:"):
        match = _RUNS_URI.match(artifact_uri)
        if match is None or not match["run_id"]:
            raise InvalidInputError(
                f"Artifact URI {_shown(artifact_uri)} has no run id; write it as "
                "'runs:/<run_id>/<artifact path>'."
            )
        return match["run_id"], match["path"] or ""
    return artifact_uri


def _is_models_uri(artifact_uri: Any) -> bool:
    return isinstance(artifact_uri, str) and artifact_uri.startswith("models:")


def _model_folder(artifact_uri: str, tracking_uri: str | None) -> tuple[str, str]:
    """(the model folder, the path inside it) of ``models:/<name>/<version>[/<path>]`` or
    ``models:/<name>@<alias>[/<path>]``, as MLflow splits them: paths are relative to the
    registered version's model folder."""
    from sparktrack._models import uris

    rest = artifact_uri[len("models:"):].lstrip("/")
    name, separator, after = rest.partition("/")
    if "@" not in name:  # models:/<name>/<version, stage or latest>/<path>
        version, separator, after = after.partition("/")
        name = f"{name}/{version}"
    return uris.resolve(f"models:/{name}", _client(tracking_uri)), after.strip("/")


def _split(location: str) -> tuple[str, str]:
    """(parent, name) of a location; a local path is first resolved to the file it names."""
    if "://" not in location.removeprefix("file://"):
        location = os.path.realpath(location.removeprefix("file://"))
    parent, name = posixpath.split(location.rstrip("/"))
    if not name:
        raise InvalidInputError(
            f"Artifact location {_shown(location)} names no file or folder; give the path of "
            "one (e.g. '/data/run/model')."
        )
    return parent or "/", name


def _require_file(local: str, artifact_uri: Any) -> None:
    if os.path.isdir(local):
        raise InvalidInputError(
            f"Artifact {_shown(artifact_uri)} is a folder; name a file inside it, or use "
            "download_artifacts to copy the folder."
        )


def _read_text(local: str, artifact_uri: Any) -> str:
    _require_file(local, artifact_uri)
    with os_errors(local):
        data = Path(local).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"Artifact {_shown(artifact_uri)} is not valid UTF-8 text; download it with "
            "sparktrack.artifacts.download_artifacts and open it with its encoding."
        ) from None


def _import_yaml(artifact_uri: Any):
    try:
        import yaml
    except ImportError:
        raise MissingRequirementError(
            f"Reading {_shown(artifact_uri)} as YAML needs PyYAML: `pip install pyyaml`."
        ) from None
    return yaml


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:197]}..."
