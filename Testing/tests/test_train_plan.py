"""Issue 16: the step budget, the validation rule, the wall-time cap and the collapse check (real training)."""

from __future__ import annotations

import pytest
import torch
from test_training import TINY, mni_slice_set

from LongitudinalALLib.model import build_model
from LongitudinalALLib.model.train_collapse import check_lesion_slices
from LongitudinalALLib.model.train_plan import plan_steps, selection_rule
from LongitudinalALLib.model.training import TrainConfig, train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_step_budget_has_a_floor_that_does_not_depend_on_the_label_count():
    cfg = TrainConfig(epochs=15, min_total_steps=200, max_total_steps=4000)
    for n in (1, 6, 20, 100):                       # 15 passes over few labels: 60 steps before the fix
        plan = plan_steps(cfg, n)
        assert plan.total_steps == 200 and plan.rule == "floor" and plan.period == 14
    assert plan_steps(cfg, 400).total_steps == 15 * 50 and plan_steps(cfg, 400).rule == "passes"
    assert plan_steps(cfg, 100_000).total_steps == 4000
    exact = plan_steps(TrainConfig(epochs=3, steps_per_epoch=2), 6)
    assert (exact.total_steps, exact.period, exact.rule) == (6, 2, "exact")


def test_validation_is_trusted_only_when_it_can_measure():
    cfg = TrainConfig(min_val_slices=5, min_val_lesion_slices=2)
    assert selection_rule(2, 1, 3, cfg).name == "last_weights"
    assert "2 slices" in selection_rule(2, 1, 3, cfg).reason
    assert "0 slices with lesion pixels" in selection_rule(8, 0, 3, cfg).reason
    assert selection_rule(8, 3, 0, cfg).name == "last_weights"
    assert selection_rule(8, 3, 2, cfg).name == "validation_dice"
    assert selection_rule(0, 0, 2, cfg).reason == "no validation split"


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=6, batch_size=8, crop_size=32, lr=3e-3, device="cpu", seed=3, min_total_steps=30,
                patience=2, min_epochs=1)
    base.update(kw)
    return TrainConfig(**base)


def test_a_tiny_validation_split_does_not_stop_training_and_is_trained_on():
    """The issue's rounds 2-4: a 2-slice split scoring 0.0 stopped training after a few epochs."""
    x, y, fg = mni_slice_set(8, seed=11)
    xv, yv, fgv = mni_slice_set(2, seed=12, lesion_every=2)
    torch.manual_seed(0)
    r = train_model(build_model(TINY), x, y, xv, yv, _cfg(), train_foreground=fg, val_foreground=fgv)
    assert r.selection == "last_weights" and "2 slices" in r.selection_reason
    assert not r.stopped_early and r.stop_reason == "budget" and r.steps >= 30
    assert r.n_train == 10 and r.n_val == 0 and all("val_dice" not in h for h in r.history)
    s = r.summary()
    assert s["selection"] == "last_weights" and s["budget_rule"] == "floor" and s["steps"] == r.steps


def test_a_trusted_validation_split_never_stops_before_the_floor():
    x, y, fg = mni_slice_set(8, seed=13)
    xv, yv, _ = mni_slice_set(6, seed=14)
    torch.manual_seed(0)
    r = train_model(build_model(TINY), x, y, xv, yv, _cfg(lr=1e-12, epochs=12, min_total_steps=30),
                    train_foreground=fg)
    assert r.selection == "validation_dice" and r.n_val == 6
    assert r.history[-1]["step"] >= 30                     # patience 2 alone would stop at step 12


def test_the_wall_time_cap_ends_the_run_and_says_so():
    x, y, fg = mni_slice_set(8, seed=15)
    torch.manual_seed(0)
    r = train_model(build_model(TINY), x, y, config=_cfg(min_total_steps=100_000, max_total_steps=None,
                                                         max_seconds=1.5), train_foreground=fg)
    assert r.stop_reason == "time_cap" and r.steps < 100_000 and r.planned_steps == r.steps
    assert any("time budget" in w for w in r.warnings)
    per_step = r.history[-1]["seconds"] / r.steps
    assert r.history[-1]["seconds"] <= 1.5 + 6 * per_step + 1.0   # re-planned every 5 steps (+ a validation)


def _collapsed_model():
    torch.manual_seed(0)
    m = build_model(TINY)
    with torch.no_grad():
        m.head.bias.fill_(-40.0)                            # predicts background everywhere
    return m


def test_a_collapsed_model_is_not_kept_silently():
    x, y, fg = mni_slice_set(8, seed=16)
    m = _collapsed_model()
    start = {k: v.clone() for k, v in m.state_dict().items()}
    assert check_lesion_slices(m, x, y, torch.device("cpu")).collapsed
    # lr so small nothing moves: "train longer" cannot help, so the previous model is kept and the user told
    r = train_model(m, x, y, config=_cfg(lr=1e-12, collapse_actions=("extend",)), train_foreground=fg)
    c = r.summary()["collapse"]
    assert c["detected"] and c["outcome"] == "kept_previous" and [a["action"] for a in c["attempts"]] == ["extend"]
    assert any("previous model was kept" in w for w in r.warnings)
    assert all(torch.equal(v, start[k]) for k, v in m.state_dict().items())
    assert r.steps == 2 * 30                                # the extension ran
    # re-initialising escapes the collapsed start
    m = _collapsed_model()
    r = train_model(m, x, y, config=_cfg(lr=1e-12, collapse_actions=("extend", "reinit")), train_foreground=fg)
    assert r.collapse["outcome"] == "reinit" and r.collapse["attempts"][-1]["check"]["slices_hit"] > 0
    assert not check_lesion_slices(m, x, y, torch.device("cpu")).collapsed
    assert any("'reinit' fixed it" in w for w in r.warnings)


def test_no_lesion_labels_is_not_a_collapse():
    x, y, fg = mni_slice_set(6, seed=17)
    y[:] = 0
    r = train_model(_collapsed_model(), x, y, config=_cfg(min_total_steps=4), train_foreground=fg)
    assert r.collapse["checked"] is False and not r.collapse["detected"] and not r.warnings


def test_the_time_cap_is_checked_after_every_step(monkeypatch):
    """A loaded machine: every step takes 10 s of the clock; a 15 s cap must stop after 2 steps, not 5."""
    from LongitudinalALLib.model import train_plan

    clock = [0.0]
    monkeypatch.setattr(train_plan.time, "perf_counter", lambda: clock[0])
    budget = train_plan.TimeBudget(15.0, 200)
    from LongitudinalALLib.model.train_loop import REPLAN_EVERY
    steps = 0
    while steps < budget.total_steps:
        clock[0] += 10.0
        steps += 1
        if steps % REPLAN_EVERY == 0:
            budget.replan(steps)
    assert steps == 2 and budget.capped
