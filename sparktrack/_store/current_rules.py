"""The current-state rules: which rows of the append-only tables are the current ones.

Every table sparktrack writes is append-only; what a reader sees is resolved from all rows by
the rules below, and only here. The client's reads (:mod:`sparktrack._store.run_reads`), the
search state (:class:`~sparktrack._store.current_state.CurrentState`, which merges new files
into a resolved state, so each rule must satisfy ``rule(rule(a) + b) == rule(a + b)``), the
write checks and the Spark data source's executors (:mod:`sparktrack._store.latest`) all call
these functions, so they cannot disagree.

Pure pyarrow, no I/O.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from sparktrack._store.rows import newest_rows, oldest_rows
from sparktrack._store.summaries import merge_summaries

__all__ = [
    "current_experiments",
    "current_inputs",
    "current_model_aliases",
    "current_model_versions",
    "current_params",
    "current_registered_models",
    "current_runs",
    "current_summaries",
    "current_tags",
    "first_param_values",
    "live_tags",
    "without_deleted_tags",
]


def current_runs(runs: pa.Table) -> pa.Table:
    """The newest row (greatest ``updated_at``) of each run (RUNS schema)."""
    return newest_rows(runs, ["run_id"])


def first_param_values(params: pa.Table) -> pa.Table:
    """The value of each (run, key) of the params table: params are write-once, so the row
    committed first (smallest ``logged_at``, stamped at commit) wins; a tie goes to the smallest
    value, so every reader in every process picks the same one."""
    return oldest_rows(params, ["run_id", "key"], "logged_at", tie_break="value")


current_params = first_param_values


def current_tags(tags: pa.Table) -> pa.Table:
    """The newest row of each (run, key), deletions included (``deleted`` is true).

    The incremental search state keeps deletions: a deletion must still win over an older
    value committed after it. Readers that show tags use :func:`live_tags`.
    """
    return newest_rows(tags, ["run_id", "key"])


def live_tags(tags: pa.Table) -> pa.Table:
    """The newest row of each (run, key), without deleted tags (TAGS schema)."""
    return without_deleted_tags(current_tags(tags))


def without_deleted_tags(current: pa.Table) -> pa.Table:
    """The rows of a :func:`current_tags` result whose tag is not deleted."""
    return current.filter(pc.invert(current.column("deleted")))


def current_summaries(partials: pa.Table) -> pa.Table:
    """One merged summary row per (run, key) (METRIC_SUMMARIES schema).

    The merge itself (min of mins, max of maxes, sum of counts, latest by the greatest
    (step, timestamp, value)) lives beside the writer's summaries in
    :func:`sparktrack._store.summaries.merge_summaries`: it must rank exactly as they do.
    """
    return merge_summaries(partials)


def current_experiments(experiments: pa.Table) -> pa.Table:
    """The newest row of each experiment (EXPERIMENTS schema)."""
    return newest_rows(experiments, ["experiment_id"])


def current_inputs(inputs: pa.Table) -> pa.Table:
    """The first row logged of each (run, dataset name, digest) (INPUTS schema): logging the
    same dataset to a run again keeps the first input and its tags, as in MLflow."""
    return oldest_rows(inputs, ["run_id", "name", "digest"], "logged_at")


def current_registered_models(models: pa.Table) -> pa.Table:
    """The newest row of each registered model, deleted ones included (REGISTERED_MODELS)."""
    return newest_rows(models, ["model_id"])


def current_model_versions(versions: pa.Table) -> pa.Table:
    """The newest row of each model version, tombstones included (MODEL_VERSIONS): a deleted
    version keeps its number."""
    return newest_rows(versions, ["model_id", "version"])


def current_model_aliases(aliases: pa.Table) -> pa.Table:
    """The live aliases: the newest row of each (model, alias) unless it deleted the alias."""
    current = newest_rows(aliases, ["model_id", "alias"])
    return current.filter(pc.invert(current.column("deleted")))
