"""The filter grammar's tokenizer: names (with quoted parts), strings, numbers, operators.

A failure is raised as :class:`_Failure` with a reason and the span of the input at fault; the
parser turns it into an ``InvalidFilterError`` quoting that span.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparktrack._search.limits import MAX_QUOTED_PART, shorten

__all__ = ["_Failure", "_Token", "_is_word", "_part", "_tokenize"]

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATORS = ("!=", ">=", "<=", "<>", "==", "=", ">", "<")


def _part(text: str) -> str:
    """A piece of the input named inside a reason, next to the quoted clause: kept shorter."""
    return shorten(text, MAX_QUOTED_PART)


@dataclass(frozen=True)
class _Token:
    # kind: "name" (parts: ((text, quote), ...) split on dots), "string", "number",
    # "bare" (a number run into word characters, e.g. 1.0.2), "op", "(", ")", ",", "end".
    kind: str
    text: str
    start: int
    end: int
    value: object = None


class _Failure(Exception):
    """Raised inside the parser with a reason and a span; turned into InvalidFilterError."""

    def __init__(self, reason: str, start: int, end: int) -> None:
        super().__init__(reason)
        self.reason, self.start, self.end = reason, start, end


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _tokenize(text: str) -> list[_Token]:
    tokens, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "(),":
            tokens.append(_Token(c, c, i, i + 1))
            i += 1
        elif c in "'\"":
            value, end = _scan_string(text, i)
            tokens.append(_Token("string", text[i:end], i, end, value))
            i = end
        elif (m := _NUMBER.match(text, i)) and (c.isdigit() or m.end() - i > 1):
            end = m.end()
            kind = "number"
            if end < n and (_is_word(text[end]) or text[end] == "."):
                # "1.0.2" or "3abc": not a number; usable as an unquoted param/tag value.
                kind = "bare"
                while end < n and (_is_word(text[end]) or text[end] == "."):
                    end += 1
            tokens.append(_Token(kind, text[i:end], i, end, text[i:end]))
            i = end
        elif _is_word(c) or c == "`":
            parts, end = _scan_name(text, i)
            tokens.append(_Token("name", text[i:end], i, end, parts))
            i = end
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None and tokens and tokens[-1].kind == "name" and tokens[-1].end == i:
                word = text[tokens[-1].start :].split()[0]
                raise _Failure(
                    f"unexpected character {c!r} in {_part(word)}; quote a key holding it with "
                    "backticks, e.g. metrics.`val-loss`",
                    tokens[-1].start,
                    tokens[-1].start + len(word),
                )
            if op is None and c == "." and tokens and tokens[-1].kind == "string":
                raise _Failure(
                    "only backticks may quote a prefix: write `metrics`.x or metrics.x",
                    tokens[-1].start,
                    i + 1,
                )
            if op is None:
                raise _Failure(f"unexpected character {c!r}", i, i + 1)
            tokens.append(_Token("op", op, i, i + len(op)))
            i += len(op)
    tokens.append(_Token("end", "", n, n))
    return tokens


def _scan_string(text: str, start: int) -> tuple[str, int]:
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
        elif c == quote and text.startswith(quote * 2, i):
            out.append(quote)
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise _Failure(f"string starting with {quote} is never closed", start, len(text))


def _scan_name(text: str, start: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """Scan ``prefix.key`` pieces: word runs, or quoted parts (quotes only after a dot)."""
    parts, i, n = [], start, len(text)
    while True:
        c = text[i] if i < n else ""
        if c == "`" or (parts and c in "'\""):
            close = text.find(c, i + 1)
            while close != -1 and text.startswith(c * 2, close):
                close = text.find(c, close + 2)  # a doubled quote is one quote character
            if close == -1:
                raise _Failure(f"quoted name starting with {c} is never closed", i, n)
            parts.append((text[i + 1 : close].replace(c * 2, c), c))
            i = close + 1
        elif c and _is_word(c):
            j = i
            while j < n and _is_word(text[j]):
                j += 1
            parts.append((text[i:j], ""))
            i = j
        else:
            raise _Failure(
                f"expected a key after '{_part(text[start:i])}'; quote keys holding characters "
                "other than letters, digits, '_' and '.' with backticks, e.g. metrics.`val-loss`",
                start,
                min(i + 1, n),
            )
        if i < n and text[i] == ".":
            i += 1
            continue
        if i < n and (text[i] in "`'\"" or (parts[-1][1] and _is_word(text[i]))):
            raise _Failure(
                "a quoted key must be the whole key (metrics.`a b`, not metrics.`a`b)", start, i + 1
            )
        return tuple(parts), i
