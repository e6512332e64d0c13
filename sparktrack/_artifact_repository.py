"""Artifacts of a run: files under ``<artifact_uri>/`` on a local disk or an object store.

Every artifact path is relative to the run's artifact root and may not leave it: absolute
paths, ``..`` steps that climb out, and backslashes are rejected before anything is copied.
On a local disk the check also follows symbolic links: a link inside the run's folder that
points outside it is refused for reading and writing alike.

A failed file operation (permission denied, read-only or full disk, ...) raises
:class:`~sparktrack.errors.StoreError` whose message starts with the cause and names the path.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs

from sparktrack._delta.errors import engine_message, object_store_cause
from sparktrack._delta.paths import bucket_filesystem
from sparktrack._validation import quoted
from sparktrack.entities import FileInfo
from sparktrack.errors import ArtifactNotFoundError, InvalidArtifactPathError, StoreError

__all__ = ["ArtifactRepository", "os_errors", "safe_relative_path"]

# Suffix of the file a write goes to before it is renamed into place.
_TEMPORARY = ".tmp-"

_CAUSES = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
}


def _cause(error: OSError) -> str:
    if error.errno in _CAUSES:
        return _CAUSES[error.errno]
    if error.errno:
        return os.strerror(error.errno).lower()
    return "I/O error"


@contextmanager
def os_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised inside into a StoreError: "permission denied on <path>: ..."."""
    try:
        yield
    except OSError as error:
        remote = object_store_cause(str(error), os.fspath(path))
        if remote is not None:
            cause, fix = remote
            raise StoreError(f"{cause} on {os.fspath(path)}: {fix} "
                             f"({engine_message(error)})") from error
        raise StoreError(f"{_cause(error)} on {os.fspath(path)}: {error}") from error


def safe_relative_path(path: str | None) -> str:
    """``path`` normalised to a relative POSIX path inside the run's folder ("" = the root)."""
    if path is None or path in ("", "."):
        return ""
    if not isinstance(path, str):
        raise InvalidArtifactPathError(f"Artifact path {quoted(path)} must be a string.")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArtifactPathError(
            f"Artifact path {quoted(path)} is not valid Unicode (a lone surrogate); file names "
            "must be text that can be stored."
        ) from None
    if "\\" in path or "\x00" in path:
        raise InvalidArtifactPathError(
            f"Artifact path {quoted(path)} contains a backslash or NUL byte; use '/' separated paths."
        )
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise InvalidArtifactPathError(
            f"Artifact path {quoted(path)} is absolute; artifact paths are relative to the run's "
            "artifact folder (e.g. 'plots/loss.png')."
        )
    normalized = posixpath.normpath(path)
    if normalized == ".." or normalized.startswith("../"):
        raise InvalidArtifactPathError(
            f"Artifact path {quoted(path)} would escape the run's artifact folder; remove the '..' "
            "steps."
        )
    return "" if normalized == "." else normalized


def _is(path: Path, test: Callable[[Path], bool]) -> bool:
    # A name too long for the file system or a lone surrogate is simply not an existing file.
    try:
        return test(path)
    except (OSError, ValueError):
        return False


def _local_path(uri: str) -> str | None:
    """The local path of a ``file://`` URI or plain path; None for other schemes."""
    if uri.startswith("file://"):
        return os.path.abspath(uri[len("file://"):])
    if "://" in uri:
        return None
    return os.path.abspath(uri)


