"""Type checks on the arguments of the public API, in one place.

Values are checked where they are used (keys, values, filters, paths); what is checked here is
the *kind* of each argument the public methods share by name (a run id is a string, tags are a
mapping, a time is an integer, ...), so a wrong kind gets an :class:`InvalidInputError` naming
the method and the argument instead of a ``TypeError`` or ``AttributeError`` from deep inside.
:func:`checked` applies them to a method by its parameter names.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

from sparktrack._validation import quoted, validate_run_id
from sparktrack.errors import InvalidFilterError, InvalidInputError, InvalidKeyError

__all__ = ["checked", "experiment_id_text"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _refuse(where: str, name: str, value: object, expected: str) -> InvalidInputError:
    return InvalidInputError(
        f"{where}: {name} must be {expected}, got {quoted(value)} ({type(value).__name__})."
    )


def experiment_id_text(value: object, *, where: str = "experiment_id") -> str:
    """An experiment id as text: a non-empty string (or int) of letters, digits, '_' and '-'.

    Ids name folders of the store (partitions, saved search state): anything else is refused.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _refuse(where, "an experiment id", value, "a string such as '0'")
    text = str(value)
    if not text or len(text) > 64 or not set(text) <= _ID_CHARACTERS:
        raise InvalidInputError(
            f"{where}: invalid experiment id {quoted(text)}; experiment ids are at most 64 "
            "letters, digits, '_' or '-' (as returned by create_experiment)."
        )
    return text


def _run_id(where: str, name: str, value: object) -> object:
    if value is None:
        return value
    validate_run_id(value)
    return value


def _experiment_id(where: str, name: str, value: object) -> object:
    return value if value is None else experiment_id_text(value, where=where)


def _experiment_ids(where: str, name: str, value: object) -> object:
    if value is None or isinstance(value, (str, int)) and not isinstance(value, bool):
        return value if value is None else [experiment_id_text(value, where=where)]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise _refuse(where, name, value, "a list of experiment ids")
    return [experiment_id_text(item, where=where) for item in value]


