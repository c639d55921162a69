"""Rounds budgeted by the annotator's time (issue 25, item 4): ``simulate --seconds-per-label S``.

Why: with rounds training while the clinician labels (the panel's background rounds),
a round may take as long as she spends on the batch, and no longer. So its budget is
``labels in the batch x S`` seconds, turned into optimiser steps by the rate this machine
trains at. The rate is measured once at the start of the run, with the recipe itself
(the starting model, its crops, batch and rehearsal) on pool slices: two exact runs of
``short`` and ``long`` steps (after an untimed warm-up run), whose difference leaves out what a round costs besides its
steps (copying the model, the rehearsal targets, evaluation). The rate and each round's
steps are recorded in ``simulation.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import numpy as np

#: calibration runs (steps); their difference is what is timed
SHORT_STEPS, LONG_STEPS = 4, 24


def steps_for(labels: int, seconds_per_label: float, steps_per_second: float) -> int:
    """Optimiser steps a round gets for a batch of ``labels``: her time on it at this machine's rate (>= 1)."""
    return max(1, int(round(labels * seconds_per_label * steps_per_second)))


def budgeted(train: dict[str, Any], steps: int) -> dict[str, Any]:
    """TrainConfig fields of a round of exactly ``steps`` steps (floor = cap; no wall-time cap, no warm floor)."""
    return {**train, "min_total_steps": steps, "max_total_steps": steps, "warm_min_total_steps": None,
            "steps_per_epoch": None, "max_seconds": None}


def measure_steps_per_second(model, cases: list, config, n_slices: int = 32, n_unlabelled: int = 64) -> dict[str, Any]:
    """Steps per second of ``config``'s recipe fine-tuning ``model`` (left unchanged) on pool ``cases``.

    ``cases``: OracleCase list (slices with their truth labels); the first ``n_slices`` slices are
    trained on (the lesion slices first, as the recipe's lesion crops want them) and the next
    ``n_unlabelled`` serve as rehearsal, as in a round.
    """
    from LongitudinalALLib.model.training import train_model

    lesion, plain = [], []  # (case slices, row): only the slices used are copied, never the whole pool
    for oc in cases:
        has = oc.slices.labels.reshape(len(oc.slices.labels), -1).any(1)
        lesion += [(oc.slices, i) for i in np.flatnonzero(has)]
        plain += [(oc.slices, i) for i in np.flatnonzero(~has)]
        if len(lesion) + len(plain) >= 4 * (n_slices + n_unlabelled):
            break
    chosen = (lesion + plain)[:n_slices + n_unlabelled]
    images = np.stack([c.images[i] for c, i in chosen])
    labels = np.stack([c.labels[i] for c, i in chosen]).astype(np.uint8)
    foreground = np.stack([c.foreground[i] for c, i in chosen])
    train, rest = np.arange(min(n_slices, len(chosen))), np.arange(min(n_slices, len(chosen)), len(chosen))
    seconds = {}
    for steps in (SHORT_STEPS, SHORT_STEPS, LONG_STEPS):  # the first run warms up (imports, allocator): untimed
        cfg = dataclasses.replace(config, epochs=1, steps_per_epoch=steps, max_seconds=None, guard=False)
        start = time.perf_counter()
        train_model(copy.deepcopy(model), images[train], labels[train], config=cfg, train_foreground=foreground[train],
                    unlabelled_images=images[rest] if len(rest) else None,
                    unlabelled_foreground=foreground[rest] if len(rest) else None, fine_tune=True)
        seconds[steps] = time.perf_counter() - start
    difference = seconds[LONG_STEPS] - seconds[SHORT_STEPS]
    rate = ((LONG_STEPS - SHORT_STEPS) / difference if difference > 0  # a noisy machine: the long run alone
            else LONG_STEPS / seconds[LONG_STEPS])
    return {"steps_per_second": rate, "calibration_steps": [SHORT_STEPS, LONG_STEPS],
            "calibration_seconds": [round(seconds[SHORT_STEPS], 3), round(seconds[LONG_STEPS], 3)]}
