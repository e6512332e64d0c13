"""The Delta layer's one retry policy: what it retries, how long, and what it raises."""

from __future__ import annotations

import errno
import time

import pytest
from deltalake.exceptions import CommitFailedError, DeltaError

from sparktrack._delta.retry import RetryPolicy, is_retryable, retrying
from sparktrack.errors import StoreError


@pytest.mark.parametrize("exc, retried", [
    (CommitFailedError("lost the race for version 3"), True),
    (OSError(errno.EAGAIN, "Resource temporarily unavailable"), True),
    (OSError(errno.EIO, "Input/output error"), True),
    (PermissionError(errno.EACCES, "Permission denied"), False),
    (OSError(errno.EROFS, "Read-only file system"), False),
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (DeltaError("Kernel error: Json error: Encountered unexpected 'g'"), False),
])
def test_only_lost_races_and_passing_io_errors_are_retried(exc, retried):
    assert is_retryable(exc) is retried


def _failing(exc, calls):
    def action():
        calls.append(time.monotonic())
        raise exc
    return action


def test_a_lost_race_is_retried_with_growing_pauses_then_named(tmp_path):
    calls = []
    with pytest.raises(StoreError) as raised:
        retrying(_failing(CommitFailedError("conflict"), calls), what="committing to",
                 uri=str(tmp_path), policy=RetryPolicy(retries=3), note="; kept")
    assert len(calls) == 4
    assert str(tmp_path) in str(raised.value)
    assert str(raised.value).endswith("(after 4 attempt(s); kept)")
    assert isinstance(raised.value.__cause__, CommitFailedError)


def test_what_a_retry_cannot_fix_fails_at_once():
    calls = []
    with pytest.raises(StoreError, match="^permission denied on /store/t"):
        retrying(_failing(PermissionError(errno.EACCES, "Permission denied", "/store/t"),
                          calls), what="committing to", uri="/store/t")
    assert len(calls) == 1


def test_a_deadline_stops_the_retries_and_give_up_says_why():
    calls = []
    started = time.monotonic()
    with pytest.raises(StoreError, match="^gave up after"):
        retrying(_failing(CommitFailedError("conflict"), calls), what="rewriting", uri="/t",
                 policy=RetryPolicy(retries=None, deadline=started + 0.3),
                 give_up=lambda exc, attempts: StoreError(f"gave up after {attempts}"))
    assert 0.05 < time.monotonic() - started < 1.0
    assert len(calls) >= 3


def test_a_success_after_a_lost_race_returns_the_result():
    attempts = []

    def action():
        attempts.append(1)
        if len(attempts) < 3:
            raise CommitFailedError("conflict")
        return "committed"

    assert retrying(action, what="committing to", uri="/t") == "committed"
    assert len(attempts) == 3
