"""A progress bar on stderr for long transfers: redrawn in place on a terminal, a line every
tenth of the way (and at the end) when stderr is a file or a pipe, so logs stay short."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_WIDTH = 30


class Progress:
    """Counts ``done`` of ``total`` things (runs, models) and shows it."""

    def __init__(self, *, label: str, total: int, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled and total > 0
        self._started = time.monotonic()
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_tenth = -1
        self._last_draw = 0.0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if not self._enabled:
            return
        if self._tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self._stream.write("\r" + self._line())
                self._stream.flush()
            return
        tenth = self.done * 10 // self.total
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self._stream.write(self._line() + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._enabled and self._tty:
            self._stream.write("\n")
            self._stream.flush()

    def _line(self) -> str:
        fraction = min(self.done / self.total, 1.0)
        filled = int(fraction * _WIDTH)
        elapsed = time.monotonic() - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return (f"{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] "
                f"{self.done:,}/{self.total:,} ({rate:,.0f}/s, {elapsed:.0f} s)")
