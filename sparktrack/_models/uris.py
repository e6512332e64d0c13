"""Model URIs: ``runs:/<run_id>/<path>``, ``models:/<name>/<version|latest|stage>``,
``models:/<name>@<alias>`` and plain locations, parsed (:func:`parse`) and resolved to the
folder that holds the model (:func:`resolve`).

The grammar of ``models:/`` is MLflow's (``mlflow/store/artifact/utils/models.py``): two path
segments are a name and a suffix (digits: a version; ``latest`` in any case: the highest
version; anything else: a stage); one segment with ``@`` is a name and an alias. MLflow's
one-segment ``models:/<model_id>`` names a LoggedModel, which Spark models never are.

Resolution asks the registry through the client with MLflow's method names
(``get_latest_versions``, ``get_model_version_by_alias``,
``get_model_version_download_uri``), so any client with those methods resolves.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from sparktrack import _pending as pending
from sparktrack._artifact_repository import safe_relative_path
from sparktrack.errors import InvalidArtifactPathError, InvalidInputError, NotFoundError

__all__ = ["Location", "ModelsUri", "RunsUri", "parse", "registered_version", "resolve"]

_FORMS = (
    "'runs:/<run_id>/<artifact path>', 'models:/<name>/<version>', 'models:/<name>/latest', "
    "'models:/<name>/<stage>', 'models:/<name>@<alias>' or a path"
)
_RUN_ID = re.compile(r"^[0-9A-Za-z_\-]+$")


@dataclass(frozen=True)
class RunsUri:
    """``runs:/<run_id>/<path>``: an artifact folder of a run."""

    run_id: str
    path: str


@dataclass(frozen=True)
class ModelsUri:
    """``models:/...``: a registered model version; at most one of version, stage, alias is
    set, none for ``latest``."""

    name: str
    version: str | None = None
    stage: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class Location:
    """A folder: a local path, ``file://`` or an object-store URI (``s3://...``)."""

    uri: str


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:197]}..."


def _invalid(uri: Any, why: str) -> InvalidInputError:
    return InvalidInputError(f"Model URI {_shown(uri)} {why}; write it as one of {_FORMS}.")


def parse(uri: Any) -> RunsUri | ModelsUri | Location:
    """The parts of a model URI.

    Raises:
        InvalidInputError: the URI is empty, not a string, or a malformed ``runs:``/``models:``
            URI (the message quotes it and lists the accepted forms).
    """
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri.strip():
        raise _invalid(uri, "is not a non-empty string")
    if uri.startswith("runs:"):
        return _parse_runs(uri)
    if uri.startswith("models:"):
        return _parse_models(uri)
    return Location(uri)


def _parse_runs(uri: str) -> RunsUri:
    rest = uri[len("runs:"):]
    if not rest.startswith("/"):
        raise _invalid(uri, "has no '/' after 'runs:'")
    run_id, _, path = rest.lstrip("/").partition("/")
    if not run_id or not _RUN_ID.match(run_id):
        raise _invalid(uri, "has no valid run id")
    try:
        relative = safe_relative_path(path)
    except InvalidArtifactPathError as error:
        raise _invalid(uri, f"has an artifact path that is not allowed ({error.message})") from None
    if not relative:
        raise _invalid(uri, "names no artifact path inside the run (e.g. 'model')")
    return RunsUri(run_id, relative)


def _parse_models(uri: str) -> ModelsUri:
    rest = uri[len("models:"):]
    if not rest.startswith("/") or not rest.lstrip("/"):
        raise _invalid(uri, "names no registered model")
    if rest.startswith("//"):
        # MLflow reads 'models://<profile>@<host>/...' as another registry; there is one here.
        raise _invalid(uri, "names a registry host ('models://...'), which sparktrack has not")
    parts = rest.lstrip("/").split("/")
    if len(parts) > 2 or not parts[0].strip():
        raise _invalid(uri, "has more than a name and a version, stage or alias")
    if len(parts) == 2:
        name, suffix = parts
        if "@" in name:
            raise _invalid(uri, "has both an alias and a version or stage")
        if not suffix.strip():
            raise _invalid(uri, "has an empty version or stage")
        if suffix.isdigit():
            return ModelsUri(name, version=str(int(suffix)))
        if suffix.lower() == "latest":
            return ModelsUri(name)
        return ModelsUri(name, stage=suffix)
    if "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        if not name.strip() or not alias.strip():
            raise _invalid(uri, "has an empty model name or alias around '@'")
        return ModelsUri(name, alias=alias)
    raise _invalid(
        uri,
        "names a logged model id (MLflow 3's 'models:/<model_id>'); Spark models are logged "
        "as run artifacts, not LoggedModels: use 'runs:/<run_id>/<path>' or a registered "
        "model's version, stage or alias",
    )


def resolve(uri: Any, client: Any) -> str:
    """The location of the model folder ``uri`` names (for ``runs:/`` URIs and plain paths,
    after the background saves of this process that could still be writing it).

    ``client`` resolves runs (``get_run_info``) and registered models (MLflow's registry
    methods); a registered version's download URI may itself be a ``runs:/`` URI or a location.

    Raises:
        InvalidInputError: malformed URI.
        NotFoundError: no version of the model matches (``latest``, a stage).
    """
    parsed = parse(uri)
    if isinstance(parsed, ModelsUri):
        version = _version(parsed, client)
        source = client.get_model_version_download_uri(parsed.name, version)
        parsed = parse(source)
        if isinstance(parsed, ModelsUri):
            raise InvalidInputError(
                f"Model URI {_shown(uri)} resolves to {_shown(source)}, another models:/ URI; "
                "a registered version's source must be a run artifact or a location."
            )
    if isinstance(parsed, RunsUri):
        pending.wait_for_run(parsed.run_id)
        base = client.get_run_info(parsed.run_id).artifact_uri.rstrip("/")
        return posixpath.join(base, parsed.path)
    pending.wait_all()  # the folder may be a run's, with a save of this process still running
    return parsed.uri


def registered_version(uri: Any, client: Any) -> tuple[str, str] | None:
    """(name, version) a ``models:/`` URI resolves to now; None for other URIs."""
    parsed = parse(uri)
    if not isinstance(parsed, ModelsUri):
        return None
    return parsed.name, _version(parsed, client)


def _version(parsed: ModelsUri, client: Any) -> str:
    if parsed.version is not None:
        return parsed.version
    if parsed.alias is not None:
        return str(client.get_model_version_by_alias(parsed.name, parsed.alias).version)
    stages = None if parsed.stage is None else [parsed.stage]
    versions = client.get_latest_versions(parsed.name, stages)
    if not versions:
        where = "" if parsed.stage is None else f" in stage {parsed.stage!r}"
        raise NotFoundError(
            f"Registered model {parsed.name!r:.200} has no version{where}; register one with "
            "register_model or use another stage."
        )
    return str(max(int(version.version) for version in versions))
