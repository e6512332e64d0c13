"""sparktrack's errors as MLflow's ``MlflowException`` (MLflow's server and clients only
understand that one), and MLflow's NOT_IMPLEMENTED for what the stores do not support.

No exception class is defined here: sparktrack's errors already carry MLflow's error code
names (:mod:`sparktrack.errors`); this module only builds ``MlflowException`` s from them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, NOT_IMPLEMENTED, ErrorCode

from sparktrack.errors import SparkTrackError

__all__ = ["not_implemented", "to_mlflow", "translated"]

F = TypeVar("F", bound=Callable[..., Any])


def to_mlflow(error: SparkTrackError) -> MlflowException:
    """The ``MlflowException`` with the error's message and MLflow error code."""
    try:
        code = ErrorCode.Value(error.error_code)
    except ValueError:  # a code name MLflow's protos do not know
        code = INTERNAL_ERROR
    return MlflowException(error.message, error_code=code)


def not_implemented(method: str, what: str) -> MlflowException:
    """MLflow's NOT_IMPLEMENTED (HTTP 501: the UI shows the message, not a server error)."""
    return MlflowException(
        f"{method}: {what} is not supported by sparktrack's MLflow plugin (sparktrack keeps "
        "experiments, runs, metrics, params, tags, artifacts and the model registry; not "
        "traces, GenAI features or logged-model records).",
        error_code=NOT_IMPLEMENTED,
    )


def translated(method: F) -> F:
    """Wrap a store method so that sparktrack's errors leave it as ``MlflowException`` s.

    A ``NotImplementedError`` (from one of MLflow's default method bodies) becomes
    NOT_IMPLEMENTED too: MLflow's server turns a bare one into HTTP 500.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except MlflowException:
            raise
        except SparkTrackError as error:
            raise to_mlflow(error) from error
        except NotImplementedError as error:
            raise not_implemented(method.__name__, str(error) or "this method") from error

    wrapper.__sparktrack_translated__ = True
    return wrapper  # type: ignore[return-value]
