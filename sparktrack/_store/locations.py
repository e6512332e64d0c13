"""Artifact locations: stored relative to the store root, resolved against it on every read.

A store keeps ``artifacts/<experiment_id>`` in ``experiments.artifact_location`` and
``artifacts/<experiment_id>/<run_id>`` in ``runs.artifact_uri``, so a store that is copied,
moved, synced or mounted elsewhere reads and writes the artifacts under its own root, never
under the folder it came from. A location outside the store (an ``artifact_location`` given to
``create_experiment``, or a row written by an older version) is stored absolute and used as it
is.

Pure Python and pyarrow, no I/O: the Spark data source resolves locations on executors too.
"""

from __future__ import annotations

import os
import re

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "is_absolute",
    "location_to_store",
    "relative_to_root",
    "resolve_column",
    "resolve_location",
]

# An absolute path ("/x", "C:/x") or a URI with a scheme ("s3://b/x", "file:///x"). The same
# pattern is used by Python's re and by Arrow's RE2 (resolve_column): both must agree.
_ABSOLUTE = r"^(/|[A-Za-z]:[/\\]|[A-Za-z][A-Za-z0-9+.\-]*://)"
_ABSOLUTE_RE = re.compile(_ABSOLUTE)


def is_absolute(location: str) -> bool:
    """Whether a stored location is used as it is (absolute path or URI) rather than resolved."""
    return bool(_ABSOLUTE_RE.match(location))


def resolve_location(root: str, stored: str) -> str:
    """The location a stored ``artifact_uri``/``artifact_location`` means under ``root``."""
    if not stored or is_absolute(stored):
        return stored
    return f"{root.rstrip('/')}/{stored}"


def resolve_column(column: pa.ChunkedArray | pa.Array, root: str) -> pa.ChunkedArray | pa.Array:
    """:func:`resolve_location` over a string column (one vectorized pass, nulls kept)."""
    if len(column) == 0:
        return column
    relative = pc.invert(pc.match_substring_regex(column, _ABSOLUTE))
    joined = pc.binary_join_element_wise(pa.scalar(root.rstrip("/")), column, "/")
    return pc.if_else(relative, joined, column)


def _absolute(location: str) -> str:
    """A user-given location made absolute: local paths against the working directory."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    if "://" in location:
        return location.rstrip("/")
    return os.path.abspath(os.path.expanduser(location))


def relative_to_root(root: str, location: str) -> str | None:
    """``location``'s path below ``root`` ("a/b"), or None when it is not strictly inside.

    A relative ``location`` is a stored one: it is taken against ``root``.
    """
    if not is_absolute(location):
        location = resolve_location(root, location)
    location = _absolute(location)
    if "://" in location:
        base = root.rstrip("/")
        path = location
    else:
        base, path = os.path.normpath(root), os.path.normpath(location)
    if not path.startswith(base.rstrip("/") + "/"):
        return None
    return path[len(base.rstrip("/")) + 1:].strip("/") or None


def location_to_store(root: str, location: str) -> str:
    """The form of ``location`` to write in the store: relative when it is inside ``root``,
    absolute otherwise (MLflow allows artifact locations anywhere).

    ``location`` is a location as users and readers see it: a relative path is taken against
    the working directory, as MLflow does for an experiment's ``artifact_location``.
    """
    absolute = _absolute(location)
    return relative_to_root(root, absolute) or absolute