class ArtifactRepository:
    """Reads and writes the artifacts of one run.

    Object stores (``s3://``, ``gs://``, ``az://``, ...) are reached through the same
    filesystem as the store's Delta tables, configured by ``storage_options`` (the keys
    deltalake takes, e.g. ``AWS_ENDPOINT_URL``) or, without them, the environment.
    """

    def __init__(self, artifact_uri: str, *, storage_options: dict[str, str] | None = None
                 ) -> None:
        self.artifact_uri = artifact_uri.rstrip("/")
        local = _local_path(self.artifact_uri)
        self._local = local is not None
        if local is not None:
            self._fs: pafs.FileSystem = pafs.LocalFileSystem()
            self._root = local
        else:
            with os_errors(self.artifact_uri):
                self._fs, self._root = bucket_filesystem(self.artifact_uri, storage_options)

    def _shown(self, path: str) -> str:
        """``path`` as users name it: the full URI on an object store."""
        if self._local:
            return path
        return f"{self.artifact_uri}/{path[len(self._root):].lstrip('/')}".rstrip("/")

    def _full(self, relative: str) -> str:
        return posixpath.join(self._root, relative) if relative else self._root

    def _target(self, relative: str, *, shown: str | None) -> str:
        """The full path of ``relative``, refused if a symbolic link leads it outside the run."""
        target = self._full(relative)
        self._check_contained(target, shown=relative if shown is None else shown)
        return target

    def _check_contained(self, target: str, *, shown: str) -> None:
        if not self._local:
            return  # object stores have no links
        # realpath resolves every link of the part that exists; the rest is taken literally.
        root = os.path.realpath(self._root)
        real = os.path.realpath(target)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise InvalidArtifactPathError(
                f"Artifact path {shown!r} leads through a symbolic link to {real[:200]}, outside "
                f"the run's artifact folder {self._root}; remove the link or use another path."
            )

    def log_artifact(self, local_file: str | os.PathLike, artifact_path: str | None = None) -> str:
        """Copy one local file into ``artifact_path/`` of the run; returns its artifact path."""
        local = Path(local_file)
        if not _is(local, Path.is_file):
            raise ArtifactNotFoundError(
                f"Local file {quoted(str(local))} does not exist or is not a file."
            )
        relative = posixpath.join(safe_relative_path(artifact_path), local.name).lstrip("/")
        with os_errors(local):
            data = local.read_bytes()
        self.write_bytes(relative, data)
        return relative

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a local folder's content (recursively) under ``artifact_path/``."""
        base = Path(local_dir)
        if not _is(base, Path.is_dir):
            raise ArtifactNotFoundError(f"Local folder {quoted(str(base))} does not exist.")
        prefix = safe_relative_path(artifact_path)
        with os_errors(base):
            files = sorted(p for p in base.rglob("*") if p.is_file())
        for file in files:
            relative = posixpath.join(prefix, file.relative_to(base).as_posix())
            with os_errors(file):
                data = file.read_bytes()
            self.write_bytes(relative, data)

    def write_bytes(self, artifact_file: str, data: bytes) -> None:
        relative = safe_relative_path(artifact_file)
        if not relative:
            raise InvalidArtifactPathError("An artifact file name is required, e.g. 'notes.txt'.")
        target = self._target(relative, shown=artifact_file)
        if not self._local:
            # One PUT: readers see the whole object or none (an object store has no rename).
            with os_errors(self._shown(target)):
                with self._fs.open_output_stream(target) as out:
                    out.write(data)
            return
        temporary = f"{target}{_TEMPORARY}{os.getpid()}"
        with os_errors(self._shown(target)):
            self._fs.create_dir(posixpath.dirname(target), recursive=True)
            # A link created in between would be followed by the writes below: check again.
            self._check_contained(target, shown=artifact_file)
            with self._fs.open_output_stream(temporary) as out:
                out.write(data)
            self._fs.move(temporary, target)  # readers never see a half-written file

    def read_bytes(self, artifact_file: str) -> bytes:
        target = self._target(safe_relative_path(artifact_file), shown=artifact_file)
        with os_errors(self._shown(target)):
            if self._fs.get_file_info(target).type != pafs.FileType.File:
                raise ArtifactNotFoundError(
                    f"No artifact file {artifact_file!r} under {self.artifact_uri}."
                )
            with self._fs.open_input_stream(target) as stream:
                return stream.read()

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The files and folders directly under ``path`` (the run's root when None)."""
        relative = safe_relative_path(path)
        target = self._target(relative, shown=path)
        with os_errors(self._shown(target)):
            info = self._fs.get_file_info(target)
            if info.type == pafs.FileType.NotFound:
                return []
            if info.type == pafs.FileType.File:
                return [FileInfo(path=relative, is_dir=False, file_size=info.size)]
            entries = self._fs.get_file_info(pafs.FileSelector(target))
        found = [
            FileInfo(
                path=posixpath.join(relative, entry.base_name) if relative else entry.base_name,
                is_dir=entry.type == pafs.FileType.Directory,
                file_size=entry.size if entry.type == pafs.FileType.File else None,
            )
            for entry in entries
            if _TEMPORARY not in entry.base_name
        ]
        return sorted(found, key=lambda f: f.path)

    def download_artifacts(self, path: str | None, dst_path: str | os.PathLike) -> str:
        """Copy an artifact file or folder to ``dst_path``; returns the local path.

        Every file is checked before the first is copied: a link to outside the run's folder
        anywhere under ``path`` refuses the whole download.
        """
        relative = safe_relative_path(path)
        source = self._target(relative, shown=path)
        with os_errors(self._shown(source)):
            info = self._fs.get_file_info(source)
        if info.type == pafs.FileType.NotFound:
            raise ArtifactNotFoundError(f"No artifact {path!r} under {self.artifact_uri}.")
        destination = Path(dst_path)
        name = posixpath.basename(relative) if relative else ""
        local_root = destination / name
        if info.type == pafs.FileType.File:
            data = self.read_bytes(relative)
            with os_errors(local_root):
                destination.mkdir(parents=True, exist_ok=True)
                local_root.write_bytes(data)
            return str(local_root)
        files = self._files_under(source, relative)
        with os_errors(local_root):
            local_root.mkdir(parents=True, exist_ok=True)
        for inner, full in files:
            target = local_root / inner
            with os_errors(self._shown(full)):
                with self._fs.open_input_stream(full) as stream:
                    data = stream.read()
            with os_errors(target):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        return str(local_root)

    def _files_under(self, source: str, relative: str) -> list[tuple[str, str]]:
        """(path below ``source``, full path) of every file under the folder ``source``."""
        with os_errors(self._shown(source)):
            entries = self._fs.get_file_info(pafs.FileSelector(source, recursive=True))
        files = []
        for entry in entries:
            if entry.type != pafs.FileType.File or _TEMPORARY in entry.base_name:
                continue
            inner = posixpath.relpath(entry.path, source)
            self._check_contained(entry.path, shown=posixpath.join(relative, inner))
            files.append((inner, entry.path))
        return files

    def delete_all(self) -> None:
        """Remove the run's artifact folder (garbage collection decides whether it may).

        On a local disk links are removed, never followed.
        """
        with os_errors(self._shown(self._root)):
            if self._local:
                if os.path.islink(self._root):
                    os.unlink(self._root)
                elif os.path.isdir(self._root):
                    shutil.rmtree(self._root)
                return
            if self._fs.get_file_info(self._root).type != pafs.FileType.NotFound:
                self._fs.delete_dir(self._root)
