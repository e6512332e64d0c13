"""Where a table lives: joining store URIs, telling local folders apart, filesystems."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs

__all__ = ["bucket_filesystem", "filesystem", "is_local", "join_uri", "local_path", "split_bucket"]


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
    return pafs.PyFileSystem(_handler(uri, storage_options)), ""


def split_bucket(uri: str) -> tuple[str, str]:
    """``("s3://bucket", "path/below")`` of an object-store URI."""
    scheme, _, rest = uri.partition("://")
    bucket, _, path = rest.partition("/")
    return f"{scheme}://{bucket}", path.strip("/")


def bucket_filesystem(
    uri: str, storage_options: dict[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem of the bucket (container) holding the object-store ``uri``, and
    ``uri``'s path in it, with ``storage_options`` (else the ``AWS_*``/... environment).

    Rooted at the bucket rather than at ``uri``, so that ``uri`` itself can be listed and
    tested for existence like any folder below it.
    """
    bucket, path = split_bucket(uri)
    return pafs.PyFileSystem(_handler(bucket, storage_options)), path


def _handler(uri: str, storage_options: dict[str, str] | None):
    # deltalake's filesystem, so that one set of storage options (the same keys deltalake
    # takes: AWS_ENDPOINT_URL, AWS_REGION, ...) reaches tables and plain files alike.
    from deltalake.fs import DeltaStorageHandler

    class Handler(DeltaStorageHandler):
        def open_output_stream(self, path: str, metadata: dict[str, str] | None = None):
            return pa.PythonFile(_BytesWriter(self._handler.open_output_stream(path, metadata)),
                                 mode="w")

    return Handler(uri, storage_options)


class _BytesWriter:
    """deltalake's output stream takes only ``bytes``; pyarrow hands it Buffers (deltalake
    1.6: "'Buffer' object is not an instance of 'bytes'")."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, data) -> int:
        return self._stream.write(bytes(data))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def in_base(base: str, path: str) -> str:
    """``path`` (relative to a table) inside the base path :func:`filesystem` returned."""
    return f"{base}/{path}" if base else path
