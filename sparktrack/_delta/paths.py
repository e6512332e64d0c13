"""Where a table lives: joining store URIs, telling local folders apart, filesystems."""

from __future__ import annotations

import pyarrow.fs as pafs

__all__ = ["filesystem", "is_local", "join_uri", "local_path"]


def join_uri(root: str, *parts: str) -> str:
    """Join a store root (local folder or object-store URI) with relative parts."""
    return "/".join([root.rstrip("/"), *[part.strip("/") for part in parts]])


def is_local(uri: str) -> bool:
    """Whether ``uri`` is a folder on local disk (a plain path or ``file://``)."""
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> str:
    """The folder of a local ``uri``."""
    return uri.removeprefix("file://")


def filesystem(
    uri: str, storage_options: dict[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem holding the table at ``uri`` and the table's base path in it.

    Local tables are read through Arrow's own filesystem (fast, and its I/O threads never need
    the GIL); object stores through deltalake's, with ``storage_options``.
    """
    if is_local(uri):
        return pafs.LocalFileSystem(), local_path(uri)
    from deltalake.fs import DeltaStorageHandler

    return pafs.PyFileSystem(DeltaStorageHandler(uri, storage_options)), ""


def in_base(base: str, path: str) -> str:
    """``path`` (relative to a table) inside the base path :func:`filesystem` returned."""
    return f"{base}/{path}" if base else path
