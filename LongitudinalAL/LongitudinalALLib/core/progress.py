"""Progress and cancel hooks shared by every long-running step.

Long steps take ``progress: ProgressCallback | None`` and call it with a stage
name and a fraction in [0, 1]; ``cancel: CancelToken | None`` is polled between
units of work and raises :class:`CancelledError` when set. The command line
plugs a tqdm bar in; the Slicer module plugs in messages from its worker process.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from LongitudinalALLib.core.errors import CancelledError


class ProgressCallback(Protocol):
    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


def report(progress: ProgressCallback | None, stage: str, fraction: float, message: str = "") -> None:
    """Call ``progress`` if given, clamping the fraction to [0, 1]."""
    if progress is not None:
        progress(stage, min(1.0, max(0.0, float(fraction))), message)


class CancelToken:
    """A thread-safe flag; ``check()`` raises once ``cancel()`` was called."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, what: str = "The operation") -> None:
        if self._event.is_set():
            raise CancelledError(what)


def check_cancel(cancel: CancelToken | None, what: str = "The operation") -> None:
    if cancel is not None:
        cancel.check(what)


class TqdmProgress:
    """A ProgressCallback that draws one tqdm bar per stage on stderr."""

    def __init__(self, disable: bool = False) -> None:
        self._disable = disable
        self._bar = None
        self._stage: str | None = None

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=1000, desc=stage, disable=self._disable, leave=True,
                             bar_format="{desc:<14} {percentage:3.0f}%|{bar}| {elapsed} {postfix}")
        bar = self._bar
        bar.n = int(round(fraction * 1000))
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class RemainingTime:
    """Estimate of the seconds left in the current stage, from its elapsed time and fraction done.

    Why: a bar alone does not tell a clinician whether to wait or come back. The
    estimate is linear in the stage's fraction (elapsed x (1 - f) / f); it is
    withheld until ``min_fraction`` of the stage and ``min_seconds`` have passed,
    because the first steps of a stage (model load, first batch) mislead it.
    A new stage name starts a new estimate.
    """

    def __init__(self, clock=None, min_fraction: float = 0.05, min_seconds: float = 2.0) -> None:
        self.clock = clock or time.monotonic
        self.min_fraction, self.min_seconds = min_fraction, min_seconds
        self.restart()

    def restart(self) -> None:
        """Forget the current stage (a new job may reuse a stage name)."""
        self.stage: str | None = None
        self.started = 0.0

    def seconds_left(self, stage: str, fraction: float) -> float | None:
        now = self.clock()
        if stage != self.stage:
            self.stage, self.started = stage, now
        elapsed = now - self.started
        if fraction < self.min_fraction or elapsed < self.min_seconds or fraction >= 1.0:
            return None
        return elapsed * (1.0 - fraction) / fraction

    def describe(self, stage: str, fraction: float, message: str = "") -> str:
        """``message`` with "about N s left" (or "N min") appended once an estimate exists."""
        left = self.seconds_left(stage, fraction)
        if left is None:
            return message
        when = f"about {max(1, round(left))} s left" if left < 90 else f"about {round(left / 60)} min left"
        return f"{message} ({when})" if message else when
