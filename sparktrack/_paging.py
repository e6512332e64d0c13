"""Page tokens of searches: an opaque, URL-safe encoding of the offset of the next page.

The token is MLflow's shape (base64 of ``{"offset": n}``), so a token is only meaningful for
the search (same filter, order and view) that produced it.
"""

from __future__ import annotations

import base64
import binascii
import json

from sparktrack.errors import InvalidInputError

__all__ = ["PagedList", "check_max_results", "offset_from_token", "token_for"]


class PagedList(list):
    """A page of results; ``token`` fetches the next page (None on the last page)."""

    def __init__(self, items, token: str | None) -> None:
        super().__init__(items)
        self.token = token



def offset_from_token(page_token: str | None) -> int:
    """The offset a token stands for (0 for None or an empty token)."""
    if not page_token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(page_token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise InvalidInputError(
            f"Invalid page_token {page_token!r}: pass the token of a previous search's result."
        ) from None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"Invalid page_token {page_token!r}.")
    return offset


def token_for(offset: int) -> str:
    """The token of the page starting at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def check_max_results(max_results: object, limit: int) -> int:
    """``max_results`` if it is an integer in 1..limit, else InvalidInputError."""
    if (isinstance(max_results, bool) or not isinstance(max_results, int)
            or not 1 <= max_results <= limit):
        raise InvalidInputError(
            f"max_results must be an integer between 1 and {limit}, got {max_results!r}."
        )
    return max_results
