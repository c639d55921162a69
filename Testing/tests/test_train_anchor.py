"""The anchors to the starting model (issue 24): rehearsal targets, frozen batch norm, L2-SP, all in one run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_session import TINY

from LongitudinalALLib.model import ModelConfig, build_model
from LongitudinalALLib.model.train_anchor import L2SP, rehearsal_set
from LongitudinalALLib.model.probabilities import predict_probabilities
from LongitudinalALLib.model.training import TrainConfig, train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    y = np.zeros((n, size, size), np.uint8)
    y[: n // 2, 10:16, 10:16] = 1
    x[:, :, 10:16, 10:16] += 3 * y[:, None, 10:16, 10:16]
    return x, y


def test_rehearsal_set_holds_tissue_slices_and_the_starting_models_own_probabilities():
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict(TINY))
    x, _ = _data(10)
    fg = np.zeros((10, 32, 32), bool)
    fg[[1, 4, 7], 5:20, 5:20] = True
    cfg = TrainConfig(distill_weight=1.0, distill_slices=2)
    r = rehearsal_set(model, x, fg, cfg, torch.device("cpu"))
    assert len(r.x) == 2  # evenly spaced over the slices with tissue: the first and the last
    np.testing.assert_array_equal(r.x, x[[1, 7]])
    np.testing.assert_allclose(r.p, predict_probabilities(model, x[[1, 7]], torch.device("cpu")), atol=1e-6)
    assert rehearsal_set(model, x, fg, TrainConfig(distill_weight=0.0), torch.device("cpu")) is None  # off


def test_anchors_apply_when_fine_tuning_and_never_from_scratch():
    x, y = _data()
    ux, _ = _data(8, seed=1)
    ufg = np.ones((8, 32, 32), bool)
    cfg = TrainConfig(epochs=1, steps_per_epoch=3, batch_size=4, crop_size=16, device="cpu", l2sp=1e-3,
                      collapse_actions=())
    assert cfg.freeze_bn and cfg.distill_weight > 0  # the defaults of every front door
    for fine_tune in (True, False):
        torch.manual_seed(0)
        model = build_model(ModelConfig.from_dict(TINY))
        before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
        result = train_model(model, x, y, config=cfg, unlabelled_images=ux, unlabelled_foreground=ufg,
                             fine_tune=fine_tune)
        after = model.state_dict()
        kept = all(torch.equal(before[k], after[k]) for k in before)
        assert result.steps == 3 and before
        assert (result.n_distill, result.anchored, kept) == ((8, True, True) if fine_tune else (0, False, False))
        assert result.summary()["n_distill"] == result.n_distill


def test_l2sp_is_zero_at_the_start_and_grows_with_the_distance():
    model = torch.nn.Linear(3, 2)
    penalty = L2SP(model, 0.5)
    assert penalty(model).item() == 0.0
    with torch.no_grad():
        model.weight += 1.0
    assert penalty(model).item() == pytest.approx(0.5 * 6)
    assert L2SP(model, 0.0)(model) == 0.0
