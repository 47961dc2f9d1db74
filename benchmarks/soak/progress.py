"""A one-line progress bar on stderr (a plain line every ten seconds when not a terminal)."""

import sys
import time
from collections.abc import Mapping


class ProgressBar:
    def __init__(self, total: float, width: int = 30) -> None:
        self._total = total
        self._width = width
        self._tty = sys.stderr.isatty()
        self._last_line = 0.0

    def draw(self, elapsed: float, figures: Mapping[str, object]) -> None:
        share = min(1.0, elapsed / self._total) if self._total else 1.0
        filled = int(share * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        text = " ".join(f"{name} {value}" for name, value in figures.items())
        line = f"[{bar}] {elapsed:5.0f}/{self._total:.0f}s {text}"
        if self._tty:
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
        elif time.monotonic() - self._last_line >= 10:
            self._last_line = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    def say(self, message: str) -> None:
        """A line of its own, above the bar."""
        if self._tty:
            sys.stderr.write("\r\x1b[K")
        print(message, file=sys.stderr, flush=True)
