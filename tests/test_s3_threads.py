"""Object-store reads never run Python on Arrow's own threads.

deltalake's filesystem is a Python object. Were Arrow's I/O threads to read through it, they
would need the GIL, possibly just after a read returned; a process exiting then aborts ("terminate
called without an active exception", exit -6: seen in CI at the end of a writer process of
``test_s3_commits``). Every read of a table file must therefore happen on a Python thread: in a
writer (its commits read back what they check) and in a new process reading a store.

Run as a script (``python test_s3_threads.py STORE OPTIONS_JSON RUN_ID``), this file is that
new process: it reads the store and prints what it read and on which threads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pyarrow as pa
from deltalake.fs import DeltaStorageHandler

from sparktrack import TrackingClient
from sparktrack.maintenance import Maintenance
from s3_server import s3, s3_store  # noqa: F401  (fixtures)


class _RecordingFile:
    """A file of deltalake's filesystem that notes the thread of every call made on it."""

    def __init__(self, raw, threads: list[threading.Thread]) -> None:
        self._raw = raw
        self._threads = threads

    def __getattr__(self, name: str):
        attribute = getattr(self._raw, name)
        if not callable(attribute):
            return attribute

        def recorded(*args, **kwargs):
            self._threads.append(threading.current_thread())
            return attribute(*args, **kwargs)

        return recorded


def _record_file_threads(patch) -> list[threading.Thread]:
    """The thread of every call on a file opened through deltalake's filesystem, from now on
    (``patch(owner, name, value)`` replaces an attribute)."""
    threads: list[threading.Thread] = []

    def opened(self, path):
        threads.append(threading.current_thread())
        # As deltalake does, for random access and for streams alike.
        return pa.PythonFile(_RecordingFile(self._handler.open_input_file(path), threads),
                             mode="r")

    patch(DeltaStorageHandler, "open_input_file", opened)
    patch(DeltaStorageHandler, "open_input_stream", opened)
    return threads


def _foreign(threads: list[threading.Thread]) -> list[str]:
    """Threads Python did not start (Arrow's): threading names them Dummy-N."""
    return sorted({thread.name for thread in threads if isinstance(thread, threading._DummyThread)})


def _read_store(store: str, options: dict[str, str], run_id: str) -> dict:
    threads = _record_file_threads(setattr)
    client = TrackingClient(store, storage_options=options)
    experiment = client.get_experiment_by_name("threads")
    champion = client.get_model_version_by_alias("churn", "champion")
    history = client.get_metric_history(run_id, "loss")
    runs = client.search_runs([experiment.experiment_id], order_by=["metrics.loss ASC"])
    # The writer moves the alias now: this process reads that change from the log's tail.
    print("loaded", flush=True)
    sys.stdin.readline()
    moved = client.get_model_version_by_alias("churn", "champion")
    return {"champion": [champion.version, champion.run_id], "moved": moved.version,
            "history": [[m.step, m.value] for m in history],
            "runs": [run.info.run_id for run in runs],
            "calls": len(threads), "foreign": _foreign(threads)}


def test_reads_of_an_object_store_run_on_python_threads(s3, s3_store, monkeypatch):
    threads = _record_file_threads(monkeypatch.setattr)
    options = s3.storage_options()
    client = TrackingClient(s3_store, storage_options=options)
    experiment_id = client.create_experiment("threads")
    run_ids = []
    for index in range(3):
        run = client.create_run(experiment_id, run_name=f"r{index}")
        client.log_param(run.info.run_id, "alpha", str(index))
        client.log_metric(run.info.run_id, "loss", 1.0 / (index + 1), step=0)
        client.log_metric(run.info.run_id, "loss", 0.5 / (index + 1), step=1)
        client.set_terminated(run.info.run_id)
        client.flush()  # separate files, so reads span several of them
        run_ids.append(run.info.run_id)
    client.create_registered_model("churn")
    client.create_model_version("churn", f"runs:/{run_ids[0]}/model", run_id=run_ids[0])
    client.set_registered_model_alias("churn", "champion", 1)
    found = client.search_runs([experiment_id], "params.alpha = '1'")
    Maintenance(s3_store, storage_options=options).compact()

    assert [run.info.run_id for run in found] == [run_ids[1]]
    assert threads, "the writer read no file of the store through deltalake's filesystem"
    assert _foreign(threads) == [], "files read on Arrow's threads by the writer"

    client.create_model_version("churn", f"runs:/{run_ids[1]}/model", run_id=run_ids[1])
    reader = subprocess.Popen([sys.executable, __file__, s3_store, json.dumps(options), run_ids[2]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        loaded = reader.stdout.readline().strip()
        client.set_registered_model_alias("churn", "champion", 2)
        stdout, stderr = reader.communicate("\n", timeout=300)
    finally:
        reader.kill()
    assert (loaded, reader.returncode) == ("loaded", 0), stderr
    read = json.loads(stdout.splitlines()[-1])
    assert read["champion"] == [1, run_ids[0]]
    assert read["moved"] == 2
    assert read["history"] == [[0, 1.0 / 3], [1, 0.5 / 3]]
    assert read["runs"] == list(reversed(run_ids))
    assert read["calls"] > 0, "the new process read no file through deltalake's filesystem"
    assert read["foreign"] == [], "files read on Arrow's threads by a new process"


if __name__ == "__main__":
    print(json.dumps(_read_store(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])))
