"""``spark-submit --master spark://... --py-files sparktrack.zip job.py`` on the standalone
cluster: the job's ``sparktrack.spark.session()`` runs on the cluster (not in local mode) with
the job's ``--conf`` settings, the driver and executors import the shipped package, the
executors read the store and the driver logs into it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark_cluster import spark_cluster  # noqa: F401  (fixture)
from sparktrack import TrackingClient

pytestmark = [pytest.mark.slow, pytest.mark.spark]

JOB = '''
import json
import sys

import sparktrack
from sparktrack.spark import session

spark = session(app_name="sparktrack-submitted")
store = sys.argv[1]
sparktrack.set_tracking_uri(store)
with sparktrack.start_run(run_name="submitted") as run:
    points = spark.read.format("sparktrack").option("table", "metrics").load(store).count()
    sparktrack.log_metric("points_seen", points)
modules = spark.sparkContext.parallelize([0], 1).map(
    lambda _: __import__("sparktrack").__file__).collect()
print("RESULT " + json.dumps({"master": spark.sparkContext.master, "points": points,
                              "shuffle": spark.conf.get("spark.sql.shuffle.partitions"),
                              "driver_module": sparktrack.__file__, "executor_module": modules[0],
                              "run_id": run.info.run_id}))
spark.stop()
'''


def test_spark_submit_runs_a_job_on_the_cluster(spark_cluster, tmp_path):
    import pyspark

    root = str(tmp_path / "store")
    client = TrackingClient(root)
    run_id = client.create_run("0").info.run_id
    for step in range(3):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.flush()
    job = tmp_path / "job.py"
    job.write_text(JOB)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPARK_HOME")}
    env.update(PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    done = subprocess.run(
        [str(submit), "--master", spark_cluster.cluster.url,
         "--py-files", str(spark_cluster.package),
         "--conf", "spark.executor.memory=512m", "--conf", "spark.cores.max=1",
         "--conf", "spark.driver.host=127.0.0.1", "--driver-memory", "1g",
         "--conf", "spark.sql.shuffle.partitions=3",  # the job's --conf beats session()'s 4
         str(job), root],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["master"] == spark_cluster.cluster.url
    assert result["shuffle"] == "3"
    assert result["points"] == 3
    for module in (result["driver_module"], result["executor_module"]):
        assert spark_cluster.package.name in module, module  # the shipped zip, not the checkout
    logged = client.get_run(result["run_id"])
    assert logged.data.metrics == {"points_seen": 3.0}
    assert logged.data.tags["mlflow.runName"] == "submitted"
