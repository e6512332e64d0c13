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
    "quoted",
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
# The tables store steps and timestamps as int64.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Longest piece of user input quoted back in an error message.
_QUOTE_LIMIT = 200


def quoted(value: object, *, limit: int = _QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a 100 KB value makes a short message)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters in all)"


def _storable_text(text: str, *, what: str) -> str:
    # Parquet stores UTF-8: a lone surrogate ("\ud800") passes str() but cannot be encoded.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} {quoted(text)} contains {text[exc.start:exc.end]!r} at position {exc.start}, "
            "which is not valid Unicode (a lone surrogate) and cannot be stored. Remove it or "
            "decode the text with errors='replace' first."
        ) from None
    return text


def _int64(value: int, *, what: str) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:  # noqa: SIM300 - reads as the range it checks
        raise InvalidInputError(
            f"{what} is {quoted(value)}; it must fit in a signed 64-bit integer "
            f"({_INT64_MIN} to {_INT64_MAX})."
        )
    return value
_RUN_ID_PATTERN = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")


def validate_key(key: object, *, kind: str, settings: Settings) -> str:
    """Return ``key`` if it is a valid param/metric/tag key, else raise naming the rule broken."""
    if not isinstance(key, str):
        raise InvalidKeyError(
            f"{kind} key {quoted(key)} must be a string, got {type(key).__name__}."
        )
    if not key:
        raise InvalidKeyError(f"{kind} key must not be empty.")
    if len(key) > settings.max_key_length:
        raise LimitExceededError(
            f"{kind} key {key[:40]!r}... is {len(key)} characters long; the limit is "
            f"{settings.max_key_length}. Use a shorter key."
        )
    if not _KEY_PATTERN.fullmatch(key):  # match() would let a trailing newline through
        raise InvalidKeyError(
            f"Invalid {kind} key {quoted(key)}: keys may only contain alphanumerics, underscores (_), "
            "dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)."
        )
    # Keys may become file names (artifact exports, CSV columns): they must not resolve to another.
    # Same test as MLflow's path_not_unique: ".", "..x" and "a/../b" are refused, "a..b" is not.
    normalized = posixpath.normpath(key)
    if normalized != key or normalized == "." or normalized.startswith(("..", "/")):
        raise InvalidKeyError(
            f"Invalid {kind} key {quoted(key)}: keys must not start with '/', contain '..' steps "
            f"or resolve to another path (it would resolve to {quoted(normalized)})."
        )
    return key


def validate_metric(
    key: str, value: object, timestamp: object, step: object, *, settings: Settings
) -> tuple[str, float, int, int]:
    """Return the metric as it will be stored (inf clamped), or raise naming the bad part."""
    validate_key(key, kind="Metric", settings=settings)
    # The hot path of log_metric: plain floats and ints skip the slower ABC checks below.
    number = value if type(value) is float else _metric_number(key, value)
    if number != number or -MAX_DOUBLE <= number <= MAX_DOUBLE:
        pass  # NaN is kept; finite values as they are
    else:
        number = MAX_DOUBLE if number > 0 else -MAX_DOUBLE
    timestamp = _int64(_integer(timestamp, key=key, what="timestamp"),
                       what=f"Metric {key!r} timestamp")
    step = _int64(_integer(step, key=key, what="step"), what=f"Metric {key!r} step")
    return key, number, timestamp, step


def _metric_number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(
            f"Metric {key!r} has value {quoted(value)} of type {type(value).__name__}; metric "
            "values must be numbers (int or float). Log text as a param or tag instead."
        )
    try:
        return float(value)
    except (OverflowError, ValueError):
        # An int beyond the double range (10**400): MLflow clamps +-inf, so clamp it too.
        return math.inf if value > 0 else -math.inf


def _integer(value: object, *, key: str, what: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        hint = ("it must be an integer number of milliseconds since the epoch"
                if what == "timestamp" else "the step must be an integer")
        raise InvalidInputError(f"Metric {key!r} has {what} {quoted(value)}; {hint}.")
    return int(value)


def validate_param_value(key: str, value: object, *, settings: Settings) -> str:
    text = _storable_text(str(value), what=f"Param {key!r} value")
    if len(text) > settings.max_param_value_length:
        raise LimitExceededError(
            f"Param {key!r} has a value of {len(text)} characters; the limit is "
            f"{settings.max_param_value_length}. Log long values as an artifact (log_text)."
        )
    return text


def validate_tag_value(key: str, value: object, *, settings: Settings) -> str:
    text = _storable_text(str(value), what=f"Tag {key!r} value")
    if len(text) > settings.max_tag_value_length:
        raise LimitExceededError(
            f"Tag {key!r} has a value of {len(text)} characters; the limit is "
            f"{settings.max_tag_value_length}. Log long values as an artifact (log_text)."
        )
    return text


def validate_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not _RUN_ID_PATTERN.match(run_id):
        raise InvalidInputError(
            f"Invalid run id {quoted(run_id)}: run ids are 32 hexadecimal characters (or letters, "
            "digits, '-' and '_', at most 256)."
        )
    return run_id


def validate_run_name(name: str, *, settings: Settings) -> str:
    if not isinstance(name, str):
        raise InvalidInputError(f"Run name {quoted(name)} must be a string.")
    _storable_text(name, what="Run name")
    if len(name) > settings.max_run_name_length:
        raise LimitExceededError(
            f"Run name {name[:40]!r}... is {len(name)} characters; the limit is "
            f"{settings.max_run_name_length}. Use a shorter run_name."
        )
    return name


def validate_experiment_name(name: object, *, settings: Settings) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"Experiment name {quoted(name)} must be a non-empty string.")
    _storable_text(name, what="Experiment name")
    if len(name) > settings.max_experiment_name_length:
        raise LimitExceededError(
            f"Experiment name {name[:40]!r}... is {len(name)} characters; the limit is "
            f"{settings.max_experiment_name_length}."
        )
    return name
