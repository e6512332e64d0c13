"""Input examples as MLflow stores them: ``input_example.json`` (pandas "split" orient) and
``serving_input_example.json`` (the request body ``mlflow models serve`` accepts).

Accepted examples: a pandas DataFrame, a dict of column -> values (or -> one value), a list of
row dicts, or a Spark DataFrame (its first rows: one small Spark job). At most
:data:`MAX_ROWS` rows are kept; ML vectors become lists, as in MLflow's autologging.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

from sparktrack.errors import InvalidInputError

__all__ = ["Example", "MAX_ROWS", "to_example"]

MAX_ROWS = 5  # MLflow's autolog INPUT_EXAMPLE_SAMPLE_ROWS
INFO = {
    "artifact_path": "input_example.json",
    "pandas_orient": "split",
    "serving_input_path": "serving_input_example.json",
    "type": "dataframe",
}


@dataclass(frozen=True)
class Example:
    """An example's rows as a pandas DataFrame, and the Spark schema when it came from Spark."""

    frame: Any
    spark_schema: Any | None = None

    def files(self) -> dict[str, bytes]:
        """The example's files, by name."""
        split = {
            "columns": [str(column) for column in self.frame.columns],
            "data": [
                [_plain(value) for value in row] for row in self.frame.itertuples(index=False)
            ],
        }
        return {
            INFO["artifact_path"]: json.dumps(split).encode("utf-8"),
            INFO["serving_input_path"]: json.dumps({"dataframe_split": split}, indent=2).encode(
                "utf-8"
            ),
        }


def to_example(value: Any) -> Example:
    """``value`` as an :class:`Example`.

    Raises:
        InvalidInputError: not a kind of example listed in the module docstring, or empty.
    """
    import pandas as pd

    if _is_spark_frame(value):
        from pyspark.ml.functions import vector_to_array
        from pyspark.ml.linalg import VectorUDT

        rows = value.limit(MAX_ROWS)
        for field in value.schema.fields:
            if isinstance(field.dataType, VectorUDT):
                rows = rows.withColumn(field.name, vector_to_array(field.name))
        return Example(rows.toPandas(), spark_schema=value.schema)
    if isinstance(value, pd.DataFrame):
        frame = value
    elif isinstance(value, dict):
        frame = pd.DataFrame(value if _columnar(value) else [value])
    elif isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        frame = pd.DataFrame(value)
    else:
        raise InvalidInputError(
            f"input_example must be a pandas DataFrame, a dict of column -> values, a list of "
            f"row dicts or a Spark DataFrame, got {repr(value)[:200]}."
        )
    if frame.empty or not len(frame.columns):
        raise InvalidInputError("input_example has no rows or no columns; give at least one row.")
    return Example(frame.head(MAX_ROWS).reset_index(drop=True))


def _columnar(value: dict) -> bool:
    return all(isinstance(column, (list, tuple)) for column in value.values())


def _is_spark_frame(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("pyspark.sql") and type(value).__name__ == "DataFrame"


def _plain(value: Any) -> Any:
    """A JSON-ready value (numpy scalars, timestamps, bytes, NaN as null)."""
    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return [_plain(item) for item in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):  # pyspark 4.0 gives bytearray
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    if hasattr(value, "toArray"):  # an ML vector
        return [float(item) for item in value.toArray()]
    return value
