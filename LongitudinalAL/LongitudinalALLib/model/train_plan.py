"""What a training round may spend and how it picks its weights, decided before the first step.

Few labels must not mean little training: with one pass over the labels per
epoch, 6 labels gave about 60 optimiser steps and an all-background model
(issue 16). So the step budget has a floor that does not depend on the label
count, and a wall-time cap bounds how long a clinician waits after Accept. That
floor guards a model that starts from nothing; with ``warm_min_total_steps`` set, a
round whose starting model already finds the labelled lesions (a warm start)
fine-tunes on a smaller budget, halving the wait after Accept (issue 14; off by
default: it cost clasp_pe a little AUBC on the learning-curve benchmark).
Validation-based early stopping and checkpoint choice are used only when the
validation split can measure something (enough slices, lesions in it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model.devices import resolve_device


@dataclass(frozen=True)
class StepPlan:
    """total_steps optimiser steps, evaluated every ``period`` steps (one "epoch")."""

    total_steps: int
    period: int
    rule: str      # "exact" (epochs x steps_per_epoch), "passes" (epochs over the labels) or "floor"


def plan_steps(cfg, n_train: int, warm: bool = False) -> StepPlan:
    """The step budget for ``n_train`` labelled slices (see TrainConfig for the fields).

    An explicit ``steps_per_epoch`` is an exact budget of ``epochs * steps_per_epoch``
    (tests and scripts that want a fixed amount of work). Otherwise ``epochs`` passes
    over the labels, never fewer than ``min_total_steps``, at most ``max_total_steps``.
    ``warm`` (the starting model already segments the labelled lesions, see
    :func:`warm_start`): ``warm_epochs`` passes, never fewer than ``warm_min_total_steps``
    and never more than the cold plan; the floor guards a model that starts from
    nothing, which a warm one does not.
    """
    if cfg.steps_per_epoch:
        return StepPlan(cfg.epochs * cfg.steps_per_epoch, cfg.steps_per_epoch, "exact")
    cold = _budget(cfg.epochs, cfg.min_total_steps, cfg, n_train)
    if warm and cfg.warm_min_total_steps is not None:
        total, rule = _budget(cfg.warm_epochs, cfg.warm_min_total_steps, cfg, n_train)
        if total < cold[0]:
            return StepPlan(total, max(1, math.ceil(total / cfg.epochs)), "warm_" + rule)
    return StepPlan(cold[0], max(1, math.ceil(cold[0] / cfg.epochs)), cold[1])


def _budget(epochs: int, floor: int, cfg, n_train: int) -> tuple[int, str]:
    passes = epochs * max(cfg.min_steps, math.ceil(n_train / cfg.batch_size))
    total, rule = (passes, "passes") if passes >= floor else (floor, "floor")
    return (min(total, cfg.max_total_steps) if cfg.max_total_steps else total), rule


def warm_start(dice_on_lesion_slices: float, cfg) -> bool:
    """True when the starting model's pooled Dice on the labelled lesion slices is >= ``cfg.warm_dice``.

    A model from scratch scores about 0 there (it predicts nothing, or everything); a
    previous round's or the bundled model that already finds the labelled lesions is
    fine-tuned on the new labels and needs no from-nothing floor. NaN (no lesion
    slice labelled) is cold: nothing shows the model finds lesions.
    """
    return cfg.warm_min_total_steps is not None and dice_on_lesion_slices >= cfg.warm_dice


@dataclass(frozen=True)
class SelectionRule:
    """How the kept weights are chosen; ``name`` and ``reason`` go into the round record."""

    name: str      # "validation_dice" (early stopping + best epoch) or "last_weights"
    reason: str


def selection_rule(n_val: int, n_val_lesion: int, n_train_lesion: int, cfg) -> SelectionRule:
    """Trust a validation split only with >= cfg.min_val_slices slices and >= cfg.min_val_lesion_slices lesion slices.

    A split of one or two slices, or one without lesion pixels, scores 0.0 whatever the
    model does; early stopping on it stops a model that is still learning.
    """
    if n_val == 0:
        return SelectionRule("last_weights", "no validation split")
    if n_val < cfg.min_val_slices:
        why = f"validation split has {n_val} slices (fewer than {cfg.min_val_slices})"
    elif n_val_lesion < cfg.min_val_lesion_slices:
        why = (f"validation split has {n_val_lesion} slices with lesion pixels "
               f"(fewer than {cfg.min_val_lesion_slices})")
    elif n_train_lesion == 0:
        why = "every contoured slice is in the validation split"
    else:
        return SelectionRule("validation_dice", f"validation split of {n_val} slices ({n_val_lesion} with lesions)")
    return SelectionRule("last_weights", why + "; its slices are trained on")


class TimeBudget:
    """Fits the step plan into the wall-time cap, from the step time measured so far.

    ``total_steps`` is what the learning-rate schedule anneals over; it only ever
    lies between one more step and the planned total.
    """

    def __init__(self, max_seconds: float | None, total_steps: int) -> None:
        self.max_seconds = max_seconds
        self.planned = self.total_steps = total_steps
        self.capped = False
        self.start()

    def start(self) -> None:
        """Start the clock (after the set-up, so imports and allocations do not count as steps)."""
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def replan(self, steps_done: int) -> int:
        """New total after ``steps_done`` steps; call after a few steps and after each evaluation."""
        if not self.max_seconds or steps_done < 1 or steps_done >= self.planned:
            return self.total_steps
        if self.elapsed() >= self.max_seconds:
            self.total_steps, self.capped = steps_done, True
            return self.total_steps
        per_step = self.elapsed() / steps_done
        fits = steps_done + int(max(0.0, self.max_seconds - self.elapsed()) / per_step)
        self.total_steps = max(steps_done + 1, min(self.planned, fits))
        self.capped = self.total_steps < self.planned
        return self.total_steps


def _bad(option: str, value, fix: str) -> InputError:
    return InputError(f"{option} is {value}.", fix)


def check_config(cfg) -> None:
    """Reject values that would fail deep inside torch (or silently train nothing)."""
    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise _bad("The learning rate (--lr)", cfg.lr, "Give a positive number such as 1e-3.")
    for name, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size")):
        if getattr(cfg, name) < 1:
            raise _bad(flag, getattr(cfg, name), "Give a positive whole number.")
    if cfg.crop_size is not None and cfg.crop_size < 8:
        raise _bad("The training crop (--crop)", cfg.crop_size, "Give at least 8 pixels, or 0 for whole slices.")
    if cfg.steps_per_epoch is not None and cfg.steps_per_epoch < 1:
        raise _bad("--steps-per-epoch", cfg.steps_per_epoch, "Give a positive number, or leave it out.")
    if cfg.patience < 1:
        raise _bad("--patience", cfg.patience, "Give at least 1 epoch.")
    if cfg.min_total_steps < 0 or (cfg.max_total_steps is not None and cfg.max_total_steps < 1):
        raise _bad("The step budget", (cfg.min_total_steps, cfg.max_total_steps),
                   "Give a non-negative floor and a positive cap (or no cap).")
    if cfg.warm_min_total_steps is not None and (cfg.warm_min_total_steps < 0 or cfg.warm_epochs < 1):
        raise _bad("The warm-start budget", (cfg.warm_min_total_steps, cfg.warm_epochs),
                   "Give a non-negative floor and at least 1 pass (or no warm budget).")
    if cfg.max_seconds is not None and not (math.isfinite(cfg.max_seconds) and cfg.max_seconds > 0):
        raise _bad("The time budget (--max-minutes)", cfg.max_seconds, "Give a positive time, or 0 for no limit.")
    for name, lo, hi in (("distill_weight", 0.0, math.inf), ("l2sp", 0.0, math.inf),
                         ("distill_fraction", 0.0, 4.0), ("guard_fraction", 0.0, 1.0)):
        value = getattr(cfg, name, 0.0)
        if not (isinstance(value, (int, float)) and lo <= value <= hi):
            raise _bad(f"The training option {name}", value, f"Give a number from {lo:g} to {hi:g}.")
    if getattr(cfg, "distill_slices", 1) < 1:
        raise _bad("The training option distill_slices", cfg.distill_slices, "Give at least 1 slice.")
    unknown = [a for a in cfg.collapse_actions if a not in ("extend", "reinit")]
    if unknown:
        raise _bad("The collapse actions", unknown, "Use 'extend' and/or 'reinit' (or none).")
    resolve_device(cfg.device, training=True)
