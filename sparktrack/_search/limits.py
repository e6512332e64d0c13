"""The bounds every search filter is held to, and how error messages quote user input.

The parser enforces these bounds, so ``search_runs`` (pyarrow), ``search_experiments`` and the
Spark filter (``sparktrack.spark.filter``) accept exactly the same filters: a filter within
them is answered by each engine, one beyond them is an ``InvalidFilterError`` from each, before
anything is evaluated. They exist because each engine has a ceiling of its own: Spark's
expression tree and Java's regex compiler recurse (a ``StackOverflowError`` past a few
thousand levels), Arrow's RE2 refuses large patterns, and Py4J and Arrow cannot carry a lone
UTF-16 surrogate.
"""

from __future__ import annotations

__all__ = [
    "MAX_CLAUSES",
    "MAX_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_LIKE_PATTERN_LENGTH",
    "MAX_LIKE_WILDCARDS",
    "MAX_QUOTED",
    "MAX_QUOTED_PART",
    "shorten",
]

MAX_FILTER_LENGTH = 1_000_000
"""Characters in one filter string (or one ``order_by`` item)."""

MAX_CLAUSES = 10_000
"""Comparisons in one filter (``metrics.a > 1 OR metrics.a < 0`` holds two)."""

MAX_DEPTH = 100
"""Nesting of parentheses and NOT in one filter."""

MAX_LIKE_PATTERN_LENGTH = 10_000
"""Characters in one LIKE or ILIKE pattern."""

MAX_LIKE_WILDCARDS = 100
"""Unescaped ``%`` and ``_`` in one LIKE or ILIKE pattern."""

MAX_QUOTED = 200
"""Characters of user input an error message quotes (the clause at fault)."""

MAX_QUOTED_PART = 50
"""Characters of a key or token the reason names beside the quoted clause."""


def shorten(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` as an error message may quote it: at most ``limit`` characters, then ``...``
    and the full length; a lone surrogate is written as its escape (``\\ud800``) so that
    the message itself can be printed, logged and sent over Py4J."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} characters)"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
