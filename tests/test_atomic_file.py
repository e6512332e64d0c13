"""A cache file is replaced whole or not at all (search state, log-check checkpoints)."""

from __future__ import annotations

import os

import pytest

from sparktrack._store.atomic_file import replace_file


def test_a_file_is_replaced_whole(tmp_path):
    path = str(tmp_path / "state")
    replace_file(path, b"old")
    replace_file(path, b"new ", memoryview(b"content"))
    assert open(path, "rb").read() == b"new content"
    assert os.listdir(tmp_path) == ["state"]  # nothing left beside it


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = str(tmp_path / "state")
    replace_file(path, b"old")
    with pytest.raises(TypeError):
        replace_file(path, b"first part", "not bytes")
    assert open(path, "rb").read() == b"old"
    assert os.listdir(tmp_path) == ["state"]
