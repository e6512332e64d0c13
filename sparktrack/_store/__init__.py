"""The Delta-backed store: tables, write buffer, commits and snapshots.

One :class:`TrackingStore` per store root per process (see :func:`open_store`), so all runs of
a process share one write buffer.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading

from sparktrack.config import Settings, settings_from_env
from sparktrack.errors import InvalidStateError
from sparktrack._store.buffer import close_all, flush_all
from sparktrack._store.tracking_store import (
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
    """The process-wide store for ``uri`` (created on first use).

    A root is opened once per process, with the settings and storage options of its first
    opening (``settings`` default to the ``SPARKTRACK_*`` environment variables then). A later
    call that leaves them out (None) gets that store; one that passes different ones raises
    :class:`~sparktrack.errors.InvalidStateError` instead of ignoring them, since every run
    of the process shares the store's one write buffer.
    """
    root = normalize_root(uri)
    with _stores_lock:
        store = _stores.get(root)
        if store is None:
            store = TrackingStore(
                root, storage_options=storage_options, settings=settings or settings_from_env()
            )
            _stores[root] = store
            return store
    _check_same_options(store, storage_options=storage_options, settings=settings)
    return store


def _check_same_options(
    store: TrackingStore,
    *,
    storage_options: dict[str, str] | None,
    settings: Settings | None,
) -> None:
    if settings is not None and settings != store.settings:
        changed = sorted(
            f"{name}={getattr(settings, name)!r} (open with {getattr(store.settings, name)!r})"
            for name in Settings.__dataclass_fields__
            if getattr(settings, name) != getattr(store.settings, name)
        )
        raise InvalidStateError(
            f"Store {store.root} is already open in this process with other settings: "
            f"{_short(', '.join(changed))}. A store's settings are fixed once it is open: pass "
            "the same settings (or none, to use the open store's), or set them before the "
            "store's first use."
        )
    keys = None if storage_options is None else _differing_options(store, storage_options)
    if keys:
        raise InvalidStateError(
            f"Store {store.root} is already open in this process with other storage options "
            f"(differing keys: {_short(', '.join(keys))}). Pass the same storage options (or "
            "none, to use the open store's) for the process's whole life."
        )


def _differing_options(store: TrackingStore, storage_options: dict[str, str]) -> list[str]:
    """The keys (never the values: they may be credentials) of ``storage_options`` that
    differ from what ``store`` was opened with."""
    if store.storage_options is None:
        # Opened without options: the object store's client reads the environment (AWS_*,
        # ...), so options repeating the environment's values are the same configuration (the
        # MLflow plugin opens a store that way, then the same process passes them explicitly).
        return sorted(key for key, value in storage_options.items()
                      if os.environ.get(key) != value)
    opened = store.storage_options
    return sorted(set(storage_options) ^ set(opened) | {
        key for key in storage_options if opened.get(key) != storage_options[key]
    })


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _at_exit() -> None:
    failures = close_all()
    lost = [(rows, error) for rows, error in failures if rows]
    for rows, error in lost:
        print(f"sparktrack: error: {rows} logged row(s) could not be saved to the store and are "
              f"lost: {error}", file=sys.stderr, flush=True)
    for rows, error in failures:
        if not rows:  # all committed; the re-check of what was committed failed
            print(f"sparktrack: warning: every logged row was committed, but the last check of "
                  f"the committed params could not run: {error}", file=sys.stderr, flush=True)
    if lost:
        _exit_with_status(1)
    # Drop the stores' Delta snapshots, dataset plans and cached state, then collect the
    # Arrow scanners Delta reads leave in reference cycles: freed later, during interpreter
    # teardown after Arrow's own, they abort the process ("terminate called without an active
    # exception", exit 134).
    with _stores_lock:
        stores = list(_stores.values())
    for store in stores:
        store.release_caches()
    gc.collect()


def _exit_with_status(status: int) -> None:
    """Make the interpreter exit with ``status`` once it has finished shutting down.

    atexit cannot change the exit status, and ``os._exit`` here would skip the exit hooks
    registered before this one (logging's flush among them). The interpreter raises the
    audit event ``cpython.PyInterpreterState_Clear`` at the very end of its shutdown, after
    every exit hook ran and the standard streams were flushed: exit there.
    """
    exit_now = os._exit  # bound now: modules are torn down by the time the event comes

    def on_audit(event: str, _args: tuple) -> None:
        if event == "cpython.PyInterpreterState_Clear":
            exit_now(status)

    sys.addaudithook(on_audit)


atexit.register(_at_exit)
