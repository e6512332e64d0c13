"""Which allocator Arrow uses in a process that imports sparktrack.

pyarrow's default allocator (mimalloc) keeps memory it has freed. Search at scale allocates and
frees large tables in turn (a table's raw rows, then its resolved state, then the next table),
and with mimalloc the process's peak memory grew with every one of them. Measured on a store of
1,000,000 runs: a first search peaked at 4.2 to 4.8 GB with mimalloc and at 3.6 to 3.9 GB with
jemalloc (and took 7.4 to 12.7 s against 7.6 to 9.8 s); a new process starting from the saved
state, 3.4 GB against 3.1 GB. The price: a warm search there takes 0.27 s instead of 0.13 to
0.16 s (jemalloc hands large freed blocks back to the system, and taking them again costs
page faults). Under the 4 GB a search process should stay within at that size, memory wins.
So sparktrack makes jemalloc Arrow's default where pyarrow has it (Linux and macOS wheels),
unless the user chose an allocator: ``ARROW_DEFAULT_MEMORY_POOL`` (Arrow's own variable) is
respected, and ``SPARKTRACK_ARROW_MEMORY_POOL=default`` leaves Arrow's default as it is.
"""

from __future__ import annotations

import logging
import os

import pyarrow as pa

__all__ = ["use_preferred_pool"]

_SETTING = "SPARKTRACK_ARROW_MEMORY_POOL"

logger = logging.getLogger(__name__)


def use_preferred_pool() -> str:
    """Make jemalloc Arrow's default allocator unless the user chose one; the one in use."""
    choice = os.environ.get(_SETTING, "jemalloc").strip().lower()
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") or choice == "default":
        return pa.default_memory_pool().backend_name
    if choice != "jemalloc":
        logger.warning("Ignoring %s=%r: it must be 'jemalloc' or 'default'; Arrow's default "
                       "allocator is left as it is.", _SETTING, choice[:50])
        return pa.default_memory_pool().backend_name
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc (Windows wheels)
        pass
    return pa.default_memory_pool().backend_name
