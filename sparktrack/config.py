"""Settings: defaults, environment variables and per-store options.

Every knob a user may turn lives in :class:`Settings`. Values come from, in order: keyword
arguments, ``SPARKTRACK_*`` environment variables, then the defaults below (which match
Databricks-managed MLflow for quotas and MLflow OSS for limits).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

__all__ = [
    "DEFAULT_TRACKING_URI",
    "ENV_EXPERIMENT_ID",
    "ENV_EXPERIMENT_NAME",
    "ENV_TRACKING_URI",
    "Settings",
    "settings_from_env",
]

ENV_TRACKING_URI = "SPARKTRACK_TRACKING_URI"
ENV_EXPERIMENT_NAME = "SPARKTRACK_EXPERIMENT_NAME"
ENV_EXPERIMENT_ID = "SPARKTRACK_EXPERIMENT_ID"

DEFAULT_TRACKING_URI = "./sparktrack-store"


@dataclass(frozen=True, slots=True)
class Settings:
    """Limits, quotas and write-buffer behaviour of one store.

    ``flush_interval_seconds`` bounds what a crash can lose: rows logged less than that long
    before a hard kill (plus the duration of one commit) may be lost; everything older is on disk.
    """

    # Write buffer: commit when this many rows wait, or this long after the first waiting row.
    flush_max_rows: int = 50_000
    flush_interval_seconds: float = 1.0
    # A caller that logs faster than commits keep up waits once this many rows are pending.
    max_pending_rows: int = 1_000_000
    commit_retries: int = 8
    # A read waits this long for a metrics commit's summary to follow before it summarizes the
    # batch from the history itself (at once when the writer ran on this machine and is gone,
    # e.g. killed). See sparktrack._store.summary_repair.
    summary_repair_seconds: float = 2.0
    # Search keeps each table's current state of recently searched experiments in memory, up
    # to this many MiB per table (the experiment being searched is always kept).
    search_cache_mb: int = 1024
    # ... and saves it under <store>/_search_state, so a new process starts from it instead
    # of re-reading every row (local stores only).
    save_search_state: bool = True

    # MLflow OSS limits.
    max_key_length: int = 250
    max_param_value_length: int = 6000
    max_tag_value_length: int = 8000
    max_run_name_length: int = 250
    max_experiment_name_length: int = 500

    # Databricks-managed MLflow quotas.
    max_params_per_run: int = 1600
    max_tags_per_run: int = 1600
    max_metric_points_per_run: int = 1_000_000
    max_runs_per_experiment: int = 500_000

    def with_overrides(self, **overrides: object) -> Settings:
        return replace(self, **overrides)


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    """Defaults overridden by ``SPARKTRACK_<FIELD_NAME_IN_CAPITALS>`` variables."""
    environ = os.environ if environ is None else environ
    overrides: dict[str, object] = {}
    for spec in fields(Settings):
        raw = environ.get(f"SPARKTRACK_{spec.name.upper()}")
        if raw is None:
            continue
        kind = {"float": float, "bool": _boolean}.get(spec.type, int)  # type: ignore[arg-type]
        try:
            overrides[spec.name] = kind(raw)
        except ValueError:
            from sparktrack.errors import InvalidInputError

            what = "boolean (1/0, true/false, yes/no)" if kind is _boolean else kind.__name__
            raise InvalidInputError(
                f"Environment variable SPARKTRACK_{spec.name.upper()}={raw!r} is not a valid "
                f"{what}."
            ) from None
    return Settings(**overrides)


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
