"""Loading a Spark model folder: MLflow's format (``MLmodel`` + ``sparkml/``), or a folder
Spark's writer wrote directly (sparktrack's autologging before it used MLflow's format).

Loading never unpickles and never imports a class from outside ``pyspark.ml``: the class named
in ``MLmodel`` and every class named in the Spark metadata files (the pipeline and each stage,
nested models included) must be a ``pyspark.ml`` class or its JVM counterpart
(``org.apache.spark.ml``), checked before Spark reads anything.
"""

from __future__ import annotations

import atexit
import importlib
import json
import posixpath
import shutil
import tempfile
from typing import Any

import pyarrow.fs as pafs

from sparktrack._artifact_repository import ArtifactRepository, os_errors, safe_relative_path
from sparktrack._delta.paths import bucket_filesystem
from sparktrack._models import cache, mlmodel
from sparktrack._models.writer import is_local, spark_path
from sparktrack.errors import (
    ArtifactNotFoundError,
    InvalidArtifactPathError,
    InvalidInputError,
    StoreError,
)

__all__ = ["ALLOWED_PREFIXES", "load_location"]

#: Python and JVM class-name prefixes a model folder may name.
ALLOWED_PREFIXES = ("pyspark.ml.", "org.apache.spark.ml.")
_METADATA = "metadata"


def load_location(location: str, *, storage_options: dict[str, str] | None = None) -> Any:
    """The Spark model in the folder ``location`` (a PipelineModel for MLflow-format folders).

    A folder on an object store (``storage_options`` as for the store) is downloaded to a local
    folder first, kept until the process exits, and loaded from there: reading ``s3://`` from
    Spark needs the Hadoop S3A jars, which come from Maven and are not part of pyspark.

    A folder loaded before in this SparkContext whose files have not changed is answered with
    a copy of that model, without reading it again (:mod:`.cache`).

    Raises:
        ArtifactNotFoundError: no model there.
        InvalidInputError: the MLmodel file is not valid, has no ``spark`` flavor, or a class
            it or the Spark metadata names is not a ``pyspark.ml`` class.
        StoreError: Spark could not read the model files.
    """
    if is_local(location):
        folder = spark_path(location)  # absolute: the same folder whatever the working folder
        return cache.loaded(folder, cache.fingerprint(folder), lambda: _load_local(location))
    try:
        filesystem, path = bucket_filesystem(location, storage_options)
    except (OSError, ValueError):
        found = None  # not listable: the download reports why
    else:
        found = cache.fingerprint(path, filesystem=filesystem)
    return cache.loaded(location, found,
                        lambda: _load_local(_downloaded(location, storage_options)))


def _load_local(location: str) -> Any:
    repository = ArtifactRepository(location)
    shown = location[-200:]
    try:
        raw = repository.read_bytes(mlmodel.FILE)
    except ArtifactNotFoundError:
        raw = None
    if raw is None:
        return _load_spark_folder(location, shown)
    content = mlmodel.parse(raw, where=shown)
    flavor = content["flavors"].get(mlmodel.FLAVOR)
    if not isinstance(flavor, dict):
        raise InvalidInputError(
            f"The model at {shown} has no 'spark' flavor (flavors: "
            f"{', '.join(map(str, content['flavors']))[:200]}); sparktrack.spark.load_model "
            "loads Spark ML models only."
        )
    model_class = _model_class(flavor.get("model_class", "pyspark.ml.pipeline.PipelineModel"),
                               shown)
    try:
        data = safe_relative_path(flavor.get("model_data", mlmodel.SPARK_DATA))
    except InvalidArtifactPathError as error:
        raise InvalidInputError(
            f"The MLmodel file at {shown} has a model_data path that leaves the model folder: "
            f"{error.message}"
        ) from None
    folder = posixpath.join(location.rstrip("/"), data) if data else location
    _check_metadata_classes(folder, shown)
    return _spark_load(model_class, folder, shown)


