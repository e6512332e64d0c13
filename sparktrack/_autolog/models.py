"""Saving fitted models with the run: Spark's own writer, under the run's artifacts.

:func:`log_spark_model` is the one path a model takes into a run (the model registry will
build on it). Which classes are saved is decided by an allowlist of fully qualified model
class names (MLflow's default list; a trailing ``*`` matches a prefix); a Pipeline, OneVsRest
or tuner model is saved only if every model inside it is allowed.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from sparktrack import _tags
from sparktrack._artifact_repository import safe_relative_path
from sparktrack._autolog import naming
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
    if "://" in artifact_uri:
        return artifact_uri
    return os.path.abspath(artifact_uri)


def log_spark_model(client: Any, run_id: str, model: Any, artifact_path: str) -> str:
    """Save ``model`` with its Spark ML writer at ``<artifact_uri>/<artifact_path>``.

    Returns the saved location. It never overwrites: an existing path is an error.
    """
    base = spark_path(client.get_run_info(run_id).artifact_uri)
    target = posixpath.join(base, safe_relative_path(artifact_path))
    model.write().save(target)
    return target


@dataclass(frozen=True)
class ModelSave:
    """Save ``model`` at ``artifact_path`` of the run and, if given, its best model (a tuner's)
    at ``best_path``; then tag the run. Calling it does the work on the calling thread."""

    client: Any
    run_id: str
    model: Any
    artifact_path: str
    best_path: str | None = None

    def __call__(self) -> None:
        saved = log_spark_model(self.client, self.run_id, self.model, self.artifact_path)
        tags = [RunTag(MODEL_TAG_PREFIX + self.artifact_path, naming.class_path(self.model))]
        if self.best_path is not None:
            # The tuner's writer stored the best model in <path>/bestModel: copy it, no Spark job.
            base = spark_path(self.client.get_run_info(self.run_id).artifact_uri)
            best = posixpath.join(base, safe_relative_path(self.best_path))
            _copy_tree(f"{saved}/bestModel", best)
            best_class = naming.class_path(self.model.bestModel)
            tags.append(RunTag(MODEL_TAG_PREFIX + self.best_path, best_class))
        self.client.log_batch(self.run_id, tags=tags)


def _copy_tree(source: str, destination: str) -> None:
    def fs_path(uri: str) -> tuple[pafs.FileSystem, str]:
        return pafs.FileSystem.from_uri(uri if "://" in uri else "file://" + uri)

    src_fs, src = fs_path(source)
    dst_fs, dst = fs_path(destination)
    pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs)
