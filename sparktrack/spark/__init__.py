"""Spark side of sparktrack: the session helper, the ``sparktrack`` data source, filters."""

from sparktrack.spark._datasource import register
from sparktrack.spark._filters import filter
from sparktrack.spark._session import check_java, session
from sparktrack.spark._tables import register_tables

__all__ = ["check_java", "filter", "register", "register_tables", "session"]
