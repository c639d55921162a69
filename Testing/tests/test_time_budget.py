"""`simulate --seconds-per-label S` (issue 25, item 4): a round gets the steps her time on its batch buys."""

from __future__ import annotations

import types

import numpy as np
import pytest

from LongitudinalALLib.active import simulate, time_budget
from LongitudinalALLib.commands.cli import main
from LongitudinalALLib.model.train_plan import plan_steps
from LongitudinalALLib.model.training import TrainConfig


def test_each_round_gets_the_steps_her_time_on_its_new_labels_buys():
    cfg = simulate.SimulationConfig(rounds=3, per_round=10, initial=4, seconds_per_label=15.0, train=TrainConfig())
    record = {"time_budget": {"steps_per_second": 2.0}}
    for r, labels in ((1, 4), (2, 10), (3, 10)):
        fields = simulate._round_train(cfg, record, r)
        for n_train in (1, labels, 500):  # whatever the label count, the budget is her time
            plan = plan_steps(TrainConfig.from_dict(fields), n_train)
            assert plan.total_steps == labels * 15 * 2, (r, n_train, plan)
        assert fields["max_seconds"] is None and fields["seed"] == simulate.training_seed(0, r)
    plain = simulate._round_train(simulate.SimulationConfig(train=TrainConfig()), {}, 1)
    assert plain["min_total_steps"] == TrainConfig().min_total_steps  # without S: the recipe's own budget


@pytest.mark.slow  # 4 s: the first training run of a process warms torch up
def test_the_rate_is_measured_with_the_recipe_and_leaves_the_model_unchanged(one_torch_thread, monkeypatch):
    import torch

    monkeypatch.setattr(time_budget, "SHORT_STEPS", 2)
    monkeypatch.setattr(time_budget, "LONG_STEPS", 8)

    from LongitudinalALLib.model import build_model
    from LongitudinalALLib.model.network import ModelConfig

    model = build_model(ModelConfig(channels=[4, 8], strides=[2], num_res_units=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    labels = np.zeros((12, 32, 32), np.uint8)
    labels[:4, 10:14, 10:14] = 1
    slices = types.SimpleNamespace(images=rng.normal(size=(12, 3, 32, 32)).astype(np.float32), labels=labels,
                                   foreground=np.ones((12, 32, 32), bool))
    cfg = TrainConfig(batch_size=2, crop_size=None, augment=None)
    out = time_budget.measure_steps_per_second(model, [types.SimpleNamespace(slices=slices)], cfg, n_slices=6,
                                               n_unlabelled=6)
    assert out["steps_per_second"] > 0 and out["calibration_steps"] == [2, 8]
    assert out["calibration_seconds"][1] > out["calibration_seconds"][0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("value", ["0", "-3", "nan"])
def test_a_meaningless_seconds_per_label_is_one_line_before_any_work(value, tmp_path, capsys):
    assert main(["simulate", "--cohort", str(tmp_path / "none"), "--seconds-per-label", value]) == 2
    err = capsys.readouterr().err.strip()
    assert "--seconds-per-label" in err and "\n" not in err
