"""search_runs: filter and order runs with the search grammar, page them, shape them as pandas.

The filter is parsed by :mod:`sparktrack._search` into a tree and evaluated with pyarrow over
the store's tables (:class:`StoreSearchSource`); nothing in it is executed or pasted into SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sparktrack.entities import Run, ViewType
from sparktrack._paging import check_max_results, offset_from_token, token_for
from sparktrack._search import (
    Identifier,
    filter_runs,
    order_runs,
    parse_filter,
    parse_order_by,
)
from sparktrack._search.nodes import identifiers
from sparktrack._store import TrackingStore
from sparktrack._store.run_ids import positions as run_positions
from sparktrack._store.search_source import StoreSearchSource
from sparktrack._store.state_files import saves_held

__all__ = ["MAX_RESULTS_LIMIT", "runs_to_frame", "search_run_frame", "search_run_page"]

MAX_RESULTS_LIMIT = 100_000


def _matching_page(
    store: TrackingStore,
    experiment_ids: Sequence[str],
    *,
    filter_string: str | None,
    view_type: ViewType,
    max_results: int,
    order_by: Sequence[str] | None,
    page_token: str | None,
) -> tuple[StoreSearchSource, pa.Table, str | None]:
    """The source searched, the full run rows of one page in order, the next page's token."""
    check_max_results(max_results, MAX_RESULTS_LIMIT)
    tree = parse_filter(filter_string)
    # A bare string is passed on as it is: the parser says how to write it as a list.
    order = parse_order_by(
        order_by if isinstance(order_by, str) or not order_by else list(order_by)
    )
    offset = offset_from_token(page_token)
    # Every run's artifact location is resolved only for a search that compares or orders by
    # it; otherwise only the page's are.
    named = identifiers(tree) | {key.identifier for key in order}
    source = StoreSearchSource(store, experiment_ids, view_type=view_type,
                               artifact_uris=Identifier("attribute", "artifact_uri") in named)
    source.prepare(named)
    matching = filter_runs(tree, source)
    ordered = order_runs(matching, order, source, limit=offset + max_results)
    page = ordered.slice(offset, max_results)
    # The evaluator keeps the candidate columns only; fetch the full rows of the page.
    rows = source.page_rows(page)
    next_offset = offset + max_results
    return source, rows, (token_for(next_offset) if next_offset < matching.num_rows else None)


def search_run_page(
    store: TrackingStore,
    experiment_ids: Sequence[str],
    *,
    filter_string: str | None = None,
    view_type: ViewType = ViewType.ACTIVE_ONLY,
    max_results: int = 1000,
    order_by: Sequence[str] | None = None,
    page_token: str | None = None,
) -> tuple[list[Run], str | None]:
    """One page of matching runs and the token of the next page (None on the last)."""
    with saves_held():
        source, rows, token = _matching_page(
            store, experiment_ids, filter_string=filter_string, view_type=view_type,
            max_results=max_results, order_by=order_by, page_token=page_token,
        )
        return source.load_runs(rows), token


