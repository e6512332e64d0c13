"""Model signatures in MLflow's JSON format, from Spark schemas (no Spark job runs).

MLflow stores a signature in ``MLmodel`` as ``{"inputs": "<json>", "outputs": "<json>",
"params": null}``: each side a JSON list of column specs (``{"type": "double", "name": "a",
"required": true}``). The type mapping is MLflow's ``mlflow.types.utils._infer_spark_type``:
integral types are ``integer``/``long``, dates and timestamps ``datetime``, ML vectors
``sparkml_vector``, arrays ``{"type": "array", "items": ...}``, structs ``{"type": "object",
"properties": ...}``. Map columns need the data to list their keys (MLflow reads it); they make
the signature unknown here, so none is written.

As in MLflow's ``_infer_spark_model_signature``, the output is the model's prediction column,
unnamed.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from sparktrack.errors import InvalidInputError

__all__ = [
    "Unsupported", "active_session", "feature_columns", "from_schemas", "normalize",
    "output_field",
]

logger = logging.getLogger("sparktrack")
# How Spark says a column is missing (MLflow's pattern, plus Spark 4's analysis error).
_MISSING = re.compile(
    r"does not exist|no such struct field|cannot be resolved|UNRESOLVED_COLUMN", re.IGNORECASE
)


class Unsupported(Exception):
    """A Spark type with no MLflow signature type (internal: the signature is left out)."""


def spark_type(data_type: Any) -> dict[str, Any]:
    """MLflow's JSON type of one Spark data type (without name and required)."""
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import types as t

    simple = (
        (t.LongType, "long"),
        (t.IntegralType, "integer"),  # byte, short, int
        (t.FloatType, "float"),
        (t.DoubleType, "double"),
        (t.BooleanType, "boolean"),
        (t.StringType, "string"),
        (t.BinaryType, "binary"),
        (t.DateType, "datetime"),
        (t.TimestampType, "datetime"),
    )
    for spark_class, name in simple:
        if isinstance(data_type, spark_class):
            return {"type": name}
    if isinstance(data_type, t.ArrayType):
        return {"type": "array", "items": spark_type(data_type.elementType)}
    if isinstance(data_type, t.StructType):
        properties = {
            field.name: {**spark_type(field.dataType), "required": not field.nullable}
            for field in data_type.fields
        }
        return {"type": "object", "properties": properties}
    if isinstance(data_type, VectorUDT):
        return {"type": "sparkml_vector"}
    raise Unsupported(data_type.simpleString())


def _columns(fields: list[Any], *, named: bool) -> str:
    specs = []
    for field in fields:
        spec = spark_type(field.dataType)
        if named:
            spec["name"] = field.name
        spec["required"] = True  # MLflow: a Spark column is required whatever its nullability
        specs.append(spec)
    return json.dumps(specs)


def from_schemas(inputs: Any, output: Any | None) -> dict[str, Any] | None:
    """The signature of a model reading ``inputs`` (a Spark StructType) and predicting the
    field ``output`` (None: no output schema); None when a type has no MLflow equivalent."""
    try:
        signature = {
            "inputs": _columns(list(inputs.fields), named=True),
            "outputs": None if output is None else _columns([output], named=False),
            "params": None,
        }
    except Unsupported as unsupported:
        logger.info(
            "sparktrack: no model signature: MLflow signatures have no type for Spark's %s "
            "(pass signature= to log_model to give one)", unsupported,
        )
        return None
    return signature


def active_session() -> Any | None:
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def output_field(model: Any, inputs: Any, *, spark: Any) -> Any | None:
    """The prediction field ``model`` adds to a DataFrame with schema ``inputs``, or None.

    Only the plan is analysed (``transform`` of an empty DataFrame): no Spark job runs. The
    field is ``prediction``, else the last stage's ``outputCol`` (MLflow's rule).
    """
    from pyspark.ml import PipelineModel

    produced = model.transform(spark.createDataFrame([], inputs)).schema
    names = {field.name: field for field in produced.fields}
    if "prediction" in names:
        return names["prediction"]
    last = model.stages[-1] if isinstance(model, PipelineModel) and model.stages else model
    if last.hasParam("outputCol") and last.isDefined("outputCol"):
        return names.get(last.getOrDefault("outputCol"))
    return None


def feature_columns(model: Any, schema: Any, *, spark: Any) -> list[str]:
    """The columns of ``schema`` the model needs, in schema order (MLflow's rule: a column is a
    feature when transforming without it fails because it is missing). Plans only, no job."""
    from pyspark.errors import AnalysisException, IllegalArgumentException

    empty = spark.createDataFrame([], schema)
    needed = []
    for field in schema.fields:
        try:
            model.transform(empty.drop(field.name)).schema  # noqa: B018 - analysis only
        except (IllegalArgumentException, AnalysisException) as error:
            if _MISSING.search(str(error)):
                needed.append(field.name)
                continue
            raise
    return needed


def normalize(signature: Any) -> dict[str, Any] | None:
    """A user's ``signature=`` argument as MLmodel's dict: an MLflow ``ModelSignature``, or a
    dict with ``inputs``/``outputs`` (JSON strings or lists of column specs)."""
    if signature is None or signature is False:
        return None
    if hasattr(signature, "to_dict") and callable(signature.to_dict):
        signature = signature.to_dict()
    if not isinstance(signature, dict) or "inputs" not in signature:
        raise InvalidInputError(
            f"signature must be an mlflow.models.ModelSignature or a dict with 'inputs' and "
            f"'outputs' (column specs as in MLmodel), got {repr(signature)[:200]}."
        )

    def as_json(side: str) -> str | None:
        value = signature.get(side)
        if value is None or isinstance(value, str):
            if isinstance(value, str):
                _check_json(value, side)
            return value
        return json.dumps(value)

    return {"inputs": as_json("inputs"), "outputs": as_json("outputs"),
            "params": as_json("params")}


def _check_json(text: str, side: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInputError(
            f"signature[{side!r}] is not valid JSON: {text[:200]!r}; give a list of column "
            "specs such as [{\"type\": \"double\", \"name\": \"a\", \"required\": true}]."
        ) from None
