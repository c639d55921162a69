"""ChangeSegNet: shapes, fully convolutional use, embedding, real MC dropout, config checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model.network import (
    ModelConfig,
    build_model,
    count_parameters,
    dropout_modules,
    mc_dropout,
)

SMALL = ModelConfig(channels=(4, 8, 16), strides=(2, 2), head_features=4)


def _x(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g)


def test_default_config_is_small_enough_for_cpu():
    model = build_model()
    n = count_parameters(model)
    assert 250_000 < n < 30e6 / 4, n  # weights <= 30 MB in float32
    assert model.embedding_dim <= 512
    assert model.cfg.total_stride == 16
    assert len(dropout_modules(model)) > 5 and all(d.p == pytest.approx(0.2) for d in dropout_modules(model))


@pytest.mark.parametrize("size", [(32, 32), (64, 32), (96, 128)])
def test_forward_shapes_any_multiple_of_stride(size):
    model = build_model(SMALL)
    logits, emb = model.forward_with_embedding(_x(2, *size))
    assert logits.shape == (2, 1, *size)
    assert emb.shape == (2, 16)
    assert torch.isfinite(logits).all() and torch.isfinite(emb).all()


def test_default_model_trained_size_and_inference_size():
    model = build_model()
    with torch.inference_mode():
        assert model(_x(1, 128, 128)).shape == (1, 1, 128, 128)
        logits, emb = model.forward_with_embedding(_x(1, 256, 256))
    assert logits.shape == (1, 1, 256, 256) and emb.shape == (1, 256)


def test_embedding_is_the_pooled_bottleneck():
    model = build_model(SMALL)
    seen = []
    model.body.bottleneck.register_forward_hook(lambda m, i, o: seen.append(o))
    x = _x(3, 32, 32)
    with torch.inference_mode():
        logits, emb = model.forward_with_embedding(x)
        plain = model(x)
    assert seen[0].shape == (3, 16, 8, 8)
    torch.testing.assert_close(emb, seen[0].mean(dim=(2, 3)))
    torch.testing.assert_close(logits, plain)
    # the bottleneck is not registered twice: every state-dict tensor is distinct
    ptrs = [t.data_ptr() for t in model.state_dict().values()]
    assert len(ptrs) == len(set(ptrs))


def test_bad_input_raises_input_error():
    model = build_model(SMALL)
    with pytest.raises(InputError, match="multiple of the network stride 4"):
        model(_x(1, 30, 32))
    with pytest.raises(InputError, match=r"expected \(B, 3, H, W\)"):
        model(torch.zeros(1, 2, 32, 32))


def test_mc_dropout_passes_differ_and_norm_stays_in_eval():
    model = build_model(SMALL)
    x = _x(2, 32, 32)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in bn]
    with torch.inference_mode():
        a, b = model(x), model(x)
        torch.testing.assert_close(a, b)  # eval: deterministic
        with mc_dropout(model):
            assert all(d.training for d in dropout_modules(model))
            assert not any(m.training for m in bn)
            c, d = model(x), model(x)
        e = model(x)
    assert (c - d).abs().max() > 1e-4  # real dropout: the passes differ
    torch.testing.assert_close(e, a)  # flags restored to eval afterwards
    assert not any(d.training for d in dropout_modules(model))
    for m, r in zip(bn, before):
        torch.testing.assert_close(m.running_mean, r)


def test_mc_dropout_on_a_model_without_dropout_is_refused():
    model = build_model(ModelConfig(channels=(4, 8, 16), strides=(2, 2), dropout=0.0))
    with pytest.raises(InputError, match="no active dropout"):
        with mc_dropout(model):
            pass


def test_config_round_trip_and_validation():
    cfg = ModelConfig(channels=(8, 16, 32), strides=(2, 2), dropout=0.1)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="unknown keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "depth": 3})
    with pytest.raises(InputError, match="embedding limit 512"):
        ModelConfig(channels=(16, 1024), strides=(2,))
    with pytest.raises(InputError, match="one stride fewer"):
        ModelConfig(channels=(16, 32, 64), strides=(2,))
    assert np.prod(ModelConfig().strides) == 16
