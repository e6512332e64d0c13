"""The model registry on S3: serial commits take deltalake's path there (a conditional PUT
per log entry, no retry inside deltalake), so processes registering at once still get
versions 1..n, and racing creations of one name leave one model."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from sparktrack import TrackingClient
from sparktrack.errors import AlreadyExistsError
from s3_server import s3, s3_store  # noqa: F401  (fixtures)

PROCESSES = 4
PER_PROCESS = 3


def _register(root: str, options: dict[str, str], writer: int, count: int,
              start_at: float) -> list[int]:
    client = TrackingClient(root, storage_options=options)
    time.sleep(max(0.0, start_at - time.time()))
    return [client.register_model(f"s3://models/w{writer}/{i}", "churn").version
            for i in range(count)]


def _create(root: str, options: dict[str, str], start_at: float) -> str:
    client = TrackingClient(root, storage_options=options)
    time.sleep(max(0.0, start_at - time.time()))
    try:
        client.create_registered_model("race")
        return "created"
    except AlreadyExistsError:
        return "exists"


def _pool_run(function, args: list[tuple]) -> list:
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        return pool.starmap(function, args)


def test_registry_basics_on_s3(s3, s3_store):
    client = TrackingClient(s3_store, storage_options=s3.storage_options())
    client.create_registered_model("m", description="first")
    first = client.register_model("s3://somewhere/model", "m")
    second = client.register_model("s3://somewhere/model2", "m")
    assert (first.version, second.version) == (1, 2)
    client.set_registered_model_alias("m", "champion", 2)
    assert client.get_model_version_by_alias("m", "champion").version == 2
    assert [m.name for m in client.search_registered_models()] == ["m"]
    keys = s3.keys(s3_store)
    assert any("/model_versions/_delta_log/" in key for key in keys)


@pytest.mark.slow
def test_processes_registering_at_once_get_versions_1_to_n(s3, s3_store):
    options = s3.storage_options()
    TrackingClient(s3_store, storage_options=options).create_registered_model("churn")
    start_at = time.time() + 8.0  # after the workers imported sparktrack
    results = _pool_run(_register, [(s3_store, options, w, PER_PROCESS, start_at)
                                    for w in range(PROCESSES)])
    total = PROCESSES * PER_PROCESS
    assert sorted(v for versions in results for v in versions) == list(range(1, total + 1))
    client = TrackingClient(s3_store, storage_options=options)
    rows = client._registry.tables.versions.read(columns=["version"])
    assert sorted(rows.column("version").to_pylist()) == list(range(1, total + 1))

    start_at = time.time() + 8.0
    outcomes = _pool_run(_create, [(s3_store, options, start_at)] * PROCESSES)
    assert sorted(outcomes) == ["created"] + ["exists"] * (PROCESSES - 1)
