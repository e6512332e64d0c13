"""The read path of the ``sparktrack`` data source, in plain Python: no SparkSession, no client.

Planning (on the driver's planner worker) opens each Delta table's snapshot (through
:mod:`sparktrack._delta`, like every Delta access) at the requested version or time, prunes its
files (partition values and min/max statistics, through ``file_pruning_predicate``) and
bin-packs them into :class:`ReadTask` s. It reads Delta logs only, never a data file (except
the small experiments table, to look up ``experiment_names``, and the points a killed writer
left unsummarized, see :func:`settle_summaries`), so that a big store costs the driver nothing
but its file list. Reading (on executors) opens exactly the
task's parquet files with pyarrow, never the folder: compaction leaves files behind that are no
longer part of the table. Tables whose rows must be resolved (the newest run row, the first
param value, ...) are split by experiment, because every row of a run carries its experiment id
and lives in that experiment's partition.

Conditions are plain tuples so that this module needs nothing from pyspark::

    ("=", column, value)   ("<" | "<=" | ">" | ">=", column, value)   ("in", column, (v, ...))
    ("is_null", column)    ("not_null", column)
    ("starts" | "ends" | "contains", column, text)                       ("not", condition)
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from sparktrack._delta import join_uri, log, snapshots
from sparktrack._delta.files import iter_data_files, read_data_files
from sparktrack.errors import ExperimentNotFoundError, InvalidInputError, NotFoundError
from sparktrack._store.locations import resolve_column
from sparktrack._store.current_rules import (
    current_model_aliases,
    current_model_versions,
    current_registered_models,
)
from sparktrack._store.latest import (
    current_experiments,
    current_params,
    current_runs,
    live_tags,
    runs_latest,
)
from sparktrack._store.rows import oldest_rows
from sparktrack._store.schemas import (
    EXPERIMENTS,
    INPUTS,
    METRIC_SUMMARIES,
    METRICS,
    MODEL_ALIASES,
    MODEL_VERSIONS,
    PARAMS,
    REGISTERED_MODELS,
    REGISTRY_EVENTS,
    REGISTRY_TABLES,
    RUNS,
    RUNS_LATEST,
    TABLES,
    TAGS,
)
from sparktrack._store.summaries import merge_summaries
from sparktrack._store.summary_repair import settle_summaries

__all__ = [
    "OUTPUT_SCHEMAS",
    "Condition",
    "FileSlice",
    "ReadOptions",
    "ReadTask",
    "latest_version",
    "parse_options",
    "plan",
    "plan_stream",
    "read_task",
]

Condition = tuple

_KEY_VALUE = [
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("experiment_id", pa.string(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
]


def _without(schema: pa.Schema, *names: str) -> pa.Schema:
    return pa.schema([f for f in schema if f.name not in names])


OUTPUT_SCHEMAS: dict[str, pa.Schema] = {
    "runs": RUNS_LATEST.schema,
    "metrics": METRICS.schema,
    "params": pa.schema([*_KEY_VALUE, pa.field("value", pa.string(), nullable=False)]),
    "tags": pa.schema([*_KEY_VALUE, pa.field("value", pa.string())]),
    "experiments": _without(EXPERIMENTS.schema, "updated_at"),
    "metric_summaries": _without(METRIC_SUMMARIES.schema, "updated_at"),
    "inputs": INPUTS.schema,
    # The model registry: current state (deleted models, versions and aliases left out unless
    # include_deleted) and the append-only history of changes.
    "registered_models": _without(REGISTERED_MODELS.schema, "name_generation", "deleted",
                                  "updated_at"),
    "model_versions": _without(MODEL_VERSIONS.schema, "deleted", "updated_at"),
    "model_aliases": _without(MODEL_ALIASES.schema, "deleted", "updated_at"),
    "registry_events": REGISTRY_EVENTS.schema,
}
"""The columns of each table the data source offers (``option("table", ...)``)."""

# Every raw table a read may open: the tracking store's and the registry's.
_RAW_TABLES = {**TABLES, **REGISTRY_TABLES}
# Offered tables read whole, in one task, and resolved as a whole (small, not per experiment).
_WHOLE_TABLES = frozenset({"experiments", *REGISTRY_TABLES})
# Offered tables that a stream can follow: each commit's new rows are new records.
STREAMABLE = {"metrics": METRICS.name, "registry_events": REGISTRY_EVENTS.name}

# The raw tables each offered table is built from; the first is the one time travel names.
_SOURCES: dict[str, tuple[str, ...]] = {
    "runs": (RUNS.name, PARAMS.name, TAGS.name, METRIC_SUMMARIES.name),
    "metrics": (METRICS.name,),
    "params": (PARAMS.name,),
    "tags": (TAGS.name,),
    "experiments": (EXPERIMENTS.name,),
    "metric_summaries": (METRIC_SUMMARIES.name,),
    "inputs": (INPUTS.name,),
    **{name: (name,) for name in REGISTRY_TABLES},
}

# Columns that every version of a row shares: filtering raw rows on them before resolving
# the newest/oldest row gives the same answer as filtering afterwards.
_IDENTITY = ("experiment_id", "run_id", "key")
_RANGE_OPS = ("=", "<", "<=", ">", ">=")

DEFAULT_MAX_PARTITION_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What to read: the parsed options of one ``spark.read.format("sparktrack")`` call."""

    root: str
    table: str = "runs"
    experiment_ids: tuple[str, ...] | None = None
    experiment_names: tuple[str, ...] | None = None
    include_deleted: bool = False
    version: int | None = None
    timestamp: datetime | None = None
    storage_options: dict[str, str] | None = None
    max_partition_bytes: int = DEFAULT_MAX_PARTITION_BYTES
    min_partitions: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    conditions: tuple[Condition, ...] = ()

    def with_conditions(self, conditions: Iterable[Condition]) -> ReadOptions:
        from dataclasses import replace

        return replace(self, conditions=tuple(conditions))