def _downloaded(location: str, storage_options: dict[str, str] | None) -> str:
    folder = tempfile.mkdtemp(prefix="sparktrack-model-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    ArtifactRepository(location, storage_options=storage_options).download_artifacts("", folder)
    return folder


def _load_spark_folder(location: str, shown: str) -> Any:
    classes = _metadata_classes(location)
    if not classes:
        raise ArtifactNotFoundError(
            f"No model at {shown}: it has neither an MLmodel file nor Spark model metadata. "
            "Give the folder log_model or autologging saved (e.g. 'runs:/<run_id>/model')."
        )
    _check_metadata_classes(location, shown, classes)
    top = classes.get(posixpath.join(location.rstrip("/"), _METADATA))
    if top is None:
        raise ArtifactNotFoundError(
            f"No model at {shown}: no MLmodel file and no Spark metadata folder at its top."
        )
    return _spark_load(_model_class(_python_name(top), shown), location, shown)


def _python_name(name: str) -> str:
    # Spark's own rule (pyspark.ml.wrapper.JavaParams._from_java) for JVM-written models.
    return name.replace("org.apache.spark", "pyspark")


def _model_class(name: Any, shown: str) -> type:
    from pyspark.ml.util import MLReadable

    if not isinstance(name, str) or not name.startswith("pyspark.ml.") or (
        name.startswith("pyspark.ml.connect.")
    ):
        raise InvalidInputError(
            f"The model at {shown} names the class {str(name)[:200]!r}; sparktrack loads only "
            "pyspark.ml model classes (e.g. pyspark.ml.pipeline.PipelineModel) and never "
            "imports other code from a model folder."
        )
    module_name, _, class_name = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise InvalidInputError(
            f"The model at {shown} names the class {name[:200]!r}, which this pyspark does not "
            "have; load it with the pyspark version it was saved with."
        ) from None
    if not isinstance(found, type) or not issubclass(found, MLReadable):
        raise InvalidInputError(
            f"The model at {shown} names {name[:200]!r}, which is not a readable pyspark.ml "
            "model class."
        )
    return found


def _check_metadata_classes(folder: str, shown: str, classes: dict[str, str] | None = None
                            ) -> None:
    for metadata_folder, name in (classes or _metadata_classes(folder)).items():
        if not name.startswith(ALLOWED_PREFIXES) or name.startswith("pyspark.ml.connect."):
            where = posixpath.relpath(metadata_folder, folder)
            raise InvalidInputError(
                f"The model at {shown} holds a stage of class {name[:200]!r} (in {where}); "
                "sparktrack loads only pyspark.ml / org.apache.spark.ml classes and never "
                "imports other code from a model folder."
            )


def _metadata_classes(folder: str) -> dict[str, str]:
    """{metadata folder: class} of every Spark metadata file under ``folder``."""
    local = "://" not in folder or folder.startswith("file://")
    with os_errors(folder):
        if local:
            filesystem, root = pafs.LocalFileSystem(), spark_path(folder)
        else:
            filesystem, root = pafs.FileSystem.from_uri(folder)
        if filesystem.get_file_info(root).type != pafs.FileType.Directory:
            return {}
        entries = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    found = {}
    base = folder.rstrip("/")
    for entry in entries:
        parent = posixpath.dirname(entry.path)
        if (
            entry.type != pafs.FileType.File
            or posixpath.basename(parent) != _METADATA
            or not entry.base_name.startswith("part-")
        ):
            continue
        with os_errors(entry.path), filesystem.open_input_stream(entry.path) as stream:
            first = stream.read().split(b"\n", 1)[0]
        try:
            name = json.loads(first)["class"]
        except (ValueError, KeyError, TypeError):
            name = "<unreadable metadata>"
        found[posixpath.join(base, posixpath.relpath(parent, root))] = str(name)
    return found


def _spark_load(model_class: type, folder: str, shown: str) -> Any:
    try:
        return model_class.load(spark_path(folder))
    except Exception as error:  # noqa: BLE001 - Py4J and Spark errors have no common base
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StoreError(
            f"Spark could not read the model at {shown}: {first[:200]}"
        ) from error
