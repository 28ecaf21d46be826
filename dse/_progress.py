"""The progress line on stderr: trials done / budget, rate, ETA, best so far.

On a terminal it redraws one line; otherwise (CI logs, pipes) it prints a line every
``log_every`` seconds and at the end, so logs stay readable.
"""
from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    def __init__(self, total: int, done: int = 0, *, stream=None, enabled: bool = True, log_every: float = 10.0):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total
        self.start_done = done
        self.done = done
        self.candidates = 0
        self.best = ""
        self.note = ""            # what the run is doing besides its own trials, e.g. waiting
        self.t0 = time.monotonic()
        self.log_every = log_every
        self._last = 0.0

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        new = self.done - self.start_done
        rate = new / elapsed if elapsed > 0 else 0.0
        remaining = max(0, self.total - self.done)
        eta = _clock(remaining / rate) if rate > 0 else "?"
        width = 20
        filled = int(width * min(1.0, self.done / self.total)) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        cand_rate = self.candidates / elapsed if elapsed > 0 else 0.0
        best = f"  best {self.best}" if self.best else ""
        note = f"  ({self.note})" if self.note else ""
        return (f"[{bar}] {self.done}/{self.total} trials  {rate * 60:.1f}/min  ETA {eta}  "
                f"{self.candidates} candidates ({cand_rate:.1f}/s){best}{note}")

    def update(self, *, done: int | None = None, candidates: int = 0, best: str | None = None,
               note: str | None = None, force: bool = False) -> None:
        if done is not None:
            self.done = done
        if note is not None:
            self.note = note
        self.candidates += candidates
        if best is not None:
            self.best = best
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self._last > 0.2:
                self.stream.write("\r\033[K" + self.line())
                self.stream.flush()
                self._last = now
        elif force or now - self._last > self.log_every:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last = now

    def close(self) -> None:
        if self.enabled:
            self.update(force=True)
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
