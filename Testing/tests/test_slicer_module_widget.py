"""The module panel's slots (scene/panel.py), run on headless MRML with recording stand-ins for its Qt widgets.

What matters here is Slicer's behaviour that the old Widget got wrong:
``slicer.util.tryWithErrorDisplay`` (the real one from slicer-core) shows the
error and re-raises, so a refresh after the ``with`` block was skipped and the
panel stayed disabled (review D6); a user cancel was shown as an error (D14);
Run and Cancel were separate buttons (Run now becomes Cancel).
"""

from __future__ import annotations

import time
import types
import xml.etree.ElementTree as ET

import pytest

slicer = pytest.importorskip("slicer")

import scene_testdata  # noqa: E402
from slicer_app_standins import UI_FILE, RecordingWidget, install_real_parameter_node_wrapper, load_module_file  # noqa: E402
from test_scene_logic import OPTIONS  # noqa: E402

from LongitudinalALLib.scene import headless, volumes  # noqa: E402
from LongitudinalALLib.scene.session_scene import set_value  # noqa: E402

#: every named widget of the real .ui: the Widget can only reach what the panel file defines
UI_NAMES = tuple(e.get("name") for e in ET.parse(UI_FILE).getroot().iter("widget") if e.get("name"))


@pytest.fixture
def widget(tmp_path, monkeypatch):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    install_real_parameter_node_wrapper(monkeypatch, slicer)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    module = load_module_file(monkeypatch, hs.scene, hs.app)
    from LongitudinalALLib.scene.panel import Panel

    errors = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, *a, **k: errors.append(text))
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(
        applicationLogic=lambda: hs.app, testingEnabled=lambda: False,
        setOverrideCursor=lambda cursor: None, restoreOverrideCursor=lambda: None))
    __import__("qt").Qt = types.SimpleNamespace(WaitCursor=3)
    logic = module.LongitudinalALLogic(work_root=tmp_path / "work").sceneLogic
    files = scene_testdata.sample_pair_files() or scene_testdata.write_pair(tmp_path / "pair")
    inputs = types.SimpleNamespace(baseline=volumes.load_volume(files[0], hs.scene, "baseline"), followup=None)
    ui = types.SimpleNamespace(**{name: RecordingWidget() for name in UI_NAMES})
    w = Panel(ui, logic, RecordingWidget(), lambda: True, inputs)  # Panel.build needs the Qt application
    w.followup = volumes.load_volume(files[1], hs.scene, "follow-up")
    w.errors = errors
    return w


def test_an_input_error_is_shown_once_and_the_panel_stays_usable(widget):
    widget.onRunOrCancel()  # no follow-up selected
    assert len(widget.errors) == 1 and "follow-up" in widget.errors[0]
    assert widget.ui.runButton.text == "Run" and widget.ui.runButton.enabled
    assert not widget.jobs.busy


def test_run_becomes_cancel_and_a_cancel_is_not_an_error(widget, monkeypatch):
    widget.parameterNode.followup = widget.followup
    widget.logic.set_options(OPTIONS)  # what the user set in the panel
    set_value(widget.logic.param, "engine", OPTIONS.engine())  # the tiny test model, as a run would keep it
    widget.onRunOrCancel()
    assert widget.jobs.busy and widget.ui.runButton.text == "Cancel" and widget.ui.runButton.enabled
    assert not widget.ui.acceptButton.enabled
    widget.onRunOrCancel()  # the same button now cancels
    deadline = time.monotonic() + 60
    while widget.jobs.busy:
        assert time.monotonic() < deadline
        widget.onPoll()
        time.sleep(0.05)
    assert widget.errors == []  # shown in the status line, not as an error dialog
    assert "cancelled" in widget.ui.statusLabel.calls["setText"][0]
    assert widget.ui.runButton.text == "Run" and widget.ui.runButton.enabled
    assert "stop" in widget.timer.calls  # polling ends with the job
    assert "cancelling" in widget.ui.logTextEdit.calls["setPlainText"][0]


def test_an_imported_scene_is_restored_once_and_its_error_shown_once(widget, monkeypatch):
    """D16: the module-level restorer (scene/restore.py) restores on import; the Widget only refreshes."""
    from LongitudinalALLib.core.errors import SessionError
    from LongitudinalALLib.scene.restore import ImportRestorer

    calls = []

    def ensure_session():
        calls.append(1)
        raise SessionError("The session stored in this scene is not valid.", "Reopen an earlier copy.")

    monkeypatch.setattr(widget.logic, "ensure_session", ensure_session)
    restorer = ImportRestorer(widget.logic, slicer.util.errorDisplay)
    scene = widget.logic.scene
    tag = scene.AddObserver(scene.EndImportEvent, widget.onSceneImported)  # as setup() connects it
    scene.InvokeEvent(scene.EndImportEvent)
    scene.RemoveObserver(tag)
    restorer.remove()
    assert len(calls) == 1 and len(widget.errors) == 1 and "not valid" in widget.errors[0]
    assert widget.ui.runButton.enabled and widget.ui.runButton.text == "Run"


def test_closing_the_scene_during_a_run_leaves_a_usable_panel_that_says_why(widget, monkeypatch):
    """D16: a job still running at File > Close Scene is not applied to the new scene."""
    widget.parameterNode.followup = widget.followup
    widget.logic.set_options(OPTIONS)  # what the user set in the panel
    set_value(widget.logic.param, "engine", OPTIONS.engine())  # the tiny test model, as a run would keep it
    widget.onRunOrCancel()
    assert widget.jobs.busy
    widget.logic.scene.Clear(0)
    deadline = time.monotonic() + 60
    while widget.jobs.busy:
        assert time.monotonic() < deadline
        widget.onPoll()
        time.sleep(0.05)
    assert widget.errors == [] and "scene was closed" in widget.ui.statusLabel.calls["setText"][0]
    assert widget.ui.runButton.text == "Run" and widget.ui.runButton.enabled
    assert widget.logic.suggestions == []


def test_the_stored_sessions_section_deletes_the_selected_one_after_one_confirmation(widget, monkeypatch, tmp_path):
    from LongitudinalALLib.scene import persistence

    root = widget.logic.work_root = tmp_path / "stored"  # not the work root other tests share
    kept, gone = persistence.new_work_folder(root), persistence.new_work_folder(root)
    asked = []
    monkeypatch.setattr(slicer.util, "confirmYesNoDisplay", lambda text, *a, **k: asked.append(text) or True,
                        raising=False)
    widget.onStoredList()
    assert {folder for folder, _ in widget.storedRows} == {kept, gone}
    widget.ui.storedSessionsList.currentRow = [folder for folder, _ in widget.storedRows].index(gone)
    widget.onRemoveStored()
    assert len(asked) == 1 and not gone.exists() and kept.is_dir() and widget.errors == []
    assert "Deleted" in widget.ui.statusLabel.calls["setText"][0]
    assert [folder for folder, _ in widget.storedRows] == [kept]  # the list was refreshed
