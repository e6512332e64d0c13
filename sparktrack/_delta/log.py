"""A table's Delta log: the commits since a version, and its history.

Used by the summary repair (which batches of points a summary covers) and by the data source's
streaming (which files each commit added).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sparktrack._delta.errors import TableNotFoundError, translated
from sparktrack._delta.paths import filesystem, in_base
from sparktrack.errors import StoreError

__all__ = ["AddedFile", "Commit", "commits_since", "history"]


@dataclass(frozen=True, slots=True)
class AddedFile:
    """A data file a commit added: path relative to the table, size, partition values."""

    path: str
    size: int
    partition: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Commit:
    """One commit of a table's Delta log: its version, commit info and the data files it added.

    ``metadata`` holds the custom keys sparktrack wrote into the commit info (e.g. the
    ``sparktrack.batch`` id of a write-buffer commit); ``files`` the files added with
    ``dataChange`` (compaction re-adds rows and is left out), ``added`` their paths.
    """

    version: int
    timestamp_ms: int
    metadata: dict[str, str]
    files: tuple[AddedFile, ...]

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(file.path for file in self.files)


def commits_since(
    uri: str, version: int, *, until: int, storage_options: dict[str, str] | None = None
) -> list[Commit]:
    """The commits ``version + 1 .. until`` of the table at ``uri``, oldest first.

    Commits whose log entry is gone (cleaned up after a checkpoint) are left out: callers that
    need every commit compare the versions they got with the range they asked for.
    """
    fs, base = filesystem(uri, storage_options)
    commits = []
    with translated("reading the Delta log of", uri):
        for number in range(max(version + 1, 0), until + 1):
            try:
                with fs.open_input_stream(in_base(base, f"_delta_log/{number:020d}.json")) as s:
                    lines = s.read().decode("utf-8").splitlines()
            except FileNotFoundError:
                continue
            try:
                commits.append(_commit(number, lines))
            except (ValueError, KeyError) as exc:
                raise StoreError(
                    f"broken Delta log of {uri}: commit {number} is not valid JSON ({exc}). "
                    "Restore the table's _delta_log folder from a backup."
                ) from exc
    return commits


def _commit(number: int, lines: list[str]) -> Commit:
    info: dict = {}
    files = []
    for line in lines:
        if not line.strip():
            continue
        action = json.loads(line)
        if "commitInfo" in action:
            info = action["commitInfo"] or {}
        add = action.get("add")
        if add and add.get("dataChange", True):
            files.append(AddedFile(unquote(add["path"]), int(add.get("size") or 0),
                                   dict(add.get("partitionValues") or {})))
    metadata = {k: v for k, v in info.items() if k.startswith("sparktrack.")}
    return Commit(number, int(info.get("timestamp") or 0), metadata, tuple(files))


def history(
    uri: str, *, limit: int | None = None, storage_options: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """deltalake's commit history of the table at ``uri``, newest first ([] if no table)."""
    from deltalake import DeltaTable

    with translated("reading the history of Delta table", uri):
        try:
            table = DeltaTable(uri, storage_options=storage_options, without_files=True)
        except TableNotFoundError:
            return []
        return table.history(limit=limit)
