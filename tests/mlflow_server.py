"""Helpers for tests that run MLflow against a sparktrack store through the plugin: make the
plugin's entry points visible, and start an ``mlflow server`` on 127.0.0.1 (one per session).

Importable by any test module (``from tests.mlflow_server import ...`` or, with ``tests`` on
the path, ``import mlflow_server``). Nothing here installs anything.

Entry points: MLflow finds the plugin through the ``sparktrack`` distribution's entry points
(``pyproject.toml``). A checkout used through ``PYTHONPATH`` (or an editable install made
before the entry points existed) has none; then :func:`entry_point_folder` writes a
``.dist-info`` folder with exactly the entry points of ``pyproject.toml`` into a test folder, and
the helpers put it on the path, so discovery is still MLflow's own.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GROUPS = ("mlflow.tracking_store", "mlflow.model_registry_store")
_SHIM = "sparktrack_mlflow_entry_points-0.0.0.dist-info"

__all__ = [
    "MlflowServer",
    "REPO",
    "entry_point_folder",
    "free_port",
    "installed_entry_points",
    "mlflow_tracking",
    "plugin_env",
    "pyproject_entry_points",
    "register_plugin_in_process",
]


def pyproject_entry_points() -> dict[str, dict[str, str]]:
    """The MLflow entry points ``pyproject.toml`` declares, by group."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {group: dict(project["entry-points"][group]) for group in GROUPS}


def installed_entry_points() -> dict[str, dict[str, str]]:
    """The MLflow entry points of the installed ``sparktrack`` distribution (empty groups when
    it is not installed or was installed before it had them)."""
    try:
        points = importlib.metadata.distribution("sparktrack").entry_points
    except importlib.metadata.PackageNotFoundError:
        points = []
    return {group: {p.name: p.value for p in points if p.group == group} for group in GROUPS}


def entry_point_folder(folder: Path) -> Path | None:
    """None when the installed distribution declares pyproject's entry points; otherwise a
    folder (created under ``folder``) holding a ``.dist-info`` with them, to put on the path."""
    wanted = pyproject_entry_points()
    if installed_entry_points() == wanted:
        return None
    info = folder / _SHIM
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sparktrack-mlflow-entry-points\nVersion: 0.0.0\n")
    lines = []
    for group, points in wanted.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in points.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return folder


