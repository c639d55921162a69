"""Progress and cancel hooks shared by every long-running step.

Long steps take ``progress: ProgressCallback | None`` and call it with a stage
name and a fraction in [0, 1]; ``cancel: CancelToken | None`` is polled between
units of work and raises :class:`CancelledError` when set. The command line
plugs a tqdm bar in; the Slicer module plugs in messages from its worker process.
"""

from __future__ import annotations

import threading
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
