"""describe_input(): what tracking records about a training input, and the key names."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame

from sparktrack.errors import InvalidInputError
from sparktrack.repro._fingerprint import fingerprint

#: Fields of :func:`describe_input`, each recorded as ``input.<name>.<field>``:
#:
#: - ``source``: comma-separated source folders (or single files), or ``in-memory``
#: - ``format``: ``delta``, ``parquet``, ``csv``, ``json``, ``orc``, ``avro``, ``text``
#:   (comma-separated when mixed); absent when unknown, e.g. for in-memory data
#: - ``files``: number of files read
#: - ``delta_version``: version of the Delta table(s), comma-separated like ``source``;
#:   only when every source is a Delta table
#: - ``delta_snapshot_match``: ``true`` when the files read are exactly that version's files;
#:   ``false`` when, e.g., a plain parquet read also picked up files the snapshot no longer has
#: - ``rows``, ``content_hash``, ``layout_hash``: see :class:`Fingerprint`
INPUT_FIELDS = (
    "source",
    "format",
    "files",
    "delta_version",
    "delta_snapshot_match",
    "rows",
    "content_hash",
    "layout_hash",
)

IN_MEMORY = "in-memory"
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
_PARTITION_DIR_RE = re.compile(r"^[^=/]+=[^/]*$")
_FORMATS = {
    "parquet": "parquet",
    "csv": "csv",
    "tsv": "csv",
    "json": "json",
    "jsonl": "json",
    "orc": "orc",
    "avro": "avro",
    "txt": "text",
    "text": "text",
}
_COMPRESSIONS = {"gz", "bz2", "snappy", "zst", "zstd", "lz4", "deflate", "xz", "br"}
# Tag values are limited to 8000 characters; a long list of sources is shortened.
_MAX_SOURCE_CHARS = 4000


def input_key(name: str, field: str) -> str:
    """The tracking key of one field of a described input: ``input.<name>.<field>``."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInputError(
            f"input name {name!r} is not valid; use letters, digits, '_' or '-' (e.g. 'training')"
        )
    if field not in INPUT_FIELDS:
        raise InvalidInputError(f"unknown input field {field!r}; known: {', '.join(INPUT_FIELDS)}")
    return f"input.{name}.{field}"


def _local_path(uri: str) -> str | None:
    """The local filesystem path of ``uri``, or None when it lives elsewhere (s3a://, ...)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return os.path.normpath(unquote(parsed.path))
    return None


def _format_of(filename: str) -> str | None:
    parts = filename.lower().split(".")[1:]
    while parts and parts[-1] in _COMPRESSIONS:
        parts.pop()
    return _FORMATS.get(parts[-1]) if parts else None


def _source_root(uri: str) -> tuple[str, bool]:
    """(root, is_local) of one input file: its folder without Hive-style ``k=v`` levels.

    A local folder holding ``_delta_log`` at any of those levels is the root (a Delta table).
    A lone file that does not look like a Spark/Delta part file is its own source.
    """
    local = _local_path(uri)
    if local is not None:
        folder = os.path.dirname(local)
        probe = folder
        while True:
            if os.path.isdir(os.path.join(probe, "_delta_log")):
                return probe, True
            if not _PARTITION_DIR_RE.match(os.path.basename(probe)):
                break
            probe = os.path.dirname(probe)
        return (probe if os.path.basename(local).startswith("part-") else local), True
    head = uri.rstrip("/").rsplit("/", 1)[0]
    while _PARTITION_DIR_RE.match(head.rsplit("/", 1)[-1]) and "/" in head:
        head = head.rsplit("/", 1)[0]
    return (head if uri.rsplit("/", 1)[-1].startswith("part-") else uri), False


def _delta_facts(
    root: str, is_local: bool, files: set[str], storage_options: dict[str, str] | None
) -> tuple[int, bool] | None:
    """(version, files read == snapshot files) when ``root`` is a Delta table, else None."""
    if is_local and not os.path.isdir(os.path.join(root, "_delta_log")):
        return None
    if not is_local and storage_options is None:
        return None  # remote detection needs credentials: opt in with storage_options
    from sparktrack._delta.snapshots import snapshot_file_uris

    facts = snapshot_file_uris(root, storage_options=storage_options)
    if facts is None:  # not a Delta table after all, unreadable log, no access
        return None
    version, uris = facts
    snapshot = {_normal(u) for u in uris}
    read = {f for f in files if f == root or f.startswith(root.rstrip("/") + "/")}
    return version, read == snapshot


def _normal(uri: str) -> str:
    local = _local_path(uri)
    return local if local is not None else unquote(uri)


def describe_input(
    df: DataFrame,
    *,
    name: str = "training",
    storage_options: dict[str, str] | None = None,
) -> dict[str, str]:
    """What tracking records about a training input, keyed ``input.<name>.<field>``.

    Fields (see :data:`INPUT_FIELDS`): ``source`` (the folders or files read, from
    ``df.inputFiles()``, or ``in-memory``), ``format`` (from the file names, or ``delta`` when
    the source folder holds a ``_delta_log``), ``files``, ``delta_version`` and
    ``delta_snapshot_match`` (Delta sources only; the version is the table's current version,
    read with the ``deltalake`` package), ``rows``, ``content_hash`` and ``layout_hash`` (from
    :func:`fingerprint`: one Spark job).

    Delta tables on local disk are detected by their ``_delta_log`` folder. Remote ones
    (``s3://``, ``abfss://``, ...) are checked only when ``storage_options`` (as for
    ``deltalake.DeltaTable``) are given, so describing an input never waits on a remote store
    without being asked to.

    Raises:
        InvalidInputError: ``name`` is not made of letters, digits, ``_`` and ``-``, or a
            column cannot be hashed (named).
    """
    input_key(name, "source")  # validates the name before any work
    files = sorted(df.inputFiles())
    info: dict[str, str] = {}
    if not files:
        info[input_key(name, "source")] = IN_MEMORY
    else:
        roots: dict[str, bool] = {}
        for uri in files:
            root, is_local = _source_root(uri)
            roots.setdefault(root, is_local)
        normal_files = {_normal(u) for u in files}
        deltas = {r: _delta_facts(r, loc, normal_files, storage_options) for r, loc in roots.items()}
        ordered = sorted(roots)
        source = ",".join(ordered)
        if len(source) > _MAX_SOURCE_CHARS:
            source = source[:_MAX_SOURCE_CHARS] + f"... ({len(ordered)} sources)"
        info[input_key(name, "source")] = source
        if all(deltas[r] is not None for r in ordered):
            info[input_key(name, "format")] = "delta"
            facts = [deltas[r] for r in ordered]
            info[input_key(name, "delta_version")] = ",".join(str(f[0]) for f in facts if f)
            matched = all(f[1] for f in facts if f)
            info[input_key(name, "delta_snapshot_match")] = str(matched).lower()
        else:
            formats = {_format_of(u.rstrip("/").rsplit("/", 1)[-1]) for u in files}
            if None not in formats:
                info[input_key(name, "format")] = ",".join(sorted(f for f in formats if f))
    info[input_key(name, "files")] = str(len(files))
    fp = fingerprint(df)
    info[input_key(name, "rows")] = str(fp.row_count)
    info[input_key(name, "content_hash")] = fp.content_hash
    info[input_key(name, "layout_hash")] = fp.layout_hash
    return info
