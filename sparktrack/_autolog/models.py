"""Saving fitted models with the run, in MLflow's model format (``sparktrack._models``: Spark's
own writer for ``sparkml/``, plus ``MLmodel``), so ``mlflow.spark.load_model`` loads them.

:func:`log_spark_model` is the one path an autologged model takes into a run. Which classes
are saved is decided by an allowlist of fully qualified model class names (MLflow's default
list; a trailing ``*`` matches a prefix); a Pipeline, OneVsRest or tuner model is saved only if
every model inside it is allowed.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from sparktrack import _tags
from sparktrack._artifact_repository import safe_relative_path
from sparktrack._autolog import naming
from sparktrack._models import mlmodel, writer
from sparktrack._models import signature as signatures
from sparktrack.entities import RunTag

__all__ = [
    "DEFAULT_ALLOWLIST",
    "MODEL_TAG_PREFIX",
    "ModelSave",
    "is_allowed",
    "log_spark_model",
    "spark_path",
]

MODEL_TAG_PREFIX = _tags.MODEL_PREFIX

DEFAULT_ALLOWLIST = frozenset(
    {
        "pyspark.ml.classification.LinearSVCModel",
        "pyspark.ml.classification.DecisionTreeClassificationModel",
        "pyspark.ml.classification.GBTClassificationModel",
        "pyspark.ml.classification.LogisticRegressionModel",
        "pyspark.ml.classification.RandomForestClassificationModel",
        "pyspark.ml.classification.NaiveBayesModel",
        "pyspark.ml.clustering.BisectingKMeansModel",
        "pyspark.ml.clustering.KMeansModel",
        "pyspark.ml.clustering.GaussianMixtureModel",
        "pyspark.ml.regression.AFTSurvivalRegressionModel",
        "pyspark.ml.regression.DecisionTreeRegressionModel",
        "pyspark.ml.regression.GBTRegressionModel",
        "pyspark.ml.regression.GeneralizedLinearRegressionModel",
        "pyspark.ml.regression.LinearRegressionModel",
        "pyspark.ml.regression.RandomForestRegressionModel",
        "pyspark.ml.feature.BucketedRandomProjectionLSHModel",
        "pyspark.ml.feature.ChiSqSelectorModel",
        "pyspark.ml.feature.CountVectorizerModel",
        "pyspark.ml.feature.IDFModel",
        "pyspark.ml.feature.ImputerModel",
        "pyspark.ml.feature.MaxAbsScalerModel",
        "pyspark.ml.feature.MinHashLSHModel",
        "pyspark.ml.feature.MinMaxScalerModel",
        "pyspark.ml.feature.OneHotEncoderModel",
        "pyspark.ml.feature.RobustScalerModel",
        "pyspark.ml.feature.RFormulaModel",
        "pyspark.ml.feature.StandardScalerModel",
        "pyspark.ml.feature.StringIndexerModel",
        "pyspark.ml.feature.VarianceThresholdSelectorModel",
        "pyspark.ml.feature.VectorIndexerModel",
        "pyspark.ml.feature.UnivariateFeatureSelectorModel",
        "pyspark.ml.classification.OneVsRestModel",
        "pyspark.ml.pipeline.PipelineModel",
        "pyspark.ml.tuning.CrossValidatorModel",
        "pyspark.ml.tuning.TrainValidationSplitModel",
        "synapse.ml.*",
    }
)


def _listed(name: str, allowlist: frozenset[str]) -> bool:
    return name in allowlist or any(
        entry.endswith("*") and name.startswith(entry[:-1]) for entry in allowlist
    )


def is_allowed(model: Any, allowlist: frozenset[str]) -> bool:
    """Whether ``model`` and every model nested in it are on the allowlist."""
    from pyspark.ml import Model, PipelineModel
    from pyspark.ml.classification import OneVsRestModel

    if not _listed(naming.class_path(model), allowlist):
        return False
    if isinstance(model, OneVsRestModel):
        return all(is_allowed(inner, allowlist) for inner in model.models[:1])
    if isinstance(model, PipelineModel):
        inner = [stage for stage in model.stages if isinstance(stage, Model)]
        return all(is_allowed(stage, allowlist) for stage in inner)
    if naming.is_tuner_model(model):
        return is_allowed(model.bestModel, allowlist)
    return all(
        is_allowed(value, allowlist)
        for value in naming.param_map(model).values()
        if isinstance(value, Model)
    )


def spark_path(artifact_uri: str) -> str:
    """A path Spark's writer understands for a run's artifact location."""
    return writer.spark_path(artifact_uri)


def log_spark_model(
    client: Any,
    run_id: str,
    model: Any,
    artifact_path: str,
    *,
    training: Any = None,
    log_signature: bool = True,
    log_input_example: bool = False,
    signature: Any = None,
    write_data: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Save ``model`` in MLflow's format at ``<artifact_uri>/<artifact_path>`` (Spark's writer
    for ``sparkml/``, then ``MLmodel`` last); returns the MLmodel content.

    The signature comes from ``signature`` if given, else from the feature columns of the
    training DataFrame ``training`` (MLflow autolog's rule; schemas only), and the input
    example is its first rows of those columns (one small Spark job). It never overwrites: an
    existing, non-empty path is an error.
    """
    location = _location(client, run_id, artifact_path)
    if not hasattr(training, "schema"):
        training = None  # fit() was given something other than a DataFrame
    example = None
    if training is not None and log_input_example:
        features = signatures.feature_columns(
            writer.as_pipeline(model), training.schema, spark=training.sparkSession
        )
        example = training.select(*features)
    if signature is None and not log_signature:
        signature = False
    return writer.write(
        model,
        location,
        signature=signature,
        input_example=example,
        training=training if log_signature else None,
        run_id=run_id,
        artifact_path=safe_relative_path(artifact_path),
        write_data=write_data,
        storage_options=client.storage_options,
    )


