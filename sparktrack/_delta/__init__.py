"""sparktrack's Delta layer: the only package that imports ``deltalake``.

Everything the store, the data source, maintenance, gc and the reproducibility helpers do to a
Delta table goes through here, so that there is one retry policy (:mod:`.retry`) and every
engine error leaves as a :class:`sparktrack.errors.StoreError` naming the table and the cause
(:mod:`.errors`). ``tests/test_delta_boundary.py`` keeps it that way.

- :mod:`.table` — :class:`DeltaTableHandle`, a table kept open: create, append, commit named
  files, read snapshots and files.
- :mod:`.snapshots` — one-off reads of a snapshot (the data source's planner).
- :mod:`.files` — writing one data file, reading given files (the data source's executors).
- :mod:`.log` — the commits since a version, the history.
- :mod:`.ops` — compaction, checkpoints, vacuum, overwriting a whole table.
- :mod:`.rewrite` — rewriting files without some runs' rows (gc).
- :mod:`.serial` — commits at an exact version (or none), and the rows committed since one.
- :mod:`.small_parquet` — the Parquet file of a serial commit's few rows, without Arrow.
- :mod:`.unnamed_files` — new files that appear whole under their name, or not at all.

Private to sparktrack: no user-facing API here.
"""

from __future__ import annotations

from sparktrack._delta import files, log, ops, serial, snapshots
from sparktrack._delta.errors import store_error
from sparktrack._delta.log import AddedFile, Commit
from sparktrack._delta.paths import is_local, join_uri
from sparktrack._delta.retry import RetryPolicy, retrying
from sparktrack._delta.table import DeltaTableHandle, PruningFilter

__all__ = [
    "AddedFile",
    "Commit",
    "DeltaTableHandle",
    "PruningFilter",
    "RetryPolicy",
    "files",
    "is_local",
    "join_uri",
    "log",
    "ops",
    "retrying",
    "serial",
    "snapshots",
    "store_error",
]
