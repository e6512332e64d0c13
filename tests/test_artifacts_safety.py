"""Artifact file operations stay inside the run's folder even through symbolic links, and a
failed operation raises StoreError that starts with its cause and names the path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import sparktrack
from sparktrack import TrackingClient
from sparktrack.errors import InvalidArtifactPathError, StoreError


@pytest.fixture()
def client(tracking):
    return TrackingClient(tracking)


@pytest.fixture()
def run_folder(client):
    """(run_id, the run's artifact folder with one file in it)."""
    run_id = client.create_run("0", run_name="linked").info.run_id
    client.log_text(run_id, "inside", "inside.txt")
    return run_id, Path(client.get_run_info(run_id).artifact_uri)


@pytest.fixture()
def outside(tmp_path):
    """A folder outside the store holding one secret file."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_writes_through_a_link_to_outside_are_refused(client, run_folder, outside, tmp_path):
    run_id, folder = run_folder
    (folder / "dir-link").symlink_to(outside, target_is_directory=True)
    (folder / "file-link.txt").symlink_to(outside / "secret.txt")
    source_dir = tmp_path / "src"
    source_dir.mkdir()
    (source_dir / "new.txt").write_text("new")
    before = _snapshot(outside)
    writes = {
        "log_text into a linked folder": lambda: client.log_text(run_id, "x", "dir-link/new.txt"),
        "log_text over a linked file": lambda: client.log_text(run_id, "x", "file-link.txt"),
        "log_dict": lambda: client.log_dict(run_id, {"a": 1}, "dir-link/deeper/a.json"),
        "log_artifact": lambda: client.log_artifact(run_id, source_dir / "new.txt", "dir-link"),
        "log_artifacts": lambda: client.log_artifacts(run_id, source_dir, "dir-link/sub"),
    }
    for name, write in writes.items():
        with pytest.raises(InvalidArtifactPathError, match="symbolic link") as error:
            write()
        assert "outside" in str(error.value), name
    assert _snapshot(outside) == before
    assert not (outside / "deeper").exists() and not (outside / "sub").exists()


def test_reads_through_a_link_to_outside_are_refused(client, run_folder, outside, tmp_path):
    run_id, folder = run_folder
    (folder / "dir-link").symlink_to(outside, target_is_directory=True)
    (folder / "nested").mkdir()
    (folder / "nested" / "file-link.txt").symlink_to(outside / "secret.txt")
    reads = {
        "a linked file": lambda dst: client.download_artifacts(run_id, "nested/file-link.txt",
                                                               dst),
        "a file in a linked folder": lambda dst: client.download_artifacts(
            run_id, "dir-link/secret.txt", dst),
        "a linked folder": lambda dst: client.download_artifacts(run_id, "dir-link", dst),
        "a folder holding a link": lambda dst: client.download_artifacts(run_id, "nested", dst),
        "the whole run": lambda dst: client.download_artifacts(run_id, None, dst),
        "listing a linked folder": lambda dst: client.list_artifacts(run_id, "dir-link"),
        "the public module": lambda dst: sparktrack.artifacts.download_artifacts(
            f"runs:/{run_id}/dir-link/secret.txt", dst_path=dst),
    }
    for index, (name, read) in enumerate(reads.items()):
        destination = tmp_path / f"dst{index}"
        with pytest.raises(InvalidArtifactPathError, match="symbolic link"):
            read(destination)
        # Refused before anything was copied.
        assert not destination.exists() or _snapshot(destination) == {}, name


def test_links_that_stay_inside_the_run_are_followed(client, run_folder, tmp_path):
    run_id, folder = run_folder
    (folder / "v1").mkdir()
    (folder / "v1" / "model.txt").write_text("m")
    (folder / "latest").symlink_to(folder / "v1", target_is_directory=True)
    (folder / "alias.txt").symlink_to(folder / "inside.txt")
    copied = Path(client.download_artifacts(run_id, None, tmp_path / "all"))
    assert (copied / "latest" / "model.txt").read_text() == "m"
    assert (copied / "alias.txt").read_text() == "inside"
    client.log_text(run_id, "via link", "latest/notes.txt")
    assert (folder / "v1" / "notes.txt").read_text() == "via link"


def test_a_run_folder_that_is_itself_a_link_works(client, tmp_path):
    """Linking a run's (or the artifacts') folder to another disk is an admin's choice."""
    run_id = client.create_run("0", run_name="moved-out").info.run_id
    folder = Path(client.get_run_info(run_id).artifact_uri)
    other_disk = tmp_path / "big-disk" / "run"
    other_disk.mkdir(parents=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(other_disk, target_is_directory=True)
    client.log_text(run_id, "x", "a/b.txt")
    assert (other_disk / "a" / "b.txt").read_text() == "x"
    assert Path(client.download_artifacts(run_id, "a/b.txt", tmp_path / "d")).read_text() == "x"


def test_an_os_error_becomes_a_store_error_naming_cause_and_path(client, run_folder, tmp_path):
    run_id, folder = run_folder
    (folder / "plots").write_text("a file where a folder is expected")
    with pytest.raises(StoreError) as error:
        client.log_text(run_id, "x", "plots/loss.txt")
    # The cause in words (from the errno), then the path, then the system's message.
    assert re.match(rf"^(file exists|not a directory) on {re.escape(str(folder))}/plots/loss.txt"
                    r": .*plots", str(error.value)), str(error.value)
    # Downloading to a destination that is a file fails the same way.
    (tmp_path / "dst-file").write_text("x")
    with pytest.raises(StoreError) as error:
        client.download_artifacts(run_id, "inside.txt", tmp_path / "dst-file" / "sub")
    assert re.match(rf"^(file exists|not a directory) on {re.escape(str(tmp_path))}/dst-file",
                    str(error.value)), str(error.value)


_CHILD = """
import json, sys
from sparktrack import TrackingClient
client = TrackingClient(sys.argv[1])
results = {}
for name, call in (
    ("log_text", lambda: client.log_text(sys.argv[2], "x", "new.txt")),
    ("download", lambda: client.download_artifacts(sys.argv[2], "inside.txt", sys.argv[3])),
):
    try:
        call()
        results[name] = "no error"
    except Exception as error:
        results[name] = [type(error).__name__, str(error)]
print(json.dumps(results))
"""


def test_a_read_only_artifact_folder_raises_store_error_not_permission_error():
    """The run's folder and the download destination are read-only to the process writing.

    As root permissions do not apply, so the writer runs as user ``nobody`` then.
    """
    base = Path(tempfile.mkdtemp(prefix="sparktrack-readonly-"))
    try:
        base.chmod(0o755)  # reachable by the unprivileged process
        store = base / "store"
        client = TrackingClient(str(store))
        run_id = client.create_run("0", run_name="read-only").info.run_id
        client.log_text(run_id, "inside", "inside.txt")
        client.flush()
        folder = Path(client.get_run_info(run_id).artifact_uri)
        read_only_dst = base / "dst"
        read_only_dst.mkdir()
        for path in (folder, read_only_dst):
            path.chmod(0o555)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
               "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(
            [*_unprivileged(), sys.executable, "-c", _CHILD, str(store), run_id,
             str(read_only_dst / "sub")],
            capture_output=True, text=True, env=env, timeout=120, cwd=base,
        )
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout.strip().splitlines()[-1])
        assert results["log_text"][0] == "StoreError"
        assert results["log_text"][1].startswith(f"permission denied on {folder}/new.txt: ")
        assert results["download"][0] == "StoreError"
        assert results["download"][1].startswith(f"permission denied on {read_only_dst}/sub")
        assert sorted(os.listdir(folder)) == ["inside.txt"]
    finally:
        for path in base.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(base)


def _unprivileged() -> list[str]:
    """A command prefix that runs the rest as user ``nobody`` when this process is root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop privileges for the writer")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
