"""The public model functions, exported by :mod:`sparktrack.spark` under MLflow's names."""

from __future__ import annotations

import os
from typing import Any

from sparktrack import _tags
from sparktrack._models import loader, uris, writer
from sparktrack._models.writer import ModelInfo
from sparktrack.errors import InvalidInputError, InvalidStateError

__all__ = ["ModelInfo", "load_model", "log_model", "predict", "save_model"]


def log_model(
    spark_model: Any,
    artifact_path: str = "model",
    *,
    registered_model_name: str | None = None,
    input_example: Any = None,
    signature: Any = None,
) -> ModelInfo:
    """Log a fitted Spark ML model under the active run's artifacts, in MLflow's model format.

    ``import sparktrack as mlflow; mlflow.spark.log_model(model, "model")`` works as in MLflow:
    a run is started when none is active, and the folder ``<artifact_path>/`` gets ``MLmodel``
    (``spark`` and ``python_function`` flavors), ``sparkml/`` (Spark's writer),
    ``requirements.txt``, ``python_env.yaml``, ``conda.yaml`` and, with an example,
    ``input_example.json`` and ``serving_input_example.json``. ``mlflow.spark.load_model``
    loads it, and so does :func:`load_model`.

    Args:
        spark_model: a fitted ``pyspark.ml`` Model/Transformer; one that is not a
            ``PipelineModel`` is saved wrapped in one (as MLflow does).
        artifact_path: the folder inside the run's artifacts; it must not exist yet.
        registered_model_name: also register the logged model under this name
            (``register_model("runs:/<run_id>/<artifact_path>", name)``).
        input_example: a pandas DataFrame, dict, list of row dicts or Spark DataFrame; its
            first rows are stored, and the signature is inferred from it when ``signature``
            is None.
        signature: an ``mlflow.models.ModelSignature`` or a dict with ``inputs``/``outputs``;
            ``False`` stores none.

    Returns:
        :class:`ModelInfo`, with ``model_uri = "runs:/<run_id>/<artifact_path>"``.

    Raises:
        InvalidInputError: not a Spark model, a bad ``artifact_path``, example or signature.
        AlreadyExistsError: the run already has something at ``artifact_path``.
    """
    from sparktrack import _fluent

    writer.check_model(spark_model)
    relative = writer.relative_artifact_path(artifact_path)
    if registered_model_name is not None and not isinstance(registered_model_name, str):
        raise InvalidInputError(
            f"registered_model_name must be a string, got {repr(registered_model_name)[:200]}."
        )
    run_id = _fluent._run_id_or_start()
    client = _fluent._get_client()
    location = f"{client.get_run_info(run_id).artifact_uri.rstrip('/')}/{relative}"
    content = writer.write(
        spark_model, location, signature=signature, input_example=input_example,
        run_id=run_id, artifact_path=relative, storage_options=client.storage_options,
    )
    client.set_tag(run_id, _tags.MODEL_PREFIX + relative, writer.class_path(spark_model))
    model_uri = f"runs:/{run_id}/{relative}"
    version = None
    if registered_model_name is not None:
        version = str(client.register_model(model_uri, registered_model_name).version)
    return _info(content, model_uri=model_uri, run_id=run_id, artifact_path=relative,
                 version=version)


def _info(content: dict[str, Any], *, model_uri: str, run_id: str, artifact_path: str,
          version: str | None) -> ModelInfo:
    return ModelInfo(
        artifact_path=artifact_path,
        model_uri=model_uri,
        run_id=run_id,
        flavors=content["flavors"],
        signature=content.get("signature"),
        saved_input_example_info=content.get("saved_input_example_info"),
        model_uuid=content["model_uuid"],
        utc_time_created=content["utc_time_created"],
        mlflow_version=content.get("mlflow_version"),
        registered_model_version=version,
    )


