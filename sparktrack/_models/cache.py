"""Models this process has loaded, so that loading the same model folder again costs a copy of
the model, not another read by Spark.

A scoring job or a stream that loads ``models:/churn@champion`` for every batch resolves the
alias every time (a moved alias loads the other version at once), but Spark's reader takes
about half a second per load, nearly all of it for files that have not changed. A folder
loaded before, whose files are unchanged (the same paths, sizes and modification times:
:func:`fingerprint`), in the same SparkContext, is answered with ``model.copy()``: a new
model object with its own parameters, so a caller that changes one (``setThreshold``) changes
neither the cached model nor what the next load returns. A folder that was written again is
read again.

The cache holds at most :data:`MAX_BYTES` of model files (least recently loaded first out),
as their JVM objects stay in the driver's memory; larger models are not kept. Spark Connect
sessions are not cached (their models live on the server).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pyarrow.fs as pafs

__all__ = ["MAX_BYTES", "clear", "fingerprint", "loaded"]

#: The model files (bytes on disk) the cache keeps at most, all models together.
MAX_BYTES = 256 * 1024 * 1024

Fingerprint = tuple[tuple[str, int, int], ...]  # (relative path, size, mtime ns) per file

_models: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()  # key -> (model, bytes)
_held_bytes = 0
_lock = threading.Lock()


def loaded(location: str, found: Fingerprint | None, load: Callable[[], Any]) -> Any:
    """The model in ``location`` whose files are ``found``: a copy of the one loaded before,
    or ``load()`` (kept for the next time). ``found`` None: not cached (the folder could not
    be listed; ``load`` reports why)."""
    context = _spark_context()
    if found is None or context is None:
        return load()
    key = (location, found, context)
    with _lock:
        held = _models.get(key)
        if held is not None:
            _models.move_to_end(key)
    if held is not None:
        return held[0].copy()
    model = load()
    try:
        copy = model.copy()
    except Exception:  # noqa: BLE001 - a class that cannot copy itself is not kept
        return model
    _keep(key, model, sum(size for _, size, _ in found))
    return copy


def fingerprint(location: str, *, filesystem: pafs.FileSystem | None = None) -> Fingerprint | None:
    """Every file under the folder ``location`` (a local path, or a path on ``filesystem``)
    with its size and modification time; None if it is not a folder that can be listed."""
    base = location.rstrip("/")
    try:
        entries = (filesystem or pafs.LocalFileSystem()).get_file_info(
            pafs.FileSelector(base, recursive=True))
    except (OSError, ValueError):
        return None
    files = [(entry.path[len(base):], entry.size or 0, entry.mtime_ns)
             for entry in entries if entry.type == pafs.FileType.File]
    if any(mtime is None for _, _, mtime in files):
        return None  # a file written again with the same size would go unnoticed
    return tuple(sorted(files)) or None


def clear() -> None:
    """Forget every loaded model (the next load of each reads its folder again)."""
    global _held_bytes
    with _lock:
        _models.clear()
        _held_bytes = 0


def _keep(key: tuple, model: Any, size: int) -> None:
    global _held_bytes
    if size > MAX_BYTES:
        return
    with _lock:
        if key in _models:
            return
        _models[key] = (model, size)
        _held_bytes += size
        while _held_bytes > MAX_BYTES:
            _, (_, dropped) = _models.popitem(last=False)
            _held_bytes -= dropped


def _spark_context() -> tuple[int, str] | None:
    """The classic SparkContext models are loaded in (its identity and application id: a
    model's JVM objects belong to it), None without one or under Spark Connect."""
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is None:
        return None
    try:
        from pyspark.sql.utils import is_remote
    except ImportError:  # pragma: no cover - every supported pyspark has it
        return None
    if is_remote():
        return None
    return id(context), context.applicationId
