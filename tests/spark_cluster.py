"""A Spark standalone cluster on this machine for the cluster tests, and a driver process on it.

:class:`StandaloneCluster` starts a master and one worker (2 cores, 1 GB) from pyspark's own
launch classes (``bin/spark-class org.apache.spark.deploy.master.Master`` /
``...worker.Worker``) on 127.0.0.1 and free ports, each in its own process group, and waits
(bounded) until the worker has registered. Executors are then separate JVMs started by the
worker, with their own Python workers.

:class:`ClusterDriver` is the application's driver: a ``spawn`` child process holding a
SparkSession connected to ``spark://127.0.0.1:<port>``. It has to be another process: the rest
of the suite shares one local SparkSession (``tests/conftest.py``), and a Python process has
only one SparkContext. Tests hand it module-level functions ``fn(spark, *args)`` through
:meth:`ClusterDriver.run`, which returns their (picklable) result or raises with the child's
traceback, within a timeout.

Executors get sparktrack the way the README's "Clusters" section documents: the checkout's
``sparktrack`` package zipped and shipped with ``spark.submit.pyFiles`` (``--py-files``); its
dependencies (deltalake, pyarrow, pandas) come from the executors' interpreter.

The fixture ``spark_cluster`` (import it into a test module by name) starts one cluster and
one driver for the whole test session and stops both at its end: the driver's process group,
then the worker's (with its executors) and the master's.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent

__all__ = ["ClusterDriver", "StandaloneCluster", "free_port", "package_zip", "spark_cluster"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spark_class() -> Path:
    """pyspark's ``bin/spark-class`` (the launcher of Spark's daemons)."""
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def package_zip(folder: Path) -> Path:
    """The checkout's ``sparktrack`` package as a zip for ``--py-files`` (sources only)."""
    target = folder / "sparktrack.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((REPO / "sparktrack").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, path.relative_to(REPO))
    return target


def _stop_group(process: subprocess.Popen | multiprocessing.Process, *, grace: float) -> None:
    """SIGTERM to the process group led by ``process``, then SIGKILL after ``grace`` seconds."""
    pid = process.pid
    if pid is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)  # raises once no process of the group is left
            except ProcessLookupError:
                return
            if isinstance(process, subprocess.Popen):
                process.poll()  # reap the leader, or the group never empties
            time.sleep(0.2)


