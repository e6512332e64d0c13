"""MLflow names a script reaches from the module: ``delete_runs``/``restore_runs`` (Databricks'
bulk calls) and ``pyspark.ml.autolog`` after a bare ``import sparktrack``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import sparktrack
from sparktrack import TrackingClient
from sparktrack.errors import ExperimentNotFoundError, InvalidInputError


def test_delete_runs_and_restore_runs_at_module_level(tracking):
    experiment_id = sparktrack.create_experiment("bulk")
    client = TrackingClient()
    run_ids = [client.create_run(experiment_id, start_time=t).info.run_id
               for t in (1000, 2000, 3000, 4000)]
    assert sparktrack.delete_runs(experiment_id, 3000, max_runs=2) == 2
    assert sparktrack.delete_runs(experiment_id, 3000) == 1
    active = client.search_runs([experiment_id])
    assert [run.info.run_id for run in active] == [run_ids[3]]
    assert sparktrack.restore_runs(experiment_id, 0, max_runs=1) == 1
    assert sparktrack.restore_runs(experiment_id, 0) == 2
    assert len(client.search_runs([experiment_id])) == 4


def test_module_delete_runs_checks_its_arguments(tracking):
    experiment_id = sparktrack.create_experiment("bulk-checks")
    with pytest.raises(InvalidInputError, match="max_runs"):
        sparktrack.delete_runs(experiment_id, 3000, max_runs=0)
    with pytest.raises(ExperimentNotFoundError):
        sparktrack.restore_runs("424242", 0)


@pytest.mark.slow
def test_pyspark_ml_autolog_is_reachable_without_importing_spark():
    """``import sparktrack as mlflow; mlflow.pyspark.ml.autolog()`` as with MLflow, while a
    logging-only script still never imports pyspark."""
    code = textwrap.dedent(
        """
        import sys
        import sparktrack as mlflow
        assert "pyspark" not in sys.modules, "import sparktrack imported pyspark"
        autolog = mlflow.pyspark.ml.autolog
        assert autolog is mlflow.autolog
        assert "pyspark" not in sys.modules, "reaching sparktrack.pyspark imported pyspark"
        assert mlflow.exceptions.MlflowException is mlflow.SparkTrackError
        try:
            mlflow.no_such_name
        except AttributeError as error:
            assert "no_such_name" in str(error)
        else:
            raise AssertionError("unknown attributes must still raise AttributeError")
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
