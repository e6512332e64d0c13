"""Checks on the registry's inputs (names, versions, stages, aliases), with MLflow's rules.

Every check runs before anything is read or written, and raises a typed error naming the
argument at fault, quoting at most about 200 characters of it.
"""

from __future__ import annotations

import re

from sparktrack.errors import InvalidInputError
from sparktrack._validation import quoted

__all__ = [
    "ACTIVE_STAGES",
    "ALL_STAGES",
    "DELETED_STAGE",
    "STAGE_NONE",
    "canonical_stage",
    "validate_alias",
    "validate_description",
    "validate_model_name",
    "validate_version",
]

STAGE_NONE = "None"
ALL_STAGES = (STAGE_NONE, "Staging", "Production", "Archived")
ACTIVE_STAGES = ("Staging", "Production")
# The stage MLflow's SQL store gives a deleted version's tombstone.
DELETED_STAGE = "Deleted_Internal"

_ALIAS = re.compile(r"^[\w\-]*$")
_RESERVED_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
MAX_ALIAS_LENGTH = 255
MAX_NAME_LENGTH = 256


def validate_model_name(name: object, *, what: str = "model name") -> str:
    """A registered model's name: a non-empty string without '/' or ':' (they would make
    ``models:/`` URIs ambiguous)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(
            f"Invalid {what} {quoted(name)}: a registered model needs a non-empty name "
            "such as 'churn-classifier'."
        )
    if "/" in name or ":" in name:
        raise InvalidInputError(
            f"Invalid {what} {quoted(name)}. Names cannot contain '/' or ':' (they separate "
            "the parts of models:/ URIs); use e.g. '-' or '_' instead."
        )
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(
            f"Invalid {what} {quoted(name)}: it has {len(name)} characters, at most "
            f"{MAX_NAME_LENGTH} are allowed."
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"Invalid {what} {quoted(name)}: it is not valid Unicode (a lone surrogate)."
        ) from None
    return name


def validate_version(version: object) -> int:
    """A version number given as an int or a string of digits ("3"), as MLflow accepts both."""
    if isinstance(version, bool):
        number = None
    elif isinstance(version, int):
        number = version
    elif isinstance(version, str) and version.strip().isdigit():
        number = int(version.strip())
    else:
        number = None
    if number is None or number < 1 or number > 2**63 - 1:
        raise InvalidInputError(
            f"Invalid model version {quoted(version)}: versions are whole numbers from 1 "
            "(an int or a string of digits such as '3')."
        )
    return number


def canonical_stage(stage: object) -> str:
    """The canonical spelling of a stage, matched case-insensitively ('production' ->
    'Production'), as MLflow does."""
    if isinstance(stage, str):
        for name in ALL_STAGES:
            if stage.strip().lower() == name.lower():
                return name
    raise InvalidInputError(
        f"Invalid Model Version stage: {quoted(stage)}. Value must be one of "
        f"{', '.join(ALL_STAGES)}."
    )


def validate_alias(alias: object) -> str:
    """An alias: letters, digits, '_' and '-', at most 255 characters, not 'latest' nor
    'v<digits>' (those name versions in ``models:/name@...`` URIs)."""
    if not isinstance(alias, str) or not alias:
        raise InvalidInputError(
            f"Invalid alias {quoted(alias)}: an alias is a non-empty string such as 'champion'."
        )
    if len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidInputError(
            f"Invalid alias {quoted(alias)}: it has {len(alias)} characters, at most "
            f"{MAX_ALIAS_LENGTH} are allowed."
        )
    if not _ALIAS.match(alias):
        raise InvalidInputError(
            f"Invalid alias {quoted(alias)}: aliases may contain only letters, digits, '_' "
            "and '-'."
        )
    if alias.lower() == "latest" or _RESERVED_VERSION_ALIAS.match(alias):
        raise InvalidInputError(
            f"Version alias name {quoted(alias)} is reserved ('latest' and 'v<number>' name "
            "versions in models:/ URIs); choose another alias such as 'champion'."
        )
    return alias


def validate_description(description: object) -> str | None:
    if description is not None and not isinstance(description, str):
        raise InvalidInputError(
            f"description must be a string or None, got {type(description).__name__} "
            f"{quoted(description)}."
        )
    return description
