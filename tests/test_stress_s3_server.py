"""The test S3 server decides conditional writes atomically, as S3 does.

deltalake commits a Delta log entry with a PUT that succeeds only if the key is free
(``If-None-Match: *``): of the writers committing the same version, exactly one must win. moto
checks the key, then stores the object, and the server answers on several threads; without
``s3_server._one_write_at_a_time`` two concurrent PUTs could both pass the check, the later
replacing the earlier's log entry: a commit lost without an error. That is how a FINISHED run
of ``test_s3_commits::test_concurrent_writers_lose_nothing`` came back without its params.

Served in this process through moto's WSGI application (the server's own, ``s3_server._app``),
with moto's store made slow between its check and its write so the race is certain.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

import s3_server

WRITERS = 8
AUTHORIZATION = ("AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, "
                 "SignedHeaders=host, Signature=0")


@pytest.fixture()
def slow_moto(monkeypatch):
    """moto's S3 with a pause between a PUT's check of the key and its write (a busy server)."""
    from moto.s3.models import S3Backend

    store = S3Backend.put_object

    def slow_put_object(self, *args, **kwargs):
        time.sleep(0.05)
        return store(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_put_object)


def _put_concurrently(app, path: str, headers: dict[str, str]) -> list[int]:
    """The status of each of WRITERS PUTs of ``path`` sent at the same moment."""
    from werkzeug.test import Client

    statuses: list[int] = []
    start = threading.Barrier(WRITERS)

    def put(writer: int) -> None:
        client = Client(app)
        start.wait()
        response = client.put(path, data=f"entry of writer {writer}".encode(), headers=headers)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=put, args=(writer,)) for writer in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


def test_one_of_concurrent_conditional_puts_wins(slow_moto):
    from werkzeug.test import Client

    puts: list[tuple[str, str | None]] = []
    app = s3_server._app(puts)
    bucket = f"race-{uuid.uuid4().hex[:8]}"
    headers = {"Host": "127.0.0.1", "Authorization": AUTHORIZATION}
    assert Client(app).put(f"/{bucket}", headers=headers).status_code == 200
    entry = f"/{bucket}/store/params/_delta_log/{0:020d}.json"

    statuses = _put_concurrently(app, entry, {**headers, "If-None-Match": "*"})

    assert sorted(statuses) == [200] + [412] * (WRITERS - 1)
    body = Client(app).get(entry, headers=headers).get_data().decode()
    assert body.startswith("entry of writer ")
    assert len(puts) == WRITERS  # every PUT reached moto and was noted
