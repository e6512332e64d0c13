"""The ``MLmodel`` file of a Spark model and the environment files beside it, as MLflow 3.17's
``mlflow.spark.save_model`` writes them (so MLflow loads what sparktrack saves).

Requirements are not inferred: MLflow starts a second SparkSession to find them (tens of
seconds per model); a Spark model needs pyspark, and sparktrack (and MLflow, when installed,
for ``mlflow.pyfunc``) to be loaded, pinned at the versions installed here.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from functools import cache
from importlib import metadata
from typing import Any

import yaml

from sparktrack.errors import InvalidInputError

__all__ = [
    "FILE",
    "SPARK_DATA",
    "environment_files",
    "mlmodel",
    "parse",
    "render",
]

FILE = "MLmodel"
SPARK_DATA = "sparkml"  # MLflow's _SPARK_MODEL_PATH_SUB
FLAVOR = "spark"
PYFUNC = "python_function"


@cache
def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _python_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def requirements() -> list[str]:
    """``package==version`` lines for what loading the model needs."""
    lines = []
    for package in ("mlflow", "pyspark", "sparktrack"):
        version = _installed(package)
        if version is not None:
            lines.append(f"{package}=={version}")
    return lines


def environment_files() -> dict[str, bytes]:
    """``requirements.txt``, ``python_env.yaml`` and ``conda.yaml`` (MLflow's layouts)."""
    pins = requirements()
    pip = _installed("pip")
    python_env = {
        "python": _python_version(),
        "build_dependencies": [f"pip=={pip}" if pip else "pip", "setuptools", "wheel"],
        "dependencies": ["-r requirements.txt"],
    }
    conda = {
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={_python_version()}",
            f"pip<={pip}" if pip else "pip",
            {"pip": pins},
        ],
        "name": "mlflow-env",
    }
    return {
        "requirements.txt": "\n".join(pins).encode("utf-8"),
        "python_env.yaml": yaml.safe_dump(python_env, sort_keys=False).encode("utf-8"),
        "conda.yaml": yaml.safe_dump(conda, sort_keys=False).encode("utf-8"),
    }


def mlmodel(
    *,
    model_class: str,
    signature: dict[str, Any] | None,
    example_info: dict[str, str] | None,
    run_id: str | None,
    artifact_path: str | None,
    size_bytes: int | None,
) -> dict[str, Any]:
    """The content of ``MLmodel`` for a Spark model saved under ``sparkml/``."""
    import pyspark

    content: dict[str, Any] = {}
    if artifact_path is not None:
        content["artifact_path"] = artifact_path
    content["flavors"] = {
        PYFUNC: {
            "data": SPARK_DATA,
            "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            "loader_module": "mlflow.spark",
            "python_version": _python_version(),
        },
        FLAVOR: {
            "code": None,
            "model_class": model_class,
            "model_data": SPARK_DATA,
            "pyspark_version": pyspark.__version__,
        },
    }
    if _installed("mlflow") is not None:
        content["mlflow_version"] = _installed("mlflow")
    content["model_id"] = None
    if size_bytes is not None:
        content["model_size_bytes"] = size_bytes
    content["model_uuid"] = uuid.uuid4().hex
    if run_id is not None:
        content["run_id"] = run_id
    if example_info is not None:
        content["saved_input_example_info"] = dict(example_info)
    if signature is not None:
        content["signature"] = signature
    content["sparktrack_version"] = _installed("sparktrack")
    content["utc_time_created"] = str(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    return content


def render(content: dict[str, Any]) -> bytes:
    return yaml.safe_dump(content, default_flow_style=False).encode("utf-8")


def parse(data: bytes, *, where: str) -> dict[str, Any]:
    """An ``MLmodel`` file's content (safe YAML: never constructs Python objects).

    Raises:
        InvalidInputError: not YAML, or not a mapping with ``flavors``.
    """
    try:
        content = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InvalidInputError(
            f"{where}/{FILE} is not a valid MLmodel file: {str(error)[:200]}"
        ) from None
    if not isinstance(content, dict) or not isinstance(content.get("flavors"), dict):
        raise InvalidInputError(
            f"{where}/{FILE} has no 'flavors' mapping; it is not an MLflow model file."
        )
    return content
