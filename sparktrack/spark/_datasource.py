"""The ``sparktrack`` Spark data source: every table of a store as a DataFrame.

::

    spark.read.format("sparktrack").load("/path/to/store")                  # runs
    spark.read.format("sparktrack").option("table", "metrics")
         .option("experiment_names", "churn").load(uri)
    spark.readStream.format("sparktrack").option("table", "metrics").load(uri)

Built on the Python Data Source API (``pyspark.sql.datasource``). Spark calls the classes here
on its planner and executor workers, which have no SparkSession: all reading goes through
:mod:`sparktrack.spark._reader` (deltalake snapshots, pyarrow files, Arrow batches).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.sql import datasource as _api
from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    InputPartition,
)

from sparktrack.errors import InvalidInputError
from sparktrack.spark import _reader

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

__all__ = ["SparkTrackDataSource", "register", "spark_schema"]

SOURCE_NAME = "sparktrack"

#: Whether this pyspark offers filter pushdown to Python data sources (the filter classes and
#: ``DataSourceReader.pushFilters``, pyspark >= 4.1). Without it (pyspark 4.0) the reader reads
#: every row the options select and Spark applies the query's filters after the read: the same
#: results, with less pruning.
PUSHDOWN_AVAILABLE = hasattr(_api, "EqualTo") and hasattr(DataSourceReader, "pushFilters")

if PUSHDOWN_AVAILABLE:
    from pyspark.sql.datasource import (
        EqualTo,
        Filter,
        GreaterThan,
        GreaterThanOrEqual,
        In,
        IsNotNull,
        IsNull,
        LessThan,
        LessThanOrEqual,
        Not,
        StringContains,
        StringEndsWith,
        StringStartsWith,
    )

    _COMPARISONS = {
        EqualTo: "=",
        GreaterThan: ">",
        GreaterThanOrEqual: ">=",
        LessThan: "<",
        LessThanOrEqual: "<=",
    }
    _STRING_MATCHES = {
        StringStartsWith: "starts", StringEndsWith: "ends", StringContains: "contains"
    }


def _ddl_type(kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_int64(kind):
        return "bigint"
    if pa.types.is_float64(kind):
        return "double"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_map(kind):
        return f"map<{_ddl_type(kind.key_type)},{_ddl_type(kind.item_type)}>"
    raise TypeError(f"no Spark type for {kind}")


def spark_schema(table: str) -> str:
    """The Spark DDL schema of an offered table (``runs``, ``metrics``, ...)."""
    return ", ".join(
        f"`{f.name}` {_ddl_type(f.type)}{'' if f.nullable else ' NOT NULL'}"
        for f in _reader.OUTPUT_SCHEMAS[table]
    )


def _matches_type(value: Any, kind: pa.DataType) -> bool:
    if pa.types.is_string(kind):
        return isinstance(value, str)
    if pa.types.is_int64(kind):
        return isinstance(value, int) and not isinstance(value, bool)
    if pa.types.is_boolean(kind):
        return isinstance(value, bool)
    if pa.types.is_timestamp(kind):
        return isinstance(value, _dt.datetime) and value.tzinfo is not None
    return False  # doubles (Spark orders NaN above all, pyarrow does not) and maps stay in Spark


def to_condition(spark_filter: Filter, schema: pa.Schema) -> tuple | None:
    """The reader's condition for a pushed Spark filter, or None if Spark must keep it.

    Only called where :data:`PUSHDOWN_AVAILABLE` (Spark pushes filters only there).
    """
    if isinstance(spark_filter, Not):
        inner = to_condition(spark_filter.child, schema)
        return None if inner is None else ("not", inner)
    attribute = getattr(spark_filter, "attribute", None)
    if not attribute or len(attribute) != 1 or attribute[0] not in schema.names:
        return None
    column = attribute[0]
    kind = schema.field(column).type
    if pa.types.is_map(kind) or pa.types.is_floating(kind):
        return None
    if isinstance(spark_filter, IsNull):
        return ("is_null", column)
    if isinstance(spark_filter, IsNotNull):
        return ("not_null", column)
    if isinstance(spark_filter, In):
        values = tuple(spark_filter.value)
        if values and all(_matches_type(v, kind) for v in values):
            return ("in", column, values)
        return None
    op = _COMPARISONS.get(type(spark_filter)) or _STRING_MATCHES.get(type(spark_filter))
    if op is None or not _matches_type(spark_filter.value, kind):
        return None
    if op in _STRING_MATCHES.values() and not pa.types.is_string(kind):
        return None
    return (op, column, spark_filter.value)


class _Partition(InputPartition):
    """An input partition carrying one :class:`~sparktrack.spark._reader.ReadTask`."""

    def __init__(self, task: _reader.ReadTask) -> None:
        super().__init__(task)
        self.task = task


class _PushFilters:
    """``reader.pushFilters`` that Spark also accepts when pushdown is disabled.

    pyspark refuses a reader that overrides ``pushFilters`` while
    ``spark.sql.python.filterPushdown.enabled`` is false (so that a source relying on it never
    silently drops filters). sparktrack's pushdown is only an optimization: with it off, Spark
    evaluates every filter and the results are the same. So the bound method presents the
    base implementation to that check, and Spark calls it only when pushdown is on.
    """

    def __get__(self, reader: SparkTrackReader | None, owner: type) -> Any:
        if reader is None:
            return self
        return _BoundPushFilters(reader)


class _BoundPushFilters:
    def __init__(self, reader: SparkTrackReader) -> None:
        self._reader = reader

    @property
    def __func__(self) -> Any:
        # What pyspark's "is it overridden" check reads.
        return DataSourceReader.pushFilters

    def __call__(self, filters: list[Filter]) -> Iterator[Filter]:
        return self._reader.push_filters(filters)


class SparkTrackReader(DataSourceReader):
    """Batch reader: plans on the driver, reads Arrow batches on executors.

    Where pyspark has no filter pushdown (4.0), the reader has no ``pushFilters`` and reads
    with the options' conditions only (experiments, deletion); Spark filters the rows.
    """

    if PUSHDOWN_AVAILABLE:
        pushFilters = _PushFilters()  # noqa: N815 (Spark's name)

    def __init__(self, options: _reader.ReadOptions) -> None:
        self.options = options

    def push_filters(self, filters: list[Filter]) -> Iterator[Filter]:
        """Keep the filters the reader applies exactly; yield those Spark must evaluate."""
        schema = _reader.OUTPUT_SCHEMAS[self.options.table]
        handled = []
        for spark_filter in filters:
            condition = to_condition(spark_filter, schema)
            if condition is None:
                yield spark_filter
            else:
                handled.append(condition)
        self.options = self.options.with_conditions([*self.options.conditions, *handled])

    def partitions(self) -> Sequence[InputPartition]:
        return [_Partition(task) for task in _reader.plan(self.options)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        yield from _reader.read_task(self.options, partition.task)


class SparkTrackStreamReader(DataSourceStreamReader):
    """Streaming reader over the metrics or registry_events table: each micro-batch reads the
    rows of the new commits.

    The offset is ``{"version": n}``: every commit up to table version n has been delivered.
    A new query starts before the first commit (all points so far), or at the newest version
    with ``option("startingVersion", "latest")``.
    """

    def __init__(self, options: _reader.ReadOptions, starting: str | None) -> None:
        if options.table not in _reader.STREAMABLE:
            raise InvalidInputError(
                f"Streaming reads support table='metrics' and table='registry_events' only, not "
                f"{options.table!r}; read the other tables in batch (spark.read)."
            )
        if options.version is not None or options.timestamp is not None:
            raise InvalidInputError("versionAsOf/timestampAsOf apply to batch reads only.")
        self.options = options
        self.starting = (starting or "earliest").strip().lower()

    def initialOffset(self) -> dict:  # noqa: N802
        if self.starting == "latest":
            return {"version": self._latest()}
        if self.starting == "earliest":
            return {"version": -1}
        try:
            return {"version": int(self.starting) - 1}
        except ValueError:
            raise InvalidInputError(
                f"Option startingVersion={self.starting!r}: use earliest, latest or a version."
            ) from None

    def _latest(self) -> int:
        return _reader.latest_version(self.options, _reader.STREAMABLE[self.options.table])

    def latestOffset(self, start: dict | None = None, limit: Any = None) -> dict:  # noqa: N802
        return {"version": self._latest()}

    def partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
        tasks = _reader.plan_stream(self.options, int(start["version"]), int(end["version"]))
        return [_Partition(task) for task in tasks]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        yield from _reader.read_task(self.options, partition.task)

    def commit(self, end: dict) -> None:
        pass


class SparkTrackDataSource(DataSource):
    """``spark.read.format("sparktrack")``: the tables of a sparktrack store.

    Options (all optional): ``table`` (runs, metrics, params, tags, experiments,
    metric_summaries, inputs, registered_models, model_versions, model_aliases,
    registry_events; default runs), ``experiment_ids`` / ``experiment_names`` (comma
    separated), ``include_deleted`` (false), ``versionAsOf`` / ``timestampAsOf`` (time travel),
    ``maxPartitionBytes`` / ``minPartitions`` (input partitioning), ``startingVersion``
    (streaming: earliest, latest or a table version) and ``storage.<key>`` (object-store
    options for deltalake). The path is the store URI; without one, the tracking URI current
    when :func:`register` was called.
    """

    default_root: str | None = None

    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def _options(self) -> _reader.ReadOptions:
        return _reader.parse_options(dict(self.options), default_root=self.default_root)

    def schema(self) -> str:
        return spark_schema(self._options().table)

    def reader(self, schema: StructType) -> DataSourceReader:
        return SparkTrackReader(self._options())

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:  # noqa: N802
        options = {str(k).lower(): v for k, v in dict(self.options).items()}
        return SparkTrackStreamReader(self._options(), options.get("startingversion"))


def register(spark: SparkSession) -> None:
    """Register the ``sparktrack`` data source in ``spark``.

    A load without a path reads the store at the tracking URI current now
    (:func:`sparktrack.get_tracking_uri`); call again after changing it.
    """
    from sparktrack import get_tracking_uri
    from sparktrack._store import normalize_root

    # Planner and executor workers are other processes: bake the driver's tracking URI into a
    # subclass that Spark pickles by value.
    source = type(
        "SparkTrackDataSource",
        (SparkTrackDataSource,),
        {"default_root": normalize_root(get_tracking_uri()), "__module__": __name__ + "_bound"},
    )
    spark.dataSource.register(source)
