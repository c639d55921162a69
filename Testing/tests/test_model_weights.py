"""Weights on disk: safetensors + JSON sidecar with sha256, clear errors, bundled model lookup."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model.network import ModelConfig, build_model
from LongitudinalALLib.model.weights import (
    load_bundled_model,
    load_weights,
    read_weights_info,
    save_weights,
    sha256_file,
    sidecar_path,
)

SMALL = ModelConfig(channels=(4, 8, 16), strides=(2, 2), head_features=4)


def _trained_looking_model(seed: int = 1):
    torch.manual_seed(seed)
    model = build_model(SMALL)
    with torch.no_grad():  # move away from the default init so a wrong load would show
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
    return model


def test_round_trip_gives_identical_outputs(tmp_path):
    model = _trained_looking_model()
    path = tmp_path / "round_1.safetensors"
    side = save_weights(model, path, {"round": 1, "dice": 0.5})
    assert side == tmp_path / "round_1.json"
    info = json.loads(side.read_text())
    assert info["sha256"] == sha256_file(path)
    assert info["config"]["channels"] == [4, 8, 16] and info["metadata"] == {"round": 1, "dice": 0.5}
    loaded = load_weights(path)
    assert loaded.cfg == SMALL and loaded.weights_info["metadata"]["round"] == 1
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    # only the two files: no temporaries left behind by the atomic writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round_1.json", "round_1.safetensors"]


def test_file_is_safetensors_not_pickle(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(build_model(SMALL), path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"]["format"] == "longitudinal-al-weights"
    assert not raw.startswith(b"\x80")  # a pickle would start with the PROTO opcode


def test_checksum_mismatch_names_file_and_fix(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(_trained_looking_model(), path)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # flip bits inside a tensor
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError) as err:
        load_weights(path)
    msg = str(err.value)
    assert "m.safetensors" in msg and "sha256" in msg and "Copy the weights" in msg


def test_missing_sidecar_and_missing_file(tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(InputError, match="do not exist"):
        load_weights(path)
    save_weights(build_model(SMALL), path)
    sidecar_path(path).unlink()
    with pytest.raises(InputError, match="no sidecar m.json"):
        load_weights(path)


def test_sidecar_config_must_fit_the_tensors(tmp_path):
    path = tmp_path / "m.safetensors"
    side = save_weights(build_model(SMALL), path)
    info = json.loads(side.read_text())
    info["config"]["channels"] = [4, 8, 32]
    side.write_text(json.dumps(info))
    assert read_weights_info(path)["sha256"] == sha256_file(path)  # checksum itself is fine
    with pytest.raises(InputError, match="do not fit the architecture"):
        load_weights(path)
    side.write_text("{not json")
    with pytest.raises(InputError, match="cannot be read"):
        load_weights(path)


def test_wrong_suffix_refused(tmp_path):
    with pytest.raises(InputError, match="does not end in .safetensors"):
        save_weights(build_model(SMALL), tmp_path / "m.pt")


def test_bundled_model_missing_then_present(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGITUDINAL_AL_RESOURCES", str(tmp_path))
    with pytest.raises(InputError) as err:
        load_bundled_model()
    assert "change_unet.safetensors" in str(err.value) and "train_bundled.py" in str(err.value)
    model = _trained_looking_model(3)
    save_weights(model, tmp_path / "Weights" / "change_unet.safetensors", {"source": "test"})
    loaded = load_bundled_model()
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
