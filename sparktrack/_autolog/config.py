"""The options of :func:`sparktrack.autolog`, checked once, and the process-wide current set."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sparktrack import _tags
from sparktrack.errors import InvalidInputError

__all__ = [
    "AutologConfig",
    "current",
    "excludes_pyspark_ml",
    "make_config",
    "pyspark_is_supported",
    "set_current",
]

INTEGRATION = "pyspark.ml"
AUTOLOGGING_TAG = _tags.AUTOLOGGING
#: The pyspark versions sparktrack's autologging is tested with (major, minor): the dependency
#: range, whose ends `make compat` tests (4.2 is the dev environment's).
TESTED_PYSPARK = ((4, 0), (4, 1), (4, 2), (4, 3))

logger = logging.getLogger("sparktrack.autolog")


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
    log_input_examples: bool = False
    log_model_signatures: bool = True
    registered_model_name: str | None = None


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
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    registered_model_name: str | None = None,
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
    if registered_model_name is not None and not isinstance(registered_model_name, str):
        raise InvalidInputError(
            f"registered_model_name must be a model name (a string) or None, not "
            f"{registered_model_name!r:.200}."
        )
    return AutologConfig(
        log_models=bool(log_models),
        log_models_in_background=bool(log_models_in_background),
        log_datasets=bool(log_datasets),
        log_post_training_metrics=bool(log_post_training_metrics),
        max_tuning_runs=max_tuning_runs,
        log_model_allowlist=allowlist,
        extra_tags=_extra_tags(extra_tags, silent=bool(silent)),
        silent=bool(silent),
        exclusive=bool(exclusive),
        log_input_examples=bool(log_input_examples),
        log_model_signatures=bool(log_model_signatures),
        registered_model_name=registered_model_name,
    )


def _extra_tags(extra_tags: Mapping[str, object] | None, *, silent: bool) -> dict[str, str]:
    tags = {str(key): str(value) for key, value in (extra_tags or {}).items()}
    if AUTOLOGGING_TAG in tags:
        # MLflow drops it too: the tag names the integration that created the run.
        del tags[AUTOLOGGING_TAG]
        if not silent:
            logger.warning(
                "Tag `%s` is ignored as it is a reserved tag by autologging.", AUTOLOGGING_TAG
            )
    return tags


def excludes_pyspark_ml(exclude_flavors: Iterable[str] | None) -> bool:
    """Whether ``mlflow.autolog(exclude_flavors=...)`` leaves pyspark.ml alone."""
    if exclude_flavors is None:
        return False
    if isinstance(exclude_flavors, str):
        raise InvalidInputError(
            f"exclude_flavors must be a list of flavor names (e.g. ['pyspark.ml']), not the "
            f"string {exclude_flavors!r:.200}."
        )
    return INTEGRATION in {str(flavor) for flavor in exclude_flavors}


def pyspark_is_supported(*, silent: bool, version: str | None = None) -> bool:
    """Whether pyspark (``version``, else the installed one) is a tested release; a
    pre-release or development build never is (as in MLflow)."""
    if version is None:
        from importlib.metadata import version as installed

        version = installed("pyspark")
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    supported = match is not None and (int(match[1]), int(match[2])) in TESTED_PYSPARK
    if not supported and not silent:
        logger.warning(
            "sparktrack autologging stays off: pyspark %s is not a version it was tested with "
            "(%s) and disable_for_unsupported_versions=True.",
            version,
            ", ".join(f"{major}.{minor}.x" for major, minor in TESTED_PYSPARK),
        )
    return supported


_lock = threading.Lock()
_current: AutologConfig | None = None


def current() -> AutologConfig | None:
    """The options in force, or None when autologging is off."""
    return _current


def set_current(config: AutologConfig | None) -> None:
    global _current
    with _lock:
        _current = config
