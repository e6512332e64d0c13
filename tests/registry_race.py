"""Processes racing on one registry: the worker functions the registry race tests (local and
S3) give a ``spawn`` pool, so every process acts at the same moment.

Importable by any test module (``from registry_race import ...``), and by the pool's processes.
"""

from __future__ import annotations

import multiprocessing
import time

from sparktrack import TrackingClient
from sparktrack.errors import AlreadyExistsError

__all__ = ["create_model", "create_table", "pool_run", "register_versions"]


def _wait_until(start_at: float) -> None:
    while time.time() < start_at:  # after every process imported sparktrack
        time.sleep(0.001)


def register_versions(root: str, writer: int, count: int, start_at: float,
                      options: dict[str, str] | None = None) -> list[int]:
    """Register ``count`` versions of model "churn" (each with its own source) from ``root``;
    the version numbers the process got."""
    client = TrackingClient(root, storage_options=options)
    _wait_until(start_at)
    return [client.register_model(f"/models/w{writer}/{i}", "churn").version
            for i in range(count)]


def create_model(root: str, start_at: float, options: dict[str, str] | None = None) -> str:
    """Create model "race": "created", or "exists" if another process created it first."""
    client = TrackingClient(root, storage_options=options)
    _wait_until(start_at)
    try:
        client.create_registered_model("race")
        return "created"
    except AlreadyExistsError:
        return "exists"


def create_table(root: str, table: str, start_at: float,
                 options: dict[str, str] | None = None) -> str:
    """Create the registry table ``table`` under ``root`` unless it exists; its URI."""
    from sparktrack._delta import DeltaTableHandle
    from sparktrack._store.schemas import REGISTRY_TABLES

    handle = DeltaTableHandle(root, REGISTRY_TABLES[table], storage_options=options)
    _wait_until(start_at)
    handle.ensure_created()
    return handle.uri


def pool_run(function, args: list[tuple], *, processes: int) -> list:
    """``function`` over ``args`` in ``processes`` spawned processes."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return pool.starmap(function, args)
