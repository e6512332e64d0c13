"""Replacing a small local file whole: a reader sees the old content or the new, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["replace_file"]


def replace_file(path: str, *parts: bytes | memoryview) -> None:
    """Write ``parts`` one after another as the new content of ``path`` (its folder must exist).

    They are written beside it, then renamed over it: a process that dies meanwhile leaves the
    old file, and readers that opened (or mapped) the old file keep it.

    Raises:
        OSError: the file could not be written; ``path`` is unchanged.
    """
    folder, name = os.path.split(path)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as sink:
            for part in parts:
                sink.write(part)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
