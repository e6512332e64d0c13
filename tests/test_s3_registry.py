"""The model registry on S3: serial commits take deltalake's path there (a conditional PUT
per log entry, no retry inside deltalake), so processes registering at once still get
versions 1..n, and racing creations of one name leave one model."""

from __future__ import annotations

import time

import pytest

from sparktrack import TrackingClient
from registry_race import create_model, pool_run, register_versions
from s3_server import s3, s3_store  # noqa: F401  (fixtures)

PROCESSES = 4
PER_PROCESS = 3


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
    results = pool_run(register_versions, [(s3_store, w, PER_PROCESS, start_at, options)
                                        for w in range(PROCESSES)], processes=PROCESSES)
    total = PROCESSES * PER_PROCESS
    assert sorted(v for versions in results for v in versions) == list(range(1, total + 1))
    client = TrackingClient(s3_store, storage_options=options)
    rows = client._registry.tables.versions.read(columns=["version"])
    assert sorted(rows.column("version").to_pylist()) == list(range(1, total + 1))

    start_at = time.time() + 8.0
    outcomes = pool_run(create_model, [(s3_store, start_at, options)] * PROCESSES,
                        processes=PROCESSES)
    assert sorted(outcomes) == ["created"] + ["exists"] * (PROCESSES - 1)
