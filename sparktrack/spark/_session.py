"""The local SparkSession that sparktrack's jobs and tests use.

It sets what the Python Data Source needs (Python workers on the driver's interpreter, filter
pushdown on where pyspark has it), registers the ``sparktrack`` data source, and fails with one
clear line when Java is missing instead of a Py4J stack trace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from sparktrack.errors import MissingRequirementError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["check_java", "session"]

_JAVA_HINT = (
    "Java 17 is required to run Spark but no working `java` was found. "
    "Install it (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`; macOS: "
    "`brew install openjdk@17`) or set JAVA_HOME to a Java 17 installation."
)


def check_java() -> None:
    """Raise :class:`MissingRequirementError` with an install hint when Java cannot run."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise MissingRequirementError(_JAVA_HINT)
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise MissingRequirementError(f"{_JAVA_HINT} ({java} -version failed: {exc})") from exc


def _launched_by_spark_submit() -> bool:
    # spark-submit (and the pyspark shell) start Python from a running JVM and hand it the
    # gateway's port; a plain `python` process starts its own JVM later, without this variable.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _submitted_settings() -> set[str]:
    """The settings spark-submit was given (its JVM holds them as system properties)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM, starts nothing
    return {key for key, _ in SparkConf().getAll()}


def session(
    *,
    app_name: str = "sparktrack",
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """Return a SparkSession ready for sparktrack (created if none is active).

    Sets ``spark.pyspark.python`` to this interpreter unless ``PYSPARK_PYTHON`` is set, turns on
    Python data source filter pushdown (pyspark >= 4.1; 4.0 has none), keeps shuffles small for
    local work, and registers the ``sparktrack`` data source. ``conf`` entries override the
    defaults.

    ``master`` defaults to ``local[2]`` in a plain ``python`` process. Under ``spark-submit``
    it defaults to the submitted ``--master``, and each ``--conf`` given there wins over the
    defaults above (not over ``conf``).
    """
    check_java()
    from pyspark.sql import SparkSession

    from sparktrack.spark._datasource import PUSHDOWN_AVAILABLE, register

    settings = {
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": "2g",
    }
    if PUSHDOWN_AVAILABLE:
        # Off by default in Spark; pyspark 4.0 has no such setting (and no pushdown).
        settings["spark.sql.python.filterPushdown.enabled"] = "true"
    if not os.environ.get("PYSPARK_PYTHON"):
        # pyspark's SparkContext takes the workers' interpreter from this variable (the
        # spark.pyspark.python setting alone does not reach RDD and data source workers).
        os.environ["PYSPARK_PYTHON"] = sys.executable
        settings["spark.pyspark.python"] = sys.executable
        settings["spark.pyspark.driver.python"] = sys.executable
    if _launched_by_spark_submit():
        given = _submitted_settings()
        settings = {key: value for key, value in settings.items() if key not in given}
    settings.update(conf or {})
    builder = SparkSession.builder.appName(app_name)
    if master is None and not _launched_by_spark_submit():
        master = "local[2]"
    if master is not None:
        # Set here, it would override spark-submit's --master: leave that one alone.
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    register(spark)
    return spark
