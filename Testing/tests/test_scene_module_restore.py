"""The module restores the session of an opened .mrb without its panel (slicer-app review D2, second half).

The Slicer module file is loaded as Slicer loads it; only what exists solely in the Qt
application is supplied (``slicer.app`` with its ``connect`` for the startupCompleted
signal, ``slicer.mrmlScene``, the error dialog). No Widget is ever created: the
.mrb is read with the real ``ReadFromMRB`` and the session must come back.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")

from slicer_app_standins import install_real_parameter_node_wrapper  # noqa: E402
from test_scene_persistence import _mrb_pointing_at, _small_session  # noqa: E402

from LongitudinalALLib.active.store import SessionStore  # noqa: E402
from LongitudinalALLib.scene import headless, persistence, session_scene  # noqa: E402

MODULE_FILE = Path(__file__).resolve().parents[2] / "LongitudinalAL" / "LongitudinalAL.py"


def _plain_base_classes() -> types.ModuleType:
    """slicer.ScriptedLoadableModule's four base classes as empty classes (only the module file's imports need them)."""
    mod = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleLogic", "ScriptedLoadableModuleTest",
                 "ScriptedLoadableModuleWidget"):
        setattr(mod, name, type(name, (), {"__init__": lambda self, *args: None}))
    return mod


def _module(tmp_path, monkeypatch, dialogs, startup_slots=None):
    """The module file loaded as Slicer loads it, on a headless scene; (headless Slicer, module)."""
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    slots = startup_slots if startup_slots is not None else []
    app = types.SimpleNamespace(applicationLogic=lambda: hs.app, connect=lambda signal, slot: slots.append((signal, slot)))
    install_real_parameter_node_wrapper(monkeypatch, slicer)  # Slicer 5.10's own, as the module file imports it
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", _plain_base_classes())
    monkeypatch.setattr(slicer, "mrmlScene", hs.scene, raising=False)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setattr(slicer.util, "errorDisplay", dialogs.append, raising=False)
    monkeypatch.setenv(persistence.WORK_ROOT_ENV, str(tmp_path / "work"))
    spec = importlib.util.spec_from_file_location("LongitudinalAL", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return hs, module


def test_opening_an_mrb_restores_the_session_before_any_panel_exists(tmp_path, monkeypatch):
    packed = tmp_path / "packed"
    _small_session(packed)
    mrb = _mrb_pointing_at(tmp_path, packed, packed)
    startup_slots, dialogs = [], []
    hs, module = _module(tmp_path, monkeypatch, dialogs, startup_slots)

    module.LongitudinalAL(types.SimpleNamespace())  # Slicer instantiates the module at startup
    for signal, slot in startup_slots:
        if signal == "startupCompleted()" and slot is not module.registerSampleData:
            slot()  # what the application does when startup completes
    assert hs.scene.ReadFromMRB(str(mrb), True)  # double-click on the .mrb: no panel was ever opened

    param = session_scene.parameter_node(hs.scene, create=False)
    restored = session_scene.get_value(param, "sessionDir")
    assert dialogs == [] and restored.startswith(str(tmp_path / "work"))
    assert len(SessionStore.open_recovered(f"{restored}/session")[0].labels()) == 1


def test_an_error_while_a_scene_loads_is_shown_after_loading_not_inside_the_import_event(tmp_path, monkeypatch):
    """Review L9: a modal dialog inside EndImportEvent blocks the rest of the scene's loading."""
    dialogs, queued = [], []
    hs, module = _module(tmp_path, monkeypatch, dialogs)
    qt = sys.modules["qt"]
    monkeypatch.setattr(qt, "QTimer", types.SimpleNamespace(singleShot=lambda ms, slot: queued.append(slot)),
                        raising=False)
    module.installSceneRestorer()
    bad = tmp_path / "bad"
    _small_session(bad)
    mrb = _mrb_pointing_at(tmp_path, bad, bad)
    param = session_scene.parameter_node(hs.scene)
    try:
        from LongitudinalALLib.scene import archive

        module.sceneRestorer.logic.archive_limits = archive.ArchiveLimits(max_entries=1)  # refused: one error
        assert hs.scene.ReadFromMRB(str(mrb), True)
    finally:
        module.sceneRestorer.remove()
    assert dialogs == [] and len(queued) == 1  # nothing modal while the import event runs
    queued[0]()  # the event loop, once loading is over
    assert len(dialogs) == 1 and "limit 1" in dialogs[0]
    assert param is not None


def test_the_module_logic_observes_no_save_event_and_is_freed(tmp_path, monkeypatch):
    """Review L1: Slicer never fires StartSaveEvent (File > Save is WriteToMRB / qSlicerSceneWriter), and the
    bound-method observer kept every Logic of every reload alive."""
    import gc
    import weakref

    hs, module = _module(tmp_path, monkeypatch, [])
    logic = module.LongitudinalALLogic()
    assert not hs.scene.HasObserver(hs.scene.StartSaveEvent)
    ref = weakref.ref(logic)
    del logic
    gc.collect()
    assert ref() is None
