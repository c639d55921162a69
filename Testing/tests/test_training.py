"""Training on a tiny real-anatomy set: the loss falls, seeds reproduce, early stop and cancel work."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.core.progress import CancelToken
from LongitudinalALLib.model import ModelConfig, build_model
from LongitudinalALLib.model.augment import AugmentConfig, augment_batch, crop_arrays, lesion_biased_crops
from LongitudinalALLib.model.losses import build_loss
from LongitudinalALLib.model.training import TrainConfig, train_model

TINY = ModelConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=1, head_features=8, dropout=0.1)

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@functools.lru_cache(maxsize=1)
def _mni_axial(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Axial MNI T1 slices at 3 mm, zero-padded to size x size: (N, size, size) float32 and brain mask."""
    import SimpleITK as sitk
    from nilearn.datasets import MNI152_FILE_PATH

    t1 = sitk.BinShrink(sitk.Cast(sitk.ReadImage(str(MNI152_FILE_PATH)), sitk.sitkFloat32), [3, 3, 3])
    vol = sitk.GetArrayFromImage(t1)  # (z, y, x)
    brain = vol > 20
    vol = (vol - vol[brain].mean()) / vol[brain].std()
    vol[~brain] = 0
    keep = brain.reshape(len(brain), -1).mean(1) > 0.15
    vol, brain = vol[keep], brain[keep]
    out = np.zeros((len(vol), size, size), np.float32)
    m = np.zeros((len(vol), size, size), bool)
    h, w = vol.shape[1:]
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    hh, ww = min(h, size), min(w, size)
    oy, ox = (size - hh) // 2, (size - ww) // 2
    out[:, oy:oy + hh, ox:ox + ww] = vol[:, y0:y0 + hh, x0:x0 + ww]
    m[:, oy:oy + hh, ox:ox + ww] = brain[:, y0:y0 + hh, x0:x0 + ww]
    return out, m


def mni_slice_set(n: int, seed: int, size: int = 64, lesion_every: int = 2
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real-anatomy slice pairs with simulated new lesions on the follow-up.

    Returns images (n,3,size,size) [baseline, follow-up, difference], labels
    (n,size,size) uint8 and foreground (n,size,size) bool. Every
    ``lesion_every``-th slice gets 1-2 bright round lesions inside the brain.
    """
    base, brain = _mni_axial(size)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(base), size=n, replace=n > len(base))
    b = base[pick].copy()
    fg = brain[pick].copy()
    f = b + rng.normal(0, 0.05, b.shape).astype(np.float32) * fg
    lab = np.zeros(b.shape, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        if i % lesion_every:
            continue
        inside = np.argwhere(fg[i])
        for _ in range(rng.integers(1, 3)):
            cy, cx = inside[rng.integers(len(inside))]
            r = rng.uniform(2.0, 4.0)
            blob = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & fg[i]
            lab[i][blob] = 1
            f[i][blob] += 2.0
    images = np.stack([b, f, f - b], axis=1).astype(np.float32)
    return images, lab, fg


def _eval_loss(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return float(build_loss()(model(torch.from_numpy(x)), torch.from_numpy(y[:, None].astype(np.float32))))


def _fast(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=8, steps_per_epoch=4, crop_size=48, lr=3e-3, device="cpu", seed=7)
    base.update(kw)
    return TrainConfig(**base)


def test_training_reduces_loss_and_is_deterministic():
    x, y, fg = mni_slice_set(16, seed=1)
    results, models = [], []
    for _ in range(2):
        torch.manual_seed(0)
        m = build_model(TINY)
        before = _eval_loss(m, x, y)
        r = train_model(m, x, y, config=_fast(epochs=4), train_foreground=fg)
        results.append(r)
        models.append(m)
    after = _eval_loss(models[0], x, y)
    assert after < before - 0.05, (before, after)
    assert [h["train_loss"] for h in results[0].history] == [h["train_loss"] for h in results[1].history]
    for k, v in results[0].state_dict.items():
        assert torch.equal(v, results[1].state_dict[k]), k
    assert results[0].best_epoch == 4 and np.isnan(results[0].best_val_dice)  # no validation: last epoch
    # a different seed gives a different run
    torch.manual_seed(0)
    r3 = train_model(build_model(TINY), x, y, config=_fast(epochs=1, seed=8))
    assert r3.history[0]["train_loss"] != results[0].history[0]["train_loss"]


def test_early_stopping_triggers_on_flat_validation():
    x, y, _ = mni_slice_set(12, seed=2)
    xv, yv, _ = mni_slice_set(6, seed=3)
    torch.manual_seed(0)
    m = build_model(TINY)
    # a vanishing lr: validation Dice cannot improve after the first epoch
    r = train_model(m, x, y, xv, yv, _fast(epochs=20, lr=1e-12, patience=2, min_epochs=1, steps_per_epoch=2))
    assert r.stopped_early and len(r.history) == 3 and r.best_epoch == 1
    assert 0.0 <= r.best_val_dice <= 1.0 and all("val_dice" in h for h in r.history)


def test_cancel_keeps_last_good_state():
    x, y, _ = mni_slice_set(12, seed=4)
    xv, yv, _ = mni_slice_set(6, seed=5)
    torch.manual_seed(0)
    m = build_model(TINY)
    token = CancelToken()

    def progress(stage, fraction, message=""):
        if "epoch 2/" in message:
            token.cancel()

    r = train_model(m, x, y, xv, yv, _fast(epochs=5, patience=10), progress=progress, cancel=token)
    assert r.cancelled and len(r.history) == 1 and r.best_epoch == 1
    for k, v in m.state_dict().items():  # the model holds the kept state, not the half-trained one
        assert torch.equal(v.cpu(), r.state_dict[k]), k


def test_bad_input_is_a_clear_error():
    x, y, _ = mni_slice_set(4, seed=0)
    with pytest.raises(InputError, match="do not match"):
        train_model(build_model(TINY), x, y[:3], config=_fast(epochs=1))
    with pytest.raises(InputError, match="No training"):
        train_model(build_model(TINY), x[:0], y[:0], config=_fast(epochs=1))


def test_augmentation_moves_label_with_images():
    x, y, _ = mni_slice_set(8, seed=6)
    imgs = torch.from_numpy(np.repeat(y[:, None].astype(np.float32), 3, axis=1))
    labs = torch.from_numpy(y[:, None].astype(np.float32))
    cfg = AugmentConfig(rotate_deg=15, scale=0.1, p_spatial=1.0, intensity_scale=0, noise_std=0)
    a, b = augment_batch(imgs, labs, cfg, torch.Generator().manual_seed(0))
    assert not torch.equal(a[:, 0], imgs[:, 0])       # something changed
    agree = ((a[:, 0] > 0.5) == (b[:, 0] > 0.5)).float().mean()
    assert agree > 0.99 and torch.equal(a[:, 0], a[:, 2])  # same warp for all channels and the label
    # crops centred on lesions contain them
    rng = np.random.default_rng(0)
    origins = lesion_biased_crops(y, 24, 1.0, rng)
    _, cl = crop_arrays(x, y, origins, 24)
    has = y.reshape(len(y), -1).any(1)
    assert cl.shape == (8, 24, 24) and cl[has].reshape(has.sum(), -1).any(1).all()
