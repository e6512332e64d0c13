"""A store this process may not read or write: every call says so (StoreError, cause first),
nothing reads as empty, and a script whose rows never reached the store exits non-zero.

File permissions do not stop root, and the tests run as root in CI: the code under test runs in
a child process whose capabilities to bypass them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) are
dropped before it starts, so root-owned folders with mode 0555 or 0000 stop it as they would
stop any user.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sparktrack.entities import Metric, Param, RunTag
from sparktrack._store.tracking_store import TrackingStore

pytestmark = pytest.mark.slow

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_SETPCAP = 1, 2, 8


def _can_drop_capabilities() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    status = Path("/proc/self/status").read_text()
    effective = int(next(line.split()[1] for line in status.splitlines()
                         if line.startswith("CapEff:")), 16)
    return bool(effective & (1 << _CAP_SETPCAP))


def _drop_dac_capabilities() -> None:
    # Runs in the child between fork and exec: the exec'd interpreter, although root, then
    # has no capability that bypasses file permissions.
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.fixture(scope="module")
def unprivileged():
    """Run a Python script in a child process that file permissions stop, as root too."""
    if os.geteuid() == 0 and not _can_drop_capabilities():
        pytest.skip("running as root without CAP_SETPCAP: cannot start a child that file "
                    "permissions stop")

    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            preexec_fn=_drop_dac_capabilities if os.geteuid() == 0 else None,
            capture_output=True, text=True, timeout=180,
        )

    return run


def _store_with_a_run(root: Path) -> tuple[str, str]:
    """A store holding one finished run with a param, a metric history and a tag."""
    store = TrackingStore(str(root))
    experiment_id = store.create_experiment("perms")
    run_id = store.create_run(experiment_id, run_name="r", user_id="u").run_id
    store.log_batch(run_id, params=[Param("p", "1")], tags=[RunTag("t", "x")],
                    metrics=[Metric("m", float(i), 1000 + i, i) for i in range(3)])
    store.update_run(run_id, status="FINISHED", end_time=2000)
    store.flush()
    return experiment_id, run_id


def _listing(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size
            for path in sorted(root.rglob("*")) if path.is_file()}


def _chmod_tree(root: Path, *, dirs: int, files: int) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(dirs if path.is_dir() else files)


@pytest.fixture()
def read_only_store(tmp_path):
    """A store with one run whose folders and files nobody may write (0555 / 0444)."""
    root = tmp_path / "store"
    experiment_id, run_id = _store_with_a_run(root)
    _chmod_tree(root, dirs=0o555, files=0o444)
    yield root, experiment_id, run_id
    _chmod_tree(root, dirs=0o755, files=0o644)


# What each case makes unreadable (mode 0000), relative to the store root.
_UNREADABLE = {
    "store-root": ".",
    "runs-table": "runs",
    "runs-log": "runs/_delta_log",
    "runs-data-files": "runs/*/*.parquet",
    "metrics-data-files": "metrics/*/*.parquet",
    "params-table": "params",
}

_READ_EVERYTHING = """
    import json, sys
    from sparktrack import TrackingClient

    results = {}
    for case, store, experiment_id, run_id in json.loads(sys.argv[1]):
        client = TrackingClient(store)
        calls = {
            "get_run": lambda: client.get_run(run_id),
            "search_runs": lambda: client.search_runs([experiment_id]),
            "get_metric_history": lambda: client.get_metric_history(run_id, "m"),
        }
        for name, call in calls.items():
            try:
                outcome = ["returned", repr(call())[:200]]
            except Exception as error:
                outcome = [type(error).__name__, str(error)]
            results[f"{case} {name}"] = outcome
    print(json.dumps(results))
