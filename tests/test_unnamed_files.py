"""Publishing a new file whole under its name (``sparktrack._delta.unnamed_files``): the file a
serial commit writes appears whole or not at all, a taken name is refused, every file
published from the spare unnamed files is a file of its own, and a forked child never writes
into its parent's spares."""

from __future__ import annotations

import os
import threading
import time

import pytest

from sparktrack._delta import unnamed_files
from sparktrack._delta.unnamed_files import publish


def _files(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed", "named-aside"])
def test_a_published_file_is_whole_and_a_taken_name_is_refused(tmp_path, monkeypatch, unnamed):
    monkeypatch.setattr(unnamed_files, "_unnamed_files", unnamed)
    assert publish(b"first", str(tmp_path), "00001.json")
    assert not publish(b"second", str(tmp_path), "00001.json")
    assert publish(b"x" * 300_000, str(tmp_path), "big")  # more than one write may take
    assert _files(tmp_path) == {"00001.json": b"first", "big": b"x" * 300_000}
    with pytest.raises(FileNotFoundError):
        publish(b"nowhere", str(tmp_path / "missing"), "a")
    assert unnamed_files._unnamed_files == unnamed


def test_threads_racing_for_names_get_one_winner_each_and_files_of_their_own(tmp_path):
    assert unnamed_files._unnamed_files, "this machine's Linux writes unnamed files"
    won: list[tuple[str, int]] = []

    def racer(number: int) -> None:
        for name in range(30):
            if publish(f"{name}:{number}".encode(), str(tmp_path), f"{name:05d}"):
                won.append((f"{name:05d}", number))

    threads = [threading.Thread(target=racer, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(name for name, _ in won) == [f"{name:05d}" for name in range(30)]
    assert _files(tmp_path) == {name: f"{int(name)}:{number}".encode() for name, number in won}
    assert all(os.stat(tmp_path / name).st_nlink == 1 for name in os.listdir(tmp_path))


def _spares_ready(folder: str) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with unnamed_files._spares._lock:
            if len(unnamed_files._spares._ready.get(folder, ())) == (
                    unnamed_files.SPARES_PER_FOLDER):
                return True
        time.sleep(0.01)
    return False


def test_a_forked_child_never_writes_into_its_parents_spare_files(tmp_path):
    assert unnamed_files._unnamed_files, "this machine's Linux writes unnamed files"
    folder = str(tmp_path)
    assert publish(b"first", folder, "first")  # asks for spares in the folder
    assert _spares_ready(folder), "the background thread opened no spare files"
    child = os.fork()
    if child == 0:  # the child: publish, then leave at once (no pytest teardown here)
        try:
            for number in range(10):
                publish(f"child-{number}".encode(), folder, f"child-{number}")
        finally:
            os._exit(0)
    for number in range(10):
        publish(f"parent-{number}".encode(), folder, f"parent-{number}")
    _, status = os.waitpid(child, 0)
    assert status == 0
    # Had the child written into the parent's spares, one file would have two names and the
    # two writers' bytes.
    files = _files(tmp_path)
    assert files == {name: name.encode() for name in files}
    assert len(files) == 21
    assert all(os.stat(tmp_path / name).st_nlink == 1 for name in files)
