"""``mlflow.spark`` after ``import sparktrack as mlflow``: reachable without importing pyspark
at ``import sparktrack``, with MLflow's positional parameters."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import pytest


@pytest.mark.slow
def test_spark_namespace_is_reachable_lazily():
    code = textwrap.dedent(
        """
        import sys
        import sparktrack as mlflow
        assert "pyspark" not in sys.modules, "import sparktrack imported pyspark"
        assert mlflow.spark.log_model.__module__ == "sparktrack._models.api"
        for name in ("log_model", "save_model", "load_model", "predict"):
            assert callable(getattr(mlflow.spark, name)), name
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def test_positional_parameters_are_mlflows():
    mlflow_spark = pytest.importorskip("mlflow.spark")
    import sparktrack.spark

    def positional(function):
        return [p.name for p in inspect.signature(function).parameters.values()
                if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]

    for name in ("log_model", "save_model", "load_model"):
        ours = positional(getattr(sparktrack.spark, name))
        assert ours == positional(getattr(mlflow_spark, name))[: len(ours)], name
    assert positional(sparktrack.spark.log_model) == ["spark_model", "artifact_path"]