def plugin_env(shim: Path | None, **extra: str) -> dict[str, str]:
    """The environment of a child process that imports this checkout's sparktrack and finds
    the plugin (``shim`` from :func:`entry_point_folder`)."""
    env = dict(os.environ)
    paths = [str(REPO)] + ([str(shim)] if shim else [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # MLflow starts the interpreter's own scripts (uvicorn for `mlflow models serve`).
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.update(extra)
    return env


def register_plugin_in_process(shim: Path | None) -> None:
    """Make this process's MLflow find the plugin: MLflow read the entry points when it was
    imported, maybe before ``shim`` was on the path, so read them again (as MLflow does)."""
    if shim and str(shim) not in sys.path:
        sys.path.append(str(shim))
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    for registry in (tracking_utils._tracking_store_registry,
                     registry_utils._get_store_registry()):
        if "sparktrack" not in registry._registry:
            registry.register_entrypoints()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """``mlflow server --backend-store-uri <store_uri>`` on 127.0.0.1 and a free port.

    Args:
        store_uri: a ``sparktrack:`` URI.
        shim: the entry-point folder from :func:`entry_point_folder` (None if installed).
        workers: uvicorn worker processes (1 or 2 keep the CPU low in tests).
        log_path: where the server's output goes (read it when a test fails).
        startup_timeout: seconds to wait for ``/health``.
    """

    def __init__(self, store_uri: str, *, shim: Path | None, workers: int = 1,
                 log_path: Path, startup_timeout: float = 120.0,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.store_uri = store_uri
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri,
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
             *extra_args],
            env=plugin_env(shim), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers are stopped with it, as a group
        )
        try:
            self._wait_healthy(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}:\n"
                                   f"{self.output()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"mlflow server not healthy after {timeout} s:\n"
                           f"{self.output()[-4000:]}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server and its workers (SIGTERM to its process group, then SIGKILL)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        self._log.close()


# -- fixtures (import them into a test module by name) ------------------------------------------
import pytest  # noqa: E402  (the helpers above need no pytest)


@pytest.fixture(scope="session")
def mlflow_plugin(tmp_path_factory):
    """This process's MLflow finds the plugin; returns the entry-point folder (None if the
    installed distribution has the entry points) for child processes' :func:`plugin_env`."""
    pytest.importorskip("mlflow")
    shim = entry_point_folder(tmp_path_factory.mktemp("mlflow-entry-points"))
    register_plugin_in_process(shim)
    return shim


@pytest.fixture()
def mlflow_store(mlflow_plugin, tmp_path):
    """MLflow's fluent API and clients pointed at a fresh sparktrack store (``sparktrack:///``).

    Yields the store root; afterwards open runs are ended and MLflow's tracking URI and active
    experiment are put back as they were.
    """
    root = tmp_path / "store"
    with mlflow_tracking(f"sparktrack://{root}"):
        yield root


@contextlib.contextmanager
def mlflow_tracking(uri: str) -> Iterator[None]:
    """MLflow's tracking URI set to ``uri`` inside the block; afterwards open runs are ended and
    MLflow's tracking URI, active experiment and experiment variables are put back."""
    import mlflow
    from mlflow.tracking import fluent

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    # mlflow.set_experiment also sets these variables, which later tests would inherit.
    saved_env = {name: os.environ.get(name) for name in _EXPERIMENT_ENV}
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        fluent._active_experiment_id = None
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        mlflow.set_tracking_uri(previous)


_EXPERIMENT_ENV = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


def fill_store(root: Path):
    """A small store for the UI, written with sparktrack's own API: experiment ``ui-demo``
    with a parent run (params, a 10-step ``loss`` history, tags, a description, artifacts)
    and two nested runs; registered model ``churn``: version 1 from the parent's ``model``
    folder with alias ``champion``, version 2 in stage Staging. Returns the ids."""
    from types import SimpleNamespace

    import sparktrack

    client = sparktrack.TrackingClient(str(root))
    experiment_id = client.create_experiment("ui-demo", tags={"team": "spark"})
    parent = client.create_run(experiment_id, run_name="cv-parent").info.run_id
    client.log_param(parent, "numFolds", "3")
    client.log_param(parent, "regParam", "0.1")
    for step in range(10):
        client.log_metric(parent, "loss", 1.0 / (step + 1), step=step,
                          timestamp=1_700_000_000_000 + step)
    client.log_metric(parent, "areaUnderROC", 0.875)
    client.set_tag(parent, "mlflow.note.content", "The parent run of a cross-validation.")
    client.set_tag(parent, "stage", "tuning")
    client.log_text(parent, "readme", "notes/readme.txt")
    client.log_text(parent, "flavors: {}\n", "model/MLmodel")
    children = []
    for index in range(2):
        child = client.create_run(experiment_id, run_name=f"fold-{index}",
                                  parent_run_id=parent).info.run_id
        client.log_param(child, "regParam", str(0.1 * (index + 1)))
        client.log_metric(child, "areaUnderROC", 0.8 + index / 100)
        client.set_terminated(child)
        children.append(child)
    client.set_terminated(parent)
    client.create_registered_model("churn", description="Churn model")
    client.register_model(f"runs:/{parent}/model", "churn")
    client.register_model(f"runs:/{parent}/model", "churn")
    client.set_registered_model_alias("churn", "champion", 1)
    client.transition_model_version_stage("churn", 2, "Staging")
    client.flush()
    return SimpleNamespace(root=root, experiment_id=experiment_id, parent=parent,
                           children=children, model="churn")


_SERVER = None  # the session's one server, shared by every module that uses the fixture


@pytest.fixture(scope="session")
def mlflow_server(mlflow_plugin, tmp_path_factory):
    """``mlflow server`` (2 workers: their stores must agree) on a store filled by
    :func:`fill_store`; ``.url``, ``.store`` (the ids), ``.server``. Started once per session,
    stopped at its end."""
    global _SERVER
    if _SERVER is not None:
        yield _SERVER
        return
    from types import SimpleNamespace

    folder = tmp_path_factory.mktemp("mlflow-server")
    store = fill_store(folder / "store")
    server = MlflowServer(f"sparktrack://{store.root}", shim=mlflow_plugin, workers=2,
                          log_path=folder / "server.log")
    _SERVER = SimpleNamespace(url=server.url, store=store, server=server)
    try:
        yield _SERVER
    finally:
        server.stop()
        _SERVER = None
