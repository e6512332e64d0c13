"""Checks on keys and values, run before anything is buffered or written.

The rules are MLflow's: keys match ``^[/\\w.\\- :]*$``, are not empty, contain no ``..`` path
step and do not start with ``/``; key and value lengths are bounded (see :class:`Settings`).
Metric values must be numbers: NaN is kept, +-inf become +-1.7976931348623157e308.
"""

from __future__ import annotations

import math
import numbers
import posixpath
import re

from sparktrack.config import Settings
from sparktrack.errors import InvalidInputError, InvalidKeyError, LimitExceededError

__all__ = [
    "MAX_DOUBLE",
    "validate_experiment_name",
    "validate_key",
    "validate_metric",
    "validate_param_value",
    "validate_run_id",
    "validate_run_name",
    "validate_tag_value",
]

MAX_DOUBLE = 1.7976931348623157e308
_KEY_PATTERN = re.compile(r"^[/\w.\- :]*$")
_RUN_ID_PATTERN = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")


def validate_key(key: object, *, kind: str, settings: Settings) -> str:
    """Return ``key`` if it is a valid param/metric/tag key, else raise naming the rule broken."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"{kind} key {key!r} must be a string, got {type(key).__name__}.")
    if not key:
        raise InvalidKeyError(f"{kind} key must not be empty.")
    if len(key) > settings.max_key_length:
        raise LimitExceededError(
            f"{kind} key {key[:40]!r}... is {len(key)} characters long; the limit is "
            f"{settings.max_key_length}. Use a shorter key."
        )
    if not _KEY_PATTERN.fullmatch(key):  # match() would let a trailing newline through
        raise InvalidKeyError(
            f"Invalid {kind} key {key!r}: keys may only contain alphanumerics, underscores (_), "
            "dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)."
        )
    # Keys may become file names (artifact exports, CSV columns): they must not resolve to another.
    # Same test as MLflow's path_not_unique: ".", "..x" and "a/../b" are refused, "a..b" is not.
    normalized = posixpath.normpath(key)
    if normalized != key or normalized == "." or normalized.startswith(("..", "/")):
        raise InvalidKeyError(
            f"Invalid {kind} key {key!r}: keys must not start with '/', contain '..' steps or "
            f"resolve to another path (it would resolve to {normalized!r})."
        )
    return key


def validate_metric(
    key: str, value: object, timestamp: object, step: object, *, settings: Settings
) -> tuple[str, float, int, int]:
    """Return the metric as it will be stored (inf clamped), or raise naming the bad part."""
    validate_key(key, kind="Metric", settings=settings)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(
            f"Metric {key!r} has value {value!r} of type {type(value).__name__}; metric values "
            "must be numbers (int or float). Log text as a param or tag instead."
        )
    number = float(value)
    if math.isinf(number):
        number = MAX_DOUBLE if number > 0 else -MAX_DOUBLE
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Integral):
        raise InvalidInputError(
            f"Metric {key!r} has timestamp {timestamp!r}; it must be an integer number of "
            "milliseconds since the epoch."
        )
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInputError(f"Metric {key!r} has step {step!r}; the step must be an integer.")
    return key, number, int(timestamp), int(step)


def validate_param_value(key: str, value: object, *, settings: Settings) -> str:
    text = str(value)
    if len(text) > settings.max_param_value_length:
        raise LimitExceededError(
            f"Param {key!r} has a value of {len(text)} characters; the limit is "
            f"{settings.max_param_value_length}. Log long values as an artifact (log_text)."
        )
    return text


def validate_tag_value(key: str, value: object, *, settings: Settings) -> str:
    text = str(value)
    if len(text) > settings.max_tag_value_length:
        raise LimitExceededError(
            f"Tag {key!r} has a value of {len(text)} characters; the limit is "
            f"{settings.max_tag_value_length}. Log long values as an artifact (log_text)."
        )
    return text


def validate_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not _RUN_ID_PATTERN.match(run_id):
        raise InvalidInputError(
            f"Invalid run id {run_id!r}: run ids are 32 hexadecimal characters (or letters, "
            "digits, '-' and '_', at most 256)."
        )
    return run_id


def validate_run_name(name: str, *, settings: Settings) -> str:
    if len(name) > settings.max_run_name_length:
        raise LimitExceededError(
            f"Run name {name[:40]!r}... is {len(name)} characters; the limit is "
            f"{settings.max_run_name_length}. Use a shorter run_name."
        )
    return name


def validate_experiment_name(name: object, *, settings: Settings) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"Experiment name {name!r} must be a non-empty string.")
    if len(name) > settings.max_experiment_name_length:
        raise LimitExceededError(
            f"Experiment name {name[:40]!r}... is {len(name)} characters; the limit is "
            f"{settings.max_experiment_name_length}."
        )
    return name
