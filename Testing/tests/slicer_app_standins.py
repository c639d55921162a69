"""Minimal stand-ins for the pieces of Slicer that exist only in the Qt application.

Used to run Slicer's own pure-Python code (the parameter node wrapper from
/work/shared/reference, never copied into the project) and the module file on
headless MRML. Widgets here only hold values and signals: exactly what the
wrapper's GUI connectors read and write, nothing Qt draws.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO / "LongitudinalAL" / "LongitudinalAL.py"
UI_FILE = REPO / "LongitudinalAL" / "Resources" / "UI" / "LongitudinalAL.ui"
_PNW = Path("reference/slicer-v5.10.0/Base/Python/slicer/parameterNodeWrapper")
#: the shared/ folder lies beside the checkout (CI lays a copy there too)
REFERENCE_PNW = next((base / _PNW for base in (REPO.parent / "shared", Path("/work/shared")) if (base / _PNW).is_dir()),
                     REPO.parent / "shared" / _PNW)


class Signal:
    def __init__(self) -> None:
        self.slots: list = []

    def connect(self, slot) -> None:
        self.slots.append(slot)

    def disconnect(self, slot) -> None:
        self.slots.remove(slot)

    def emit(self, *args) -> None:
        for slot in list(self.slots):
            slot(*args)


class StandInWidget:
    """Holds what a Qt input widget holds: a value, a range, items, a current node, signals."""

    def __init__(self, properties: dict | None = None) -> None:
        self._props = dict(properties or {})
        self.value, self.checked, self.currentIndex, self.items, self.nodeTypes = 0, False, -1, [], []
        self.minimum, self.maximum, self.decimals, self.singleStep = self._props.get("minimum", 0), \
            self._props.get("maximum", 99), 2, 1
        self._node = None

    def __getattr__(self, name: str):
        if name.endswith("Changed") or name in ("toggled", "clicked"):
            signal = Signal()
            setattr(self, name, signal)
            return signal
        raise AttributeError(name)

    def property(self, name: str):
        return self._props.get(name)

    def setRange(self, low, high) -> None:
        self.minimum, self.maximum = low, high

    def setMinimum(self, low) -> None:
        self.minimum = low

    def setMaximum(self, high) -> None:
        self.maximum = high

    def clear(self) -> None:
        self.items, self.currentIndex = [], -1

    def addItem(self, text: str) -> None:
        self.items.append(text)

    def addItems(self, texts) -> None:
        self.items.extend(texts)

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node) -> None:
        self._node = node


class _ClassFactoryModule(types.ModuleType):
    """A module whose every attribute is a distinct StandInWidget subclass (qt.QSpinBox, ctk.ctkComboBox...)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (StandInWidget,), {})
        setattr(self, name, cls)
        return cls


def install_qt_standins(monkeypatch, slicer) -> tuple[types.ModuleType, types.ModuleType]:
    qt, ctk = _ClassFactoryModule("qt"), _ClassFactoryModule("ctk")
    monkeypatch.setitem(sys.modules, "qt", qt)
    monkeypatch.setitem(sys.modules, "ctk", ctk)
    used = set(re.findall(r"slicer\.(q[A-Za-z]+)", "".join(p.read_text() for p in REFERENCE_PNW.glob("*.py"))))
    for name in used | {"qMRMLNodeComboBox"}:  # the qMRML*/qSlicer* widget classes the connectors compare
        monkeypatch.setattr(slicer, name, getattr(qt, name), raising=False)
    return qt, ctk


def install_real_parameter_node_wrapper(monkeypatch, slicer) -> types.ModuleType:
    """Import Slicer 5.10's own parameterNodeWrapper package as ``slicer.parameterNodeWrapper``."""
    if not REFERENCE_PNW.is_dir():
        pytest.skip(f"Slicer's reference sources are not at {REFERENCE_PNW}")
    install_qt_standins(monkeypatch, slicer)
    for name in [m for m in sys.modules if m.startswith("slicer.parameterNodeWrapper")]:
        monkeypatch.delitem(sys.modules, name)
    spec = importlib.util.spec_from_file_location("slicer.parameterNodeWrapper", REFERENCE_PNW / "__init__.py",
                                                  submodule_search_locations=[str(REFERENCE_PNW)])
    package = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", package)
    spec.loader.exec_module(package)
    monkeypatch.setattr(slicer, "parameterNodeWrapper", package, raising=False)
    return package


def load_panel_params(monkeypatch, devices: tuple[str, ...] | None = None) -> types.ModuleType:
    """``scene/panel_params.py`` imported afresh on the installed wrapper (its device list is fixed at import);
    ``devices``: what this machine is taken to offer."""
    from LongitudinalALLib.scene import panel_options

    if devices is not None:
        monkeypatch.setattr(panel_options, "available_devices", lambda work_root=None: tuple(devices))
    monkeypatch.delitem(sys.modules, "LongitudinalALLib.scene.panel_params", raising=False)
    import LongitudinalALLib.scene as scene_package

    monkeypatch.delattr(scene_package, "panel_params", raising=False)
    return importlib.import_module("LongitudinalALLib.scene.panel_params")


def ui_bound_widgets(qt, ctk, slicer) -> dict[str, StandInWidget]:
    """objectName -> stand-in of the .ui's class, for every widget carrying SlicerParameterName."""
    widgets = {}
    for element in ET.parse(UI_FILE).getroot().iter("widget"):
        props = {}
        for prop in element.findall("property"):
            value = next(iter(prop), None)
            if value is not None:
                text = value.text or ""
                props[prop.get("name")] = (float(text) if value.tag == "double" else
                                           int(text) if value.tag == "number" else text)
        if "SlicerParameterName" in props:
            cls_name = element.get("class")
            module = ctk if cls_name.startswith("ctk") else slicer if cls_name.startswith("qMRML") else qt
            widgets[element.get("name")] = getattr(module, cls_name)(props)
    return widgets


def module_base_classes(scene) -> types.ModuleType:
    """ScriptedLoadableModule base classes reduced to what the module file's Logic and Test use."""
    from LongitudinalALLib.scene import session_scene

    mod = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self):
            pass

        def getParameterNode(self):
            return session_scene.parameter_node(scene)

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):
            print(message)

    mod.ScriptedLoadableModule = ScriptedLoadableModule
    mod.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    mod.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest
    mod.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    return mod


def load_module_file(monkeypatch, scene, app) -> types.ModuleType:
    """Execute LongitudinalAL.py with slicer.mrmlScene/app pointing at a headless scene."""
    import slicer

    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", module_base_classes(scene))
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(applicationLogic=lambda: app), raising=False)
    spec = importlib.util.spec_from_file_location("LongitudinalAL", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingWidget:
    """A widget whose every method call is recorded (``calls[name]`` = last args); attributes are plain."""

    def __init__(self) -> None:
        self.calls: dict[str, tuple] = {}
        self.enabled, self.text = True, ""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args):
            self.calls[name] = args
            return None

        return record
