"""Eight real processes registering versions of one model at once get distinct, consecutive
version numbers (a blind "max + 1" append gives them all version 1), and racing creations of
one model name leave one model."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
from deltalake import DeltaTable

from sparktrack import TrackingClient
from registry_race import create_model, create_table, pool_run, register_versions

PROCESSES = 8
PER_PROCESS = 3


def test_eight_processes_registering_at_once_get_versions_1_to_n(store_uri):
    client = TrackingClient(store_uri)
    client.create_registered_model("churn")  # the race is about versions, not the name
    start_at = time.time() + 5.0  # after the workers imported sparktrack
    results = pool_run(register_versions, [(store_uri, w, PER_PROCESS, start_at)
                                        for w in range(PROCESSES)], processes=PROCESSES)
    total = PROCESSES * PER_PROCESS
    got = sorted(v for versions in results for v in versions)
    assert got == list(range(1, total + 1))  # no gap, no duplicate
    # Each process's own versions increase, and every version records the source it was given.
    for versions in results:
        assert versions == sorted(versions)
    sources = {client.get_model_version("churn", v).source for v in got}
    assert len(sources) == total
    # The table holds exactly one first row per version.
    rows = client._registry.tables.versions.read(columns=["version"])
    assert sorted(rows.column("version").to_pylist()) == list(range(1, total + 1))
    # ... and one CREATE_MODEL_VERSION event each.
    events = client._registry.tables.events.read().to_pylist()
    created = sorted(e["version"] for e in events if e["event"] == "CREATE_MODEL_VERSION")
    assert created == list(range(1, total + 1))


def test_processes_creating_the_same_model_at_once_leave_one(store_uri):
    start_at = time.time() + 5.0
    outcomes = pool_run(create_model, [(store_uri, start_at)] * PROCESSES, processes=PROCESSES)
    assert sorted(outcomes) == ["created"] + ["exists"] * (PROCESSES - 1)
    models = TrackingClient(store_uri).search_registered_models()
    assert [m.name for m in models] == ["race"]


def test_processes_creating_one_table_at_once_leave_one_creation(tmp_path):
    """Only version 0 creates the table: a creation that lost the race is not committed again
    as a later version (deltalake retries it by default, which gave the table a second id and
    schema: a Spark stream of it stops on the new id, and a serial reader reloads it)."""
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        # Every process imports sparktrack first, so that the creations below are at once.
        pool.starmap(create_table, [(str(tmp_path / "warm-up"), "registry_events", 0)] * PROCESSES)
        for attempt in range(3):
            start_at = time.time() + 1.0
            uris = pool.starmap(create_table, [(str(tmp_path / f"store-{attempt}"),
                                                "registry_events", start_at)] * PROCESSES)
            log = os.path.join(uris[0], "_delta_log")
            assert sorted(name for name in os.listdir(log) if name.endswith(".json")) == [
                f"{0:020d}.json"]
            assert DeltaTable(uris[0]).version() == 0


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
