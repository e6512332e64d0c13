"""The one retry policy of the Delta layer.

Appends never conflict logically under Delta's optimistic concurrency, and maintenance only
changes the physical layout, so a commit that loses a race against another writer (or meets a
passing I/O error) is simply tried again, on a fresh snapshot, after an exponential backoff with
jitter. What a retry cannot fix (no permission, a read-only or full disk, a corrupt file, a
broken log) fails at once. Either way the caller gets a StoreError naming the table and cause.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sparktrack._delta.errors import ENGINE_ERRORS, is_conflict, is_permanent, store_error
from sparktrack.errors import StoreError

__all__ = ["DEFAULT_POLICY", "RetryPolicy", "is_retryable", "retrying"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a failed Delta operation is tried again.

    The pause before retry ``n`` (1, 2, ...) is ``min(max_pause, base * 2**n)`` times a random
    factor in [0.5, 1.5), so processes that collided do not collide again in step. It gives up
    after ``retries`` retries (None: no limit) or when the next pause would end after
    ``deadline`` (a ``time.monotonic()`` value; None: no deadline), whichever comes first.
    """

    retries: int | None = 8
    deadline: float | None = None
    base_seconds: float = 0.01
    max_pause_seconds: float = 2.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_pause_seconds, self.base_seconds * 2**attempt) * (
            0.5 + random.random()
        )

    def gives_up(self, attempt: int, pause: float) -> bool:
        """Whether to stop after ``attempt`` failed attempts rather than wait ``pause``."""
        if self.retries is not None and attempt > self.retries:
            return True
        return self.deadline is not None and time.monotonic() + pause > self.deadline


DEFAULT_POLICY = RetryPolicy()


def is_retryable(exc: BaseException) -> bool:
    """A lost commit race, or an I/O error that may pass (never permission, a read-only or full
    disk, corruption or a broken log: those fail the same way every time)."""
    return is_conflict(exc) or (isinstance(exc, OSError) and not is_permanent(exc))


def retrying(
    action: Callable[[], T],
    *,
    what: str,
    uri: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    note: str = "",
    give_up: Callable[[BaseException, int], StoreError] | None = None,
) -> T:
    """Run ``action`` until it succeeds, retrying what :func:`is_retryable` allows.

    A failure that is not retried, or the last one, raises StoreError (cause first, naming
    ``uri``, "after N attempt(s)" and ``note``); ``give_up(exc, attempts)`` builds it instead
    when the retries ran out, for callers with more to say. Each attempt must take a fresh
    snapshot of the table itself.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return action()
        except StoreError:
            raise
        except ENGINE_ERRORS as exc:
            if is_retryable(exc):
                pause = policy.pause(attempt)
                if not policy.gives_up(attempt, pause):
                    time.sleep(pause)
                    continue
                if give_up is not None:
                    raise give_up(exc, attempt) from exc
            error = store_error(what, uri, exc)
            raise StoreError(f"{error} (after {attempt} attempt(s){note})") from exc
