"""The model registry on Delta: registered models, versions, stages, aliases and their history.

- :mod:`.names` — MLflow's rules on names, versions, stages and aliases;
- :mod:`.tables` — the Delta tables (current rows, new rows);
- :mod:`.registry` — the operations (:class:`Registry`);
- :mod:`.events` — the append-only ``registry_events`` history;
- :mod:`.search` — ``search_registered_models`` / ``search_model_versions``.

Private: the public API is :class:`sparktrack.TrackingClient` and the module-level functions.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sparktrack._registry.registry import Registry
from sparktrack._registry.tables import RegistryTables

if TYPE_CHECKING:
    from sparktrack._store import TrackingStore

__all__ = ["Registry", "flush_registry_events", "registry_for"]

_registries: dict[str, Registry] = {}
_lock = threading.Lock()


def registry_for(store: TrackingStore) -> Registry:
    """The process-wide registry of ``store``'s root (its tables stay open between calls)."""
    with _lock:
        registry = _registries.get(store.root)
        if registry is None:
            tables = RegistryTables(store.root, storage_options=store.storage_options,
                                    commit_retries=store.settings.commit_retries,
                                    event_grace_seconds=store.settings.summary_repair_seconds)
            registry = Registry(tables, store.settings,
                                lambda run_id: store.get_run_info(run_id).artifact_uri)
            _registries[store.root] = registry
        return registry


def flush_registry_events(store: TrackingStore) -> None:
    """Commit now the registry events this process has queued for ``store``'s root (their
    background writer would commit them within milliseconds)."""
    with _lock:
        registry = _registries.get(store.root)
    if registry is not None:
        registry.tables.ledger.flush()
