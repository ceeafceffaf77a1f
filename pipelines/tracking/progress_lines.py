"""Progress bars in log files as whole lines, so `tail -f results/logs/...` reads them.

On a terminal a tqdm bar redraws itself in place with carriage returns. Snakemake sends each job's
stderr to a log file instead, where those redraws pile up into one line of megabytes that `tail`
prints at once. `ProgressLines` wraps such a stream: each redraw becomes the bar's current state,
written as its own line at most once every `interval` seconds (the first and the final state
always), and every other text passes through unchanged. `dreamer-pipeline` installs it on stderr
when stderr is not a terminal (`install`), so every stage's bars are tail-friendly.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

LOG_INTERVAL_S = 30.0   # one progress line per bar every 30 s: ~16 lines for an 8-minute stage


class ProgressLines:
    def __init__(self, stream: TextIO, interval: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self._pending: str | None = None      # the newest bar state not yet written
        self._last_written = -float("inf")
        self._line_open = False                # a progress line was the last thing written

    def write(self, text: str) -> int:
        parts = text.split("\r")
        self._passthrough(parts[0])
        for redraw in parts[1:]:
            state, newline, rest = redraw.partition("\n")
            state = state.rstrip()
            if state:                           # blank redraws only clear the bar: nothing to log
                self._pending = state
            if newline:                         # the bar ends (tqdm's close) or a message follows
                self._flush_pending(force=True)
                self._passthrough(rest)
            else:
                self._flush_pending(force=False)
        return len(text)

    def _passthrough(self, text: str) -> None:
        if not text:
            return
        self._flush_pending(force=True)         # the bar's state before what follows it
        if self._line_open and text.startswith("\n"):
            text = text[1:]                     # the newline closing a bar already written as a line
        self._line_open = False
        if text:
            self.stream.write(text)

    def _flush_pending(self, force: bool) -> None:
        now = self.clock()
        if self._pending is not None and (force or now - self._last_written >= self.interval):
            self.stream.write(self._pending + "\n")
            self._pending, self._last_written, self._line_open = None, now, True
            self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str):
        return getattr(self.stream, name)      # encoding, fileno, errors, ... of the real stream


def install() -> None:
    """Wrap `sys.stderr` when it is not a terminal (a job's log file), once."""
    stream = sys.stderr
    if stream is None or isinstance(stream, ProgressLines):
        return
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if not interactive:
        sys.stderr = ProgressLines(stream)
