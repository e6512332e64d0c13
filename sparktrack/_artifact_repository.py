"""Artifacts of a run: files under ``<artifact_uri>/`` on a local disk or an object store.

Every artifact path is relative to the run's artifact root and may not leave it: absolute
paths, ``..`` steps that climb out, and backslashes are rejected before anything is copied.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pyarrow.fs as pafs

from sparktrack.entities import FileInfo
from sparktrack.errors import ArtifactNotFoundError, InvalidArtifactPathError

__all__ = ["ArtifactRepository", "safe_relative_path"]


def safe_relative_path(path: str | None) -> str:
    """``path`` normalised to a relative POSIX path inside the run's folder ("" = the root)."""
    if path is None or path in ("", "."):
        return ""
    if not isinstance(path, str):
        raise InvalidArtifactPathError(f"Artifact path {path!r} must be a string.")
    if "\\" in path or "\x00" in path:
        raise InvalidArtifactPathError(
            f"Artifact path {path!r} contains a backslash or NUL byte; use '/' separated paths."
        )
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise InvalidArtifactPathError(
            f"Artifact path {path!r} is absolute; artifact paths are relative to the run's "
            "artifact folder (e.g. 'plots/loss.png')."
        )
    normalized = posixpath.normpath(path)
    if normalized == ".." or normalized.startswith("../"):
        raise InvalidArtifactPathError(
            f"Artifact path {path!r} would escape the run's artifact folder; remove the '..' "
            "steps."
        )
    return "" if normalized == "." else normalized


class ArtifactRepository:
    """Reads and writes the artifacts of one run."""

    def __init__(self, artifact_uri: str) -> None:
        self.artifact_uri = artifact_uri.rstrip("/")
        self._fs, self._root = pafs.FileSystem.from_uri(
            self.artifact_uri if "://" in self.artifact_uri else os.path.abspath(self.artifact_uri)
        )

    def _full(self, relative: str) -> str:
        return posixpath.join(self._root, relative) if relative else self._root

    def log_artifact(self, local_file: str | os.PathLike, artifact_path: str | None = None) -> str:
        """Copy one local file into ``artifact_path/`` of the run; returns its artifact path."""
        local = Path(local_file)
        if not local.is_file():
            raise ArtifactNotFoundError(f"Local file {str(local)!r} does not exist or is not a file.")
        relative = posixpath.join(safe_relative_path(artifact_path), local.name).lstrip("/")
        self.write_bytes(relative, local.read_bytes())
        return relative

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a local folder's content (recursively) under ``artifact_path/``."""
        base = Path(local_dir)
        if not base.is_dir():
            raise ArtifactNotFoundError(f"Local folder {str(base)!r} does not exist.")
        prefix = safe_relative_path(artifact_path)
        for file in sorted(p for p in base.rglob("*") if p.is_file()):
            relative = posixpath.join(prefix, file.relative_to(base).as_posix())
            self.write_bytes(relative, file.read_bytes())

    def write_bytes(self, artifact_file: str, data: bytes) -> None:
        relative = safe_relative_path(artifact_file)
        if not relative:
            raise InvalidArtifactPathError("An artifact file name is required, e.g. 'notes.txt'.")
        target = self._full(relative)
        self._fs.create_dir(posixpath.dirname(target), recursive=True)
        temporary = f"{target}.tmp-{os.getpid()}"
        with self._fs.open_output_stream(temporary) as out:
            out.write(data)
        self._fs.move(temporary, target)  # readers never see a half-written file

    def read_bytes(self, artifact_file: str) -> bytes:
        target = self._full(safe_relative_path(artifact_file))
        if self._fs.get_file_info(target).type != pafs.FileType.File:
            raise ArtifactNotFoundError(
                f"No artifact file {artifact_file!r} under {self.artifact_uri}."
            )
        with self._fs.open_input_stream(target) as stream:
            return stream.read()

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The files and folders directly under ``path`` (the run's root when None)."""
        relative = safe_relative_path(path)
        info = self._fs.get_file_info(self._full(relative))
        if info.type == pafs.FileType.NotFound:
            return []
        if info.type == pafs.FileType.File:
            return [FileInfo(path=relative, is_dir=False, file_size=info.size)]
        entries = self._fs.get_file_info(pafs.FileSelector(self._full(relative)))
        found = [
            FileInfo(
                path=posixpath.join(relative, entry.base_name) if relative else entry.base_name,
                is_dir=entry.type == pafs.FileType.Directory,
                file_size=entry.size if entry.type == pafs.FileType.File else None,
            )
            for entry in entries
            if ".tmp-" not in entry.base_name
        ]
        return sorted(found, key=lambda f: f.path)

    def download_artifacts(self, path: str | None, dst_path: str | os.PathLike) -> str:
        """Copy an artifact file or folder to ``dst_path``; returns the local path."""
        relative = safe_relative_path(path)
        source = self._full(relative)
        info = self._fs.get_file_info(source)
        if info.type == pafs.FileType.NotFound:
            raise ArtifactNotFoundError(f"No artifact {path!r} under {self.artifact_uri}.")
        destination = Path(dst_path)
        destination.mkdir(parents=True, exist_ok=True)
        local_root = destination / (posixpath.basename(relative) if relative else "")
        if info.type == pafs.FileType.File:
            local_root.write_bytes(self.read_bytes(relative))
            return str(local_root)
        local_root.mkdir(parents=True, exist_ok=True)
        for entry in self._fs.get_file_info(pafs.FileSelector(source, recursive=True)):
            if entry.type != pafs.FileType.File or ".tmp-" in entry.base_name:
                continue
            inner = posixpath.relpath(entry.path, source)
            target = local_root / inner
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._fs.open_input_stream(entry.path) as stream:
                target.write_bytes(stream.read())
        return str(local_root)

    def delete_all(self) -> None:
        """Remove the run's artifact folder (used by garbage collection)."""
        if self._fs.get_file_info(self._root).type != pafs.FileType.NotFound:
            self._fs.delete_dir(self._root)
