"""The commit protocol on S3: deltalake writes each Delta log entry with a conditional PUT
(``If-None-Match: *``), so the store refuses a second entry of the same version and concurrent
writers lose nothing."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from sparktrack import TrackingClient
from s3_server import s3, s3_store  # noqa: F401  (fixtures)

PROCESSES = 8
RUNS_PER_PROCESS = 25


def _conditional(s3, store: str) -> list[tuple[str, str | None]]:
    prefix = "/" + s3.bucket + "/" + store.removeprefix(f"s3://{s3.bucket}/") + "/"
    return [put for put in s3.log_entry_puts() if put[0].startswith(prefix)]


def test_every_log_entry_is_a_conditional_put(s3, s3_store):
    client = TrackingClient(s3_store, storage_options=s3.storage_options())
    experiment_id = client.create_experiment("conditional")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "m", 1.0)
    client.set_terminated(run.info.run_id)
    client.flush()
    puts = _conditional(s3, s3_store)
    tables = {path.split("/_delta_log/")[0].rsplit("/", 1)[1] for path, _ in puts}
    assert {"experiments", "runs", "metrics", "metric_summaries"} <= tables
    # If-None-Match: * -- the server refuses an entry that exists: no lost update.
    assert {header for _, header in puts} == {"*"}


def test_unsafe_rename_flag_does_not_weaken_commits(s3, s3_store):
    # deltalake 1.x commits with a conditional PUT whether AWS_S3_ALLOW_UNSAFE_RENAME is set
    # or not: the flag selects nothing any more, so sparktrack accepts it.
    options = s3.storage_options(AWS_S3_ALLOW_UNSAFE_RENAME="true")
    client = TrackingClient(s3_store, storage_options=options)
    experiment_id = client.create_experiment("flagged")
    assert client.get_experiment(experiment_id).name == "flagged"
    assert {header for _, header in _conditional(s3, s3_store)} == {"*"}


def _log_runs(store: str, options: dict[str, str], experiment_id: str, worker: int,
              count: int, start_at: float) -> None:
    client = TrackingClient(store, storage_options=options)
    time.sleep(max(0.0, start_at - time.time()))  # all writers start together
    for index in range(count):
        run = client.create_run(experiment_id, run_name=f"w{worker}-r{index}")
        client.log_param(run.info.run_id, "worker", str(worker))
        client.log_param(run.info.run_id, "index", str(index))
        client.log_metric(run.info.run_id, "loss", float(index), step=0)
        client.log_metric(run.info.run_id, "loss", float(index) / 2, step=1)
        client.set_terminated(run.info.run_id)
    client.flush()


def _raw_params(store: str, options: dict[str, str], run_id: str) -> dict[str, str]:
    """The run's rows of the params table read with deltalake alone (no sparktrack)."""
    from deltalake import DeltaTable

    rows = DeltaTable(f"{store}/params", storage_options=options).to_pyarrow_table()
    return {row["key"]: row["value"] for row in rows.to_pylist() if row["run_id"] == run_id}


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(s3, s3_store):
    options = s3.storage_options()
    experiment_id = TrackingClient(s3_store, storage_options=options).create_experiment("race")
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 8  # after every child has imported sparktrack
    workers = [
        context.Process(target=_log_runs, args=(s3_store, options, experiment_id, worker,
                                                 RUNS_PER_PROCESS, start_at))
        for worker in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES

    reader = TrackingClient(s3_store, storage_options=options)
    runs = reader.search_runs([experiment_id], max_results=1000)
    assert len(runs) == PROCESSES * RUNS_PER_PROCESS
    names = {run.info.run_name for run in runs}
    assert names == {f"w{w}-r{i}" for w in range(PROCESSES) for i in range(RUNS_PER_PROCESS)}
    for run in runs:
        worker, index = run.info.run_name[1:].split("-r")
        assert run.info.status == "FINISHED"
        assert run.data.params == {"worker": worker, "index": index}, (
            f"{run.info.run_name}: {_raw_params(s3_store, options, run.info.run_id)} in the "
            "params table itself")  # a lost write or a wrong read
        assert run.data.metrics == {"loss": float(index) / 2}
    history = reader.get_metric_history(runs[0].info.run_id, "loss")
    assert [point.step for point in history] == [0, 1]
    assert {header for _, header in _conditional(s3, s3_store)} == {"*"}
