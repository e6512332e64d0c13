"""search_runs: filter and order runs with the search grammar, page them, shape them as pandas.

The filter is parsed by :mod:`sparktrack.search` into a tree and evaluated with pyarrow over
the store's tables (:class:`StoreSearchSource`); nothing in it is executed or pasted into SQL.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

import pandas as pd
import pyarrow.compute as pc

from sparktrack.entities import Run, ViewType
from sparktrack.errors import InvalidInputError
from sparktrack.search import filter_runs, order_runs, parse_filter, parse_order_by
from sparktrack.store import TrackingStore
from sparktrack.store.search_source import StoreSearchSource

__all__ = ["MAX_RESULTS_LIMIT", "runs_to_frame", "search_run_page"]

MAX_RESULTS_LIMIT = 100_000


def _offset_from_token(page_token: str | None) -> int:
    if not page_token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(page_token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidInputError(
            f"Invalid page_token {page_token!r}: pass the token of a previous search's result."
        ) from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"Invalid page_token {page_token!r}.")
    return offset


def _token_for(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


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
    if (isinstance(max_results, bool) or not isinstance(max_results, int)
            or not 1 <= max_results <= MAX_RESULTS_LIMIT):
        raise InvalidInputError(
            f"max_results must be an integer between 1 and {MAX_RESULTS_LIMIT}, got "
            f"{max_results!r}."
        )
    tree = parse_filter(filter_string)
    order = parse_order_by(list(order_by) if order_by else None)
    offset = _offset_from_token(page_token)
    source = StoreSearchSource(store, experiment_ids, view_type=view_type)
    matching = order_runs(filter_runs(tree, source), order, source)
    page = matching.slice(offset, max_results)
    # The evaluator keeps the candidate columns only; fetch the full rows of the page.
    full = source.run_rows()
    rows = full.take(pc.index_in(page.column("run_id"), value_set=full.column("run_id")))
    runs = source.load_runs(rows)
    next_offset = offset + max_results
    return runs, (_token_for(next_offset) if next_offset < matching.num_rows else None)


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """MLflow's ``search_runs`` frame: info columns, then metrics.*, params.*, tags.*."""
    info_columns = {
        "run_id": [r.info.run_id for r in runs],
        "experiment_id": [r.info.experiment_id for r in runs],
        "status": [r.info.status for r in runs],
        "artifact_uri": [r.info.artifact_uri for r in runs],
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
