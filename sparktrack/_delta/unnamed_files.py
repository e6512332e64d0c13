"""New files that appear whole under their name, or not at all, with no file allocated on the
writer's path.

A serial commit (:mod:`.serial`) writes two new files, its data file and its log entry; the
log entry must appear whole or not at all, and of writers racing for its name exactly one may
win. :func:`publish` writes the bytes into an unnamed file (Linux's ``O_TMPFILE``) and links
it under its name, which fails if the name is taken. Where unnamed files are refused (other
systems, some filesystems) it writes a named aside and links that.

Allocating a file is the slow part of a commit where files are created and deleted nearby: on
ext4 without a journal (this project's CI machines) allocation skips every inode freed in the
last minute in the folder's block group, so beside Spark's writers, SQLite's journals or a
test suite, creating a file took 0.3 to 0.6 ms instead of 0.02 ms. So a background thread
opens a few unnamed files ahead of time in each folder that commits (:class:`_SpareFiles`),
and a commit writes into one of those. An unnamed file that is never linked leaves nothing
behind when it is closed or its process dies.
"""

from __future__ import annotations

import collections
import errno
import itertools
import os
import threading

__all__ = ["publish", "unique_suffix", "write_all"]

# Unnamed files kept ready per folder, and the folders that have them (least recently used
# out first, its files closed): at most SPARES_PER_FOLDER * SPARE_FOLDERS open descriptors.
SPARES_PER_FOLDER = 2
SPARE_FOLDERS = 16
# The refilling thread ends after this long without work (the next commit starts another).
_IDLE_SECONDS = 10.0


def publish(data: bytes, folder: str, name: str) -> bool:
    """Make ``data`` the file ``name`` in ``folder`` at once, whole, unless that name is taken
    (False): no reader ever sees it half written, and of writers racing for the name exactly
    one wins. OSError if the folder cannot be written."""
    global _unnamed_files
    refused = False  # the unnamed file could not be linked: named asides, if they work
    descriptor = _spares.take(folder) if _unnamed_files else None
    if descriptor is None and _unnamed_files:
        try:
            descriptor = _open_unnamed(folder)
        except OSError as exc:
            if exc.errno not in _NO_UNNAMED_FILES:
                raise
            _unnamed_files = False  # not on this filesystem
    if descriptor is not None:
        try:
            write_all(descriptor, data)
            # The descriptor as a path, linked with linkat(AT_SYMLINK_FOLLOW): os.link calls
            # linkat only when given a folder descriptor (ignored: the path is absolute), plain
            # link() otherwise, which does not follow /proc's link.
            os.link(f"/proc/self/fd/{descriptor}", os.path.join(folder, name),
                    src_dir_fd=descriptor)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NOT_LINKED:
                raise
            refused = True
        finally:
            os.close(descriptor)
    aside = os.path.join(folder, f"_commit_{unique_suffix()}.tmp")
    _write_new(data, aside)  # raises if the folder itself is the trouble
    if refused:
        _unnamed_files = False  # no /proc to link from, or not allowed to
    try:
        os.link(aside, os.path.join(folder, name))
        return True
    except FileExistsError:
        return False
    finally:
        os.remove(aside)


def unique_suffix() -> str:
    """A name no other file uses: random per process (writers on other machines may share
    the folder), then the process, thread and a count (a random name per file cost more)."""
    return f"{_process_token}-{os.getpid()}-{threading.get_ident()}-{next(_file_count)}"


def write_all(descriptor: int, data: bytes) -> None:
    """Write all of ``data`` to an open file."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def _open_unnamed(folder: str) -> int:
    return os.open(folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)


def _write_new(data: bytes, path: str) -> None:
    """Write ``data`` as a new file at ``path`` (FileExistsError if there is one)."""
    # os-level calls: Python's buffered file objects cost more than the write itself here.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        write_all(descriptor, data)
    finally:
        os.close(descriptor)


class _SpareFiles:
    """Unnamed files opened ahead of time, per folder, by a background thread: :meth:`take`
    hands one out (None when none is ready) and has it replaced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        # folder -> its ready descriptors; the most recently used folder last
        self._ready: collections.OrderedDict[str, list[int]] = collections.OrderedDict()
        self._wanted: set[str] = set()  # folders short of spares
        self._refused: set[str] = set()  # folders where opening one failed: none kept there
        self._thread: threading.Thread | None = None

    def take(self, folder: str) -> int | None:
        with self._lock:
            if folder in self._refused:
                return None
            ready = self._ready.get(folder)
            descriptor = ready.pop() if ready else None
            if folder in self._ready:
                self._ready.move_to_end(folder)
            self._wanted.add(folder)
            if self._thread is None:
                self._thread = threading.Thread(target=self._refill, daemon=True,
                                                name="sparktrack-spare-files")
                self._thread.start()
            self._work.notify()
        return descriptor

    def _refill(self) -> None:
        while True:
            with self._work:
                if not self._wanted:
                    self._work.wait(_IDLE_SECONDS)
                if not self._wanted:
                    self._thread = None
                    return
                folder = self._wanted.pop()
                missing = SPARES_PER_FOLDER - len(self._ready.get(folder, ()))
            opened = []
            try:
                for _ in range(missing):
                    opened.append(_open_unnamed(folder))
            except OSError:
                with self._lock:
                    self._refused.add(folder)  # commits there open their own (and report)
            self._keep(folder, opened)

    def _keep(self, folder: str, opened: list[int]) -> None:
        closing = []
        with self._lock:
            self._ready.setdefault(folder, []).extend(opened)
            self._ready.move_to_end(folder)
            while len(self._ready) > SPARE_FOLDERS:
                _, dropped = self._ready.popitem(last=False)
                closing.extend(dropped)
        for descriptor in closing:
            os.close(descriptor)

    def forget_in_child(self) -> None:
        """After fork: the parent's spares are the parent's (two processes writing into one
        unnamed file would link one file under two names)."""
        for descriptors in self._ready.values():
            for descriptor in descriptors:
                try:
                    os.close(descriptor)
                except OSError:
                    pass
        self.__init__()


# Whether this system writes unnamed files in a folder (Linux's O_TMPFILE, on most local
# filesystems); turned off by the first folder that refuses them (_NO_UNNAMED_FILES), or a
# link from /proc that fails (_NOT_LINKED) where a named aside then works.
_unnamed_files = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
_NO_UNNAMED_FILES = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
_NOT_LINKED = frozenset({errno.ENOENT, errno.EXDEV, errno.EPERM, errno.EACCES})

_spares = _SpareFiles()
_process_token = os.urandom(6).hex()
_file_count = itertools.count()


def _after_fork_in_child() -> None:
    # A forked child gets a token of its own (it could reuse the pid of an earlier child of
    # the same parent, and it inherits the parent's count) and no spares of the parent's.
    global _process_token
    _process_token = os.urandom(6).hex()
    _spares.forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
