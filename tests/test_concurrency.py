"""Several processes and threads writing one store at the same time lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from sparktrack import TrackingClient, ViewType
from sparktrack.config import Settings
from sparktrack._store import open_store

WORKERS = 4
RUNS_PER_WORKER = 5
POINTS_PER_RUN = 100

_WORKER = """
import os, sys, time
import sparktrack
from sparktrack import Metric

uri, ready, go, worker = sys.argv[1:5]
runs, points = int(sys.argv[5]), int(sys.argv[6])
sparktrack.set_tracking_uri(uri)
open(ready, "w").close()
while not os.path.exists(go):  # all workers start at the same moment
    time.sleep(0.002)
experiment = sparktrack.set_experiment("shared")
for r in range(runs):
    with sparktrack.start_run(run_name=f"w{worker}-r{r}", tags={"worker": worker}) as run:
        sparktrack.log_param("worker", worker)
        half = points // 2
        for step in range(half):
            sparktrack.log_metric("loss", step, step=step)
        sparktrack.log_batch(metrics=[Metric("loss", float(s), 0, s) for s in range(half, points)])
    print(experiment.experiment_id, run.info.run_id, flush=True)
"""


@pytest.mark.slow
def test_processes_writing_one_store_at_once_lose_nothing(tmp_path, store_uri):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    # Commit often, so the workers' commits really race each other.
    env = {**os.environ, "SPARKTRACK_FLUSH_INTERVAL_SECONDS": "0.05"}
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(WORKERS)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), store_uri, str(ready[i]), str(go), str(i),
             str(RUNS_PER_WORKER), str(POINTS_PER_RUN)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for i in range(WORKERS)
    ]
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in ready) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            break
        time.sleep(0.01)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr

    printed = [line.split() for stdout, _ in outputs for line in stdout.splitlines()]
    assert len({experiment_id for experiment_id, _ in printed}) == 1
    run_ids = {run_id for _, run_id in printed}
    assert len(run_ids) == WORKERS * RUNS_PER_WORKER

    client = TrackingClient(store_uri)
    shared = [e for e in client.search_experiments(view_type=ViewType.ALL) if e.name == "shared"]
    assert len(shared) == 1
    experiment_id = shared[0].experiment_id
    infos = open_store(store_uri).list_run_infos([experiment_id])
    assert {info.run_id for info in infos} == run_ids
    assert {info.status for info in infos} == {"FINISHED"}
    metrics = DeltaTable(os.path.join(store_uri, "metrics")).to_pyarrow_table()
    assert metrics.num_rows == WORKERS * RUNS_PER_WORKER * POINTS_PER_RUN
    steps_by_run: dict[str, list[int]] = {}
    for row in metrics.select(["run_id", "step"]).to_pylist():
        steps_by_run.setdefault(row["run_id"], []).append(row["step"])
    assert {run_id: sorted(steps) for run_id, steps in steps_by_run.items()} == {
        run_id: list(range(POINTS_PER_RUN)) for run_id in run_ids
    }
    summaries = DeltaTable(os.path.join(store_uri, "metric_summaries")).to_pyarrow_table()
    assert pc.sum(summaries.column("count")).as_py() == metrics.num_rows
    for run_id in sorted(run_ids)[:3]:  # and through the API
        run = client.get_run(run_id)
        assert run.data.metrics == {"loss": float(POINTS_PER_RUN - 1)}
        assert run.data.params["worker"] == run.data.tags["worker"]
        assert len(client.get_metric_history(run_id, "loss")) == POINTS_PER_RUN


def test_threads_logging_into_one_store_lose_nothing(store_uri):
    open_store(store_uri, settings=Settings(flush_interval_seconds=0.01))
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("threads")
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(4)]
    start = threading.Barrier(len(run_ids))
    errors = []

    def log(run_id: str) -> None:
        try:
            start.wait(timeout=10)
            for step in range(500):
                client.log_metric(run_id, "m", step, step=step)
                if step % 100 == 0:
                    client.flush()  # explicit flushes racing the background thread
            client.set_terminated(run_id)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for run_id in run_ids:
        assert [m.step for m in client.get_metric_history(run_id, "m")] == list(range(500))
        assert client.get_run(run_id).info.status == "FINISHED"
