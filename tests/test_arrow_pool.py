"""Importing sparktrack makes jemalloc Arrow's allocator (less memory and faster at scale than
mimalloc, see sparktrack._arrow_pool), unless the user chose one."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

POOL = "import pyarrow as pa{}; print(pa.default_memory_pool().backend_name)"


def _pool_after_import(importing: str = ", sparktrack", **environment: str) -> str:
    env = {key: value for key, value in os.environ.items()
           if key not in ("ARROW_DEFAULT_MEMORY_POOL", "SPARKTRACK_ARROW_MEMORY_POOL")}
    done = subprocess.run([sys.executable, "-c", POOL.format(importing)], env=env | environment,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow has no jemalloc")
def test_importing_sparktrack_makes_jemalloc_arrows_allocator():
    assert _pool_after_import() == "jemalloc"


def test_an_allocator_the_user_chose_is_kept():
    arrows_default = _pool_after_import(importing="")  # without sparktrack
    assert _pool_after_import(ARROW_DEFAULT_MEMORY_POOL="system") == "system"
    assert _pool_after_import(SPARKTRACK_ARROW_MEMORY_POOL="default") == arrows_default
    # A value it does not know: Arrow's default is kept (and a warning logged).
    assert _pool_after_import(SPARKTRACK_ARROW_MEMORY_POOL="tcmalloc") == arrows_default
