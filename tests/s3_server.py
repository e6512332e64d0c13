"""A local S3-compatible endpoint for the object-store tests: moto's standalone server on
127.0.0.1, one per test session, with one bucket per session. No test touches a real cloud.

Importable by any test module (``from s3_server import s3, s3_store  # fixtures``).

Nothing global is set: the endpoint, credentials and region reach sparktrack only through the
``storage_options`` a test passes, or through environment variables a test sets with
``monkeypatch`` (undone after the test) or gives a child process.

The server runs in a child process (``python tests/s3_server.py PORT``), not in a thread of the
test process: deltalake's filesystem calls hold the GIL while they wait for the network, so a
server sharing the interpreter could not answer them. The child keeps moto's objects in memory
and obeys ``stop``/``start`` lines on its standard input, so :meth:`S3Endpoint.down` is a real
outage (connections refused) after which the same objects come back on the same port.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

__all__ = ["S3Endpoint", "free_port", "s3", "s3_store"]

# moto accepts any credentials unless its IAM checks are switched on (see
# S3Endpoint.enforce_credentials).
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class S3Endpoint:
    """moto's server on 127.0.0.1:``port`` holding ``bucket``."""

    port: int
    bucket: str
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def storage_options(self, **overrides: str) -> dict[str, str]:
        """What sparktrack (and deltalake) need to reach the endpoint: the usual AWS keys."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
            **overrides,
        }

    def environment(self) -> dict[str, str]:
        """The same settings as environment variables (for ``monkeypatch.setenv``, or a child
        process's environment)."""
        return self.storage_options()

    def new_prefix(self, name: str = "store") -> str:
        """A fresh ``s3://bucket/<unique>/<name>`` no other test uses."""
        return f"s3://{self.bucket}/{uuid.uuid4().hex[:12]}/{name}"

    def client(self):
        """A boto3 S3 client of the endpoint (for checks a test makes behind sparktrack)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def keys(self, prefix: str) -> list[str]:
        """Every object key under ``s3://bucket/<prefix>`` (or an ``s3://`` URI)."""
        prefix = prefix.removeprefix(f"s3://{self.bucket}/")
        found = []
        for page in self.client().get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix):
            found += [entry["Key"] for entry in page.get("Contents", [])]
        return found

    # -- the server ---------------------------------------------------------------------
    def launch(self) -> None:
        """Start the server process and wait until it answers."""
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self._expect("started")

    def _command(self, line: str, answer: str) -> None:
        self._process.stdin.write(line + "\n")  # type: ignore[union-attr]
        self._process.stdin.flush()  # type: ignore[union-attr]
        self._expect(answer)

    def _expect(self, answer: str) -> None:
        line = self._process.stdout.readline().strip()  # type: ignore[union-attr]
        if line != answer:
            raise RuntimeError(f"S3 test server on port {self.port}: expected {answer!r}, "
                               f"got {line!r} (exit code {self._process.poll()})")

    def log_entry_puts(self) -> list[tuple[str, str | None]]:
        """(path, ``If-None-Match`` header) of every Delta log entry PUT so far."""
        self._process.stdin.write("log-puts\n")  # type: ignore[union-attr]
        self._process.stdin.flush()  # type: ignore[union-attr]
        return [tuple(put) for put in json.loads(self._process.stdout.readline())]  # type: ignore[union-attr]

    def stop(self) -> None:
        """Stop answering (connections are refused); the objects stay in the server process."""
        self._command("stop", "stopped")

    def start(self) -> None:
        """Answer again, on the same port, with the same objects."""
        self._command("start", "started")

    def shutdown(self) -> None:
        """End the server process."""
        if self._process is None:
            return
        try:
            self._process.stdin.close()  # type: ignore[union-attr]
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """The endpoint is unreachable inside the block and back after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextlib.contextmanager
    def enforce_credentials(self) -> Iterator[dict[str, str]]:
        """Inside the block moto checks credentials (its IAM emulation): only the access key
        yielded (of a user allowed everything) is accepted; the session's key is not."""
        import boto3

        iam = boto3.client("iam", endpoint_url=self.url, aws_access_key_id=ACCESS_KEY,
                           aws_secret_access_key=SECRET_KEY, region_name=REGION)
        user = f"u{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self._reset_auth("0")
        try:
            yield {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                   "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        finally:
            self._reset_auth("inf")

    def _reset_auth(self, count: str) -> None:
        # moto's own switch: IAM checks start after ``count`` more requests ("inf": never).
        request = urllib.request.Request(f"{self.url}/moto-api/reset-auth",
                                         data=count.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """The session's S3 endpoint (moto on 127.0.0.1, in a child process) with one fresh
    bucket."""
    yield from _endpoint()


def _endpoint() -> Iterator[S3Endpoint]:
    endpoint = S3Endpoint(port=free_port(), bucket=f"sparktrack-{uuid.uuid4().hex[:8]}")
    endpoint.launch()
    try:
        endpoint.client().create_bucket(Bucket=endpoint.bucket)
        yield endpoint
    finally:
        _close_stores_in(f"s3://{endpoint.bucket}/")
        endpoint.shutdown()


def _close_stores_in(prefix: str) -> None:
    """Commit and close, while the endpoint still answers, the stores this process opened
    under ``prefix``: the interpreter's exit hook would otherwise find them unreachable."""
    from sparktrack import _store
    from sparktrack._store import buffer

    with _store._stores_lock:
        roots = [root for root in _store._stores if root.startswith(prefix)]
        stores = [_store._stores.pop(root) for root in roots]
    for store in stores:
        store.buffer.close()
        buffer._live_buffers.discard(store.buffer)


@pytest.fixture()
def s3_store(s3: S3Endpoint) -> str:
    """A fresh store prefix ``s3://bucket/<unique>/store`` for one test."""
    return s3.new_prefix()


def _serve(port: int) -> None:
    """The server process: moto on 127.0.0.1:``port``, stopped and started by stdin lines."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    log_puts: list[tuple[str, str | None]] = []
    app = _app(log_puts)

    def start():
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    server = start()
    print("started", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stop" and server is not None:
            server.shutdown()
            server.server_close()
            server = None
            print("stopped", flush=True)
        elif command == "start" and server is None:
            server = start()
            print("started", flush=True)
        elif command == "log-puts":
            print(json.dumps(log_puts), flush=True)
        else:
            print(f"unknown or repeated command {command!r}", flush=True)
    if server is not None:  # stdin closed: the test session is over
        server.shutdown()


def _app(log_puts: list[tuple[str, str | None]]):
    """moto's S3 as the server serves it: writes one at a time, Delta log PUTs noted in
    ``log_puts``."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    return _one_write_at_a_time(
        _recording_log_puts(DomainDispatcherApplication(create_backend_app), log_puts)
    )


_WRITES = frozenset({"PUT", "POST", "DELETE"})


def _one_write_at_a_time(app):
    """``app`` serving the requests that change objects one at a time.

    moto decides a conditional PUT (``If-None-Match: *``, how deltalake writes every Delta log
    entry) in two steps, "is the key free?" then "store the object", and the server answers
    on several threads: two writers committing the same table version at the same moment could
    both be told they won, the later PUT replacing the earlier one's log entry, so a commit
    was lost without an error (a FINISHED run came back without its params once in CI). S3
    decides a conditional write atomically; so does moto when writes do not overlap.
    """
    lock = threading.Lock()

    def serve(environ, start_response):
        if environ.get("REQUEST_METHOD") not in _WRITES:
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))  # the whole response under the lock

    return serve


def _recording_log_puts(app, puts: list[tuple[str, str | None]]):
    """``app``, noting the path and ``If-None-Match`` header of every PUT of a Delta log
    entry (what :meth:`S3Endpoint.log_entry_puts` returns)."""
    def serve(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "PUT" and "/_delta_log/" in path:
            puts.append((path, environ.get("HTTP_IF_NONE_MATCH")))
        return app(environ, start_response)

    return serve


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
