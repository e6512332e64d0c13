"""What the engines (deltalake, Arrow, the OS) raise, translated into :class:`StoreError`.

Every error of the Delta layer leaves it as a StoreError whose message starts with the cause
(``permission denied on <path>``, ``corrupt data file <path>``, ...), names the table and says
how to fix it; the engine's own message follows in parentheses, without its Rust backtrace.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator

import pyarrow as pa
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from sparktrack._delta.paths import join_uri
from sparktrack.errors import StoreError

__all__ = [
    "ENGINE_ERRORS",
    "CommitFailedError",
    "TableNotFoundError",
    "engine_message",
    "is_conflict",
    "is_permanent",
    "object_store_cause",
    "store_error",
    "translated",
]

# What the engines raise when a store cannot be read or written.
ENGINE_ERRORS = (DeltaError, OSError, pa.ArrowException)
# Causes a retry cannot fix: a commit fails at once instead of after its backoff.
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_QUOTED_PATH = re.compile(r"(?:file|path|directory)[: ]+'?(/[^'\s:#]+)", re.IGNORECASE)
_DATA_FILE = re.compile(r"'([^'\s]+\.parquet)'")


def engine_message(exc: BaseException) -> str:
    """The engine's message without the Rust backtrace and colour codes, on one line."""
    lines = []
    for line in _ANSI.sub("", str(exc)).splitlines():
        stripped = line.strip().lstrip("↳").strip()
        # deltalake appends a backtrace: "0: <unknown>", "at ./nptl/pthread_create.c:442:8".
        if re.match(r"^\d+: ", stripped) or stripped.startswith("at "):
            break
        if stripped:
            lines.append(stripped)
    message = " ".join(lines) or type(exc).__name__
    return message if len(message) <= 300 else message[:297] + "..."


def _errno_of(exc: BaseException, message: str) -> int | None:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    found = re.search(r"os error (\d+)", message)
    if found:
        return int(found.group(1))
    for code, text in ((errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system"),
                       (errno.ENOENT, "no such file or directory"),
                       (errno.ENOSPC, "no space left on device")):
        if text in message.lower():
            return code
    return None


def _path_of(exc: BaseException, message: str, uri: str) -> str:
    """The file the engine names in its message, else the table."""
    if isinstance(exc, OSError) and exc.filename:
        return str(exc.filename)
    found = _QUOTED_PATH.search(message) or _DATA_FILE.search(message)
    if found is None:
        return uri
    path = found.group(1)
    # Arrow names a file of a Delta dataset relative to the table.
    return path if path.startswith("/") or "://" in path else join_uri(uri, path)


_S3_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_BUCKET = re.compile(r"<BucketName>([^<]+)</BucketName>")
_ENDPOINT = re.compile(r"(https?://[^/\s?]+)")
_DENIED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                 "InvalidToken", "ExpiredToken", "AllAccessDisabled"}
_UNREACHABLE = ("connection refused", "tcp connect error", "dns error", "error sending request",
                "connection reset", "timed out", "operation timed out", "broken pipe")


def object_store_cause(raw: str, uri: str) -> tuple[str, str] | None:
    """(cause, fix) of an object store's refusal or absence in the engine message ``raw``
    (its full text: the S3 error code sits at the end), or None for other failures."""
    if "://" not in uri or uri.startswith("file://"):
        return None
    text = _ANSI.sub("", raw)
    lowered = text.lower()
    code = _S3_CODE.search(text)
    code = code.group(1) if code else ""
    if code == "NoSuchBucket":
        bucket = _BUCKET.search(text)
        name = bucket.group(1) if bucket else uri.split("://", 1)[1].split("/", 1)[0]
        scheme = uri.split("://", 1)[0]
        return (f"missing bucket {scheme}://{name}",
                "Create the bucket, or correct the store URI.")
    if (code in _DENIED_CODES or "403 forbidden" in lowered
            or "lacked the necessary privileges" in lowered
            or "error occurred while loading credentials" in lowered):
        return (f"access denied by the object store{f' ({code})' if code else ''}",
                "Check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the "
                "provider's equivalent, in storage_options or the environment) and that they "
                "may read and write this location.")
    if any(marker in lowered for marker in _UNREACHABLE):
        endpoint = _ENDPOINT.search(text)
        where = f" at {endpoint.group(1)}" if endpoint else ""
        return (f"cannot reach the object store{where} (network failure)",
                "Check the network and AWS_ENDPOINT_URL; rows not committed yet stay "
                "buffered in this process and the next flush commits them.")
    return None


def store_error(what: str, uri: str, exc: BaseException) -> StoreError:
    """A StoreError for ``exc``, met while doing ``what`` to the table at ``uri``.

    The message starts with the cause (``permission denied on <path>``, ``corrupt data file
    <path>``, ...) and says how to fix it; the engine's own message follows in parentheses.
    """
    message = engine_message(exc)
    code = _errno_of(exc, message)
    path = _path_of(exc, message, uri)
    remote = object_store_cause(str(exc), uri)
    if remote is not None:
        cause, fix = remote
    elif code in (errno.EACCES, errno.EPERM):
        cause = f"permission denied on {path}"
        fix = ("Check that this process may read and write the store (owner and mode of its "
               "folders, a read-only mount).")
    elif code == errno.EROFS:
        cause, fix = f"read-only file system at {path}", "Use a writable location for the store."
    elif code in (errno.ENOSPC, errno.EDQUOT):
        cause, fix = f"no space left for {path}", "Free disk space (or quota) for the store."
    elif code == errno.ENOENT:
        cause = f"missing file {path}"
        fix = ("The Delta log still refers to it: restore it from a backup, or drop it from "
               "the log with deltalake's DeltaTable.repair().")
    elif isinstance(exc, pa.ArrowInvalid) or "parquet" in message.lower():
        cause = f"corrupt data file {path}"
        fix = ("Restore the file from a backup; or, giving up its rows, move it away and run "
               "deltalake's DeltaTable(<table>).repair().")
    elif isinstance(exc, DeltaError) and re.search(
        r"json|log|metadata|protocol|checkpoint|version", message, re.IGNORECASE
    ):
        cause = f"broken Delta log of {uri}"
        fix = "Restore the table's _delta_log folder from a backup."
    else:
        cause, fix = f"{what} failed", ""
    return StoreError(f"{cause}: {what} {uri} failed ({message}). {fix}".rstrip())


def is_permanent(exc: BaseException) -> bool:
    """Whether a failure would happen again however often it is retried (no permission, a
    read-only or full disk)."""
    return _errno_of(exc, engine_message(exc)) in _PERMANENT_ERRNOS


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is a commit that lost a race against another writer."""
    return isinstance(exc, CommitFailedError)


@contextlib.contextmanager
def translated(what: str, uri: str) -> Iterator[None]:
    """Raise what the engines raise inside the block as StoreError naming the table at ``uri``
    (a lost commit race, CommitFailedError, is left to the caller to retry)."""
    try:
        yield
    except (StoreError, CommitFailedError):
        raise
    except ENGINE_ERRORS as exc:
        raise store_error(what, uri, exc) from exc
