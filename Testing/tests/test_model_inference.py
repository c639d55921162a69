"""Predictor: batching, OOM batch shrink, embeddings, BADGE gradients, streamed MC dropout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from LongitudinalALLib.core.errors import CancelledError, InputError, ResourceError
from LongitudinalALLib.core.progress import CancelToken
from LongitudinalALLib.model.inference import (
    Predictor,
    cpu_has_native_bf16,
    gradient_embedding_from_features,
    resolve_device,
)
from LongitudinalALLib.model.network import ChangeSegNet, ModelConfig, build_model
from LongitudinalALLib.model.reductions import binary_entropy

SMALL = ModelConfig(channels=(4, 8, 16), strides=(2, 2), head_features=4)


def _model(seed: int = 0) -> ChangeSegNet:
    torch.manual_seed(seed)
    model = build_model(SMALL)
    with torch.no_grad():  # spread the outputs so probabilities are not all ~0.5
        model.head.weight.mul_(8.0)
    return model


def _images(n: int = 10, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, size, size)).astype(np.float32)


class OOMAbove(ChangeSegNet):
    """Fault injection: behaves like an accelerator that runs out of memory above a batch size."""

    def __init__(self, cfg: ModelConfig, limit: int, error: type[RuntimeError] = RuntimeError):
        super().__init__(cfg)
        self.limit, self.error, self.calls = limit, error, []

    def forward_with_features(self, x):
        self.calls.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward_with_features(x)


def test_predict_shapes_and_batch_size_invariance():
    x = _images(11)
    ref = Predictor(_model(), device="cpu", batch_size=11).predict(x)
    assert ref.shape == (11, 32, 32) and ref.dtype == np.float32
    assert 0 <= ref.min() and ref.max() <= 1 and ref.std() > 0.01
    for bs in (1, 3, 4):
        np.testing.assert_allclose(Predictor(_model(), device="cpu", batch_size=bs).predict(x), ref, atol=1e-6)


@pytest.mark.parametrize("error", [RuntimeError, torch.cuda.OutOfMemoryError])
def test_batch_shrinks_on_out_of_memory(error):
    torch.manual_seed(0)
    faulty = OOMAbove(SMALL, limit=3, error=error).eval()
    healthy = ChangeSegNet(SMALL).eval()
    healthy.load_state_dict(faulty.state_dict())
    x = _images(10)
    pred = Predictor(faulty, device="cpu", batch_size=16)
    out = pred.predict(x)
    assert pred.batch_size == 2  # 16 -> 8 -> 4 -> 2 (first batch holds 10 slices)
    assert faulty.calls[:4] == [10, 5, 2, 2]
    np.testing.assert_allclose(out, Predictor(healthy, device="cpu", batch_size=10).predict(x), atol=1e-6)


def test_oom_at_batch_one_and_other_errors():
    x = _images(2)
    with pytest.raises(ResourceError, match="Out of memory") as err:  # the machine's limit, not the user's input
        Predictor(OOMAbove(SMALL, limit=0).eval(), device="cpu", batch_size=4).predict(x)
    assert not isinstance(err.value, InputError)

    class Broken(ChangeSegNet):
        def forward_with_features(self, x):
            raise RuntimeError("shape mismatch in layer 3")

    with pytest.raises(RuntimeError, match="shape mismatch"):  # not mistaken for OOM
        Predictor(Broken(SMALL).eval(), device="cpu").predict(x)


def test_bad_images_are_input_errors():
    pred = Predictor(_model(), device="cpu")
    with pytest.raises(InputError, match="multiple of the network stride"):
        pred.predict(_images(2, size=30))
    with pytest.raises(InputError, match=r"\(N, 3, H, W\)"):
        pred.predict(np.zeros((2, 32, 32), np.float32))
    bad = _images(2)
    bad[1, 0, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        pred.predict(bad)


def test_device_and_amp_selection():
    assert resolve_device("cpu").type == "cpu"
    model = _model()
    pred = Predictor(model, device="cpu", amp=True)
    assert pred.amp is cpu_has_native_bf16()  # CPU autocast (bf16) only where the CPU has bf16 units
    assert Predictor(model, device="cpu").amp is cpu_has_native_bf16()
    assert next(pred.model.parameters()).device.type == "cpu"
    fp32 = Predictor(model, device="cpu", amp=False)
    assert fp32.amp is False
    cl = Predictor(model, device="cpu", channels_last=True, batch_size=4, amp=False)
    np.testing.assert_allclose(cl.predict(_images(4)), fp32.predict(_images(4)), atol=1e-5)
    # bf16 (where used) changes probabilities only slightly
    np.testing.assert_allclose(pred.predict(_images(4)), fp32.predict(_images(4)), atol=3e-2)


def test_embeddings_match_the_model_and_gradients_match_autograd():
    model = _model()
    x = _images(5)
    fg = np.zeros((5, 32, 32), bool)
    fg[:, 4:28, 6:30] = True
    out = Predictor(model, device="cpu", batch_size=2, amp=False).predict_all(x, fg)
    with torch.inference_mode():
        logits, emb = model.forward_with_embedding(torch.from_numpy(x))
    np.testing.assert_allclose(out.embeddings, emb.numpy(), atol=1e-5)
    np.testing.assert_allclose(out.probs, torch.sigmoid(logits)[:, 0].numpy(), atol=1e-6)
    assert out.gradient_embeddings.shape == (5, SMALL.head_features + 1)
    # closed form == autograd of the masked-mean BCE on the model's own hard labels
    for i in range(5):
        model.zero_grad()
        lg, _ = model.forward_with_features(torch.from_numpy(x[i:i + 1]))
        p = torch.sigmoid(lg)[0, 0]
        m = torch.from_numpy(fg[i])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            lg[0, 0][m], (p[m] >= 0.5).float().detach(), reduction="mean")
        loss.backward()
        expect = torch.cat([model.head.weight.grad.flatten(), model.head.bias.grad])
        np.testing.assert_allclose(out.gradient_embeddings[i], expect.numpy(), rtol=1e-4, atol=1e-6)


def test_gradient_embedding_is_zero_for_confident_slices():
    feats = torch.randn(2, 3, 4, 4)
    probs = torch.stack([torch.zeros(4, 4), torch.full((4, 4), 0.4)])
    g = gradient_embedding_from_features(probs, feats)
    assert torch.all(g[0] == 0) and g[1].norm() > 0


def test_mc_statistics_streamed_deterministic_and_consistent():
    x = _images(7)
    pred = Predictor(_model(), device="cpu", batch_size=3)
    a = pred.mc_statistics(x, passes=6, seed=5, keep_mean_prob=True)
    b = pred.mc_statistics(x, passes=6, seed=5)
    c = pred.mc_statistics(x, passes=6, seed=6)
    np.testing.assert_array_equal(a.mutual_information, b.mutual_information)
    assert not np.allclose(a.mutual_information, c.mutual_information)
    assert np.all(a.mutual_information > 0)  # dropout masks disagree
    assert np.all(a.predictive_entropy >= a.expected_entropy - 1e-7)
    assert a.mean_prob.shape == (7, 32, 32) and b.mean_prob is None
    # entropy of the mean map, reduced by mean, matches the kept mean probabilities
    np.testing.assert_allclose(a.predictive_entropy, binary_entropy(torch.from_numpy(a.mean_prob)).mean((1, 2)).numpy(),
                               rtol=1e-5)
    off = pred.mc_statistics(x, passes=3, dropout=False)
    np.testing.assert_allclose(off.mutual_information, 0.0, atol=1e-7)
    plain = binary_entropy(torch.from_numpy(pred.predict(x))).mean((1, 2)).numpy()
    np.testing.assert_allclose(off.predictive_entropy, plain, rtol=1e-5)
    assert pred.model.training is False and not any(m.training for m in pred.model.modules())


def test_mc_statistics_survive_oom_retry_and_use_foreground():
    torch.manual_seed(0)
    faulty = OOMAbove(SMALL, limit=3).eval()
    healthy = ChangeSegNet(SMALL).eval()
    healthy.load_state_dict(faulty.state_dict())
    x = _images(6)
    got = Predictor(faulty, device="cpu", batch_size=8).mc_statistics(x, passes=4, seed=1)
    # 4 stacked passes of 6 slices fail, then 2, then 1; then the batch halves to 3 slices
    assert faulty.calls[:3] == [24, 12, 6] and set(faulty.calls[3:]) == {3}
    want = Predictor(healthy, device="cpu", batch_size=3, mc_replicas=1).mc_statistics(x, passes=4, seed=1)
    np.testing.assert_allclose(got.mutual_information, want.mutual_information, rtol=1e-6)
    fg = np.zeros((6, 32, 32), bool)
    fg[:3, :8, :8] = True
    calls_before = len(faulty.calls)
    masked = Predictor(faulty, device="cpu", batch_size=3, mc_replicas=1).mc_statistics(
        x, passes=4, foreground=fg, reduction="sum")
    assert np.all(masked.mutual_information[3:] == 0) and np.all(masked.mutual_information[:3] > 0)
    assert faulty.calls[calls_before:] == [3] * 4  # slices without tissue are not run at all
    with pytest.raises(InputError, match="Foreground masks have shape"):
        Predictor(healthy, device="cpu").mc_statistics(x, passes=2, foreground=fg[:2])
    with pytest.raises(InputError, match="at least 2 passes"):
        Predictor(healthy, device="cpu").mc_statistics(x, passes=1)


def test_progress_and_cancel():
    seen = []
    pred = Predictor(_model(), device="cpu", batch_size=4)
    pred.predict(_images(10), progress=lambda stage, f, msg="": seen.append(f))
    assert seen == pytest.approx([0.4, 0.8, 1.0])
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        pred.predict(_images(10), cancel=token)


def test_content_window_covers_content_with_margin_on_stride_multiples():
    from LongitudinalALLib.model.inference import content_window

    x = np.zeros((3, 3, 64, 64), np.float32)
    x[1, 2, 20:30, 33:40] = 1.0
    rows, cols = content_window(x, stride=8, margin=4)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (16, 40, 24, 48)
    assert content_window(np.zeros_like(x), 8) == (slice(0, 64), slice(0, 64))
    x[0, 0, 0, 63] = 1.0  # content at the corner: window reaches the edges
    assert content_window(x, stride=8, margin=4) == (slice(0, 40), slice(24, 64))


def test_scoring_only_the_content_window_matches_full_slices_inside_it():
    """Zero padding around the content is skipped; inside the content the probabilities barely move."""
    from LongitudinalALLib.model.inference import content_window

    model = _model()
    x = np.zeros((4, 3, 128, 128), np.float32)
    x[:, :, 48:80, 40:72] = _images(4)
    full = Predictor(model, device="cpu", amp=False, crop_to_content=False).predict(x)
    cropped = Predictor(model, device="cpu", amp=False).predict(x)
    rows, cols = content_window(x, model.cfg.total_stride)
    assert rows.stop - rows.start < 128 and cols.stop - cols.start < 128  # something was skipped
    inside = (slice(None), slice(48, 80), slice(40, 72))
    assert np.abs(cropped[inside] - full[inside]).mean() < 0.02
    outside = np.ones((128, 128), bool)
    outside[rows, cols] = False
    assert np.all(cropped[:, outside] == 0)  # outside the window: no tissue, probability 0
    mc = Predictor(model, device="cpu", amp=False).mc_statistics(x, passes=3, keep_mean_prob=True)
    assert mc.mean_prob.shape == (4, 128, 128) and np.isfinite(mc.mutual_information).all()
    assert np.all(mc.mean_prob[:, outside] == 0)
