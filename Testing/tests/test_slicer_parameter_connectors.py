"""Slicer 5.10's real parameter node wrapper binds every widget of the module's .ui (review D1).

Runs Slicer's own pure-Python connector selection (``connectGui`` ->
``createGuiConnector``) from the reference sources on the module's parameter
class and on stand-ins of the .ui's widget classes: before the fix, the
strategy combo box raised "requires the Choice annotation" and aborted setup,
and the spin boxes were reset to unbounded ranges.
"""

from __future__ import annotations

import types

import pytest

slicer = pytest.importorskip("slicer")

from slicer_app_standins import (  # noqa: E402
    install_real_parameter_node_wrapper,
    load_panel_params,
    ui_bound_widgets,
)

from LongitudinalALLib.scene import headless, panel_options  # noqa: E402


@pytest.fixture
def bound(tmp_path, monkeypatch):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    pnw = install_real_parameter_node_wrapper(monkeypatch, slicer)
    params = load_panel_params(monkeypatch)
    qt, ctk = __import__("qt"), __import__("ctk")
    widgets = ui_bound_widgets(qt, ctk, slicer)
    node = hs.scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    wrapped = params.LongitudinalALParameterNode(node)
    yield types.SimpleNamespace(pnw=pnw, params=params, widgets=widgets, wrapped=wrapped, hs=hs)


def test_connect_gui_finds_a_connector_for_every_bound_widget(bound):
    from slicer.parameterNodeWrapper.parameterPack import nestedParameterNames

    gui = types.SimpleNamespace(**bound.widgets)
    bound.wrapped.connectGui(gui)  # raised RuntimeError (no Choice on `strategy`) before the fix
    names = {w.property("SlicerParameterName") for w in bound.widgets.values()}
    wrapper = bound.params.LongitudinalALParameterNode
    assert names == {"baseline", "followup"} | {f"run.{n}" for n in nestedParameterNames(bound.params.RunPack)}
    assert set(wrapper.allParameters) == {"baseline", "followup", "run"}
    for widget in bound.widgets.values():
        connector = bound.pnw.createGuiConnector(widget, bound.wrapped.dataType(widget.property("SlicerParameterName")))
        assert connector.widget() is widget


def test_bound_widgets_keep_the_ui_ranges_and_the_static_strategy_list(bound):
    ui_ranges = {name: (w.minimum, w.maximum) for name, w in bound.widgets.items() if hasattr(w, "_props")
                 and "maximum" in w._props}
    bound.wrapped.connectGui(types.SimpleNamespace(**bound.widgets))
    for name, (low, high) in ui_ranges.items():  # unannotated int/float became +-2**31 / +-inf
        assert (bound.widgets[name].minimum, bound.widgets[name].maximum) == (low, high), name
    combo = bound.widgets["strategyComboBox"]
    assert combo.items == list(panel_options.STRATEGIES)
    assert combo.items[combo.currentIndex] == panel_options.DEFAULT_STRATEGY
    combo.currentIndex = combo.items.index("badge")
    combo.currentIndexChanged.emit()  # PythonQt drops the index for a slot without arguments
    assert bound.wrapped.run.strategy == "badge"  # a user choice reaches the parameter node


def test_out_of_range_values_are_refused_by_the_wrapper(bound):
    with pytest.raises(ValueError):
        bound.wrapped.run.k = 0
    with pytest.raises(ValueError):
        bound.wrapped.run.size = 32
    with pytest.raises(ValueError):
        bound.wrapped.run.strategy = "no-such-strategy"


def test_panel_strategy_list_matches_the_registered_strategies():
    from LongitudinalALLib.active.strategies import available_strategies

    assert sorted(panel_options.STRATEGIES) == sorted(available_strategies())
