"""From MLflow's ``sparktrack:`` URIs to store roots, and from store paths to the artifact URIs
MLflow's artifact repositories read. No mlflow import here.

* ``sparktrack:///abs/path`` (or ``sparktrack:/abs/path``): the local store at ``/abs/path``;
* ``sparktrack:./relative`` (or ``sparktrack:relative``): a local store relative to the
  current directory, made absolute when the store is built;
* ``sparktrack+s3://bucket/prefix``: the store at ``s3://bucket/prefix`` (any
  ``sparktrack+<scheme>://`` becomes ``<scheme>://``; MLflow finds the store through an entry
  point per scheme, and ``sparktrack+s3`` is the one registered).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from sparktrack._validation import quoted
from sparktrack.errors import InvalidInputError

__all__ = ["SCHEME", "artifact_uri_for_mlflow", "store_root_from_uri"]

SCHEME = "sparktrack"


def _refuse(uri: str, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"Invalid sparktrack store URI {quoted(uri)}: {why}. Use sparktrack:///abs/path, "
        "sparktrack:./relative/path or sparktrack+s3://bucket/prefix."
    )


def store_root_from_uri(uri: str) -> str:
    """The store root a ``sparktrack:`` / ``sparktrack+<scheme>:`` URI names.

    Local roots come back absolute (a relative one is resolved against the current
    directory); object-store roots as ``<scheme>://bucket/prefix``.

    Raises:
        InvalidInputError: the URI is not a sparktrack URI, names a host for a local store
            (``sparktrack://host/path``: use three slashes), or has no path.
    """
    if not isinstance(uri, str):
        raise _refuse(str(uri), f"expected a string, got {type(uri).__name__}")
    scheme, sep, rest = uri.partition(":")
    scheme = scheme.lower()
    if not sep or not (scheme == SCHEME or scheme.startswith(SCHEME + "+")):
        raise _refuse(uri, "the scheme must be 'sparktrack' or 'sparktrack+<scheme>'")
    parsed = urllib.parse.urlsplit(uri)
    if parsed.query or parsed.fragment:
        raise _refuse(uri, "a store URI takes no query ('?') or fragment ('#')")
    if scheme != SCHEME:
        inner = scheme[len(SCHEME) + 1:]
        if not parsed.netloc:
            raise _refuse(uri, f"an object-store URI needs a bucket: {scheme}://bucket/prefix")
        return f"{inner}://{parsed.netloc}{parsed.path}".rstrip("/")
    if parsed.netloc:
        raise _refuse(
            uri, f"{parsed.netloc!r} reads as a host name; a local store takes three slashes "
            f"(sparktrack:///{parsed.netloc}{parsed.path})"
        )
    path = urllib.parse.unquote(parsed.path)
    if not path:
        raise _refuse(uri, "the path is empty")
    return os.path.abspath(os.path.expanduser(path))


def artifact_uri_for_mlflow(location: str) -> str:
    """A stored artifact location as MLflow's artifact repositories read it: an absolute
    ``file://`` URI for a local folder, an object-store URI as it is."""
    if "://" in location:
        return location
    return Path(os.path.abspath(location)).as_uri()
