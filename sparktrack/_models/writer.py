"""Saving a Spark ML model in MLflow's format: the model by Spark's own writer under
``sparkml/``, then the small files (examples, environment), then ``MLmodel`` last, so a folder
with an ``MLmodel`` always holds a complete model.

A model that is not a ``PipelineModel`` is wrapped in one, as MLflow does, so that
``mlflow.spark.load_model`` (which always calls ``PipelineModel.load``) reads it.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


from sparktrack._artifact_repository import ArtifactRepository, os_errors, safe_relative_path
from sparktrack._models import example as examples
from sparktrack._models import mlmodel
from sparktrack._models import signature as signatures
from sparktrack.errors import AlreadyExistsError, InvalidArtifactPathError, InvalidInputError

__all__ = ["ModelInfo", "check_model", "class_path", "spark_path", "write"]


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`sparktrack.spark.log_model` logged (MLflow's ``ModelInfo`` fields).

    ``model_uri`` (``runs:/<run_id>/<artifact_path>``) loads it with
    :func:`sparktrack.spark.load_model` or ``mlflow.spark.load_model``;
    ``registered_model_version`` is set when ``registered_model_name`` was given.
    """

    artifact_path: str
    model_uri: str
    run_id: str
    flavors: dict[str, Any]
    signature: dict[str, Any] | None
    saved_input_example_info: dict[str, str] | None
    model_uuid: str
    utc_time_created: str
    mlflow_version: str | None
    registered_model_version: str | None = None


def class_path(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def check_model(spark_model: Any) -> None:
    """MLflow's rule: a fitted ``pyspark.ml`` Model or Transformer that Spark can write and
    read back.

    Raises:
        InvalidInputError: anything else (named).
    """
    from pyspark.ml import Model, Transformer
    from pyspark.ml.util import MLReadable, MLWritable

    if not (
        isinstance(spark_model, (Model, Transformer))
        and isinstance(spark_model, MLReadable)
        and isinstance(spark_model, MLWritable)
    ):
        raise InvalidInputError(
            f"Cannot save {repr(spark_model)[:200]} ({class_path(spark_model)}) as a Spark "
            "model: give a fitted pyspark.ml Model or Transformer that implements MLWritable "
            "and MLReadable (e.g. the PipelineModel that Pipeline.fit returns)."
        )


def spark_path(location: str) -> str:
    """A path Spark's writer and reader understand for a location."""
    if location.startswith("file://"):
        return os.path.abspath(location[len("file://"):])
    if "://" in location:
        return location
    return os.path.abspath(location)


def as_pipeline(model: Any) -> Any:
    from pyspark.ml import PipelineModel

    return model if isinstance(model, PipelineModel) else PipelineModel([model])


def write(
    model: Any,
    location: str,
    *,
    signature: Any = None,
    input_example: Any = None,
    training: Any = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    write_data: Callable[[str], None] | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Save ``model`` at ``location`` (which must not hold anything yet); returns the MLmodel
    content written.

    The signature is ``signature`` when given (False: none); otherwise it is inferred from the
    input example, else from the DataFrame ``training`` (the feature columns the model reads). Only
    plans are analysed for that; a Spark DataFrame example costs one small job.
    ``write_data(path)`` replaces Spark's writer for ``sparkml/`` (a copy of an identical save).

    On an object store (``storage_options`` as for the store), Spark's writer saves into a local
    folder that is then uploaded: writing ``s3://`` from Spark needs the Hadoop S3A jars, which
    come from Maven and are not part of pyspark.
    """
    check_model(model)
    repository = ArtifactRepository(location, storage_options=storage_options)
    _require_empty(repository, location)
    pipeline = as_pipeline(model)
    example = None if input_example is None else examples.to_example(input_example)
    session_source = training if training is not None else input_example
    inferred = _signature(pipeline, signature, example, training, _session(session_source))

    save = pipeline.write().save if write_data is None else write_data
    if is_local(location):
        data = posixpath.join(spark_path(location), mlmodel.SPARK_DATA)
        save(data)
        size = _local_size(data)
    else:
        with tempfile.TemporaryDirectory(prefix="sparktrack-model-") as folder:
            data = os.path.join(folder, mlmodel.SPARK_DATA)
            save(data)
            size = _local_size(data)
            repository.log_artifacts(data, mlmodel.SPARK_DATA)
    files = {} if example is None else example.files()
    for name, content in {**files, **mlmodel.environment_files()}.items():
        repository.write_bytes(name, content)
        size += len(content)
    content = mlmodel.mlmodel(
        model_class=class_path(pipeline),
        signature=inferred,
        example_info=None if example is None else examples.INFO,
        run_id=run_id,
        artifact_path=artifact_path,
        size_bytes=size,
    )
    repository.write_bytes(mlmodel.FILE, mlmodel.render(content))
    return content


def _signature(pipeline: Any, given: Any, example: Any, training: Any, spark: Any) -> Any:
    if given is not None:
        return signatures.normalize(given)
    if spark is None:
        return None
    if example is not None:
        inputs = example.spark_schema or spark.createDataFrame(example.frame).schema
    elif training is not None:
        from pyspark.sql.types import StructType

        needed = set(signatures.feature_columns(pipeline, training.schema, spark=spark))
        inputs = StructType([f for f in training.schema.fields if f.name in needed])
    else:
        return None
    try:
        output = signatures.output_field(pipeline, inputs, spark=spark)
    except signatures.Unsupported:
        output = None
    return signatures.from_schemas(inputs, output)


def _session(frame: Any) -> Any | None:
    # The DataFrame's own session: a background thread may have no active one.
    return getattr(frame, "sparkSession", None) or signatures.active_session()


def _require_empty(repository: ArtifactRepository, location: str) -> None:
    if repository.list_artifacts():
        raise AlreadyExistsError(
            f"Cannot save the model: {location[-200:]} already exists and is not empty; choose "
            "another path (artifact_path) or remove what is there."
        )


def is_local(location: str) -> bool:
    """Whether ``location`` is a local folder (a path or ``file://``)."""
    return "://" not in location or location.startswith("file://")


def _local_size(folder: str) -> int:
    """Bytes under a local ``folder`` (MLflow's ``model_size_bytes`` counts the model's files)."""
    with os_errors(folder):
        return sum(
            os.path.getsize(os.path.join(parent, name))
            for parent, _, names in os.walk(folder)
            for name in names
        )


def relative_artifact_path(artifact_path: Any) -> str:
    """``artifact_path`` checked: a non-empty path inside the run's artifact folder."""
    relative = safe_relative_path(artifact_path)
    if not relative:
        raise InvalidArtifactPathError(
            "artifact_path must name a folder inside the run's artifacts, e.g. 'model'."
        )
    return relative
