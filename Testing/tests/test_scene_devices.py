"""Device choice (cuda / mps / cpu): listed without torch in the GUI, passed through to the worker jobs.

Covers issue 11's device item: the panel offers only what is available (best
first, from a worker's cached answer or a cheap probe), the user's pick goes
through the panel's "run" pack into every job spec, and an unavailable device is one line.
"""

from __future__ import annotations

import json
import types

import pytest

slicer = pytest.importorskip("slicer")

from slicer_app_standins import install_real_parameter_node_wrapper, load_panel_params, ui_bound_widgets  # noqa: E402

from LongitudinalALLib.core.errors import InputError  # noqa: E402
from LongitudinalALLib.jobs import jobs  # noqa: E402
from LongitudinalALLib.scene import headless, panel_options, session_scene  # noqa: E402
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic  # noqa: E402


def test_offered_devices_follow_the_cached_worker_answer_else_a_probe(tmp_path, monkeypatch):
    (tmp_path / panel_options.DEVICES_FILE).write_text(json.dumps({"devices": ["cpu", "tpu", "cuda"]}))
    assert panel_options.available_devices(tmp_path) == ("cuda", "cpu")  # best first, unknown names dropped
    (tmp_path / panel_options.DEVICES_FILE).write_text(json.dumps({"devices": ["mps", "cpu"]}))
    assert panel_options.available_devices(tmp_path) == ("cpu", "mps")  # training refuses mps: never the default
    (tmp_path / panel_options.DEVICES_FILE).write_text("{damaged")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # no torch installed: only the CPU
    assert panel_options.available_devices(tmp_path) == ("cpu",)
    assert panel_options.available_devices(None) == ("cpu",)


def test_the_device_job_records_what_torch_found_for_the_panel(tmp_path):
    out = jobs.job_device({"devices_file": str(tmp_path / "devices.json"), "device": "cpu"})
    assert out["device"] == "cpu" and "cpu" in out["devices"]
    assert panel_options.available_devices(tmp_path) == tuple(d for d in ("cuda", "cpu", "mps") if d in out["devices"])


def test_an_unavailable_device_is_refused_in_one_line(monkeypatch):
    import torch

    from LongitudinalALLib.model import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError) as info:
        resolve_device("cuda")
    assert "cuda" in str(info.value) and "\n" not in str(info.value) and "panel" in str(info.value)
    assert resolve_device("cpu").type == "cpu"


def test_the_panel_lists_available_devices_and_the_choice_reaches_the_job_spec(tmp_path, monkeypatch):
    (tmp_path / panel_options.DEVICES_FILE).write_text(json.dumps({"devices": ["cpu", "mps"]}))
    monkeypatch.setenv("LONGITUDINALAL_WORK_ROOT", str(tmp_path))
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    install_real_parameter_node_wrapper(monkeypatch, slicer)
    params = load_panel_params(monkeypatch)
    widgets = ui_bound_widgets(__import__("qt"), __import__("ctk"), slicer)
    wrapped = params.wrap(session_scene.parameter_node(hs.scene))
    wrapped.connectGui(types.SimpleNamespace(**widgets))
    combo = widgets["deviceComboBox"]
    assert combo.items == ["cpu", "mps"] and combo.items[combo.currentIndex] == "cpu"  # never mps by default
    combo.currentIndex = combo.items.index("mps")
    combo.currentIndexChanged.emit()
    assert wrapped.run.device == "mps"
    with pytest.raises(ValueError):
        wrapped.run.device = "cuda"  # not available here, so not offered
    logic = LongitudinalALSceneLogic(hs.scene, hs.app)
    options = logic.options
    spec = logic._spec(tmp_path / "session-001", options)
    assert options.device == "mps" and spec["device"] == "mps"
    assert spec["devices_file"] == str(tmp_path / panel_options.DEVICES_FILE)  # where the worker records its answer


def test_a_device_torch_cannot_use_fails_before_registration_and_corrects_the_panels_guess(tmp_path, monkeypatch):
    """Review M5: an NVIDIA driver with a CPU-only torch made the panel guess cuda; the first Run failed only
    after the whole registration, and devices.json was never written, so the guess came back at every start."""
    import torch

    from LongitudinalALLib.imaging import prepare

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    registered = []
    monkeypatch.setattr(prepare, "prepare_pair", lambda *a, **k: registered.append(a) or pytest.fail("registered"))
    devices_file = tmp_path / panel_options.DEVICES_FILE
    spec = {"work_dir": str(tmp_path / "session-001"), "baseline": "b.nrrd", "followup": "f.nrrd", "device": "cuda",
            "devices_file": str(devices_file)}
    with pytest.raises(InputError, match="cuda"):
        jobs.job_prepare(spec)
    assert registered == []
    assert panel_options.available_devices(tmp_path) == ("cpu",) + (("mps",) if "mps" in json.loads(
        devices_file.read_text())["devices"] else ())  # the next start offers what torch found
