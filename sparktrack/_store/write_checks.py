"""What a write buffer checks against the other processes writing to the same store.

Within a process, logging is checked before a row is buffered (a param's first value, a run's
lifecycle). Another process's writes are only visible once committed, so two rules are
checked around each commit instead:

* **Params are write-once, across processes.** A param row is stamped when it is committed and
  the first committed value wins
  (:func:`sparktrack._store.current_rules.first_param_values`). After a commit of params the
  writer reads the winning values back; a writer whose value lost gets
  :class:`ParamOverwriteError` on its next call or flush. Each value is checked once more at
  the first commit or read ``RECHECK_SECONDS`` after its commit, because a value stamped just
  before ours can land just after our first check.
* **A run deleted by another process takes no more rows.** Before a commit, rows of runs that
  the latest committed row says are deleted (by a deletion this process neither wrote nor
  read) are taken out of the batch and not written; the writer gets :class:`InvalidStateError` naming
  the run and how many rows were refused, and its later calls are refused at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from sparktrack.entities import LifecycleStage
from sparktrack.errors import InvalidStateError, ParamOverwriteError, SparkTrackError
from sparktrack._store.current_state import CurrentState
from sparktrack._store.schemas import PARAMS

__all__ = ["RECHECK_SECONDS", "WriteChecks"]

RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Committed:
    at: float
    experiment_id: str
    run_id: str
    key: str
    value: str


class WriteChecks:
    """The two cross-process rules above, for one store.

    Args:
        runs, params: the current state of the runs and params tables.
        own_deletion: run id -> the ``updated_at`` of the deletion this process wrote (None if
            it wrote none); rows of a run deleted by another deletion are refused.
        on_refused_run: called with the committed (deleted) row of a refused run, so the
            process's cached run state follows it.
        on_lost_param: called with (run_id, key, winning value) when this process's value lost.
    """

    def __init__(
        self,
        *,
        runs: CurrentState,
        params: CurrentState,
        own_deletion: Callable[[str], int | None],
        on_refused_run: Callable[[dict], None],
        on_lost_param: Callable[[str, str, str], None],
    ) -> None:
        self._runs = runs
        self._params = params
        self._own_deletion = own_deletion
        self._on_refused_run = on_refused_run
        self._on_lost_param = on_lost_param
        self._recent: deque[_Committed] = deque()

    # -- before a commit: rows of runs deleted elsewhere -----------------------------------------
    def refuse_rows_of_runs_deleted_elsewhere(
        self, ready: dict[str, pa.Table]
    ) -> tuple[dict[str, pa.Table], SparkTrackError | None]:
        run_ids, experiment_ids = _runs_in(ready)
        if not run_ids:
            return ready, None
        committed = self._runs.view(sorted(experiment_ids)).rows()
        committed = committed.filter(
            pc.and_(pc.is_in(committed.column("run_id"), value_set=pa.array(sorted(run_ids))),
                    pc.equal(committed.column("lifecycle_stage"), LifecycleStage.DELETED.value))
        )
        refused_rows = [row for row in committed.to_pylist()
                        if self._own_deletion(row["run_id"]) != row["updated_at"]]
        if not refused_rows:
            return ready, None
        refused = pa.array([row["run_id"] for row in refused_rows], type=pa.string())
        kept: dict[str, pa.Table] = {}
        dropped = 0
        for name, rows in ready.items():
            keep = pc.invert(pc.is_in(rows.column("run_id"), value_set=refused))
            kept[name] = rows.filter(keep)
            dropped += rows.num_rows - kept[name].num_rows
        for row in refused_rows:
            self._on_refused_run(row)
        names = ", ".join(row["run_id"] for row in refused_rows[:5])
        error = InvalidStateError(
            f"Run {names} was deleted by another process; {dropped} row(s) this process logged "
            "to it were not written. Restore the run with restore_run() and log again, or log "
            "to another run."
        )
        return {name: rows for name, rows in kept.items() if rows.num_rows}, error

    # -- after a commit: params that lost to another process's first value -----------------------
    def check_params_committed(self, committed: dict[str, pa.Table]) -> SparkTrackError | None:
        # Each committed value is checked twice: right after its commit, and once more at the
        # first commit or read at least RECHECK_SECONDS later (by then a value stamped just
        # before ours has landed). So a check costs what was committed or came due, never all
        # recent params again.
        now = time.monotonic()
        params = committed.get(PARAMS.name)
        if not self._recent and params is None:
            return None
        due = []
        while self._recent and now - self._recent[0].at >= RECHECK_SECONDS:
            due.append(self._recent.popleft())  # oldest first: they were appended in order
        fresh = [] if params is None else [
            _Committed(now, row["experiment_id"], row["run_id"], row["key"], row["value"])
            for row in params.select(["experiment_id", "run_id", "key", "value"]).to_pylist()
        ]
        self._recent.extend(fresh)
        checked = due + fresh
        if not checked:
            return None
        winners = self._winning_values(checked)
        lost = [c for c in checked if winners.get((c.run_id, c.key), c.value) != c.value]
        if not lost:
            return None
        gone = set(lost)
        self._recent = deque(c for c in self._recent if c not in gone)
        for c in lost:
            self._on_lost_param(c.run_id, c.key, winners[(c.run_id, c.key)])
        first = lost[0]
        return ParamOverwriteError(
            f"Param {first.key!r} of run {first.run_id} was logged by another process first with "
            f"value {_short(winners[(first.run_id, first.key)])}; this process's value "
            f"{_short(first.value)} was not kept ({len(lost)} param(s) affected). Params are "
            "write-once: log a different key, or use one process per run."
        )

    def _winning_values(self, recent: Sequence[_Committed]) -> dict[tuple[str, str], str]:
        experiments = sorted({c.experiment_id for c in recent})
        run_ids = pa.array(sorted({c.run_id for c in recent}), type=pa.string())
        rows = self._params.view(experiments).rows()
        rows = rows.filter(pc.is_in(rows.column("run_id"), value_set=run_ids))
        return {
            (run_id, key): value
            for run_id, key, value in zip(rows.column("run_id").to_pylist(),
                                          rows.column("key").to_pylist(),
                                          rows.column("value").to_pylist(), strict=True)
        }


def _runs_in(ready: dict[str, pa.Table]) -> tuple[set[str], set[str]]:
    run_ids: set[str] = set()
    experiment_ids: set[str] = set()
    for rows in ready.values():
        run_ids.update(pc.unique(rows.column("run_id")).to_pylist())
        experiment_ids.update(pc.unique(rows.column("experiment_id")).to_pylist())
    return run_ids, experiment_ids


def _short(value: str, limit: int = 200) -> str:
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"
