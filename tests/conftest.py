"""Shared fixtures: one SparkSession for the whole test session, a fresh store per test."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    """The one SparkSession of the test run (local[2], sparktrack data source registered)."""
    from sparktrack.spark import session

    spark = session(app_name="sparktrack-tests")
    yield spark
    spark.stop()


@pytest.fixture()
def store_uri(tmp_path):
    """A fresh, empty store folder for one test."""
    return str(tmp_path / "store")


@pytest.fixture()
def tracking(store_uri):
    """The fluent API pointed at a fresh store; runs the test leaves open are ended after it."""
    import sparktrack

    sparktrack.set_tracking_uri(store_uri)
    yield store_uri
    while sparktrack.active_run() is not None:
        sparktrack.end_run()
