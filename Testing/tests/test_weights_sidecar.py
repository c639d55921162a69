"""A weights sidecar is untrusted input (reliability review 2: N6, N7, and init_weights in state.json).

Each hostile sidecar must end in one InputError line *before* any network is built:
``build_model`` is replaced by a tripwire, so a test fails (instead of allocating
18-115 GB as the review saw) if the code builds first and checks later.
"""

from __future__ import annotations

import json

import pytest
from test_session import new_session

from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.core.errors import InputError, LongitudinalALError, SessionError
from LongitudinalALLib.model import weights
from LongitudinalALLib.model.network import ModelConfig, build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1, "head_features": 8}


@pytest.fixture()
def saved(tmp_path):
    """A real weights file and its sidecar (small network)."""
    path = tmp_path / "m.safetensors"
    weights.save_weights(build_model(ModelConfig.from_dict(SMALL)), path)
    return path


def _with_config(path, **changes):
    side = weights.sidecar_path(path)
    info = json.loads(side.read_text())
    info["config"].update(changes)
    side.write_text(json.dumps(info))


def _tripwire(monkeypatch):
    def never(cfg=None):
        raise AssertionError(f"a network was built before the sidecar was checked: {cfg}")

    monkeypatch.setattr(weights, "build_model", never)


@pytest.mark.parametrize("changes, words", [
    ({"channels": [16, 1_000_000, 512], "strides": [2, 2]}, "channels"),          # W6: 18 GB
    ({"channels": [16, 200_000, 200_000, 512], "strides": [2, 2, 2]}, "channels"),  # W7
    ({"head_features": 100_000_000}, "head_features"),                            # W8: 115 GB
    ({"in_channels": 100_000_000}, "in_channels"),                                # W9: 57.6 GB
    ({"norm": "bogus"}, "norm"),                                                  # W12: MONAI traceback
    ({"norm": "group"}, "norm"),                                                  # builds only with extra args
    ({"strides": [0, 0]}, "strides"),                                             # W10: reason was cut
])
def test_hostile_sidecar_is_one_line_before_building(saved, monkeypatch, changes, words):
    _with_config(saved, **changes)
    _tripwire(monkeypatch)
    with pytest.raises(InputError, match=words) as err:
        weights.load_weights(saved)
    assert "\n" not in str(err.value) and "m.json" in str(err.value)


def test_sidecar_within_bounds_but_not_the_tensors_is_refused_before_building(saved, monkeypatch):
    _with_config(saved, channels=[8, 16, 64])  # legal, small, but the file holds another network
    _tripwire(monkeypatch)
    with pytest.raises(InputError, match="do not fit the architecture in m.json"):
        weights.load_weights(saved)


def test_good_weights_still_load(saved):
    model = weights.load_weights(saved)
    assert model.cfg.channels == (8, 16, 32)


def test_missing_bundled_model_is_an_error_not_a_random_network(tmp_path, monkeypatch):
    """C24 / N7: LONGITUDINAL_AL_RESOURCES without Weights/ gave a randomly initialised model silently."""
    s = new_session(tmp_path, model_config=None, init_weights="bundled")
    monkeypatch.setenv("LONGITUDINAL_AL_RESOURCES", str(tmp_path / "none"))
    with pytest.raises(InputError, match="bundled model .* is missing"):
        ActiveLoop(s).current_model()
    s.close()


def test_init_weights_in_state_json_is_checked(tmp_path, saved):
    s = new_session(tmp_path, model_config=None, init_weights=str(saved))
    s.close()
    state_path = s.root / "state.json"
    state = json.loads(state_path.read_text())
    state["init_weights"] = "/etc/passwd"
    state_path.write_text(json.dumps(state))
    from LongitudinalALLib.active.store import SessionStore

    with pytest.raises(SessionError, match="init_weights '/etc/passwd' is not bundled, scratch or a .safetensors"):
        SessionStore.open(s.root)
    state["init_weights"] = str(tmp_path / "gone.safetensors")
    state_path.write_text(json.dumps(state))
    with pytest.raises(LongitudinalALError, match="state.json .*init_weights.* cannot be loaded"):
        ActiveLoop(SessionStore.open(s.root)).current_model()
