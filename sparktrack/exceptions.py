"""MLflow's ``mlflow.exceptions`` names over sparktrack's one error tree.

``MlflowException`` is :class:`sparktrack.errors.SparkTrackError` itself, so a script ported
with ``import sparktrack as mlflow`` catches every sparktrack error with
``except mlflow.exceptions.MlflowException``, and reads ``.message`` and ``.error_code``
(``"RESOURCE_DOES_NOT_EXIST"``, ``"INVALID_PARAMETER_VALUE"``, ...) as it did. The classes are
defined in :mod:`sparktrack.errors` only; catch those for finer control.
"""

from __future__ import annotations

from sparktrack.errors import SparkTrackError as MlflowException

__all__ = ["MlflowException"]
