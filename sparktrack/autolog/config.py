"""The options of :func:`sparktrack.autolog`, checked once, and the process-wide current set."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sparktrack.errors import InvalidInputError

__all__ = ["AutologConfig", "current", "make_config", "set_current"]

INTEGRATION = "pyspark.ml"


@dataclass(frozen=True, slots=True)
class AutologConfig:
    """What autologging records; see :func:`sparktrack.autolog` for each option."""

    log_models: bool = True
    log_models_in_background: bool = True
    log_datasets: bool = True
    log_post_training_metrics: bool = True
    max_tuning_runs: int | None = None
    log_model_allowlist: frozenset[str] | None = None
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    silent: bool = False
    exclusive: bool = False


def make_config(
    *,
    log_models: bool,
    log_models_in_background: bool,
    log_datasets: bool,
    log_post_training_metrics: bool,
    max_tuning_runs: int | None,
    log_model_allowlist: Iterable[str] | None,
    extra_tags: Mapping[str, object] | None,
    silent: bool,
    exclusive: bool,
) -> AutologConfig:
    """Check the options and freeze them; bad values raise before anything is patched."""
    if max_tuning_runs is not None and (
        isinstance(max_tuning_runs, bool)
        or not isinstance(max_tuning_runs, int)
        or max_tuning_runs < 0
    ):
        raise InvalidInputError(
            f"max_tuning_runs={max_tuning_runs!r} is not valid: pass None (log every param map) "
            "or a non-negative int (log that many of the best param maps as child runs)."
        )
    allowlist = None
    if log_model_allowlist is not None:
        if isinstance(log_model_allowlist, str):
            raise InvalidInputError(
                "log_model_allowlist must be a list of fully qualified model class names "
                "(e.g. ['pyspark.ml.classification.LogisticRegressionModel']), not a string."
            )
        allowlist = frozenset(name.strip() for name in log_model_allowlist if name.strip())
    if extra_tags is not None and not isinstance(extra_tags, Mapping):
        raise InvalidInputError(
            f"extra_tags must be a dict of tag names to values, not {extra_tags!r}."
        )
    return AutologConfig(
        log_models=bool(log_models),
        log_models_in_background=bool(log_models_in_background),
        log_datasets=bool(log_datasets),
        log_post_training_metrics=bool(log_post_training_metrics),
        max_tuning_runs=max_tuning_runs,
        log_model_allowlist=allowlist,
        extra_tags={str(key): str(value) for key, value in (extra_tags or {}).items()},
        silent=bool(silent),
        exclusive=bool(exclusive),
    )


_lock = threading.Lock()
_current: AutologConfig | None = None


def current() -> AutologConfig | None:
    """The options in force, or None when autologging is off."""
    return _current


def set_current(config: AutologConfig | None) -> None:
    global _current
    with _lock:
        _current = config
