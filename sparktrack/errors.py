"""Every exception sparktrack raises.

The tree; ``[CODE]`` is the ``error_code`` a class carries (MLflow's code strings), which its
subclasses inherit::

    SparkTrackError                    the base, also named MlflowException   [INTERNAL_ERROR]
    ├── InvalidInputError (also ValueError)                       [INVALID_PARAMETER_VALUE]
    │   ├── InvalidKeyError            a param/metric/tag key breaks the key rules
    │   ├── LimitExceededError         a key or value is longer than allowed
    │   ├── QuotaExceededError         too many params/tags/metric steps/runs
    │   ├── ParamOverwriteError        a param re-logged with a different value
    │   ├── InvalidFilterError         a search filter or order_by clause is not valid
    │   └── InvalidArtifactPathError   an artifact path escapes its run's folder
    ├── NotFoundError (also LookupError)                          [RESOURCE_DOES_NOT_EXIST]
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   └── ArtifactNotFoundError
    ├── AlreadyExistsError             an experiment name is taken [RESOURCE_ALREADY_EXISTS]
    ├── InvalidStateError              misuse of the run lifecycle (e.g. start_run while a
    │                                  run is active without nested=True)    [INVALID_STATE]
    ├── StoreError                     a Delta commit failed after retries; rows stay
    │                                  buffered                              [INTERNAL_ERROR]
    └── MissingRequirementError        Java or an optional package is missing [INTERNAL_ERROR]

    AutologgingWarning (a UserWarning)   autologging could not record something; the user's
                                         fit() was not affected

Like MLflow's ``MlflowException``, every error has ``message`` and ``error_code`` and can be
raised as ``SparkTrackError(message, error_code="RESOURCE_DOES_NOT_EXIST")``; scripts written
for MLflow catch them all with ``except mlflow.exceptions.MlflowException`` after
``import sparktrack as mlflow``.

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


# MLflow's HTTP status per error code (``mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS``); any
# other code is a 500, as in MLflow.
_HTTP_STATUS = {
    "INTERNAL_ERROR": 500,
    "INVALID_STATE": 500,
    "DATA_LOSS": 500,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "CANCELLED": 499,
    "RESOURCE_EXHAUSTED": 429,
    "ABORTED": 409,
    "RESOURCE_CONFLICT": 409,
    "ALREADY_EXISTS": 409,
    "NOT_FOUND": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "PERMISSION_DENIED": 403,
    "CUSTOMER_UNAUTHORIZED": 401,
    "UNAUTHENTICATED": 401,
    "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_PARAMETER_VALUE": 400,
}


# Messages quote user input (a key, a filter, a path) to say what was wrong; each quote is cut
# to about 200 characters where it is made, and this bounds the whole message whatever it
# quotes, so a 100 KB argument never makes a 100 KB error.
_MESSAGE_LIMIT = 2_000


def _bounded(message: str) -> str:
    if len(message) <= _MESSAGE_LIMIT:
        return message
    keep = _MESSAGE_LIMIT // 2
    cut = len(message) - 2 * keep
    return f"{message[:keep]} [... {cut} characters cut ...] {message[-keep:]}"


class SparkTrackError(Exception):
    """Base class of every error sparktrack raises; MLflow's ``MlflowException``.

    Args:
        message: what went wrong and how to fix it (also ``.message`` and ``str(error)``).
        error_code: one of MLflow's error code names, such as ``"RESOURCE_DOES_NOT_EXIST"``;
            defaults to the class's ``error_code``.
    """

    error_code: str = "INTERNAL_ERROR"

    def __init__(self, message: object, error_code: str | None = None) -> None:
        self.message = _bounded(str(message))
        super().__init__(self.message)
        if error_code is not None:
            if not isinstance(error_code, str) or not error_code.isidentifier():
                raise InvalidInputError(
                    f"error_code must be an MLflow error code name such as "
                    f"'INVALID_PARAMETER_VALUE', got {str(error_code)[:200]!r}."
                )
            self.error_code = error_code

    def get_http_status_code(self) -> int:
        """The HTTP status MLflow's server answers this error with (500 for unknown codes)."""
        return _HTTP_STATUS.get(self.error_code, 500)

    @classmethod
    def invalid_parameter_value(cls, message: object) -> InvalidInputError:
        """An :class:`InvalidInputError` (MLflow's ``MlflowException.invalid_parameter_value``)."""
        return InvalidInputError(message)


class InvalidInputError(SparkTrackError, ValueError):
    """An argument was rejected before anything was written."""

    error_code = "INVALID_PARAMETER_VALUE"


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

    error_code = "RESOURCE_DOES_NOT_EXIST"


class ExperimentNotFoundError(NotFoundError):
    """No experiment has the given id or name."""


class RunNotFoundError(NotFoundError):
    """No run has the given id."""


class ArtifactNotFoundError(NotFoundError):
    """No artifact exists at the given path."""


class AlreadyExistsError(SparkTrackError):
    """Something with that name already exists (e.g. an active experiment)."""

    error_code = "RESOURCE_ALREADY_EXISTS"


class InvalidStateError(SparkTrackError):
    """The call does not fit the current state (a run already active, a deleted run, ...)."""

    error_code = "INVALID_STATE"


class StoreError(SparkTrackError):
    """The Delta store could not be read or written; buffered rows are kept for a retry."""


class MissingRequirementError(SparkTrackError):
    """A system requirement (Java, an optional package) is missing."""


class AutologgingWarning(UserWarning):
    """Autologging could not record something (or truncated it); training was not affected.

    Filter it with ``warnings.filterwarnings("ignore", category=AutologgingWarning)`` or pass
    ``silent=True`` to :func:`sparktrack.autolog`.
    """
