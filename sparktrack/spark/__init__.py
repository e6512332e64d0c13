"""Spark side of sparktrack: the session helper, the ``sparktrack`` data source, filters."""

from sparktrack.spark.datasource import register
from sparktrack.spark.filters import filter
from sparktrack.spark.session import check_java, session
from sparktrack.spark.tables import register_tables

__all__ = ["check_java", "filter", "register", "register_tables", "session"]
