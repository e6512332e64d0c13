"""``sparktrack.pyspark.ml.autolog()``: the same function as :func:`sparktrack.autolog`."""

from sparktrack._autolog import autolog

__all__ = ["autolog"]
