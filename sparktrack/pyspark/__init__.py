"""MLflow-style integration namespaces: ``sparktrack.pyspark.ml.autolog()``.

Reachable as ``sparktrack.pyspark`` after ``import sparktrack``; importing it does not import
Spark (``autolog()`` does).
"""

from sparktrack.pyspark import ml

__all__ = ["ml"]