def search_run_frame(
    store: TrackingStore,
    experiment_ids: Sequence[str],
    *,
    filter_string: str | None = None,
    view_type: ViewType = ViewType.ACTIVE_ONLY,
    max_results: int = MAX_RESULTS_LIMIT,
    order_by: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The first ``max_results`` matching runs as :func:`runs_to_frame` shapes them.

    Built column by column from Arrow instead of through ``Run`` objects: the same frame,
    without a Python object per param, metric and tag (100,000 runs in about a second).
    """
    with saves_held():
        source, rows, _ = _matching_page(
            store, experiment_ids, filter_string=filter_string, view_type=view_type,
            max_results=max_results, order_by=order_by, page_token=None,
        )
        params, metrics, tags = source.current_values()
    run_ids = rows.column("run_id").combine_chunks()
    frame = pd.DataFrame({
        "run_id": pd.Series(run_ids.to_pylist(), dtype=object),
        "experiment_id": pd.Series(rows.column("experiment_id").to_pylist(), dtype=object),
        "status": pd.Series(rows.column("status").to_pylist(), dtype=object),
        "artifact_uri": pd.Series(rows.column("artifact_uri").to_pylist(), dtype=object),
        "start_time": _utc_datetimes(rows.column("start_time")),
        "end_time": _utc_datetimes(rows.column("end_time")),
    })
    blocks = [
        _pivot(values, run_ids, prefix, value_column, dtype)
        for values, prefix, value_column, dtype in (
            (metrics, "metrics", "latest_value", "float64"),
            (params, "params", "value", "object"),
            (tags, "tags", "value", "object"),
        )
        if values.num_rows
    ]
    return pd.concat([frame, *blocks], axis=1) if blocks else frame


def _utc_datetimes(millis: pa.ChunkedArray) -> pd.Series:
    # Float64 holds every millisecond timestamp exactly (< 2**53); nulls become NaT.
    return pd.Series(pd.to_datetime(millis.to_pandas(), unit="ms", utc=True))


def _pivot(
    values: pa.Table, run_ids: pa.Array, prefix: str, value_column: str, dtype: str
) -> pd.DataFrame:
    """One ``<prefix>.<key>`` column per key a run of ``run_ids`` has, aligned with
    ``run_ids`` (NaN or None where a run lacks the key); ``values`` may hold other runs."""
    positions = run_positions(values.column("run_id"), run_ids)
    on_page = positions >= 0
    values = values.filter(pa.array(on_page))
    if values.num_rows == 0:
        return pd.DataFrame(index=range(len(run_ids)))
    positions = positions[on_page]
    # Group rows by key with integers: dictionary codes ranked by key name.
    encoded = pc.dictionary_encode(values.column("key")).combine_chunks()
    names = encoded.dictionary.to_numpy(zero_copy_only=False)
    name_order = np.argsort(names, kind="stable")
    rank_of_code = np.empty(len(names), dtype=np.int64)
    rank_of_code[name_order] = np.arange(len(names))
    ranks = rank_of_code[encoded.indices.to_numpy(zero_copy_only=False)]
    rows = np.argsort(ranks, kind="stable")
    ranks, positions = ranks[rows], positions[rows].astype(np.int64)
    if dtype == "float64":
        data = pc.fill_null(values.column(value_column), float("nan")).to_numpy()[rows]
    else:
        data = values.column(value_column).to_numpy(zero_copy_only=False)[rows]
    starts = np.flatnonzero(np.r_[True, ranks[1:] != ranks[:-1]])
    ends = np.r_[starts[1:], len(ranks)]
    columns = {}
    for start, end in zip(starts, ends, strict=True):
        column = (np.full(len(run_ids), np.nan) if dtype == "float64"
                  else np.full(len(run_ids), None, dtype=object))
        column[positions[start:end]] = data[start:end]
        columns[f"{prefix}.{names[name_order[ranks[start]]]}"] = pd.Series(column, dtype=dtype)
    return pd.DataFrame(columns)


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """MLflow's ``search_runs`` frame: info columns, then metrics.*, params.*, tags.*."""
    info_columns = {
        "run_id": pd.Series([r.info.run_id for r in runs], dtype=object),
        "experiment_id": pd.Series([r.info.experiment_id for r in runs], dtype=object),
        "status": pd.Series([r.info.status for r in runs], dtype=object),
        "artifact_uri": pd.Series([r.info.artifact_uri for r in runs], dtype=object),
        "start_time": pd.to_datetime([r.info.start_time for r in runs], unit="ms", utc=True),
        "end_time": pd.to_datetime([r.info.end_time for r in runs], unit="ms", utc=True),
    }
    frame = pd.DataFrame(info_columns)
    blocks = []
    for prefix, attribute, dtype in (("metrics", "metrics", "float64"),
                                     ("params", "params", "object"), ("tags", "tags", "object")):
        keys = sorted({key for run in runs for key in getattr(run.data, attribute)})
        if not keys:
            continue
        values = {
            f"{prefix}.{key}": pd.Series(
                [getattr(run.data, attribute).get(key) for run in runs], dtype=dtype
            )
            for key in keys
        }
        blocks.append(pd.DataFrame(values))
    return pd.concat([frame, *blocks], axis=1) if blocks else frame
