"""Replace a method on a class with a wrapper, and put the original back.

A patch remembers whether the class defined the method itself or inherited it, so removing
the patch restores exactly what was there (``Model.transform`` is inherited from
``Transformer``: unpatching deletes the attribute instead of pinning the inherited function).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["is_patched", "patch", "unpatch_all"]

_MISSING = object()
_lock = threading.Lock()
# (owner, name) -> what owner.__dict__ held before the patch (or _MISSING)
_saved: dict[tuple[type, str], Any] = {}


def patch(owner: type, name: str, make_wrapper: Callable[[Callable], Callable]) -> None:
    """Install ``make_wrapper(original)`` as ``owner.name``; a second call is a no-op."""
    with _lock:
        key = (owner, name)
        if key in _saved:
            return
        own = owner.__dict__.get(name, _MISSING)
        original = getattr(owner, name)
        wrapper = functools.wraps(original)(make_wrapper(original))
        wrapper.__sparktrack_original__ = original
        _saved[key] = own
        setattr(owner, name, wrapper)


def unpatch_all() -> None:
    """Restore every patched method."""
    with _lock:
        for (owner, name), own in reversed(list(_saved.items())):
            if own is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, own)
        _saved.clear()


def is_patched(owner: type, name: str) -> bool:
    return (owner, name) in _saved