class StandaloneCluster:
    """A Spark standalone master and one worker on 127.0.0.1 (logs in ``folder``).

    Args:
        folder: where the daemons' logs and the worker's work directory go.
        cores / memory: what the worker offers to executors. Each application takes one
            core (``spark.cores.max=1``), so that a ``spark-submit`` job can run beside the
            test session's driver.
        startup_timeout: seconds to wait for the worker to register with the master.
    """

    def __init__(self, folder: Path, *, cores: int = 2, memory: str = "1g",
                 startup_timeout: float = 180.0) -> None:
        self.folder = folder
        self.port = free_port()
        self.ui_port = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self._processes: list[subprocess.Popen] = []
        self._logs: list[Any] = []
        deadline = time.monotonic() + startup_timeout
        try:
            self.master = self._daemon(
                "master", "org.apache.spark.deploy.master.Master",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--webui-port", str(self.ui_port))
            self._wait(lambda state: state is not None, deadline, "the master to answer")
            self.worker = self._daemon(
                "worker", "org.apache.spark.deploy.worker.Worker",
                "--host", "127.0.0.1", "--port", str(free_port()),
                "--webui-port", str(free_port()), "--cores", str(cores), "--memory", memory,
                "--work-dir", str(folder / "work"), self.url)
            self._wait(lambda state: state is not None and state.get("aliveworkers", 0) >= 1,
                       deadline, "the worker to register")
        except BaseException:
            self.stop()
            raise

    def _daemon(self, name: str, main_class: str, *args: str) -> subprocess.Popen:
        env = dict(os.environ)
        env.pop("SPARK_HOME", None)  # spark-class finds pyspark's own installation
        env.update(SPARK_DAEMON_MEMORY="256m", SPARK_LOCAL_IP="127.0.0.1",
                   SPARK_NO_DAEMONIZE="1")
        log = open(self.folder / f"{name}.log", "wb")
        self._logs.append(log)
        process = subprocess.Popen(
            [str(spark_class()), main_class, *args], env=env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # stopped as a group: the worker's executors with it
        )
        self._processes.append(process)
        return process

    def state(self) -> dict | None:
        """The master's JSON status (workers, applications), None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/",
                                        timeout=5) as answer:
                return json.loads(answer.read().decode())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None

    def _wait(self, ready: Callable[[dict | None], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            for process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(f"Spark daemon {process.args[1]} exited with "
                                       f"{process.returncode}:\n{self.output()}")
            if ready(self.state()):
                return
            time.sleep(0.5)
        raise TimeoutError(f"Timed out waiting for {what}:\n{self.output()}")

    def output(self, tail: int = 3000) -> str:
        """The end of each daemon's log (for failure messages)."""
        parts = []
        for log in self._logs:
            log.flush()
            parts.append(f"--- {log.name}\n{Path(log.name).read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the worker (and its executors), then the master."""
        for process in reversed(self._processes):
            _stop_group(process, grace=20)
        for log in self._logs:
            log.close()
        self._processes.clear()


# -- the driver process ---------------------------------------------------------------------------
_SESSION = None


def _serve(connection, master: str, conf: dict[str, str], env: dict[str, str]) -> None:
    """The driver's main loop (in the child): build the session, then run what comes in."""
    global _SESSION
    os.setsid()  # its JVM joins this group, so that stopping the group stops both
    os.environ.update(env)
    try:
        from sparktrack.spark import session

        _SESSION = session(app_name="sparktrack-cluster-tests", master=master, conf=conf)
        connection.send(("ok", None))
    except BaseException:
        connection.send(("error", traceback.format_exc()))
        return
    while True:
        message = connection.recv()
        if message is None:
            break
        fn, args = message
        try:
            connection.send(("ok", fn(_SESSION, *args)))
        except BaseException:
            connection.send(("error", traceback.format_exc()))
    _SESSION.stop()


class ClusterDriver:
    """A child process holding a SparkSession on ``master`` (see the module docstring).

    Args:
        master: ``spark://host:port``.
        py_files: shipped to the executors with ``spark.submit.pyFiles``.
        startup_timeout: seconds to wait for the session (its executor may start later).
    """

    def __init__(self, master: str, *, py_files: list[Path], startup_timeout: float = 180.0,
                 conf: dict[str, str] | None = None) -> None:
        settings = {
            "spark.submit.pyFiles": ",".join(str(p) for p in py_files),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.memory": "1g",
            "spark.executor.memory": "512m",
            "spark.executor.cores": "1",
            "spark.cores.max": "1",
            **(conf or {}),
        }
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, master, settings, {"SPARK_LOCAL_IP": "127.0.0.1"}),
            name="sparktrack-cluster-driver", daemon=True)
        self.process.start()
        child.close()
        try:
            self._answer(startup_timeout, "starting the cluster's SparkSession")
        except BaseException:
            self.stop()
            raise

    def _answer(self, timeout: float, what: str) -> Any:
        if not self._connection.poll(timeout):
            raise TimeoutError(f"The cluster driver took over {timeout} s {what}.")
        try:
            status, value = self._connection.recv()
        except EOFError:
            raise RuntimeError(f"The cluster driver died while {what} "
                               f"(exit code {self.process.exitcode}).") from None
        if status == "error":
            raise RuntimeError(f"The cluster driver failed while {what}:\n{value}")
        return value

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float = 240.0) -> Any:
        """``fn(spark, *args)`` in the driver process; its result (or its error, with the
        child's traceback). ``fn`` must be importable by name (a module-level function)."""
        self._connection.send((fn, args))
        return self._answer(timeout, f"running {fn.__qualname__}")

    def stop(self) -> None:
        """Stop the session (and its JVM), then anything left of the driver's process group."""
        if self.process.is_alive():
            try:
                self._connection.send(None)
                self.process.join(60)
            except (BrokenPipeError, OSError):
                pass
        _stop_group(self.process, grace=10)
        self.process.join(5)
        self._connection.close()


# -- fixture (import it into a test module by name) -----------------------------------------------
import pytest  # noqa: E402  (the helpers above need no pytest)

_CLUSTER = None  # the session's one cluster, shared by every module that uses the fixture


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """One standalone cluster and one driver on it for the test session: ``.cluster``
    (:class:`StandaloneCluster`), ``.driver`` (:class:`ClusterDriver`), ``.package`` (the zip
    shipped to executors). Stopped at the end of the session."""
    global _CLUSTER
    if _CLUSTER is not None:
        yield _CLUSTER
        return
    folder = tmp_path_factory.mktemp("spark-cluster")
    package = package_zip(folder)
    cluster = StandaloneCluster(folder)
    try:
        driver = ClusterDriver(cluster.url, py_files=[package])
    except BaseException:
        cluster.stop()
        raise
    _CLUSTER = SimpleNamespace(cluster=cluster, driver=driver, package=package)
    try:
        yield _CLUSTER
    finally:
        _CLUSTER = None
        driver.stop()
        cluster.stop()
