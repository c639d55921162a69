"""Issue 14: a warm start (the model already finds the labelled lesions) trains a smaller budget.

A model from scratch keeps the issue-16 floor; a collapse found after a warm round is retrained on the cold plan.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_training import TINY, mni_slice_set

from LongitudinalALLib.model import build_model
from LongitudinalALLib.model.train_plan import plan_steps, warm_start
from LongitudinalALLib.model.training import TrainConfig, train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_warm_plan_is_smaller_and_never_larger_than_the_cold_plan():
    assert plan_steps(TrainConfig(), 10, warm=True).total_steps == 200   # default: no warm budget
    cfg = TrainConfig(warm_min_total_steps=100)
    assert plan_steps(cfg, 10).total_steps == 200             # cold: the issue-16 floor
    warm = plan_steps(cfg, 10, warm=True)
    assert (warm.total_steps, warm.rule) == (100, "warm_floor") and warm.period == 3
    assert (plan_steps(cfg, 400, warm=True).total_steps, plan_steps(cfg, 400, warm=True).rule) == (500, "warm_passes")
    assert plan_steps(cfg, 400).total_steps == 2000
    small = TrainConfig(epochs=2, min_steps=1, min_total_steps=50, warm_min_total_steps=80)
    assert plan_steps(small, 10, warm=True) == plan_steps(small, 10)   # a warm floor above the cold plan: cold
    assert plan_steps(TrainConfig(warm_min_total_steps=None), 10, warm=True).total_steps == 200
    assert plan_steps(TrainConfig(epochs=3, steps_per_epoch=2), 10, warm=True).total_steps == 6


def test_warm_start_needs_the_starting_model_to_find_the_lesions():
    cfg = TrainConfig(warm_min_total_steps=100, warm_dice=0.25)
    assert warm_start(0.6, cfg) and not warm_start(0.1, cfg)
    assert not warm_start(math.nan, cfg)                      # no lesion slice labelled: cold
    assert not warm_start(0.9, TrainConfig(warm_min_total_steps=None))


def test_a_scratch_round_keeps_the_floor_and_the_next_round_is_warm():
    x, y, fg = mni_slice_set(8, seed=21)
    torch.manual_seed(0)
    model = build_model(TINY)
    cfg = TrainConfig(epochs=6, crop_size=32, lr=3e-3, device="cpu", seed=3, min_total_steps=60,
                      warm_min_total_steps=20, warm_epochs=2)
    first = train_model(model, x, y, config=cfg, train_foreground=fg)
    assert first.start_dice < cfg.warm_dice and first.budget_rule == "floor" and first.steps == 60
    second = train_model(model, x, y, config=cfg, train_foreground=fg)
    assert second.start_dice >= cfg.warm_dice and second.budget_rule == "warm_floor" and second.steps == 20
    assert second.summary()["start_dice"] == round(second.start_dice, 4)
    assert not second.collapse["detected"] and second.collapse["check"]["dice"] > 0


def test_reinitialising_a_collapsed_warm_start_trains_the_cold_plan():
    x, y, fg = mni_slice_set(8, seed=16)
    torch.manual_seed(0)
    model = build_model(TINY)
    cfg = TrainConfig(epochs=6, crop_size=32, lr=1e-12, device="cpu", seed=3, min_total_steps=30,
                      warm_min_total_steps=6, warm_epochs=1, warm_dice=0.0, collapse_actions=("reinit",))
    with torch.no_grad():
        model.head.bias.fill_(-40.0)                            # finds nothing, but warm_dice 0 calls it warm
    r = train_model(model, x, y, config=cfg, train_foreground=fg)
    assert r.budget_rule == "warm_floor" and r.collapse["detected"]
    assert r.collapse["attempts"][0]["steps"] == 30 and r.steps == 6 + 30
