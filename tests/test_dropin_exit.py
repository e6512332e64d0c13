"""Runs a script leaves open are ended when the interpreter exits, as MLflow ends them.

MLflow 3.17 (``atexit.register(_safe_end_run)`` in ``mlflow/tracking/fluent.py``) writes FINISHED
whatever the reason for the exit. sparktrack writes FAILED when the script dies of an uncaught
exception and KILLED for Ctrl-C, as a ``with start_run()`` block does; ``sys.exit()`` and the end
of the script are FINISHED. Each case is a real interpreter; the store's flush interval is an
hour, so only the exit flush commits: a run ended after that flush would stay RUNNING.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sparktrack import TrackingClient

_PROLOGUE = """
import json, sys, threading
import sparktrack
from sparktrack import TrackingClient
from sparktrack.config import Settings
from sparktrack._store import open_store

open_store(sys.argv[1], settings=Settings(flush_interval_seconds=3600.0))
sparktrack.set_tracking_uri(sys.argv[1])

def report(**run_ids):
    print(json.dumps(run_ids), flush=True)

"""

# name: (script body, expected exit code or None, expected status of each reported run)
_CASES = {
    "end-of-script": (
        "run = sparktrack.start_run()\n"
        "sparktrack.log_metric('m', 1.0)\n"
        "report(run=run.info.run_id)\n",
        0, {"run": "FINISHED"},
    ),
    "implicit-run": (
        "sparktrack.log_metric('m', 1.0)\n"
        "report(run=sparktrack.active_run().info.run_id)\n",
        0, {"run": "FINISHED"},
    ),
    "uncaught-exception": (
        "run = sparktrack.start_run()\n"
        "report(run=run.info.run_id)\n"
        "raise RuntimeError('training crashed')\n",
        1, {"run": "FAILED"},
    ),
    "ctrl-c": (
        "run = sparktrack.start_run()\n"
        "report(run=run.info.run_id)\n"
        "raise KeyboardInterrupt\n",
        None, {"run": "KILLED"},
    ),
    "sys-exit": (  # the exit code is not known to exit hooks; MLflow writes FINISHED too
        "run = sparktrack.start_run()\n"
        "report(run=run.info.run_id)\n"
        "sys.exit(3)\n",
        3, {"run": "FINISHED"},
    ),
    "nested-and-threads": (
        "parent = sparktrack.start_run()\n"
        "child = sparktrack.start_run(nested=True)\n"
        "seen = {}\n"
        "def work():\n"
        "    seen['thread'] = sparktrack.start_run().info.run_id\n"
        "worker = threading.Thread(target=work)\n"
        "worker.start(); worker.join()\n"
        "report(parent=parent.info.run_id, child=child.info.run_id, thread=seen['thread'])\n",
        0, {"parent": "FINISHED", "child": "FINISHED", "thread": "FINISHED"},
    ),
    "status-set-by-a-client": (
        "run = sparktrack.start_run()\n"
        "TrackingClient(sys.argv[1]).set_terminated(run.info.run_id, 'KILLED', 1234)\n"
        "report(run=run.info.run_id)\n",
        0, {"run": "KILLED"},
    ),
}


@pytest.mark.slow
def test_open_runs_are_ended_at_interpreter_exit(tmp_path):
    processes = {}
    for name, (body, _, _) in _CASES.items():  # started together: one interpreter start-up
        script = tmp_path / f"{name}.py"
        script.write_text(_PROLOGUE + body)
        store_uri = str(tmp_path / name)
        processes[name] = (store_uri, subprocess.Popen(
            [sys.executable, str(script), store_uri], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        ))
    for name, (store_uri, process) in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        _, expected_code, expected = _CASES[name]
        if expected_code is not None:
            assert process.returncode == expected_code, (name, stderr)
        assert "could not" not in stderr, (name, stderr)
        run_ids = json.loads(stdout.splitlines()[0])
        client = TrackingClient(store_uri)
        infos = {key: client.get_run_info(run_id) for key, run_id in run_ids.items()}
        assert {key: info.status for key, info in infos.items()} == expected, name
        assert all(info.end_time is not None for info in infos.values()), name
        if name == "nested-and-threads":  # innermost first
            assert infos["child"].end_time <= infos["parent"].end_time
        if name == "status-set-by-a-client":
            assert infos["run"].end_time == 1234


@pytest.mark.slow
def test_an_error_shown_by_an_interactive_session_does_not_fail_its_run(tmp_path):
    """``python -i`` (like a REPL or a notebook) shows an error and goes on; the session ending
    later is not a crash, so the run ends FINISHED, as in MLflow."""
    script = tmp_path / "interactive.py"
    script.write_text(_PROLOGUE + (
        "run = sparktrack.start_run()\n"
        "report(run=run.info.run_id)\n"
        "raise RuntimeError('a typo at the prompt')\n"
    ))
    store_uri = str(tmp_path / "store")
    done = subprocess.run([sys.executable, "-i", str(script), store_uri], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert "a typo at the prompt" in done.stderr
    run_id = json.loads(done.stdout.splitlines()[0])["run"]
    assert TrackingClient(store_uri).get_run_info(run_id).status == "FINISHED"
