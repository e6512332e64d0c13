"""sparktrack._pending: background work owed to runs, waited for by reads, flush and exit."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import sparktrack
from sparktrack import TrackingClient
from sparktrack import _pending as pending


def _gated(run_id: str, log: list[str]) -> threading.Event:
    gate = threading.Event()

    def work() -> None:
        gate.wait(10)
        log.append(run_id)

    pending.start(run_id, "test job", work)
    return gate


def test_wait_for_run_waits_for_that_run_only():
    log: list[str] = []
    first, second = _gated("a" * 32, log), _gated("b" * 32, log)
    assert pending.pending_runs() == ["a" * 32, "b" * 32]
    threading.Timer(0.2, first.set).start()
    pending.wait_for_run("a" * 32)
    assert log == ["a" * 32]
    assert pending.pending_runs() == ["b" * 32]
    pending.wait_for_run("c" * 32)  # nothing owed: returns at once
    second.set()
    pending.wait_all()
    assert log == ["a" * 32, "b" * 32] and pending.pending_runs() == []


def test_reads_and_flush_wait_for_the_run(tracking):
    client = TrackingClient(tracking)
    run_id = client.create_run("0").info.run_id
    artifacts = client.get_run_info(run_id).artifact_uri
    gate = threading.Event()

    def work() -> None:
        gate.wait(10)
        client.log_text(run_id, "done", "late.txt")
        client.set_tag(run_id, "late", "yes")

    pending.start(run_id, "test job", work)
    threading.Timer(0.2, gate.set).start()
    assert [f.path for f in client.list_artifacts(run_id)] == ["late.txt"]
    assert artifacts.endswith(run_id)

    gate.clear()
    pending.start(
        run_id, "test job", lambda: (gate.wait(10), client.log_text(run_id, "2", "b.txt"))
    )
    threading.Timer(0.2, gate.set).start()
    with open(client.download_artifacts(run_id, "b.txt")) as handle:
        assert handle.read() == "2"

    gate.clear()
    pending.start(run_id, "test job", lambda: (gate.wait(10), client.set_tag(run_id, "n", "3")))
    threading.Timer(0.2, gate.set).start()
    sparktrack.flush()
    assert pending.pending_runs() == []
    assert client.get_run(run_id).data.tags["n"] == "3"


def test_a_failing_job_is_logged_not_raised(caplog):
    def work() -> None:
        raise RuntimeError("disk full")

    with caplog.at_level(logging.WARNING, logger="sparktrack"):
        pending.start("d" * 32, "model save to model/", work)
        pending.wait_all()
    records = [r for r in caplog.records if r.name == "sparktrack"]
    assert len(records) == 1
    assert "model save to model/" in records[0].getMessage() and "d" * 32 in records[0].getMessage()
    assert pending.pending_runs() == []


def test_a_job_reading_its_own_run_does_not_wait_for_itself():
    finished = threading.Event()

    def work() -> None:
        pending.wait_for_run("e" * 32)
        pending.wait_all()
        finished.set()

    pending.start("e" * 32, "test job", work)
    started = time.monotonic()
    pending.wait_all()
    assert finished.is_set() and time.monotonic() - started < 5
