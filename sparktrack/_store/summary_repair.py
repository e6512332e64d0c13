"""Keeps metric summaries consistent with the metric history across crashes.

A flush commits metric points to ``metrics`` and then their partial summaries to
``metric_summaries``: two Delta commits, so a process killed between them leaves points that
no summary covers, and search, ``get_run`` and the Spark ``runs`` table would show an old latest
value for good. Every write-buffer commit of ``metrics`` therefore carries a batch id in its
commit info, and the summaries commit that covers it carries the same id.

Before a read that uses summaries, :meth:`SummaryRepair.settle` looks at the commits made since
its last look (summaries first, then metrics: a summary seen in the first scan always covers a
batch seen in the second). For every metrics batch that no summary covers yet it either

* waits, while the batch is younger than ``grace_seconds``: its writer is between its two
  commits (milliseconds) and will cover it; or
* repairs it, once older (at once when the writer ran on this machine and is gone): the
  batch's points are read back from the files that commit added, summarized, and committed to
  ``metric_summaries`` with a commit info that says which batch it covers.

The summary of a batch is one file per partition named after the batch, computed the same way
by the writer and by a repair, and created only if missing. Delta keys a snapshot's files by
path, so when a stalled writer commits its summary after a reader repaired it, the second
commit adds nothing: a batch is counted exactly once, whoever commits it and how often.

``settle`` only waits for batches committed before it was called, so a reader beside busy
writers is never starved. Where the store is a local folder, how far the log has been checked
is remembered in ``<store>/_search_state/summaries_checked.json``, so a new process does not
read the whole log again.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pyarrow as pa

from sparktrack._delta import Commit, DeltaTableHandle
from sparktrack._store.atomic_file import replace_file
from sparktrack._store.summaries import summarize_points

__all__ = [
    "BATCH_KEY",
    "COVERS_KEY",
    "SummaryRepair",
    "settle_summaries",
    "summarize_batch",
    "summary_file_name",
    "writer_gone",
    "writer_metadata",
]

# Commit-info keys: the id of a write-buffer commit of metrics, the ids a summaries commit
# covers (comma-separated), and the process that wrote a metrics commit.
BATCH_KEY = "sparktrack.batch"
COVERS_KEY = "sparktrack.covers"
WRITER_KEY = "sparktrack.writer"

_POLL_SECONDS = 0.01


class SummaryRepair:
    """Finds metrics commits without a summary and waits for or repairs them."""

    def __init__(
        self,
        metrics: DeltaTableHandle,
        summaries: DeltaTableHandle,
        *,
        grace_seconds: float,
        checkpoint_path: str | None,
    ) -> None:
        self._metrics = metrics
        self._summaries = summaries
        self._grace_seconds = grace_seconds
        self._checkpoint_path = checkpoint_path
        self._lock = threading.Lock()
        self._metrics_seen: int | None = None  # last metrics version scanned
        self._summaries_seen: int | None = None
        self._uncovered: dict[str, Commit] = {}
        self._saved: tuple[int, int] | None = None

    def settle(self) -> None:
        """Return once every metrics batch committed before the call has its summary."""
        with self._lock:
            self._scan()
            waiting = set(self._uncovered)
            while waiting:
                now_ms = time.time() * 1000
                stale = [
                    self._uncovered[b] for b in waiting
                    if now_ms - self._uncovered[b].timestamp_ms >= self._grace_seconds * 1000
                    or writer_gone(self._uncovered[b].metadata.get(WRITER_KEY))
                ]
                if stale:
                    self._repair(stale)
                self._scan()
                waiting &= set(self._uncovered)
                if waiting:
                    time.sleep(_POLL_SECONDS)
            self._save_checkpoint()

    # -- scanning the logs -------------------------------------------------------------------
    def _scan(self) -> None:
        if self._metrics_seen is None:
            self._metrics_seen, self._summaries_seen = self._load_checkpoint()
        # Summaries first: a summary committed before this scan covers a batch whose metrics
        # commit is older still, so the metrics scan below sees it (or saw it already).
        summaries_version = self._summaries.version()
        metrics_version = self._metrics.version()
        # Ids covered by a summary whose metrics commit this process has not scanned yet: that
        # commit is in the metrics range scanned next, and is not uncovered.
        covered_ahead: set[str] = set()
        if summaries_version is not None and summaries_version > self._summaries_seen:
            for commit in self._summaries.commits_since(self._summaries_seen,
                                                        until=summaries_version):
                covered = commit.metadata.get(COVERS_KEY) or commit.metadata.get(BATCH_KEY)
                for batch in filter(None, (covered or "").split(",")):
                    if self._uncovered.pop(batch, None) is None:
                        covered_ahead.add(batch)
            self._summaries_seen = summaries_version
        if metrics_version is not None and metrics_version > self._metrics_seen:
            for commit in self._metrics.commits_since(self._metrics_seen, until=metrics_version):
                batch = commit.metadata.get(BATCH_KEY)
                if batch and batch not in covered_ahead:
                    self._uncovered[batch] = commit
            self._metrics_seen = metrics_version

    # -- repairing -----------------------------------------------------------------------------
    def _repair(self, commits: list[Commit]) -> None:
        for commit in commits:
            batch = commit.metadata[BATCH_KEY]
            try:
                points = self._metrics.read_paths(commit.added)
            except FileNotFoundError:
                # The batch's files were rewritten (gc removed its runs) or compacted: nothing of
                # it is left to summarize from those files.
                points = None
            if points is not None and points.num_rows:
                # The same file the writer would have committed: if it still does, Delta keeps one.
                self._summaries.put_named_file(summarize_batch(points),
                                               name=summary_file_name(batch),
                                               metadata={COVERS_KEY: batch})
            self._uncovered.pop(batch, None)

    # -- remembering how far the log was checked -----------------------------------------------
    def _load_checkpoint(self) -> tuple[int, int]:
        if self._checkpoint_path is None:
            return -1, -1
        try:
            with open(self._checkpoint_path, encoding="utf-8") as file:
                saved = json.load(file)
            checked = (int(saved["metrics_version"]), int(saved["summaries_version"]))
        except (OSError, ValueError, KeyError, TypeError):
            return -1, -1
        self._saved = checked
        return checked

    def _save_checkpoint(self) -> None:
        # Only a point with nothing uncovered is safe to start from: every batch up to the
        # metrics version is covered, and every summary up to the summaries version covers one.
        if self._checkpoint_path is None or self._uncovered or self._metrics_seen is None:
            return
        checked = (self._metrics_seen, self._summaries_seen)
        if checked == self._saved or checked[0] < 0:
            return
        folder = os.path.dirname(self._checkpoint_path)
        try:
            os.makedirs(folder, exist_ok=True)
            replace_file(self._checkpoint_path, json.dumps(
                {"metrics_version": checked[0], "summaries_version": checked[1]}).encode())
            self._saved = checked
        except OSError:
            pass  # a cache: the next process scans a little more of the log


def settle_summaries(
    root: str, *, storage_options: dict[str, str] | None = None, grace_seconds: float = 2.0
) -> None:
    """:meth:`SummaryRepair.settle` for readers that open a store root without a
    ``TrackingStore`` (the Spark data source's planner, maintenance)."""
    from sparktrack._store.schemas import METRIC_SUMMARIES, METRICS

    SummaryRepair(
        DeltaTableHandle(root, METRICS, storage_options=storage_options),
        DeltaTableHandle(root, METRIC_SUMMARIES, storage_options=storage_options),
        grace_seconds=grace_seconds,
        checkpoint_path=checkpoint_path(root),
    ).settle()


def checkpoint_path(root: str) -> str | None:
    """Where a local store remembers how far its log was checked (None for object stores)."""
    if "://" in root and not root.startswith("file://"):
        return None
    return os.path.join(root.removeprefix("file://"), "_search_state", "summaries_checked.json")


def summary_file_name(batch: str) -> str:
    """The name of the summary file of a metrics batch (the same for its writer and a repair)."""
    return f"summary-{batch}"


def summarize_batch(points: pa.Table) -> pa.Table:
    """The summary rows of one metrics batch, the same whoever computes them: ordered by run
    and key, stamped with the batch's newest point time instead of the clock."""
    import pyarrow.compute as pc

    newest = pc.max(points.column("timestamp")).as_py() or 0
    summary = summarize_points(points, updated_at=newest * 1000)
    return summary.sort_by([("experiment_id", "ascending"), ("run_id", "ascending"),
                            ("key", "ascending")])


# -- who wrote a batch -----------------------------------------------------------------------------
def writer_metadata() -> dict[str, str]:
    """Commit-info entry naming this process, so a reader on the same machine can tell at once
    that a batch's writer is gone (killed) instead of waiting out the grace period."""
    return {WRITER_KEY: _this_writer()}


def _this_writer() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def _start_ticks(pid: int) -> str:
    # The process start time (field 22 of /proc/<pid>/stat) tells a reused pid apart; a zombie
    # (killed, not yet reaped: state Z) has stopped writing for good.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if fields[0] in ("Z", "X") else fields[19]


def writer_gone(writer: str | None) -> bool:  # also used by the registry's event ledger
    """True only when the writer ran on this machine and that process no longer exists."""
    if not writer:
        return False
    host, _, rest = writer.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or not ticks:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    current = _start_ticks(pid)
    return current != ticks  # gone, or the pid now belongs to another process
