"""The run options have one home (the panel's "run" pack) and a scene from any machine opens cleanly.

Slicer 5.10's own parameter node wrapper (reference sources) on headless MRML:
- review H1: a scene saved where the device was ``cuda`` made ``connectGui`` raise
  ``ValueError: Unable to find value cuda in choices ['cpu']`` where only the CPU is
  offered (``guiConnectors.py:455-462``), so the panel was never bound. The same holds for
  a strategy this version lacks or a value out of range. Each is now reset, with one
  log line, before binding and on import; older scenes (flat fields) are migrated once.
- review item 2 (architecture §2.3): Retrain and Re-pair read the options frozen at Run;
  now they read the pack as the panel left it.
"""

from __future__ import annotations

import logging
import types

import pytest

slicer = pytest.importorskip("slicer")

import scene_sessions  # noqa: E402
from slicer_app_standins import (  # noqa: E402
    install_real_parameter_node_wrapper,
    load_module_file,
    load_panel_params,
    ui_bound_widgets,
)

from LongitudinalALLib.scene import headless, panel_options, session_scene  # noqa: E402

#: (field, a value stored by a scene from elsewhere, what this CPU-only machine makes of it)
FOREIGN = [("device", "cuda", "cpu"), ("strategy", "no_such_strategy", panel_options.DEFAULT_STRATEGY),
           ("k", "500", "100"), ("size", "32", "64"), ("spacingMm", "abc", "1.0"), ("deformable", "maybe", "False")]


def _machine(monkeypatch, tmp_path, devices=("cpu",)):
    """A headless Slicer whose machine offers ``devices``, with Slicer 5.10's wrapper installed."""
    monkeypatch.setenv("LONGITUDINALAL_WORK_ROOT", str(tmp_path / "work"))
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    install_real_parameter_node_wrapper(monkeypatch, slicer)
    load_panel_params(monkeypatch, devices)  # imported afresh: its device list is this machine's
    return hs


def _store(param, layout: str, field: str, value: str) -> None:
    """What a scene file holds: this version's whole pack ("run.k", ...) or d9e08f4's flat wrapper fields ("k")."""
    if layout == "pack":
        for key, default in (("spacingMm", "1.0"), ("size", "256"), ("strategy", "clasp_pe"), ("k", "10"),
                             ("deformable", "False"), ("device", "cpu")):
            param.SetParameter(f"run.{key}", default)
    param.SetParameter(f"run.{field}" if layout == "pack" else field, value)


@pytest.mark.parametrize("layout", ["pack", "flat"])
@pytest.mark.parametrize("field,stored,expected", FOREIGN, ids=[f[0] for f in FOREIGN])
def test_a_value_this_machine_does_not_offer_is_reset_before_the_panel_binds(tmp_path, monkeypatch, caplog, layout,
                                                                             field, stored, expected):
    hs = _machine(monkeypatch, tmp_path)
    module = load_module_file(monkeypatch, hs.scene, hs.app)
    _store(session_scene.parameter_node(hs.scene), layout, field, stored)
    widgets = ui_bound_widgets(__import__("qt"), __import__("ctk"), slicer)
    with caplog.at_level(logging.WARNING):
        wrapped = module.LongitudinalALLogic().getParameterNode()  # the Widget's setup, in this order
        wrapped.connectGui(types.SimpleNamespace(**widgets))  # raised ValueError for "cuda" at d9e08f4
    param = session_scene.parameter_node(hs.scene)
    assert param.GetParameter(f"run.{field}") == expected
    assert str(wrapped.getValue(f"run.{field}")) == expected
    lines = [r.getMessage() for r in caplog.records if "LongitudinalAL" in r.getMessage()]
    assert len(lines) == 1 and field in lines[0] and repr(stored) in lines[0] and "\n" not in lines[0]
    if layout == "flat":  # migrated once: the old key is gone
        assert not param.HasParameter(field)


