"""When a run stops early: a time budget, or a signal (Ctrl-C, SIGTERM from a scheduler).

A signal does not kill the run mid-step: the step finishes, a checkpoint is written and the loop
returns, so `--resume` continues exactly where it stopped (N steps, interrupt, resume to M equals M
steps uninterrupted). A second signal while that happens stops at once, as impatient users expect.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # what a shell reports for a process they ended


class TimeBudget:
    """`minutes` of wall-clock or process CPU time, counted from construction."""

    def __init__(self, minutes: float, clock: str) -> None:
        self._clock = time.process_time if clock == "cpu" else time.perf_counter
        self._deadline = self._clock() + minutes * 60.0

    def spent(self) -> bool:
        return self._clock() >= self._deadline

    def left_s(self) -> float:
        return max(0.0, self._deadline - self._clock())


class StopSignal:
    """While entered, SIGINT and SIGTERM set `received` (the signal's name) instead of killing the
    process; a second one raises KeyboardInterrupt. Outside the main thread it does nothing (Python
    delivers signals there only), and the previous handlers come back on exit."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}
        self._depth = 0  # entered again (the CLI's, then the loop's): the outermost exit restores

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            self._restore()
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> StopSignal:
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._restore()