def save_model(
    spark_model: Any,
    path: str | os.PathLike,
    *,
    input_example: Any = None,
    signature: Any = None,
) -> None:
    """Save a fitted Spark ML model in MLflow's format at ``path`` (a local folder or an
    object-store URI that does not exist yet, or is empty); as :func:`log_model` without a run.
    """
    writer.write(spark_model, os.fspath(path), signature=signature, input_example=input_example)


def load_model(model_uri: str | os.PathLike, *, tracking_uri: str | None = None) -> Any:
    """Load a Spark ML model saved in MLflow's format (by sparktrack or MLflow).

    Args:
        model_uri: ``runs:/<run_id>/<path>``, ``models:/<name>/<version>``,
            ``models:/<name>/latest``, ``models:/<name>/<stage>``, ``models:/<name>@<alias>``,
            or a path / ``file://`` / object-store URI of the model folder. A folder that
            Spark's writer wrote directly (no ``MLmodel``) loads too.
        tracking_uri: the store for ``runs:/`` and ``models:/`` URIs (default: the current).

    Returns:
        The model (a ``PipelineModel`` for every folder in MLflow's format).

    Raises:
        InvalidInputError: a malformed URI (quoted), or a model folder naming a class outside
            ``pyspark.ml`` (nothing is imported or unpickled from the folder).
        NotFoundError: the run, registered model or folder does not exist.
    """
    client = _client(tracking_uri)
    return loader.load_location(uris.resolve(model_uri, client),
                                storage_options=client.storage_options)


def _client(tracking_uri: str | None) -> Any:
    from sparktrack._fluent import _get_client
    from sparktrack.client import TrackingClient

    return TrackingClient(tracking_uri) if tracking_uri is not None else _get_client()


def predict(model_uri: Any, df: Any, *, tracking_uri: str | None = None) -> Any:
    """Score ``df`` with a model: ``load_model(model_uri).transform(df)`` through Spark.

    Args:
        model_uri: a model URI as for :func:`load_model`, or a loaded Spark model.
        df: a Spark DataFrame (returns the transformed Spark DataFrame, lazily), or a pandas
            DataFrame (converted through the active SparkSession; returns a pandas DataFrame
            of its columns plus the model's prediction column).

    Raises:
        InvalidInputError: ``df`` is neither kind of DataFrame.
        InvalidStateError: a pandas DataFrame with no active SparkSession.
    """
    import pandas as pd
    from pyspark.ml import Transformer
    from pyspark.sql import DataFrame, SparkSession

    if not isinstance(df, (DataFrame, pd.DataFrame)) and not _is_connect_frame(df):
        raise InvalidInputError(
            f"predict takes a Spark or pandas DataFrame, got {type(df).__name__} "
            f"({repr(df)[:200]})."
        )
    model = model_uri if isinstance(model_uri, Transformer) else load_model(
        model_uri, tracking_uri=tracking_uri
    )
    if not isinstance(df, pd.DataFrame):
        return model.transform(df)
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise InvalidStateError(
            "predict on a pandas DataFrame needs an active SparkSession to convert it; create "
            "one first (e.g. sparktrack.spark.session())."
        )
    scored = model.transform(spark.createDataFrame(df))
    keep = list(df.columns) + [c for c in _prediction_columns(model, scored) if c not in df]
    return scored.select(*keep).toPandas()


def _is_connect_frame(df: Any) -> bool:
    return type(df).__module__.startswith("pyspark.sql.connect") and (
        type(df).__name__ == "DataFrame"
    )


def _prediction_columns(model: Any, scored: Any) -> list[str]:
    from pyspark.ml import PipelineModel

    columns = scored.columns
    if "prediction" in columns:
        return ["prediction"]
    last = model.stages[-1] if isinstance(model, PipelineModel) and model.stages else model
    for param in ("predictionCol", "outputCol"):
        if last.hasParam(param) and last.isDefined(param):
            name = last.getOrDefault(param)
            if name in columns:
                return [name]
    return list(columns)
