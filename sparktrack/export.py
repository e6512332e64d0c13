"""Export runs as CSV, in the shape of MLflow's UI "Download CSV".

Columns: ``Start Time, Duration, Run ID, Name, Source Type, Source Name, User, Status``, then
one column per param key, per metric key and per tag key (each group sorted by key).

Choices, all deliberate:

- ``Start Time`` is ISO-8601 UTC with milliseconds (``2024-05-01T12:00:00.000Z``): unambiguous
  and sortable as text, unlike the UI's local-time format.
- ``Duration`` is human readable exactly like MLflow's UI (``350ms``, ``12.3s``, ``4.5min``,
  ``2.0h``, ``1.5d``); empty while a run has no end time.
- Headers of the key columns are the bare keys, as in MLflow. A key logged as a param, a metric
  and a tag gives three columns with the same header; they stay distinct by position (params,
  then metrics, then tags). ``prefix_keys=True`` writes ``params.<key>``, ``metrics.<key>`` and
  ``tags.<key>`` instead (the names ``search_runs`` uses), which makes every header unique.
- System tags (``mlflow.*``) already fill Name, Source Type, Source Name and User, so they get
  no tag column unless ``include_system_tags=True`` (the UI hides them too).
- Formula injection (OWASP "CSV Injection"): every text cell, headers included, that starts with
  ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'``. Metric cells are
  numbers written by this module (``-0.5``, ``1e-05``, ``nan``, ``-inf``), never text a user
  typed, so they are left as they are and stay numeric for a spreadsheet; a param or tag value
  ``-0.5`` is text and is prefixed. Quoting of commas, quotes and newlines is the ``csv``
  module's.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import IO

from sparktrack import _tags
from sparktrack.entities import Run
from sparktrack.errors import InvalidInputError

__all__ = ["FIXED_COLUMNS", "format_duration", "runs_to_csv", "runs_to_csv_string"]

FIXED_COLUMNS: tuple[str, ...] = (
    "Start Time",
    "Duration",
    "Run ID",
    "Name",
    "Source Type",
    "Source Name",
    "User",
    "Status",
)

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_SYSTEM_TAG_PREFIX = "mlflow."


def runs_to_csv(
    runs: Sequence[Run],
    path_or_buffer: str | os.PathLike[str] | IO[str] | IO[bytes],
    *,
    prefix_keys: bool = False,
    include_system_tags: bool = False,
    encoding: str = "utf-8",
) -> None:
    """Write runs as CSV to a file path or an open text/binary buffer.

    Args:
        runs: the runs to export, one row each, in the order given.
        path_or_buffer: a path (the file is created or replaced) or an object with ``write``.
        prefix_keys: head key columns ``params.<key>``, ``metrics.<key>``, ``tags.<key>``
            instead of the bare key (MLflow's UI uses the bare key).
        include_system_tags: also give ``mlflow.*`` tags their own columns.
        encoding: used for a path or a binary buffer; ``"utf-8-sig"`` adds the byte-order mark
            that Excel needs to read non-ASCII text correctly.

    Raises:
        InvalidInputError: an item of ``runs`` is not a :class:`~sparktrack.entities.Run`, or
            ``path_or_buffer`` is neither a path nor writable.
    """
    text = runs_to_csv_string(
        runs, prefix_keys=prefix_keys, include_system_tags=include_system_tags
    )
    if isinstance(path_or_buffer, str | os.PathLike):
        with open(path_or_buffer, "w", encoding=encoding, newline="") as f:
            f.write(text)
        return
    write = getattr(path_or_buffer, "write", None)
    if not callable(write):
        raise InvalidInputError(
            f"path_or_buffer must be a file path or an object with a write() method, "
            f"got {type(path_or_buffer).__name__}"
        )
    if isinstance(path_or_buffer, io.RawIOBase | io.BufferedIOBase):
        write(text.encode(encoding))
    else:
        write(text)


def runs_to_csv_string(
    runs: Sequence[Run], *, prefix_keys: bool = False, include_system_tags: bool = False
) -> str:
    """The CSV text :func:`runs_to_csv` writes (rows end with ``\\r\\n``, as RFC 4180 says)."""
    runs = _check_runs(runs)
    param_keys = _sorted_keys(run.data.params for run in runs)
    metric_keys = _sorted_keys(run.data.metrics for run in runs)
    tag_keys = [
        key
        for key in _sorted_keys(run.data.tags for run in runs)
        if include_system_tags or not key.startswith(_SYSTEM_TAG_PREFIX)
    ]

    def heads(prefix: str, keys: list[str]) -> list[str]:
        return [f"{prefix}.{key}" if prefix_keys else key for key in keys]

    header = [
        *FIXED_COLUMNS,
        *heads("params", param_keys),
        *heads("metrics", metric_keys),
        *heads("tags", tag_keys),
    ]

    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([_text_cell(name) for name in header])
    for run in runs:
        info, data = run.info, run.data
        tags = data.tags
        row = [
            _text_cell(_format_start_time(info.start_time)),
            _text_cell(format_duration(info.start_time, info.end_time)),
            _text_cell(info.run_id),
            _text_cell(info.run_name or tags.get(_tags.RUN_NAME)),
            _text_cell(tags.get(_tags.SOURCE_TYPE)),
            _text_cell(tags.get(_tags.SOURCE_NAME)),
            _text_cell(info.user_id or tags.get(_tags.USER)),
            _text_cell(info.status),
        ]
        row += [_text_cell(data.params.get(key)) for key in param_keys]
        row += [_metric_cell(data.metrics.get(key)) for key in metric_keys]
        row += [_text_cell(tags.get(key)) for key in tag_keys]
        writer.writerow(row)
    return out.getvalue()


def format_duration(start_time: int | None, end_time: int | None) -> str:
    """A run's duration as MLflow's UI shows it (``350ms``, ``12.3s``, ``4.5min``, ``2.0h``,
    ``1.5d``); ``""`` when either time is missing."""
    if start_time is None or end_time is None:
        return ""
    ms = end_time - start_time
    if ms < 500:
        return f"{ms}ms"
    for unit, size, limit in (("s", 1_000, 60_000), ("min", 60_000, 3_600_000),
                              ("h", 3_600_000, 86_400_000)):
        if ms < limit:
            return f"{_one_decimal(ms / size)}{unit}"
    return f"{_one_decimal(ms / 86_400_000)}d"


def _one_decimal(x: float) -> str:
    # JavaScript's toFixed(1) rounds half away from zero; format() rounds half to even.
    return f"{math.floor(x * 10 + 0.5) / 10:.1f}"


def _format_start_time(ms: int | None) -> str:
    if ms is None:
        return ""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text_cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def _metric_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return repr(float(value)) if not isinstance(value, numbers.Integral) else str(value)
    # Not a number (a hand-built Run): text, so it is guarded like text.
    return _text_cell(value)


def _sorted_keys(dicts: Iterable[dict[str, object]]) -> list[str]:
    keys: set[str] = set()
    for d in dicts:
        keys.update(d)
    return sorted(keys)


def _check_runs(runs: Sequence[Run]) -> list[Run]:
    if isinstance(runs, Run | str | bytes) or not isinstance(runs, Iterable):
        raise InvalidInputError(
            f"runs must be a sequence of Run objects, got {type(runs).__name__}; "
            "pass a list (e.g. [run]) of runs from TrackingClient.get_run or search_runs"
        )
    checked = list(runs)
    for i, run in enumerate(checked):
        if not isinstance(run, Run):
            raise InvalidInputError(
                f"runs[{i}] is a {type(run).__name__}, not a Run; "
                "fetch runs with TrackingClient.get_run or search them first"
            )
    return checked
