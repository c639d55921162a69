"""Contoured slices point at their neighbours (issue 15): the map, ClaSP PE's use of it, the loop passing it."""

from __future__ import annotations

import numpy as np
import pytest
from test_session import make_case, new_session
from test_strategies_clasp_pe import PREDICTED, _ctx
from test_strategies_cold_start import NZ, pool  # noqa: F401  (fixture)

from LongitudinalALLib.active.label_context import neighbour_lesion_map
from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.strategies import QueryContext, get_strategy
from LongitudinalALLib.core.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_map_puts_a_grown_footprint_on_unlabelled_neighbours_only():
    keys = [("a", s) for s in range(10, 16)] + [("b", s) for s in range(10, 13)]
    labelled = np.zeros(len(keys), bool)
    mask = np.zeros((9, 9), np.uint8)
    mask[4, 4] = 1
    labels = {("a", 12): mask, ("a", 14): np.zeros((9, 9), np.uint8)}  # a contour, and a lesion-free answer
    labelled[[2, 4]] = True
    out = neighbour_lesion_map(labels, keys, labelled, (9, 9), grow_px=1)
    assert out.shape == (9, 9, 9) and out.dtype == np.float32
    rows_with = [keys[i] for i in np.flatnonzero(out.reshape(len(keys), -1).any(1))]
    assert rows_with == [("a", 11), ("a", 13)]  # not the labelled rows, not two away, not another case's 12
    assert out[1].sum() == 5 and out[1][3:6, 4].all() and out[1][4, 3:6].all()  # the pixel grown by one (cross)
    wider = neighbour_lesion_map(labels, keys, labelled, (9, 9), reach=2, grow_px=0)
    assert [keys[i] for i in np.flatnonzero(wider.reshape(len(keys), -1).any(1))] == [("a", 10), ("a", 11), ("a", 13)]
    none = neighbour_lesion_map({("a", 14): np.zeros((9, 9))}, keys, labelled, (9, 9))
    assert none.shape == (9, 9, 9) and not none.any()  # no contour yet: a zero map of the pool's shape


def test_clasp_pe_asks_for_the_neighbour_the_model_misses(pool):  # noqa: F811
    """A slice the model sees nothing on, beside a contoured slice, joins the foreground share; off with weight 0."""
    images, fg = pool
    quiet = next(i for i in range(NZ) if i not in PREDICTED and i - 1 not in PREDICTED and fg[i].mean() > 0.05)
    context = np.zeros(fg.shape, np.float32)
    context[quiet][fg[quiet]] = 1.0  # the labelled neighbour's footprint (a large lesion here)
    labelled = np.zeros(NZ, bool)
    labelled[quiet - 1] = True

    def picks(**kw):
        ctx = _ctx(pool, labelled=labelled)
        ctx.lesion_context = context
        return get_strategy("clasp_pe", noise=False, **kw).select(ctx, 3).indices.tolist()

    assert quiet in picks(context_weight=0.5)
    assert quiet not in picks()  # off by default (the 15-seed benchmark did not support it: see clasp_pe)
    with pytest.raises(InputError, match="context_weight"):
        get_strategy("clasp_pe", context_weight=2.0)


def test_a_continuation_the_model_already_predicts_gains_nothing(pool):  # noqa: F811
    """Context only raises uncertain pixels to p = 0.5: where p is already confident, H*p stays low."""
    images, fg = pool
    strat = get_strategy("clasp_pe", noise=False, context_weight=0.5)
    ctx = _ctx(pool)
    ctx.outputs.probs[PREDICTED[0], 40:46, 40:46] = 0.999
    before = strat.channels(ctx)[0][PREDICTED[0]]
    context = np.zeros(fg.shape, np.float32)
    context[PREDICTED[0], 40:46, 40:46] = 1.0
    ctx.lesion_context = context
    assert strat.channels(ctx)[0][PREDICTED[0]] == pytest.approx(before)


def test_a_context_of_the_wrong_shape_is_one_clear_error(pool):  # noqa: F811
    images, fg = pool
    with pytest.raises(InputError, match="Lesion context"):
        QueryContext(images, fg, np.zeros(NZ, bool), lesion_context=np.zeros((NZ, 3, 3), np.float32))


def test_the_loop_gives_clasp_pe_the_labels_neighbour_map(tmp_path, monkeypatch):
    """Through ActiveLoop.suggest: after contouring a lesion slice, its unlabelled neighbour is among the picks."""
    import LongitudinalALLib.active.label_context as lc

    s = new_session(tmp_path, n_cases=1)
    truth = make_case("c0").labels
    lesion_rows = np.flatnonzero(truth.reshape(len(truth), -1).any(1))
    row = int(lesion_rows[len(lesion_rows) // 2])
    idx = s.slice_indices("c0")
    s.add_label("c0", idx[row], truth[row])
    seen = {}

    def spy(labels, keys, labelled, shape, **kw):
        seen["labels"] = sorted(labels)
        seen["map"] = neighbour_lesion_map(labels, keys, labelled, shape, **kw)
        return seen["map"]

    monkeypatch.setattr(lc, "neighbour_lesion_map", spy)
    picks = ActiveLoop(s).suggest(4, "clasp_pe", noise=False, context_weight=0.5).suggestions
    assert seen["labels"] == [("c0", idx[row])]
    assert seen["map"][[row - 1, row + 1]].any(axis=(1, 2)).all() and not seen["map"][row].any()
    # an untrained model predicts no lesion anywhere: only the map brings a neighbour into the foreground share
    assert {idx[row - 1], idx[row + 1]} & {p.slice_index for p in picks}
    seen.clear()
    ActiveLoop(s).suggest(2, "entropy_mean")
    ActiveLoop(s).suggest(2, "clasp_pe")
    assert seen == {}  # strategies that do not use the map never build it
