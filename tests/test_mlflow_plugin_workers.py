"""Two processes serving one store, as ``mlflow server`` 's workers do: a write in one never
works from a stale copy of what the other wrote."""

from __future__ import annotations

import multiprocessing

import pytest

pytest.importorskip("mlflow")

from mlflow.entities import RunStatus, RunTag  # noqa: E402

import sparktrack  # noqa: E402
from sparktrack.mlflow_plugin import SparkTrackStore  # noqa: E402

pytestmark = pytest.mark.slow


def _other_worker(uri: str, run_id: str) -> None:
    """The other worker: tags the run and ends it, each write committed."""
    store = SparkTrackStore(store_uri=uri, commit_each_write=True)
    store.set_tag(run_id, RunTag("from", "other worker"))
    store.update_run_info(run_id, RunStatus.FINISHED, end_time=1_800_000_000_000,
                          run_name=None)


def test_writes_see_what_another_worker_wrote(tmp_path):
    uri = f"sparktrack://{tmp_path / 'store'}"
    store = SparkTrackStore(store_uri=uri, commit_each_write=True)
    run = store.create_run("0", user_id="me", start_time=None, tags=[], run_name="r")
    run_id = run.info.run_id
    store.set_tag(run_id, RunTag("mine", "1"))  # this process now holds the run's state

    worker = multiprocessing.get_context("spawn").Process(target=_other_worker,
                                                          args=(uri, run_id))
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0

    store.delete_tag(run_id, "from")  # a tag only the other worker has seen
    store.update_run_info(run_id, None, None, run_name="renamed")
    info = sparktrack.TrackingClient(str(tmp_path / "store")).get_run(run_id)
    # The rename did not write back the RUNNING status this process had cached.
    assert (info.info.run_name, info.info.status, info.info.end_time) == (
        "renamed", "FINISHED", 1_800_000_000_000)
    assert "from" not in info.data.tags and info.data.tags["mine"] == "1"
