"""A writer process that exits while its write buffer's background thread is committing.

The interpreter's exit hook closes every write buffer. If the background thread ("flusher")
still commits after that, it is inside deltalake's native code (a commit, or the check of the
params just committed, which opens the params table) while the interpreter finalizes; taking
the GIL back then ends the thread inside Rust frames and the process dies with SIGSEGV. Seen
as writers of ``test_s3_commits::test_concurrent_writers_lose_nothing`` exiting with -11 under
load: the flusher woke during the writer's last ``flush()``, waited for the flush lock, and
made its commit after the exit hook's. So :meth:`WriteBuffer.close` must return only once the
flusher has ended, and nothing may be committed by it afterwards.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid

import pyarrow as pa

from sparktrack.config import Settings
from sparktrack._delta import DeltaTableHandle
from sparktrack._store.buffer import CommitChecks, WriteBuffer
from sparktrack._store.schemas import METRIC_SUMMARIES, METRICS, PARAMS, RUNS, TAGS

# Which of the two waiting for the flush lock gets it first (the flusher, or close()'s commit
# after the flush: the crash needs the latter) is up to the scheduler: about one attempt in
# eight before the fix, so 20 attempts (a second or two) failed 6 runs out of 6.
ATTEMPTS = 20


def _tables(root: str) -> dict[str, DeltaTableHandle]:
    return {spec.name: DeltaTableHandle(root, spec)
            for spec in (RUNS, TAGS, PARAMS, METRICS, METRIC_SUMMARIES)}


def _param(value: str) -> tuple:
    return (uuid.uuid4().hex, "0", "p", value, 0)


class _ExitRace:
    """Commit checks that set up the race of an exiting writer.

    During the first commit made on the calling thread (the writer's last flush), one more
    row is buffered and the check waits until the flusher, woken meanwhile, waits for the
    flush lock. Every check also takes a little time, as the real one reads the params table.
    Each check's thread and time span are recorded.
    """

    def __init__(self, caller: threading.Thread) -> None:
        self.buffer: WriteBuffer | None = None
        self.caller = caller
        self.calls: list[tuple[str, float, float]] = []
        self._raced = False

    def checks(self) -> CommitChecks:
        return CommitChecks(before=lambda ready: (ready, None), after=self._after)

    def _after(self, committed: dict[str, pa.Table]) -> None:
        start = time.monotonic()
        if threading.current_thread() is self.caller and not self._raced:
            self._raced = True
            self.buffer.add(PARAMS.name, _param("late"))
            assert _wait_until(self._flusher_waits_for_the_lock)
        time.sleep(0.02)  # the real check reads the params table back
        self.calls.append((threading.current_thread().name, start, time.monotonic()))
        return None

    def _flusher_waits_for_the_lock(self) -> bool:
        # The caller holds the flush lock while checking: a flusher inside _commit waits.
        thread = self.buffer._thread
        frame = sys._current_frames().get(thread.ident) if thread is not None else None
        return frame is not None and frame.f_code.co_name == "_commit"


def _wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.001)
    return False


def test_close_returns_after_the_flusher_ended_and_nothing_is_committed_later(tmp_path):
    tables = _tables(str(tmp_path / "store"))
    settings = Settings(flush_interval_seconds=0.001)
    late = []
    for attempt in range(ATTEMPTS):
        race = _ExitRace(threading.current_thread())
        buffer = WriteBuffer(tables, settings, checks=race.checks())
        race.buffer = buffer
        buffer.add(PARAMS.name, _param(f"first-{attempt}"))
        buffer.flush()  # the writer's last flush: the flusher wakes and waits meanwhile
        buffer.close()  # what the exit hook does
        closed_at = time.monotonic()
        flusher = buffer._thread
        alive = flusher.is_alive()
        flusher.join(5)
        after_close = [call for call in race.calls if call[2] > closed_at]
        if alive or after_close:
            late.append((attempt, alive, after_close))
        assert buffer.row_count == 0
    assert late == [], "the flusher was still running, or committing, after close() returned"
    rows = tables[PARAMS.name].read()
    values = sorted(rows.column("value").to_pylist())
    assert values == sorted([f"first-{n}" for n in range(ATTEMPTS)] + ["late"] * ATTEMPTS)