def _location(client: Any, run_id: str, artifact_path: str) -> str:
    base = client.get_run_info(run_id).artifact_uri.rstrip("/")
    return posixpath.join(base, safe_relative_path(artifact_path))


@dataclass(frozen=True)
class ModelSave:
    """Save ``model`` at ``artifact_path`` of the run and, if given, its best model (a tuner's)
    at ``best_path``, both in MLflow's format; tag the run; then register ``model`` under
    ``registered_model_name`` if given. Calling it does the work on the calling thread."""

    client: Any
    run_id: str
    model: Any
    artifact_path: str
    best_path: str | None = None
    training: Any = None
    log_signature: bool = True
    log_input_example: bool = False
    registered_model_name: str | None = None

    def __call__(self) -> None:
        content = log_spark_model(
            self.client, self.run_id, self.model, self.artifact_path, training=self.training,
            log_signature=self.log_signature, log_input_example=self.log_input_example,
        )
        tags = [RunTag(MODEL_TAG_PREFIX + self.artifact_path, naming.class_path(self.model))]
        if self.best_path is not None:
            best = self.model.bestModel
            log_spark_model(
                self.client, self.run_id, best, self.best_path,
                signature=content.get("signature") or False,
                write_data=self._copy_of_best(best),
            )
            tags.append(RunTag(MODEL_TAG_PREFIX + self.best_path, naming.class_path(best)))
        self.client.log_batch(self.run_id, tags=tags)
        if self.registered_model_name is not None:
            self.client.register_model(
                f"runs:/{self.run_id}/{safe_relative_path(self.artifact_path)}",
                self.registered_model_name,
            )

    def _copy_of_best(self, best: Any) -> Callable[[str], None] | None:
        """A copy of the best model Spark already wrote inside the tuner's save (no Spark job),
        when it is a PipelineModel (saved as it is); None: Spark's writer wraps and saves it."""
        from pyspark.ml import PipelineModel
        from pyspark.ml.pipeline import PipelineSharedReadWrite

        location = _location(self.client, self.run_id, self.artifact_path)
        if not isinstance(best, PipelineModel) or not writer.is_local(location):
            return None  # on an object store the tuner's save is not a local folder to copy
        saved = posixpath.join(spark_path(location), mlmodel.SPARK_DATA)
        # The tuner was saved as the only stage of a PipelineModel (MLflow's format).
        stage = PipelineSharedReadWrite.getStagePath(
            self.model.uid, 0, 1, posixpath.join(saved, "stages")
        )
        return lambda target: _copy_tree(posixpath.join(stage, "bestModel"), target)


def _copy_tree(source: str, destination: str) -> None:
    def fs_path(uri: str) -> tuple[pafs.FileSystem, str]:
        return pafs.FileSystem.from_uri(uri if "://" in uri else "file://" + uri)

    src_fs, src = fs_path(source)
    dst_fs, dst = fs_path(destination)
    pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs)
