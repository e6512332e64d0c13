"""Work this process still owes the store: jobs running on background threads, per run.

Autologging saves a fitted model on a thread so that ``fit()`` returns before the save ends.
Such a job is registered here under its run. The store's rule "every read flushes the write
buffer" extends to it: every sparktrack read of a run's artifacts first calls
:func:`wait_for_run`; ``flush()`` and interpreter exit call :func:`wait_all`.

A job reports its own failures (the caller has returned long ago); an exception that escapes
a job is logged here, never raised. The exit wait is registered again each time a job starts:
``atexit`` runs hooks last-registered-first, so it runs before the hooks registered earlier,
such as pyspark's, which stops the JVM the job needs.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable

__all__ = ["pending_runs", "start", "wait_all", "wait_for_run"]

logger = logging.getLogger("sparktrack")

_lock = threading.Lock()
_jobs: dict[str, list[_Job]] = {}


class _Job:
    __slots__ = ("description", "done", "run_id", "thread")

    def __init__(self, run_id: str, description: str) -> None:
        self.run_id = run_id
        self.description = description
        self.done = threading.Event()
        self.thread: threading.Thread | None = None


def start(run_id: str, description: str, work: Callable[[], None]) -> None:
    """Run ``work()`` on a daemon thread, as work owed to run ``run_id``.

    ``description`` names the job in log messages ("model save to model/").
    """
    job = _Job(run_id, description)
    job.thread = threading.Thread(
        target=_run, args=(job, work), name=f"sparktrack-{run_id[:8]}", daemon=True
    )
    with _lock:
        _jobs.setdefault(run_id, []).append(job)
    atexit.unregister(_wait_at_exit)
    atexit.register(_wait_at_exit)
    job.thread.start()


def _run(job: _Job, work: Callable[[], None]) -> None:
    try:
        work()
    except BaseException:  # noqa: BLE001 - a thread has nobody to raise to
        logger.warning(
            "sparktrack: background %s of run %s failed", job.description, job.run_id,
            exc_info=True,
        )
    finally:
        with _lock:
            jobs = _jobs.get(job.run_id, [])
            if job in jobs:
                jobs.remove(job)
            if not jobs:
                _jobs.pop(job.run_id, None)
        job.done.set()


def _others(jobs: list[_Job]) -> list[_Job]:
    # A job that reads its own run must not wait for itself.
    me = threading.current_thread()
    return [job for job in jobs if job.thread is not me]


def wait_for_run(run_id: str) -> None:
    """Return once every job owed to ``run_id`` has ended (at once when there is none)."""
    while True:
        with _lock:
            jobs = _others(_jobs.get(run_id, []))
        if not jobs:
            return
        for job in jobs:
            job.done.wait()


def wait_all() -> None:
    """Return once every job of this process has ended, including jobs started meanwhile."""
    while True:
        with _lock:
            jobs = _others([job for jobs in _jobs.values() for job in jobs])
        if not jobs:
            return
        for job in jobs:
            job.done.wait()


def pending_runs() -> list[str]:
    """The runs that have jobs still running."""
    with _lock:
        return sorted(_jobs)


def _wait_at_exit() -> None:
    if _jobs:
        logger.info("sparktrack: waiting for %d run(s) with background work", len(_jobs))
    wait_all()


def _forget_after_fork() -> None:
    # The parent's threads do not exist in a forked child.
    global _lock
    _lock = threading.Lock()
    _jobs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
