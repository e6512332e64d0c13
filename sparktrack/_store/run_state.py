"""What this process knows of the runs it writes to: the per-run cache of the hot logging path.

After the first use of a run, ``log_metric`` and friends check quotas and params against this
state instead of reading the store. The cache is bounded (least recently used runs are
dropped first); a dropped run is read again from the store on its next use, after this
process's buffered rows were committed, so nothing it logged is missed.

Locking: the cache is guarded by the store lock, which is never held during Delta I/O. A
missing run is read with the lock released and inserted after (:meth:`RunStates.get`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["DEFAULT_MAX_RUNS", "RunState", "RunStates"]

# About 1 KB per run (its row, param values, tag keys): 10,000 runs is ~10 MB.
DEFAULT_MAX_RUNS = 10_000


@dataclass(slots=True)
class RunState:
    """What this process knows of a run it has written to (kept so logging never reads)."""

    row: dict
    params: dict[str, str] = field(default_factory=dict)
    tag_keys: set[str] = field(default_factory=set)
    metric_points: int = 0


class RunStates:
    """A bounded, least-recently-used cache of :class:`RunState` by run id.

    Args:
        load: run id -> its state read from the store (Delta I/O: called without the lock).
        lock: the store lock guarding the cache.
        max_runs: runs kept; the least recently used are dropped beyond it.
    """

    def __init__(
        self,
        load: Callable[[str], RunState],
        *,
        lock: threading.RLock,
        max_runs: int = DEFAULT_MAX_RUNS,
    ) -> None:
        self._load = load
        self._lock = lock
        self._max_runs = max_runs
        self._states: OrderedDict[str, RunState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def cached(self, run_id: str) -> RunState | None:
        """The cached state of a run, marked as just used, or None. Call it holding the lock."""
        state = self._states.get(run_id)
        if state is not None:
            self._states.move_to_end(run_id)
        return state

    def peek(self, run_id: str) -> RunState | None:
        """The cached state of a run or None, without the lock (a single dict read): for the
        write buffer's callbacks, which must not take the store lock."""
        return self._states.get(run_id)

    def get(self, run_id: str) -> RunState:
        """The state of a run, read from the store if it is not cached. Call it WITHOUT the
        lock: the read happens outside it, so one slow read never stalls other threads."""
        with self._lock:
            state = self.cached(run_id)
        if state is not None:
            return state
        loaded = self._load(run_id)
        with self._lock:
            # Another thread may have loaded (and already written to) it meanwhile: keep its.
            state = self.cached(run_id)
            if state is None:
                self.put(run_id, loaded)
                state = loaded
        return state

    def put(self, run_id: str, state: RunState) -> None:
        """Cache a run's state (a run this process creates). Call it holding the lock."""
        self._states[run_id] = state
        self._states.move_to_end(run_id)
        while len(self._states) > self._max_runs:
            self._states.popitem(last=False)

    def forget(self, run_ids: Iterable[str]) -> None:
        """Drop runs (removed from the store). Call it holding the lock."""
        for run_id in run_ids:
            self._states.pop(run_id, None)
