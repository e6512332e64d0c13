"""pytest plugin for `make compat`: keep only the tests that use Spark.

A test uses Spark when it requests the ``spark`` fixture (the shared SparkSession), is marked
``spark``, or lives in a module that imports pyspark (autologging, models) or needs it to run (Spark Connect: its test
starts a session in a subprocess after ``pytest.importorskip("pyspark")``). Chosen at
collection time, so a new Spark-facing test joins `make compat` without a list to update.
Loaded with ``PYTHONPATH=tests pytest -p compat_spark``.
"""

from __future__ import annotations

import types

import pytest

_NEEDS_PYSPARK = 'importorskip("pyspark")'


def _imports_pyspark(module: types.ModuleType | None) -> bool:
    """Whether a test module holds pyspark (a module or any object defined in pyspark)."""
    for value in vars(module or types.ModuleType("none")).values():
        origin = value.__name__ if isinstance(value, types.ModuleType) else getattr(
            value, "__module__", None
        )
        if isinstance(origin, str) and origin.split(".")[0] == "pyspark":
            return True
    return False


def uses_spark(item: pytest.Item) -> bool:
    """Whether a collected test needs Spark."""
    if "spark" in getattr(item, "fixturenames", ()) or item.get_closest_marker("spark"):
        return True
    module = getattr(item, "module", None)
    if _imports_pyspark(module):
        return True
    source = module.__file__ if module is not None and module.__file__ else None
    return source is not None and _NEEDS_PYSPARK in open(source, encoding="utf-8").read()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept = [item for item in items if uses_spark(item)]
    dropped = [item for item in items if not uses_spark(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept
