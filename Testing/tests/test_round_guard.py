"""Never worse (issue 24): a round's model is compared with the previous one on labels it did not train on.

Before the guard, a round that made the model worse (on real scans: the bundled
model fine-tuned on 6 labels fired everywhere) became the current model. Now the
round holds out part of its new labels, both models predict them, and the
previous weights stay in use (committed as the round, with the reason) when the
new ones are worse.
"""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.torch import load_file
from test_session import TINY, make_case

from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.records import LabelRecord
from LongitudinalALLib.active.round_guard import compare, holdout_keys
from LongitudinalALLib.active.store import SessionStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rec(i: int, lesion: bool, round_: int) -> LabelRecord:
    return LabelRecord("c", i, f"labels/c_{i}.npz", 5 if lesion else 0, round_, "train")


def test_holdout_takes_only_new_labels_and_leaves_a_lesion_slice_to_train():
    recs = [_rec(i, i % 2 == 0, 0) for i in range(4)] + [_rec(10 + i, i < 2, 1) for i in range(6)]
    held = holdout_keys(recs, 1, 0.34, seed=0)
    assert held and all(s >= 10 for _, s in held)               # never a label an earlier round trained on
    assert sum(s in (10, 11) for _, s in held) == 1             # 1 of the 2 new lesion slices, one stays
    assert sum(s >= 12 for _, s in held) == 2                   # ceil(0.34 * 4) of the empty ones
    one = [_rec(10, True, 1), _rec(11, False, 1), _rec(12, False, 1)]
    assert (("c", 10)) not in holdout_keys(one, 1, 0.34, seed=0)  # a single new lesion slice trains
    assert holdout_keys(recs, 1, 0.34, seed=0) == held          # deterministic
    assert holdout_keys([_rec(3, True, 2)], 2, 0.34, seed=0) == set()  # one new label: nothing to hold out


def test_compare_keeps_the_previous_model_when_the_new_one_is_worse():
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[0, 2:4, 2:4] = 1
    fg = np.ones(labels.shape, bool)
    good = labels.astype(np.float32)
    everywhere = np.full(labels.shape, 0.9, np.float32)
    assert compare(good, everywhere, labels, fg, 2).kept == "previous"
    free = np.zeros_like(labels)  # every held-out slice "no new lesion": false-positive pixels decide
    assert compare(np.zeros_like(good), everywhere, free, fg, 1).kept == "previous"
    assert compare(np.zeros_like(good), np.full(labels.shape, np.nan, np.float32), free, fg, 1).kept == "previous"


def _blobs(shape, *boxes, p=0.95):
    """(K,H,W) float32 with ``p`` in each (slice, rows, cols) box."""
    out = np.zeros(shape, np.float32)
    for k, rows, cols in boxes:
        out[k, rows, cols] = p
    return out


S = (5, 32, 32)  # held out: 3 slices with a lesion each, 2 lesion-free
BOXES = [(0, slice(10, 20), slice(10, 20)), (1, slice(5, 10), slice(5, 10)), (2, slice(20, 26), slice(20, 26))]
TRUTH = (_blobs(S, *BOXES) > 0).astype(np.uint8)
FG = np.ones(S, bool)
PREV = _blobs(S, (0, slice(10, 14), slice(10, 20)), (2, slice(20, 26), slice(20, 23)))  # 2 of 3 lesions, Dice 0.53
MORE = _blobs(S, (0, slice(10, 14), slice(10, 20)), (2, slice(20, 26), slice(20, 23)), BOXES[1])  # all 3: Dice 0.68


def test_a_round_like_patient03s_first_is_not_accepted():
    """Real patient03 fold, round 1, judged on 2 held-out lesion slices: 1 -> 2 lesions found, Dice
    0.33 -> 0.43, and the old rule ("not 0.02 worse") took it; on the test patient Dice fell 0.386 ->
    0.29-0.31. Two slices cannot show that a model is better."""
    truth = TRUTH.copy()
    truth[2] = 0                                    # 2 lesion slices, 3 lesion-free
    prev = _blobs(S, (0, slice(10, 14), slice(10, 20)))
    new = _blobs(S, (0, slice(10, 15), slice(10, 20)), (1, slice(5, 8), slice(5, 10)))
    d = compare(prev, new, truth, FG, 1)
    assert d.kept == "previous" and "too little evidence: 2 held-out slices with lesions" in d.reason
    assert d.new["lesions_found"] == 2 > d.previous["lesions_found"] and d.new["dice"] > d.previous["dice"] + 0.1
    assert "the starting model stays in use" in d.reason
    free = np.zeros(S, np.uint8)                    # lesion-free slices only: no evidence of finding lesions
    assert compare(PREV, np.zeros(S, np.float32), free, FG, 2).kept == "previous"


def test_a_false_lesion_on_a_held_out_slice_is_evidence_against_the_new_model():
    new = _blobs(S, *BOXES, (3, slice(20, 26), slice(20, 26)))  # every lesion, and one where there is none
    d = compare(PREV, new, TRUTH, FG, 1)
    assert d.kept == "previous" and "false lesions on the held-out slices" in d.reason
    assert d.new["dice"] > d.previous["dice"] + 0.2 and d.new["false_lesions"] == 1 > d.previous["false_lesions"]


def test_a_new_model_must_be_clearly_better_on_the_held_out_labels():
    """Not merely not worse: +0.01 Dice is noise (the old rule took it); a lesion lost is not better."""
    slightly = PREV + _blobs(S, (0, slice(14, 15), slice(10, 12)))
    d = compare(PREV, slightly, TRUTH, FG, 3)
    assert 0 < d.new["dice"] - d.previous["dice"] < 0.02 and d.held_out_lesion == 3
    assert d.kept == "previous" and "not clearly better" in d.reason and "round 2's model stays in use" in d.reason
    d = compare(PREV, MORE, TRUTH, FG, 3)
    assert d.kept == "new" and "Round 3's model is in use" in d.reason
    lost = _blobs(S, BOXES[0])                      # Dice up 0.23, but the lesion of slice 2 is lost
    d = compare(PREV, lost, TRUTH, FG, 3)
    assert d.new["dice"] > d.previous["dice"] + 0.2 and d.kept == "previous"


def test_a_model_that_fires_everywhere_on_the_unlabelled_pool_is_not_accepted():
    """Held-out labels say better (a third lesion found) but the pool's predicted lesions go 2 -> 22."""
    pool_prev = _blobs(S, (0, slice(2, 5), slice(2, 5)), (3, slice(2, 5), slice(2, 5)))
    pool_new = pool_prev.copy()
    for k in range(5):
        for c in (8, 16, 24):
            pool_new[k, c:c + 3, 20:23] = 0.95  # 4 more 9-pixel lesions a slice
        pool_new[k, 28:30, 2] = 0.99             # specks under MIN_PIXELS are no lesion
    pool_new[1, 0:3, 28:31] = 0.6               # nor is a blob that never reaches the peak probability
    d = compare(PREV, MORE, TRUTH, FG, 2, previous_pool=pool_prev, new_pool=pool_new, pool_fg=FG)
    assert (d.previous["pool_lesions"], d.new["pool_lesions"]) == (2, 17)
    assert d.kept == "previous" and "fires everywhere" in d.reason
    assert compare(PREV, MORE, TRUTH, FG, 2, previous_pool=pool_prev, new_pool=pool_prev, pool_fg=FG).kept == "new"


def _weights(store: SessionStore) -> dict:
    return load_file(str(store.root / store.rounds[-1].checkpoint))


def test_a_destructive_round_leaves_the_previous_model_in_use(tmp_path):
    case = make_case("c0")
    has = case.labels.reshape(len(case.labels), -1).any(1)
    les = np.flatnonzero(has)
    free = np.flatnonzero(~has & case.foreground.reshape(len(has), -1).any(1))
    store = SessionStore.create(tmp_path / "s", [case], model_config=TINY, init_weights="scratch")
    store.add_labels(("c0", case.provenance[i].slice_index, case.labels[i]) for i in [*les[:4], *free[:4]])
    loop = ActiveLoop(store)
    quick = dict(epochs=1, steps_per_epoch=3, batch_size=4, crop_size=32, device="cpu")
    loop.train(loop.train_config(lr=3e-3, **quick))
    previous = _weights(store)
    # round 2: one new lesion slice (kept for training) and four lesion-free ones (two held out)
    store.add_labels(("c0", case.provenance[i].slice_index, case.labels[i]) for i in [les[4], *free[4:8]])
    destructive = dict(lr=1.0, freeze_bn=False, distill_weight=0.0, collapse_actions=())  # no anchor holds it
    result = loop.train(loop.train_config(**destructive, **quick))
    guard = store.rounds[-1].train["guard"]
    assert guard["kept"] == "previous" and guard["held_out"] == 2 and guard["held_out_lesion"] == 0
    assert guard["new"]["fp_pixels"] > guard["previous"]["fp_pixels"]
    assert "the previous" not in guard["reason"] and "round 1's model stays in use" in guard["reason"]
    assert store.rounds[-1].train["model_in_use"] == guard["reason"] and guard["reason"] in result.warnings
    now = _weights(store)
    assert all(np.array_equal(now[k].numpy(), previous[k].numpy()) for k in previous)
    assert loop.current_model() is not None
