"""Spark side of sparktrack: the session helper, the ``sparktrack`` data source, filters, and
Spark ML models in MLflow's format (``log_model``, ``save_model``, ``load_model``, ``predict``:
``mlflow.spark``'s names, so ``import sparktrack as mlflow; mlflow.spark.log_model(m, "model")``
works unchanged)."""

from sparktrack._models.api import ModelInfo, load_model, log_model, predict, save_model
from sparktrack.spark._datasource import register
from sparktrack.spark._filters import filter
from sparktrack.spark._session import check_java, session
from sparktrack.spark._tables import register_tables

__all__ = [
    "ModelInfo",
    "check_java",
    "filter",
    "load_model",
    "log_model",
    "predict",
    "register",
    "register_tables",
    "save_model",
    "session",
]
