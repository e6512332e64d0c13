"""LIKE patterns as regexes that run in time linear in the value's length.

Spark translates ``%`` into ``.*`` for Java's backtracking regex engine, where ``%a%a%b``
takes time cubic in the value's length; Arrow's fast paths for ``abc%``, ``%abc`` and
``%abc%`` do not unescape an escaped backslash (``%\\\\b`` never matches ``a\\b``). Both
engines therefore get some patterns as regexes built here.
"""

from __future__ import annotations

__all__ = ["like_regex"]


def like_regex(pattern: str, *, ignore_case: bool = False, dialect: str = "java") -> str:
    """A regex that matches exactly what LIKE ``pattern`` matches: for Java (Spark's
    ``rlike``) or for RE2 (Arrow's ``match_substring_regex``).

    ``_`` is any one character, ``%`` any run of characters, a backslash escapes the next
    character. The pattern is split at each ``%`` into segments of fixed length; the first
    must start the value and the last must end it, and each middle segment is matched at its
    earliest place after the previous one. That earliest place is always a right one (an
    earlier end leaves more room to what follows), so each middle segment sits in an atomic
    group, ``(?>.*?segment)``, and the regex never backtracks into it: the match takes time
    linear in the value's length times the pattern's, where ``.*a.*a.*b`` takes cubic time.
    RE2 never backtracks and has no atomic groups: there the segments are joined by ``.*``.
    ``ignore_case`` matches case-insensitively (Unicode), as Arrow's ILIKE does.
    """
    segments: list[list[str | None]] = [[]]  # characters; None for "_"
    escaped = False
    for char in pattern:
        if escaped:
            segments[-1].append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            segments.append([])
        else:
            segments[-1].append(None if char == "_" else char)
    regexes = [_segment_regex(segment) for segment in segments]
    if dialect not in ("java", "re2"):
        raise ValueError(f"dialect must be 'java' or 're2', got {dialect!r}")
    flags = ("(?siu)" if dialect == "java" else "(?is)") if ignore_case else "(?s)"
    if len(regexes) == 1:  # no "%": the whole value
        return f"{flags}\\A{regexes[0]}\\z"
    first, *middle, last = regexes
    atomic = "(?>.*?{})" if dialect == "java" else ".*{}"
    inner = "".join(atomic.format(segment) for segment in middle if segment)
    return f"{flags}\\A{first}{inner}.*{last}\\z"


def _segment_regex(segment: list[str | None]) -> str:
    """A run of fixed characters and ``_`` as a regex: literals escaped, ``_`` runs as .{n}."""
    parts, anys = [], 0
    for item in [*segment, ""]:
        if item is None:
            anys += 1
            continue
        if anys:
            parts.append("." if anys == 1 else f".{{{anys}}}")
            anys = 0
        if item:
            # Letters and digits as they are, anything else as a code point escape: nothing
            # in a value can then read as regex syntax.
            parts.append(item if item.isascii() and item.isalnum() else f"\\x{{{ord(item):x}}}")
    return "".join(parts)
