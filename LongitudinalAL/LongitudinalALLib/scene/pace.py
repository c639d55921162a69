"""How long a background round may train: the time the clinician still needs for the batch she labels.

Why: a round's batch should be shown before she runs out of suggestions (issue 25: from her last
Accept of a batch to the next batch shown, p95 <= 2 s), so the round's budget is her time: her
pace (the median gap between her recent Accepts; the first from the Run's batch being shown)
times the suggestions still pending, less what a round needs besides its capped steps (its
set-up, evaluations, scoring the pool and the maps: the last round's wall time minus its cap;
before one, only ``TRAIN_SHARE`` of her time goes to training). It is handed to the recipe's
wall-time cap (``TrainConfig.max_seconds``), which fits the step plan into it; never above the
recipe's own cap, never under ``MIN_SECONDS``. Before her pace is known the recipe's budget stands.

Measured (bench_replay, sample at the panel's defaults, 15 s per label, 2 loaded cores): a round
capped at 111 s trained 120 s and took 127 s in all, so the rest of a round is counted from its cap.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

#: the recipe's own wall-time cap of a round (TrainConfig.max_seconds; a test keeps them equal)
RECIPE_CAP_S = 180.0
#: share of her remaining time a round trains for while the rest of a round's cost is unknown
TRAIN_SHARE = 0.6
#: shortest training a round is given, seconds
MIN_SECONDS = 10.0
#: Accepts her pace is measured over (the newest)
RECENT = 11


class Pace:
    """The clinician's pace from her Accepts, and the training time a round started now may take."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._stamps: list[float] = []          # the first batch shown, then her Accepts (the last RECENT)
        self._seconds_per_label: float | None = None
        self.overhead_s: float | None = None   # a round's wall time besides its capped steps, last measured

    def batch_shown(self) -> None:
        """A batch is shown: the first one starts her clock (a later one lands while she labels)."""
        if not self._stamps:
            self._stamps = [self.clock()]

    def accepted(self) -> None:
        self._stamps = (self._stamps + [self.clock()])[-RECENT:]
        if len(self._stamps) >= 2:
            gaps = [b - a for a, b in zip(self._stamps, self._stamps[1:])]
            self._seconds_per_label = statistics.median(gaps)

    @property
    def seconds_per_label(self) -> float | None:
        return self._seconds_per_label

    def round_seconds(self, pending: int) -> float | None:
        """Training seconds for a round started now with ``pending`` suggestions left to her; None: unknown."""
        if self._seconds_per_label is None:
            return None
        left = self._seconds_per_label * max(pending, 0)
        train = left - self.overhead_s if self.overhead_s is not None else TRAIN_SHARE * left
        return round(min(RECIPE_CAP_S, max(MIN_SECONDS, train)), 1)

    def round_ended(self, wall_s: float, capped_s: float | None) -> None:
        """A round's wall time (start to result) and the cap it was given (None: none): what else it costs."""
        if capped_s is not None:
            self.overhead_s = max(0.0, wall_s - capped_s)
