"""Logging that never fails the user's ``fit()``: failures are collected, then one warning.

Each step of autologging runs under :meth:`Problems.guard`; an exception there is recorded and
the next step goes on. At the end of the fit, :meth:`Problems.report` emits at most one
:class:`~sparktrack.errors.AutologgingWarning` for the failures and one for truncated params.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sparktrack.config import Settings
from sparktrack.errors import AutologgingWarning

__all__ = ["Problems", "limit_params", "logger"]

logger = logging.getLogger("sparktrack.autolog")


class Problems:
    """What went wrong while logging one ``fit()`` (or one ``evaluate()``)."""

    def __init__(self, *, silent: bool) -> None:
        self.silent = silent
        self.failures: list[tuple[str, BaseException]] = []
        self.truncated: list[str] = []

    @contextmanager
    def guard(self, step: str) -> Iterator[None]:
        """Run a logging step; an exception is recorded, not raised."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - logging must never break training
            self.failures.append((step, exc))
            logger.debug("sparktrack autologging failed while %s", step, exc_info=True)

    def report(self, *, what: str, stacklevel: int) -> None:
        if self.silent:
            return
        if self.truncated:
            shown = ", ".join(self.truncated[:10])
            more = f" and {len(self.truncated) - 10} more" if len(self.truncated) > 10 else ""
            warnings.warn(
                AutologgingWarning(
                    f"sparktrack autologging truncated over-long param keys or values of {what} "
                    f"to the store's limits: {shown}{more}. Log the full values with log_text "
                    "if you need them."
                ),
                stacklevel=stacklevel + 1,
            )
        if self.failures:
            step, first = self.failures[0]
            others = len(self.failures) - 1
            more = f" ({others} more step(s) failed)" if others else ""
            warnings.warn(
                AutologgingWarning(
                    f"sparktrack autologging failed while {step} for {what}: "
                    f"{type(first).__name__}: {first}{more}. The model was trained and returned "
                    "as usual; what could not be logged is missing from the run."
                ),
                stacklevel=stacklevel + 1,
            )


def limit_params(
    params: Mapping[str, Any], settings: Settings, problems: Problems
) -> dict[str, str]:
    """Params as strings, keys and values cut to the store's limits (noted in ``problems``)."""
    limited: dict[str, str] = {}
    for key, value in params.items():
        key = str(key)
        text = str(value)
        if len(key) > settings.max_key_length:
            problems.truncated.append(key[:40] + "...")
            key = key[: settings.max_key_length]
        if len(text) > settings.max_param_value_length:
            problems.truncated.append(key)
            text = text[: settings.max_param_value_length]
        limited[key] = text
    return limited
