"""Which ``fit()`` calls are the user's, and which are made by a fit already being logged.

A top-level autologged ``fit()`` opens a :class:`FitSession`. Nested calls are recognised two
ways: in the same thread (a Pipeline fitting its stages) by a thread-local, and in other
threads (a tuner's ``parallelism`` pool, OneVsRest's pool) by the uid of the estimator being
fitted: every object of the session's estimator tree is registered, and copies keep their uid.
Unlike MLflow's process-global stack, two threads that each fit their own estimator are each
logged in their own run.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["FitSession", "active_sessions", "find_owner", "in_session", "open_session"]

_keys = itertools.count(1)
_local = threading.local()
_lock = threading.Lock()
_by_uid: dict[str, list[FitSession]] = {}
_active: dict[int, FitSession] = {}


class FitSession:
    """One top-level ``fit()`` being logged: its estimator tree and, for tuners, its trials."""

    def __init__(self, estimator: Any, uids: frozenset[str], trials: Any = None) -> None:
        self.key = next(_keys)
        self.estimator = estimator
        self.uids = uids
        self.trials = trials  # a tuning.TrialRecorder for tuners


def in_session() -> FitSession | None:
    """The session of an autologged fit running in this thread, if any."""
    return getattr(_local, "session", None)


def find_owner(estimator: Any) -> FitSession | None:
    """The session this ``fit()`` call belongs to (None: it is a top-level call)."""
    mine = in_session()
    if mine is not None:
        return mine
    uid = getattr(estimator, "uid", None)
    with _lock:
        owners = _by_uid.get(uid) if uid is not None else None
        return owners[-1] if owners else None


def active_sessions() -> list[FitSession]:
    with _lock:
        return list(_active.values())


@contextmanager
def open_session(session: FitSession) -> Iterator[FitSession]:
    """Register the session for the duration of the fit."""
    with _lock:
        _active[session.key] = session
        for uid in session.uids:
            _by_uid.setdefault(uid, []).append(session)
    previous = in_session()
    _local.session = session
    try:
        yield session
    finally:
        _local.session = previous
        with _lock:
            _active.pop(session.key, None)
            for uid in session.uids:
                owners = _by_uid.get(uid, [])
                if session in owners:
                    owners.remove(session)
                if not owners:
                    _by_uid.pop(uid, None)
