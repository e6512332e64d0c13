"""A Spark DataFrame as a run input: MLflow's dataset fields, filled with sparktrack's facts.

The facts come from :func:`sparktrack.repro.describe_input` (one Spark job for the
fingerprint; the DataFrame is read, never persisted or unpersisted):

- ``digest``: the content fingerprint (the same rows give the same digest, whatever their
  order or partitioning);
- ``source_type`` / ``source``: where the rows came from, in the JSON shape of MLflow's dataset
  source of that kind: ``delta_table`` (``{"path", "delta_table_version"}``) for one Delta
  table, ``spark`` (``{"path"}``) for files, ``code`` (``{"tags": <the run's source tags>}``,
  what MLflow's autologging records for every input) for data built in memory;
- ``schema``: MLflow's ``{"mlflow_colspec": [...]}`` JSON, or None where MLflow would infer
  none (a type it does not map) or would need a Spark job (map columns);
- ``profile``: JSON with ``num_rows``, ``content_hash``, ``layout_hash``, ``files`` and, when
  known, ``format``, ``delta_version``, ``delta_snapshot_match``.
"""

from __future__ import annotations

import json
from typing import Any

from sparktrack.entities import Dataset, DatasetInput, InputTag
from sparktrack._store.inputs import CONTEXT_TAG

__all__ = [
    "DEFAULT_DATASET_NAME",
    "TRAIN_CONTEXT",
    "dataset_from_description",
    "describe_dataset",
    "mlflow_schema",
    "training_input",
]

#: MLflow's name for a dataset given none (its pyspark.ml autologging names none).
DEFAULT_DATASET_NAME = "dataset"
#: The ``mlflow.data.context`` of the training DataFrame, as MLflow's autologging sets it.
TRAIN_CONTEXT = "train"

_INTEGER_FIELDS = ("files", "delta_version")


def training_input(df: Any) -> DatasetInput:
    """The training DataFrame of a fit as MLflow's autologging records it (context ``train``)."""
    dataset, _ = describe_dataset(df)
    return DatasetInput(dataset=dataset, tags=[InputTag(CONTEXT_TAG, TRAIN_CONTEXT)])


def describe_dataset(
    df: Any, *, name: str = DEFAULT_DATASET_NAME, input_name: str = "training"
) -> tuple[Dataset, dict[str, str]]:
    """The DataFrame as a :class:`Dataset` named ``name``, and ``describe_input``'s tags
    (keyed ``input.<input_name>.<field>``) it was built from."""
    from sparktrack.repro import describe_input

    described = describe_input(df, name=input_name)
    dataset = dataset_from_description(described, name=name, schema=mlflow_schema(df.schema))
    return dataset, described


def dataset_from_description(
    described: dict[str, str], *, name: str, schema: str | None
) -> Dataset:
    """A :class:`Dataset` from ``describe_input``'s ``input.<name>.<field>`` tags."""
    fields = {key.split(".", 2)[2]: value for key, value in described.items()}
    source_type, source = _source(fields)
    return Dataset(
        name=name,
        digest=fields["content_hash"],
        source_type=source_type,
        source=source,
        schema=schema,
        profile=json.dumps(_profile(fields)),
    )


def _source(fields: dict[str, str]) -> tuple[str, str]:
    from sparktrack.repro._inputs import IN_MEMORY

    location = fields["source"]
    if location == IN_MEMORY:
        from sparktrack._context import current_user, source_info, system_tags

        return "code", json.dumps({"tags": system_tags(current_user(), source_info())})
    version = fields.get("delta_version")
    if fields.get("format") == "delta" and version is not None and "," not in version:
        return "delta_table", json.dumps({"path": location, "delta_table_version": int(version)})
    return "spark", json.dumps({"path": location})


def _profile(fields: dict[str, str]) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "num_rows": int(fields["rows"]),
        "content_hash": fields["content_hash"],
        "layout_hash": fields["layout_hash"],
    }
    for key in ("files", "format", "delta_version", "delta_snapshot_match"):
        value = fields.get(key)
        if value is None:
            continue
        if key == "files" or (key == "delta_version" and "," not in value):
            profile[key] = int(value)
        elif key == "delta_snapshot_match":
            profile[key] = value == "true"
        else:
            profile[key] = value
    return profile


def mlflow_schema(spark_schema: Any) -> str | None:
    """MLflow's schema JSON of a DataFrame schema (``SparkDataset.to_dict()["schema"]``)."""
    columns = []
    for column in spark_schema.fields:
        spec = _spark_type(column.dataType)
        if spec is None:
            return None
        columns.append({**spec, "name": column.name, "required": True})
    return json.dumps({"mlflow_colspec": columns})


def _spark_type(kind: Any) -> dict[str, Any] | None:
    # The order and the tests are those of mlflow.types.utils._infer_spark_type, so the same
    # Spark types map to the same MLflow types; None where MLflow infers no schema.
    from pyspark.sql import types as T

    if isinstance(kind, T.NumericType):
        if isinstance(kind, T.IntegralType):
            return {"type": "long" if isinstance(kind, T.LongType) else "integer"}
        if isinstance(kind, T.FloatType):
            return {"type": "float"}
        if isinstance(kind, T.DoubleType):
            return {"type": "double"}
        return None  # decimals
    simple = {
        T.BooleanType: "boolean",
        T.StringType: "string",
        T.BinaryType: "binary",
        T.DateType: "datetime",
        T.TimestampType: "datetime",
    }
    for spark_type, name in simple.items():
        if isinstance(kind, spark_type):
            return {"type": name}
    if isinstance(kind, T.ArrayType):
        items = _spark_type(kind.elementType)
        return None if items is None else {"type": "array", "items": items}
    if isinstance(kind, T.StructType):
        properties = {}
        for member in kind.fields:
            spec = _spark_type(member.dataType)
            if spec is None:
                return None
            properties[member.name] = {**spec, "required": not member.nullable}
        return {"type": "object", "properties": properties} if properties else None
    if type(kind).__name__ == "VectorUDT" and type(kind).__module__.startswith("pyspark.ml"):
        return {"type": "sparkml_vector"}
    return None  # maps (MLflow reads their keys with a Spark job), intervals, variants, ...