"""


def test_an_unreadable_store_raises_store_error_instead_of_reading_as_empty(
    tmp_path, unprivileged
):
    template = tmp_path / "template"
    experiment_id, run_id = _store_with_a_run(template)
    cases, denied = [], {}
    for case, pattern in _UNREADABLE.items():
        root = tmp_path / case
        shutil.copytree(template, root)
        paths = [root] if pattern == "." else sorted(root.glob(pattern))
        assert paths, pattern
        for path in paths:
            path.chmod(0)
        denied[case] = paths
        cases.append([case, str(root), experiment_id, run_id])
    try:
        child = unprivileged(_READ_EVERYTHING, json.dumps(cases))
    finally:
        for paths in denied.values():
            for path in paths:
                path.chmod(0o755)
    assert child.returncode == 0, child.stderr[-3000:]
    results = json.loads(child.stdout)
    # Which call reads the unreadable part (the others may succeed: they do not need it).
    must_fail = {
        "store-root": ["get_run", "search_runs", "get_metric_history"],
        "runs-table": ["get_run", "search_runs", "get_metric_history"],
        "runs-log": ["get_run", "search_runs", "get_metric_history"],
        "runs-data-files": ["get_run", "get_metric_history"],
        "metrics-data-files": ["get_metric_history"],
        "params-table": ["get_run"],
    }
    for key, (kind, message) in results.items():
        case, call = key.split()
        if call not in must_fail[case]:
            assert kind in ("returned", "StoreError"), (key, kind, message)
            continue
        assert kind == "StoreError", (key, kind, message)
        assert message.startswith("permission denied on "), (key, message)
        named = message.removeprefix("permission denied on ").split(":")[0]
        assert named.startswith(str(tmp_path / case)), (key, message)


_WRITE_TO_READ_ONLY = """
    import json, sys, time
    import sparktrack
    from sparktrack import TrackingClient
    from sparktrack.errors import StoreError

    store, experiment_id = sys.argv[1], sys.argv[2]
    client = TrackingClient(store)
    report = {}

    def attempt(name, call):
        started = time.monotonic()
        try:
            call()
            report[name] = ["returned", "", 0.0]
        except StoreError as error:
            report[name] = ["StoreError", str(error), time.monotonic() - started]

    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "m", 1.0)
    attempt("flush", client.flush)
    attempt("set_terminated", lambda: client.set_terminated(run_id))
    attempt("create_experiment", lambda: client.create_experiment("new"))
    sparktrack.set_tracking_uri(store)

    def fluent_run():
        with sparktrack.start_run(experiment_id=experiment_id):
            sparktrack.log_metric("m", 2.0)

    attempt("fluent end_run", fluent_run)
    print(json.dumps(report), flush=True)
"""


def test_writes_to_a_read_only_store_fail_cause_first_and_end_run_raises(
    read_only_store, unprivileged
):
    root, experiment_id, _ = read_only_store
    before = _listing(root)
    child = unprivileged(_WRITE_TO_READ_ONLY, str(root), experiment_id)
    report = json.loads(child.stdout.splitlines()[-1])
    for name in ("flush", "set_terminated", "create_experiment", "fluent end_run"):
        kind, message, seconds = report[name]
        assert kind == "StoreError", (name, report[name], child.stderr[-2000:])
        assert message.startswith(f"permission denied on {root}"), (name, message)
        assert "Check that this process may read and write the store" in message
        assert seconds < 10, (name, seconds)  # no retries of what a retry cannot fix
    assert _listing(root) == before  # nothing written, nothing lost
    assert child.returncode == 1  # the rows could not be saved: see the next test


_NAIVE_SCRIPT = """
    import atexit, sys
    marker = sys.argv[2]
    # Registered before sparktrack's own exit hook, so it runs after it.
    atexit.register(lambda: open(marker, "w").write("earlier exit hook ran"))

    import sparktrack

    sparktrack.set_tracking_uri(sys.argv[1])
    with sparktrack.start_run(experiment_id=sys.argv[3]):
        sparktrack.log_param("lr", "0.1")
        for step in range(100):
            sparktrack.log_metric("loss", 1.0 / (step + 1), step=step)
    print("training done", end="")
"""


def test_a_script_whose_logging_never_reached_the_store_exits_non_zero(
    read_only_store, unprivileged, tmp_path
):
    root, experiment_id, _ = read_only_store
    marker = tmp_path / "marker.txt"
    child = unprivileged(_NAIVE_SCRIPT, str(root), str(marker), experiment_id)
    assert child.stdout == "training done"
    assert child.returncode == 1, child.stderr[-3000:]
    errors = [line for line in child.stderr.splitlines() if line.startswith("sparktrack: error:")]
    assert errors, child.stderr[-3000:]
    assert "could not be saved to the store and are lost" in errors[0]
    assert f"permission denied on {root}" in errors[0]
    assert "Traceback" not in child.stderr and "Warning" not in child.stderr
    assert marker.read_text() == "earlier exit hook ran"  # every other exit hook still ran


def test_an_error_before_exit_keeps_the_script_status_non_zero(read_only_store, unprivileged):
    root, experiment_id, _ = read_only_store
    script = _NAIVE_SCRIPT.replace('print("training done", end="")', "sys.exit(3)")
    child = unprivileged(script, str(root), os.devnull, experiment_id)
    assert child.returncode != 0
    assert "sparktrack: error:" in child.stderr


def test_a_store_that_is_only_read_stays_silent_at_exit(read_only_store, unprivileged):
    """Reading a read-only store is fine: nothing buffered, nothing reported, status 0."""
    root, experiment_id, run_id = read_only_store
    child = unprivileged(
        "import sys; from sparktrack import TrackingClient\n"
        "client = TrackingClient(sys.argv[1])\n"
        "print(client.get_run(sys.argv[2]).data.params)\n"
        "print(len(client.search_runs([sys.argv[3]])))\n",
        str(root), run_id, experiment_id,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.split() == ["{'p':", "'1'}", "1"]
    assert "sparktrack: error" not in child.stderr

