"""Every exception sparktrack raises.

The tree::

    SparkTrackError
    ├── InvalidInputError (also ValueError)
    │   ├── InvalidKeyError            a param/metric/tag key breaks the key rules
    │   ├── LimitExceededError         a key or value is longer than allowed
    │   ├── QuotaExceededError         too many params/tags/metric steps/runs
    │   ├── ParamOverwriteError        a param re-logged with a different value
    │   ├── InvalidFilterError         a search filter or order_by clause is not valid
    │   └── InvalidArtifactPathError   an artifact path escapes its run's folder
    ├── NotFoundError (also LookupError)
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   └── ArtifactNotFoundError
    ├── AlreadyExistsError             an experiment name is taken
    ├── InvalidStateError              misuse of the run lifecycle (e.g. start_run while a
    │                                  run is active without nested=True)
    ├── StoreError                     a Delta commit failed after retries; rows stay buffered
    └── MissingRequirementError        Java or an optional package is missing

    AutologgingWarning (a UserWarning)   autologging could not record something; the user's
                                         fit() was not affected

Messages name the key, clause or path at fault and say how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "ArtifactNotFoundError",
    "AutologgingWarning",
    "ExperimentNotFoundError",
    "InvalidArtifactPathError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidStateError",
    "LimitExceededError",
    "MissingRequirementError",
    "NotFoundError",
    "ParamOverwriteError",
    "QuotaExceededError",
    "RunNotFoundError",
    "SparkTrackError",
    "StoreError",
]


class SparkTrackError(Exception):
    """Base class of every error sparktrack raises."""


class InvalidInputError(SparkTrackError, ValueError):
    """An argument was rejected before anything was written."""


class InvalidKeyError(InvalidInputError):
    """A param, metric or tag key breaks the key rules (characters, `..`, leading `/`)."""


class LimitExceededError(InvalidInputError):
    """A key or value is longer than its limit."""


class QuotaExceededError(InvalidInputError):
    """A run or experiment would hold more params, tags, metric steps or runs than allowed."""


class ParamOverwriteError(InvalidInputError):
    """A param was logged again with a different value (params are write-once)."""


class InvalidFilterError(InvalidInputError):
    """A search filter or order_by clause could not be parsed or is not valid."""


class InvalidArtifactPathError(InvalidInputError):
    """An artifact path is absolute, or would escape its run's artifact folder."""


class NotFoundError(SparkTrackError, LookupError):
    """Something asked for by id or name does not exist."""


class ExperimentNotFoundError(NotFoundError):
    """No experiment has the given id or name."""


class RunNotFoundError(NotFoundError):
    """No run has the given id."""


class ArtifactNotFoundError(NotFoundError):
    """No artifact exists at the given path."""


class AlreadyExistsError(SparkTrackError):
    """Something with that name already exists (e.g. an active experiment)."""


class InvalidStateError(SparkTrackError):
    """The call does not fit the current state (a run already active, a deleted run, ...)."""


class StoreError(SparkTrackError):
    """The Delta store could not be read or written; buffered rows are kept for a retry."""


class MissingRequirementError(SparkTrackError):
    """A system requirement (Java, an optional package) is missing."""


class AutologgingWarning(UserWarning):
    """Autologging could not record something (or truncated it); training was not affected.

    Filter it with ``warnings.filterwarnings("ignore", category=AutologgingWarning)`` or pass
    ``silent=True`` to :func:`sparktrack.autolog`.
    """
