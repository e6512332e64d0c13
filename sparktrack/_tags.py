"""Every tag name sparktrack writes or reads, defined once.

MLflow's system tags (``mlflow.*``, as in MLflow's ``mlflow.utils.mlflow_tags``) keep MLflow's
names so MLflow's UI and clients read them; ``sparktrack.*`` tags are sparktrack's own.
"""

from __future__ import annotations

__all__ = [
    "AUTOLOGGING",
    "AUTOLOG_PARAM_MAP_INDEX",
    "AUTOLOG_SUFFIX_PREFIX",
    "DATASET_CONTEXT",
    "GIT_BRANCH",
    "GIT_COMMIT",
    "GIT_REPO_URL",
    "MODEL_PREFIX",
    "NOTE",
    "PARENT_RUN_ID",
    "RUN_NAME",
    "SOURCE_NAME",
    "SOURCE_TYPE",
    "USER",
]

# -- MLflow's system tags --------------------------------------------------------------------------
RUN_NAME = "mlflow.runName"
PARENT_RUN_ID = "mlflow.parentRunId"
USER = "mlflow.user"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
GIT_COMMIT = "mlflow.source.git.commit"
GIT_BRANCH = "mlflow.source.git.branch"
GIT_REPO_URL = "mlflow.source.git.repoURL"
NOTE = "mlflow.note.content"  # a run's description
AUTOLOGGING = "mlflow.autologging"  # the flavor that autologged a run ("pyspark.ml")
DATASET_CONTEXT = "mlflow.data.context"  # an input tag: "train", "eval", ...

# -- sparktrack's own ------------------------------------------------------------------------------
AUTOLOG_PARAM_MAP_INDEX = "sparktrack.autolog.param_map_index"
AUTOLOG_SUFFIX_PREFIX = "sparktrack.autolog.suffix."  # + the suffixed name: the original name
MODEL_PREFIX = "sparktrack.model."  # + a model's artifact path: where and how it was saved
