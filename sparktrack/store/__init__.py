"""The Delta-backed store: tables, write buffer, commits and snapshots.

One :class:`TrackingStore` per store root per process (see :func:`open_store`), so all runs of
a process share one write buffer.
"""

from __future__ import annotations

import atexit
import gc
import threading

from sparktrack.config import Settings, settings_from_env
from sparktrack.store.buffer import close_all, flush_all
from sparktrack.store.tracking_store import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    TrackingStore,
    normalize_root,
)

__all__ = [
    "DEFAULT_EXPERIMENT_ID",
    "DEFAULT_EXPERIMENT_NAME",
    "TrackingStore",
    "flush_all",
    "normalize_root",
    "open_store",
]

_stores: dict[str, TrackingStore] = {}
_stores_lock = threading.Lock()


def open_store(
    uri: str,
    *,
    storage_options: dict[str, str] | None = None,
    settings: Settings | None = None,
) -> TrackingStore:
    """The process-wide store for ``uri`` (created on first use)."""
    root = normalize_root(uri)
    with _stores_lock:
        store = _stores.get(root)
        if store is None:
            store = TrackingStore(
                root, storage_options=storage_options, settings=settings or settings_from_env()
            )
            _stores[root] = store
        return store


def _at_exit() -> None:
    close_all()
    # Drop the stores' Delta snapshots, dataset plans and cached state, then collect the
    # Arrow scanners Delta reads leave in reference cycles: freed later, during interpreter
    # teardown after Arrow's own, they abort the process ("terminate called without an active
    # exception", exit 134).
    with _stores_lock:
        stores = list(_stores.values())
    for store in stores:
        store.release_caches()
    gc.collect()


atexit.register(_at_exit)
