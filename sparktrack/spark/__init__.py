"""Spark side of sparktrack: the session helper, the ``sparktrack`` data source, filters."""

from sparktrack.spark.session import check_java, session

__all__ = ["check_java", "session"]