@dataclass(frozen=True, slots=True)
class FileSlice:
    """One parquet file of a snapshot: raw table, path relative to the table, partition."""

    table: str
    path: str
    experiment_id: str | None
    size: int


@dataclass(frozen=True, slots=True)
class ReadTask:
    """The files one Spark input partition reads, and where to find the runs to leave out."""

    files: tuple[FileSlice, ...] = ()
    # The runs table's files of the task's experiments that ever had a deleted run: the
    # executor resolves from them which runs are deleted now (empty: leave none out).
    run_files: tuple[FileSlice, ...] = ()
    # The experiments the options allow (None: all). Partition pruning already applies it to
    # partitioned tables; statistics pruning of the experiments table is only a superset.
    experiment_ids: tuple[str, ...] | None = None


# == options ===================================================================================
def _flag(options: Mapping[str, str], name: str) -> bool:
    raw = str(options.get(name, "false")).strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise InvalidInputError(f"Option {name}={raw!r} must be true or false.")
    return raw in ("true", "1", "yes")


def _ids(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    return tuple(part.strip() for part in str(raw).split(",") if part.strip())


def _timestamp(raw: str) -> datetime:
    text = raw.strip()
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise InvalidInputError(
            f"Option timestampAsOf={raw!r} is not a timestamp; use ISO 8601 "
            "('2024-05-01 12:00:00', UTC unless an offset is given) or milliseconds since the "
            "epoch."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int_option(options: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise InvalidInputError(f"Option {name}={raw!r} must be an integer >= {minimum}.")
    return value


def parse_options(options: Mapping[str, str], *, default_root: str | None = None) -> ReadOptions:
    """Validate the data source options (names are case-insensitive, like Spark's).

    Options: ``path`` (or ``load(uri)``), ``table``, ``experiment_ids``, ``experiment_names``,
    ``include_deleted``, ``versionAsOf``, ``timestampAsOf``, ``maxPartitionBytes``,
    ``minPartitions`` and ``storage.<name>`` (handed to deltalake as storage options).
    """
    lowered = {str(k).lower(): v for k, v in options.items()}
    root = lowered.get("path") or default_root
    if not root:
        raise InvalidInputError(
            "No store given: use spark.read.format('sparktrack').load('<store uri>') or set "
            "SPARKTRACK_TRACKING_URI before registering the data source."
        )
    table = str(lowered.get("table", "runs")).strip().lower()
    if table not in OUTPUT_SCHEMAS:
        raise InvalidInputError(
            f"Option table={table!r} is not a sparktrack table; use one of "
            f"{', '.join(sorted(OUTPUT_SCHEMAS))}."
        )
    version = lowered.get("versionasof")
    timestamp = lowered.get("timestampasof")
    if version is not None and timestamp is not None:
        raise InvalidInputError("Give versionAsOf or timestampAsOf, not both.")
    storage = {k[len("storage."):]: str(v) for k, v in lowered.items() if k.startswith("storage.")}
    from sparktrack._store import normalize_root

    return ReadOptions(
        root=normalize_root(str(root)),
        table=table,
        experiment_ids=_ids(lowered.get("experiment_ids")),
        experiment_names=_ids(lowered.get("experiment_names")),
        include_deleted=_flag(lowered, "include_deleted"),
        version=_int_option(lowered, "versionasof", 0, 0) if version is not None else None,
        timestamp=_timestamp(str(timestamp)) if timestamp is not None else None,
        storage_options=storage or None,
        max_partition_bytes=_int_option(
            lowered, "maxpartitionbytes", DEFAULT_MAX_PARTITION_BYTES, 1
        ),
        min_partitions=_int_option(lowered, "minpartitions", max(2, os.cpu_count() or 2), 1),
    )


# == snapshots =================================================================================
def _table_uri(opts: ReadOptions, table: str) -> str:
    return join_uri(opts.root, table)


def _load(opts: ReadOptions, table: str, *, version: int | None = None,
          when: datetime | None = None):
    """The table's snapshot (at ``version`` or as of ``when``), or None if it did not exist."""
    uri = _table_uri(opts, table)
    try:
        return snapshots.open_snapshot(uri, storage_options=opts.storage_options,
                                       version=version, as_of=when)
    except NotFoundError:
        newest = snapshots.newest_version(uri, storage_options=opts.storage_options)
        raise InvalidInputError(
            f"Table {table!r} of store {opts.root} has no version {version}; its newest "
            f"version is {newest} (option versionAsOf)."
        ) from None


def _before_next_commit(opts: ReadOptions, table: str, version: int) -> datetime | None:
    """Just before ``table``'s commit ``version + 1`` (None: no such commit, read the newest).

    The write buffer commits a run's row before its params, tags and metrics, so "the store
    as of runs version v" must include what followed commit v until the next runs commit.
    """
    from datetime import timedelta

    for entry in log.history(_table_uri(opts, table), storage_options=opts.storage_options):
        if entry.get("version") == version + 1 and entry.get("timestamp") is not None:
            return datetime.fromtimestamp(entry["timestamp"] / 1000, tz=UTC) - timedelta(
                milliseconds=1
            )
    return None


def _snapshots(opts: ReadOptions, tables: Iterable[str]) -> dict[str, Any]:
    """Snapshots of ``tables``: the first takes versionAsOf, the others follow its moment."""
    tables = list(dict.fromkeys(tables))
    primary = tables[0]
    when = opts.timestamp
    snapshots = {primary: _load(opts, primary, version=opts.version, when=when)}
    if opts.version is not None and snapshots[primary] is not None:
        when = _before_next_commit(opts, primary, opts.version)
    for table in tables[1:]:
        snapshots[table] = _load(opts, table, when=when)
    return snapshots


def latest_version(opts: ReadOptions, table: str) -> int:
    """The newest version of a raw table, -1 when it does not exist yet."""
    return snapshots.newest_version(_table_uri(opts, table), storage_options=opts.storage_options)


# == planning ==================================================================================
def _values(conditions: Iterable[Condition], column: str) -> set | None:
    """The values ``column`` may take under ``conditions`` (= and IN), None if unconstrained."""
    allowed: set | None = None
    for cond in conditions:
        if len(cond) == 3 and cond[1] == column and cond[0] in ("=", "in"):
            values = {cond[2]} if cond[0] == "=" else set(cond[2])
            allowed = values if allowed is None else allowed & values
    return allowed


def _prune_filters(opts: ReadOptions, table: str, experiments: set[str] | None) -> list:
    """deltalake tuple filters that drop files which cannot hold a wanted row of ``table``."""
    filters: list = []
    if table in REGISTRY_TABLES:
        # Not by statistics either: a version's newest row may differ from its older ones in
        # any column (a tombstone redacts run_id), so pruning could resurrect an older row.
        return filters
    if experiments is not None:
        filters.append(("experiment_id", "in", sorted(experiments)))
    columns = set(TABLES[table].schema.names) & set(OUTPUT_SCHEMAS[opts.table].names)
    for column in _IDENTITY[1:]:
        values = _values(opts.conditions, column) if column in columns else None
        if values is not None:
            filters.append((column, "in", sorted(values)))
    if opts.table == "metrics":
        for cond in opts.conditions:
            if len(cond) == 3 and cond[0] in _RANGE_OPS and cond[1] in ("timestamp", "step"):
                filters.append((cond[1], cond[0], cond[2]))
    return filters


def _list_files(opts: ReadOptions, snapshot, table: str, filters: list) -> list[FileSlice]:
    files = []
    for file in snapshots.list_files(snapshot, _table_uri(opts, table), prune=filters):
        experiment = file.partition.get("experiment_id")
        experiment = None if experiment is None else str(experiment)
        files.append(FileSlice(table, file.path, experiment, file.size))
    return files


def _read_files(opts: ReadOptions, table: str, files: Iterable[FileSlice], *,
                columns: list[str] | None = None,
                where: pds.Expression | None = None) -> pa.Table:
    return read_data_files(_table_uri(opts, table), _RAW_TABLES[table].schema,
                           _file_refs(table, files), storage_options=opts.storage_options,
                           columns=columns, where=where)


def _experiments_by_name(opts: ReadOptions) -> set[str]:
    dt = _load(opts, EXPERIMENTS.name)
    rows = EXPERIMENTS.schema.empty_table() if dt is None else current_experiments(
        _read_files(opts, EXPERIMENTS.name, _list_files(opts, dt, EXPERIMENTS.name, []))
    )
    by_name = dict(zip(rows.column("name").to_pylist(), rows.column("experiment_id").to_pylist()))
    missing = [name for name in opts.experiment_names or () if name not in by_name]
    if missing:
        raise ExperimentNotFoundError(
            f"No experiment named {', '.join(map(repr, missing))} in store {opts.root} "
            "(option experiment_names)."
        )
    return {by_name[name] for name in opts.experiment_names or ()}


def _wanted_experiments(opts: ReadOptions) -> set[str] | None:
    """The experiments the options and pushed conditions allow (None: all)."""
    wanted: set[str] | None = None
    for allowed in (
        set(opts.experiment_ids) if opts.experiment_ids is not None else None,
        _experiments_by_name(opts) if opts.experiment_names is not None else None,
        _values(opts.conditions, "experiment_id"),
    ):
        if allowed is not None:
            wanted = allowed if wanted is None else wanted & allowed
    return wanted


def _bin_pack(units: dict[Any, list[FileSlice]], opts: ReadOptions) -> list[list[FileSlice]]:
    """Group units (a file, or all files of an experiment) into balanced input partitions."""
    if not units:
        return []
    costs = {unit: sum(f.size for f in files) for unit, files in units.items()}
    wanted = max(opts.min_partitions, math.ceil(sum(costs.values()) / opts.max_partition_bytes))
    count = min(len(units), wanted)
    bins: list[tuple[int, int, list[FileSlice]]] = [(0, i, []) for i in range(count)]
    heapq.heapify(bins)
    for unit in sorted(units, key=lambda u: (-costs[u], str(u))):
        cost, index, files = heapq.heappop(bins)
        files.extend(units[unit])
        heapq.heappush(bins, (cost + costs[unit], index, files))
    return [files for _, _, files in sorted(bins, key=lambda b: b[1]) if files]


def _run_files_with_deletions(opts: ReadOptions, dt,
                              experiments: set[str] | None) -> dict[str, list[FileSlice]]:
    """The runs table's files of each experiment where some run was ever deleted, by
    experiment (from the log's statistics: files whose rows are all active are ruled out)."""
    if dt is None:
        return {}
    scope = [] if experiments is None else [("experiment_id", "in", sorted(experiments))]
    marked = _list_files(opts, dt, RUNS.name, [*scope, ("lifecycle_stage", "=", "deleted")])
    owners = sorted({f.experiment_id for f in marked if f.experiment_id is not None})
    if not owners:
        return {}
    # A deleted run may have been restored since: its newer rows can be in any file.
    by_experiment: dict[str, list[FileSlice]] = {}
    for file in _list_files(opts, dt, RUNS.name, [("experiment_id", "in", owners)]):
        by_experiment.setdefault(file.experiment_id, []).append(file)
    return by_experiment


def plan(opts: ReadOptions) -> list[ReadTask]:
    """Resolve the snapshots and split the files to read into input partitions."""
    sources = _SOURCES[opts.table]
    if METRIC_SUMMARIES.name in sources and opts.version is None and opts.timestamp is None:
        # A writer killed between its metrics and summaries commits left points no summary
        # covers: summarize them first, so the latest values agree with the history.
        settle_summaries(opts.root, storage_options=opts.storage_options)
    drop_deleted = not opts.include_deleted and opts.table not in ("runs", *_WHOLE_TABLES)
    snapshots = _snapshots(opts, [*sources, RUNS.name] if drop_deleted else sources)
    # Registry tables have no experiments: the experiment options do not apply to them.
    experiments = None if opts.table in REGISTRY_TABLES else _wanted_experiments(opts)
    if experiments is not None and not experiments:
        return [ReadTask()]
    # Which runs are deleted is decided on the executors, from the runs files listed here: the
    # driver reads no rows (a query for some runs is narrowed by run_id statistics below).
    run_files = (_run_files_with_deletions(opts, snapshots[RUNS.name], experiments)
                 if drop_deleted else {})
    files = [
        file
        for table in sources
        if snapshots[table] is not None
        for file in _list_files(opts, snapshots[table], table,
                                _prune_filters(opts, table, experiments))
    ]
    wanted = None if experiments is None else tuple(sorted(experiments))
    return _tasks(opts, files, run_files, wanted) or [ReadTask()]


def _tasks(opts: ReadOptions, files: list[FileSlice], run_files: Mapping[str, list[FileSlice]],
           experiments: tuple[str, ...] | None = None) -> list[ReadTask]:
    units: dict[Any, list[FileSlice]] = {}
    for file in files:
        if opts.table == "metrics":
            unit: Any = (file.table, file.path)  # raw points: any file alone
        elif opts.table in _WHOLE_TABLES:
            unit = "all"  # one small table, resolved as a whole
        else:
            unit = file.experiment_id  # rows are resolved per run, runs live in one experiment
        units.setdefault(unit, []).append(file)
    tasks = []
    for group in _bin_pack(units, opts):
        owners = sorted({f.experiment_id for f in group if f.experiment_id is not None})
        runs = tuple(file for e in owners for file in run_files.get(e, ()))
        tasks.append(ReadTask(files=tuple(group), run_files=runs, experiment_ids=experiments))
    return tasks


# == streaming =================================================================================
def plan_stream(opts: ReadOptions, start: int, end: int) -> list[ReadTask]:
    """Tasks reading the rows that commits ``start + 1 .. end`` of the streamed table (metrics
    or registry_events, see :data:`STREAMABLE`) added.

    Only files added with ``dataChange`` count: compaction re-adds rows already delivered.
    """
    if end <= start:
        return []
    raw = STREAMABLE[opts.table]
    uri = _table_uri(opts, raw)
    commits = log.commits_since(uri, start, until=end, storage_options=opts.storage_options)
    missing = sorted(set(range(start + 1, end + 1)) - {commit.version for commit in commits})
    if missing:
        raise InvalidInputError(
            f"Commit {missing[0]} of {uri} is no longer in the Delta log (cleaned up by "
            "maintenance); restart the stream from a newer checkpoint."
        )
    experiments = None if raw in REGISTRY_TABLES else _wanted_experiments(opts)
    files: list[FileSlice] = []
    for commit in commits:
        for added in commit.files:
            experiment = added.partition.get("experiment_id")
            if experiments is not None and experiment not in experiments:
                continue
            files.append(FileSlice(raw, added.path, experiment, added.size))
    return _tasks(opts, files, {})


# == reading (executors) =======================================================================
def _file_refs(table: str, files: Iterable[FileSlice]) -> list[tuple[str, dict[str, str]]]:
    """(path, partition values) of each file, for :mod:`sparktrack._delta.files`."""
    partitioned = "experiment_id" in _RAW_TABLES[table].partition_by
    return [
        (file.path, {"experiment_id": file.experiment_id}
         if partitioned and file.experiment_id is not None else {})
        for file in files
    ]


def _expression(cond: Condition, schema: pa.Schema) -> pds.Expression:
    op = cond[0]
    if op == "not":
        return ~_expression(cond[1], schema)
    column = pc.field(cond[1])
    if op == "is_null":
        return column.is_null()
    if op == "not_null":
        return column.is_valid()
    kind = schema.field(cond[1]).type
    value = cond[2]
    if op == "in":
        return column.isin(pa.array(list(value), type=kind))
    if op == "starts":
        return pc.starts_with(column, pattern=value)
    if op == "ends":
        return pc.ends_with(column, pattern=value)
    if op == "contains":
        return pc.match_substring(column, pattern=value)
    scalar = pa.scalar(value, type=kind)
    return {
        "=": column == scalar,
        "<": column < scalar,
        "<=": column <= scalar,
        ">": column > scalar,
        ">=": column >= scalar,
    }[op]


def row_filter(conditions: Iterable[Condition], schema: pa.Schema) -> pds.Expression | None:
    """The AND of ``conditions`` as a pyarrow expression over ``schema``."""
    result = None
    for cond in conditions:
        expression = _expression(cond, schema)
        result = expression if result is None else result & expression
    return result


def _not_deleted(opts: ReadOptions, task: ReadTask) -> pds.Expression | None:
    """Leaves out the runs that are deleted now, resolved from the task's runs files."""
    if not task.run_files:
        return None
    run_ids = _values(opts.conditions, "run_id")
    where = None if run_ids is None else pc.field("run_id").isin(sorted(run_ids))
    rows = current_runs(_read_files(
        opts, RUNS.name, task.run_files,
        columns=["run_id", "experiment_id", "lifecycle_stage", "updated_at"], where=where))
    gone = rows.filter(pc.equal(rows.column("lifecycle_stage"), "deleted")).column("run_id")
    if len(gone) == 0:
        return None
    return ~pc.field("run_id").isin(gone.combine_chunks().cast(pa.string()))


def _and(*expressions: pds.Expression | None) -> pds.Expression | None:
    present = [e for e in expressions if e is not None]
    if not present:
        return None
    result = present[0]
    for expression in present[1:]:
        result = result & expression
    return result


def _resolve(opts: ReadOptions, raw: dict[str, pa.Table]) -> pa.Table:
    """The offered table from raw rows of whole experiments."""
    table = opts.table
    if table == "runs":
        return runs_latest(raw[RUNS.name], raw[PARAMS.name], raw[TAGS.name],
                           raw[METRIC_SUMMARIES.name], store_root=opts.root,
                           include_deleted=opts.include_deleted)
    if table == "experiments":
        rows = current_experiments(raw[EXPERIMENTS.name])
        index = rows.schema.get_field_index("artifact_location")
        rows = rows.set_column(index, rows.schema.field(index),
                               resolve_column(rows.column(index), opts.root))
        if not opts.include_deleted:
            rows = rows.filter(pc.equal(rows.column("lifecycle_stage"), "active"))
        return rows.sort_by([("creation_time", "descending"), ("experiment_id", "ascending")])
    if table == "params":
        return current_params(raw[PARAMS.name])
    if table == "tags":
        return live_tags(raw[TAGS.name])
    if table == "inputs":  # a (name, digest) logged again to a run is the first one
        return oldest_rows(raw[INPUTS.name], ["run_id", "name", "digest"], "logged_at")
    if table in REGISTRY_TABLES:
        return _registry_rows(opts, raw[table])
    return merge_summaries(raw[METRIC_SUMMARIES.name])


def _registry_rows(opts: ReadOptions, raw: pa.Table) -> pa.Table:
    """A registry table's current rows (its history as it is, for registry_events)."""
    table = opts.table
    if table == REGISTRY_EVENTS.name:
        return raw.sort_by([("timestamp", "ascending"), ("event_id", "ascending")])
    if table == MODEL_ALIASES.name:  # deleted aliases are gone: nothing to include
        return current_model_aliases(raw).sort_by([("name", "ascending"), ("alias", "ascending")])
    if table == REGISTERED_MODELS.name:
        rows, order = current_registered_models(raw), [("name", "ascending")]
    else:
        rows = current_model_versions(raw)
        order = [("name", "ascending"), ("version", "ascending")]
    if not opts.include_deleted:
        rows = rows.filter(pc.invert(rows.column("deleted")))
    return rows.sort_by(order)


def read_task(opts: ReadOptions, task: ReadTask, *,
              batch_rows: int = 131_072) -> Iterator[pa.RecordBatch]:
    """The rows of one input partition as Arrow batches in the OUTPUT_SCHEMAS shape."""
    schema = OUTPUT_SCHEMAS[opts.table]
    where = row_filter(opts.conditions, schema)
    not_deleted = _not_deleted(opts, task)
    if opts.table == "metrics":
        if not task.files:
            return
        yield from iter_data_files(
            _table_uri(opts, METRICS.name), METRICS.schema, _file_refs(METRICS.name, task.files),
            storage_options=opts.storage_options, where=_and(where, not_deleted),
            batch_size=batch_rows,
        )
        return
    by_table: dict[str, list[FileSlice]] = {}
    for file in task.files:
        by_table.setdefault(file.table, []).append(file)
    raw = {
        table: _read_files(opts, table, by_table.get(table, ()), where=(
            None if table == EXPERIMENTS.name else not_deleted))
        for table in _SOURCES[opts.table]
    }
    rows = _resolve(opts, raw).select(schema.names).cast(schema)
    if task.experiment_ids is not None:
        where = _and(where, pc.field("experiment_id").isin(
            pa.array(task.experiment_ids, type=pa.string())))
    if where is not None:
        rows = rows.filter(where)
    yield from rows.to_batches(max_chunksize=batch_rows)