def test_an_old_scene_keeps_its_choices_and_its_run_overrides(tmp_path, monkeypatch):
    """d9e08f4 kept the panel in flat fields and a copy in lal.options: both land in the pack, once."""
    from LongitudinalALLib.scene import run_options
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic

    hs = _machine(monkeypatch, tmp_path, ("cuda", "cpu"))
    param = session_scene.parameter_node(hs.scene)
    param.SetParameter("strategy", "margin")
    param.SetParameter("device", "cpu")
    param.SetParameter("lal.options", '{"prepare": {"spacing_mm": 2.0, "size": 128, "n4": false}, "k": 7, '
                                      '"strategy": "bald", "prefer_cpu": true, "train": {"epochs": 1}}')
    assert run_options.sanitize(param, ("cuda", "cpu")) == []
    options = LongitudinalALSceneLogic(hs.scene, hs.app).options
    assert (options.strategy, options.k, options.device, options.spacing_mm, options.size) == ("margin", 7, "cpu",
                                                                                               2.0, 128)
    assert options.train == {"epochs": 1} and options.prepare == {"n4": False}
    assert not param.HasParameter("lal.options") and not param.HasParameter("strategy")
    param.SetParameter("run.k", "9")
    run_options.sanitize(param, ("cuda", "cpu"))  # a second pass migrates nothing again
    assert param.GetParameter("run.k") == "9"


@pytest.mark.parametrize("layout", ["pack", "flat"])
def test_an_imported_scene_from_a_gpu_machine_opens_with_this_machines_device(tmp_path, monkeypatch, caplog,
                                                                               layout):
    """Saved where cuda was offered, opened where only the CPU is: reset on EndImportEvent, panel open or not."""
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic
    from LongitudinalALLib.scene.restore import ImportRestorer

    elsewhere = headless.create_headless_slicer(str(tmp_path / "cache-gpu"))
    _store(session_scene.parameter_node(elsewhere.scene), layout, "device", "cuda")
    mrb = tmp_path / "from-gpu.mrb"
    assert elsewhere.scene.WriteToMRB(str(mrb))

    hs = _machine(monkeypatch, tmp_path)
    module = load_module_file(monkeypatch, hs.scene, hs.app)
    widgets = ui_bound_widgets(__import__("qt"), __import__("ctk"), slicer)
    wrapped = module.LongitudinalALLogic().getParameterNode()
    wrapped.connectGui(types.SimpleNamespace(**widgets))  # the panel is open when the scene is opened
    restorer = ImportRestorer(LongitudinalALSceneLogic(hs.scene, hs.app), lambda message: None)
    with caplog.at_level(logging.WARNING):
        assert hs.scene.ReadFromMRB(str(mrb), True)
    restorer.remove()
    param = session_scene.parameter_node(hs.scene)
    assert param.GetParameter("run.device") == "cpu"
    assert [r for r in caplog.records if "'cuda'" in r.getMessage()], "one line says what was reset"
    combo = widgets["deviceComboBox"]
    assert combo.items[combo.currentIndex] == "cpu"


def test_strategy_k_and_device_changed_after_run_are_what_retrain_and_repair_use(tmp_path, monkeypatch):
    from LongitudinalALLib.scene import transform_review

    hs = _machine(monkeypatch, tmp_path, ("cuda", "cpu"))
    module = load_module_file(monkeypatch, hs.scene, hs.app)
    logic = scene_sessions.start_session(hs, tmp_path / "work", "axial")  # Run: entropy_mean, k=3, cpu
    logic.accept_current()
    widgets = ui_bound_widgets(__import__("qt"), __import__("ctk"), slicer)
    module.LongitudinalALLogic().getParameterNode().connectGui(types.SimpleNamespace(**widgets))
    # the user changes the panel after Run
    for name, value in (("strategyComboBox", "margin"), ("deviceComboBox", "cuda")):
        combo = widgets[name]
        combo.currentIndex = combo.items.index(value)
        combo.currentIndexChanged.emit()
    widgets["kSpinBox"].value = 7
    widgets["kSpinBox"].valueChanged.emit()  # PythonQt drops the value for a slot without arguments

    spec = logic.train_spec()
    assert (spec["session"]["strategy"], spec["session"]["k"], spec["device"]) == ("margin", 7, "cuda")
    assert spec["train"] == scene_sessions.options("axial").train  # the session's overrides stay
    launched = []
    logic.jobs.launch = lambda job, spec: launched.append((job, spec)) or types.SimpleNamespace(cancel=lambda: None)
    transform_review.start_repair(logic)
    job, repair = launched[-1]
    assert job == "prepare" and (repair["session"]["strategy"], repair["session"]["k"], repair["device"]) == (
        "margin", 7, "cuda")
    assert repair["prepare"]["initial_transform"].endswith("edited_transform.tfm")
    assert "initial_transform" not in logic.options.prepare  # belongs to that one Re-pair