def _string_list(where: str, name: str, value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _refuse(where, name, value, "a list of strings")
    return value


def _filter(where: str, name: str, value: object) -> object:
    if value is not None and not isinstance(value, str):
        raise InvalidFilterError(
            f"{where}: the filter must be a string such as \"params.lr = '0.1'\", got "
            f"{quoted(value)} ({type(value).__name__})."
        )
    return value


def _order_by(where: str, name: str, value: object) -> object:
    # The grammar checks each clause (and says which one is wrong); here only the container.
    if value is not None and not isinstance(value, (str, list, tuple)):
        raise InvalidFilterError(
            f"{where}: order_by must be a list of clauses such as ['metrics.rmse ASC'], got "
            f"{quoted(value)} ({type(value).__name__})."
        )
    return value


def _mapping(where: str, name: str, value: object) -> object:
    if value is not None and not isinstance(value, Mapping):
        raise _refuse(where, name, value, "a dict")
    return value


def _required_mapping(where: str, name: str, value: object) -> object:
    if not isinstance(value, Mapping):
        raise _refuse(where, name, value, "a dict")
    return value


def _optional_time(where: str, name: str, value: object) -> object:
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(where, name, value, "an integer number of milliseconds since the epoch")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _refuse(where, name, value, "a 64-bit integer")
    return value


def _optional_text(where: str, name: str, value: object) -> object:
    if value is not None and not isinstance(value, str):
        raise _refuse(where, name, value, "a string")
    return value


def _optional_count(where: str, name: str, value: object) -> object:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _refuse(where, name, value, "a whole number")
    return value


def _optional_stored_text(where: str, name: str, value: object) -> object:
    # Text that goes into a table as it is: a lone surrogate cannot be stored as UTF-8.
    if value is None:
        return value
    _text(where, name, value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{where}: {name} has {value[exc.start:exc.end]!r} at position {exc.start}, which is "
            f"not valid Unicode (a lone surrogate): {quoted(value)}."
        ) from None
    return value


def _text(where: str, name: str, value: object) -> object:
    if not isinstance(value, str):
        raise _refuse(where, name, value, "a string")
    return value


def _path(where: str, name: str, value: object) -> object:
    if not isinstance(value, (str, os.PathLike)):
        raise _refuse(where, name, value, "a path (str or os.PathLike)")
    return value


def _key(where: str, name: str, value: object) -> object:
    if not isinstance(value, str):
        raise InvalidKeyError(
            f"{where}: key {quoted(value)} must be a string, got {type(value).__name__}."
        )
    return value


def _required_list(where: str, name: str, value: object) -> object:
    if value is None:
        raise _refuse(where, name, value, "a list of strings")
    return _string_list(where, name, value)


def _entities(kind: str) -> Callable[[str, str, object], object]:
    def check(where: str, name: str, value: object) -> object:
        if value is None:
            return ()
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise _refuse(where, name, value, f"a list of {kind} objects")
        items = list(value)
        for item in items:
            if not all(hasattr(item, field) for field in ("key", "value")):
                raise _refuse(where, f"each item of {name}", item, f"a {kind}")
        return items
    return check


_CHECKS: dict[str, Callable[[str, str, object], object]] = {
    "run_id": _run_id,
    "parent_run_id": _run_id,
    "experiment_id": _experiment_id,
    "experiment_ids": _experiment_ids,
    "run_ids": _required_list,
    "key": _key,
    "stages": _string_list,
    "since": _optional_time,
    "description": _optional_stored_text,
    "model_uri": lambda w, n, v: _optional_stored_text(w, n, _text(w, n, v)),
    "source": _optional_stored_text,
    "run_link": _optional_stored_text,
    "order_by": _order_by,
    "tags": _mapping,
    "metrics": _mapping,
    "params": _mapping,
    "experiment_names": lambda w, n, v: [v] if isinstance(v, str) else _string_list(w, n, v),
    "start_time": _optional_time,
    "end_time": _optional_time,
    "timestamp": _optional_time,
    "max_timestamp_millis": _optional_time,
    "min_timestamp_millis": _optional_time,
    "status": _optional_text,
    "name": _optional_text,
    "run_name": _optional_text,
    "new_name": _text,
    "filter_string": _filter,
    "artifact_location": _optional_text,
    "artifact_path": _optional_text,
    "path": _optional_text,
    "artifact_file": _text,
    "text": _text,
    "local_path": _path,
    "local_dir": _path,
    "dst_path": lambda w, n, v: v if v is None else _path(w, n, v),
}

def _required_experiment_ids(where: str, name: str, value: object) -> object:
    if value is None:
        raise _refuse(where, name, value, "a list of experiment ids")
    return _experiment_ids(where, name, value)


_BATCH = {"metrics": _entities("Metric"), "params": _entities("Param"),
          "tags": _entities("RunTag")}

# Per-function kinds (by qualified name) where a shared name means something else.
_OVERRIDES: dict[str, dict[str, Callable[[str, str, object], object]]] = {
    "TrackingClient.search_runs": {"experiment_ids": _required_experiment_ids},
    "TrackingClient.search_runs_frame": {"experiment_ids": _required_experiment_ids},
    "TrackingClient.log_batch": _BATCH,
    "log_batch": _BATCH,
    # Tracking searches check max_results themselves, with its range; the registry's here.
    **{f"{owner}{name}": {"max_results": _optional_count}
       for owner in ("", "RegistryMethods.")
       for name in ("search_model_versions", "search_registered_models")},
    "log_metrics": {"metrics": _required_mapping},
    "log_params": {"params": _required_mapping},
    "set_tags": {"tags": _required_mapping},
    "set_experiment_tags": {"tags": _required_mapping},
}


def checked(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with the kinds of its arguments checked first (see the module docstring)."""
    signature = inspect.signature(method)
    overrides = _OVERRIDES.get(method.__qualname__, {})
    checks = {
        name: overrides.get(name) or _CHECKS[name]
        for name in signature.parameters
        if name in overrides or name in _CHECKS
    }
    where = f"{method.__qualname__}"
    direct = _DirectCall.of(signature, checks)

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Binding costs more than many of the calls it guards (a buffered log_metric): calls
        # that name every required argument once go straight through, the others are bound
        # (which raises the usual TypeError for a missing or unexpected argument).
        if direct is not None and direct.applies(args, kwargs):
            return method(*direct.checked(where, args), **_checked_keywords(where, checks, kwargs))
        bound = signature.bind(*args, **kwargs)
        for name, check in checks.items():
            if name in bound.arguments:
                bound.arguments[name] = check(where, name, bound.arguments[name])
        return method(*bound.args, **bound.kwargs)

    return wrapper


def _checked_keywords(
    where: str, checks: Mapping[str, Callable[[str, str, object], object]], kwargs: dict
) -> dict:
    return {name: checks[name](where, name, value) if name in checks else value
            for name, value in kwargs.items()}


class _DirectCall:
    """How a call of a signature without ``*args``, ``**kwargs`` or positional-only parameters
    maps to its parameters without :meth:`inspect.Signature.bind`."""

    def __init__(self, positional: list[str], names: frozenset[str], required: frozenset[str],
                 checks: Mapping[str, Callable[[str, str, object], object]]) -> None:
        self._positional = positional
        self._names = names
        self._required = required
        self._checks = [(index, name, checks[name]) for index, name in enumerate(positional)
                        if name in checks]

    @classmethod
    def of(cls, signature: inspect.Signature,
           checks: Mapping[str, Callable[[str, str, object], object]]) -> _DirectCall | None:
        parameters = list(signature.parameters.values())
        plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        if any(parameter.kind not in plain for parameter in parameters):
            return None
        positional = [p.name for p in parameters
                      if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        required = frozenset(p.name for p in parameters if p.default is inspect.Parameter.empty)
        return cls(positional, frozenset(signature.parameters), required, checks)

    def applies(self, args: tuple, kwargs: dict) -> bool:
        """Whether the call names each argument once and every required one."""
        if len(args) > len(self._positional):
            return False
        given = self._positional[:len(args)]
        if not kwargs:
            return self._required.issubset(given)
        return (kwargs.keys() <= self._names and kwargs.keys().isdisjoint(given)
                and self._required <= kwargs.keys() | set(given))

    def checked(self, where: str, args: tuple) -> tuple:
        """``args`` with the checked ones replaced by what their checks return."""
        if not any(index < len(args) for index, _, _ in self._checks):
            return args
        values = list(args)
        for index, name, check in self._checks:
            if index < len(values):
                values[index] = check(where, name, values[index])
        return tuple(values)
