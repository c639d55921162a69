"""The active-learning session: labels, budget, suggestions, rounds, and crash safety."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import CancelledError, InputError, SessionError
from LongitudinalALLib.core.progress import CancelToken
from LongitudinalALLib.model.training import TrainConfig

TINY = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1, "head_features": 8, "dropout": 0.1}

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@functools.lru_cache(maxsize=2)
def _mni_volumes(res: int = 4) -> tuple:
    """(baseline, follow-up, foreground, new-lesion mask) SimpleITK images on real MNI anatomy."""
    import SimpleITK as sitk
    from nilearn.datasets import MNI152_FILE_PATH

    base = sitk.BinShrink(sitk.Cast(sitk.ReadImage(str(MNI152_FILE_PATH)), sitk.sitkFloat32), [res] * 3)
    arr = sitk.GetArrayFromImage(base)
    fg = arr > 20
    rng = np.random.default_rng(0)
    lab = np.zeros(arr.shape, np.uint8)
    zz, yy, xx = np.mgrid[: arr.shape[0], : arr.shape[1], : arr.shape[2]]
    inside = np.argwhere(fg[arr.shape[0] // 3: 2 * arr.shape[0] // 3]) + [arr.shape[0] // 3, 0, 0]
    for _ in range(4):
        c = inside[rng.integers(len(inside))]
        lab[((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= 4) & fg] = 1
    fu = arr + lab * 60.0

    def img(a, like=base):
        out = sitk.GetImageFromArray(a)
        out.CopyInformation(like)
        return out

    return base, img(fu.astype(np.float32)), img(fg.astype(np.uint8)), img(lab)


def make_case(case_id: str = "c1", size: int = 64, spacing: float = 4.0):
    """A real CaseSlices (pairing.pair_slices) with its ground-truth labels."""
    from LongitudinalALLib.imaging.pairing import pair_slices

    base, fu, fg, lab = _mni_volumes()
    return pair_slices(base, fu, fg, case_id, axis="axial", size=(size, size), spacing_mm=spacing, labels=lab)


def new_session(tmp_path: Path, n_cases: int = 1, **kw) -> SessionStore:
    cases = [make_case(f"c{i}") for i in range(n_cases)]
    kw.setdefault("model_config", TINY)
    kw.setdefault("init_weights", "scratch")
    return SessionStore.create(tmp_path / "s", cases, **kw)


def _lesion_slice(case) -> int:
    return int(np.flatnonzero(case.labels.reshape(len(case.labels), -1).any(1))[0])


def test_labels_budget_and_reopen(tmp_path):
    s = new_session(tmp_path, n_cases=2)
    c0 = s.case("c0")
    i_les = _lesion_slice(make_case("c0"))
    s.add_label("c0", c0.provenance[i_les].slice_index, make_case("c0").labels[i_les])
    s.add_label("c0", c0.provenance[0].slice_index, np.zeros(c0.images.shape[2:]))   # "no new lesion"
    s.add_label("c1", c0.provenance[1].slice_index, np.zeros(c0.images.shape[2:]))
    b = s.budget()
    assert b["per_case"]["c0"] == {"slices": len(c0.images), "labelled": 2, "contoured": 1, "lesion_free": 1,
                                   "fraction": 2 / len(c0.images)}
    assert b["per_case"]["c1"]["lesion_free"] == 1 and b["total"]["labelled"] == 3
    again, notes = SessionStore.open_recovered(tmp_path / "s")
    assert notes == [] and again.budget() == b
    np.testing.assert_array_equal(again.label("c0", c0.provenance[i_les].slice_index),
                                  make_case("c0").labels[i_les])
    assert again.labelled_mask("c0").sum() == 2
    np.testing.assert_array_equal(again.case("c1").images, c0.images)


def test_labels_from_volume_mask(tmp_path):
    s = new_session(tmp_path)
    _, _, _, lab = _mni_volumes()
    import SimpleITK as sitk
    vol = sitk.GetArrayFromImage(lab)
    case = make_case("c0")
    added = s.add_labels_from_volume("c0", vol)
    expect = [case.provenance[i].slice_index for i in np.flatnonzero(case.labels.reshape(len(case.labels), -1).any(1))]
    assert added == expect and s.budget()["total"]["contoured"] == len(expect)
    # listed slices that are empty in the mask become lesion-free answers
    empty = case.provenance[0].slice_index
    s.add_labels_from_volume("c0", vol, [empty])
    assert s.budget()["total"]["lesion_free"] == 1


def test_bad_input_errors(tmp_path):
    s = new_session(tmp_path)
    with pytest.raises(InputError, match="not in this session"):
        s.add_label("nope", 0, np.zeros((64, 64)))
    with pytest.raises(InputError, match="model grid"):
        s.add_label("c0", s.case("c0").provenance[0].slice_index, np.zeros((10, 10)))
    with pytest.raises(InputError, match="does not exist"):
        s.add_label("c0", 10_000, np.zeros((64, 64)))
    with pytest.raises(SessionError, match="already holds"):
        new_session(tmp_path)
    with pytest.raises(SessionError, match="no state.json"):
        SessionStore.open_recovered(tmp_path / "elsewhere")[0]
    (tmp_path / "s" / "state.json").write_text("{ broken")
    with pytest.raises(SessionError, match="cannot be read"):
        SessionStore.open_recovered(tmp_path / "s")[0]
    with pytest.raises(InputError, match="file name"):
        SessionStore.create(tmp_path / "t", [make_case("bad/id")])


def test_crash_leftovers_are_reconciled(tmp_path):
    s = new_session(tmp_path)
    case = make_case("c0")
    i = _lesion_slice(case)
    idx = case.provenance[i].slice_index
    s.add_label("c0", case.provenance[0].slice_index, np.zeros((64, 64)))
    # crash 1: label file written, state.json not yet updated
    atomic.write_npz(s.root / f"labels/c0_{idx}.npz", mask=case.labels[i], case_id=np.array("c0"),
                     slice_index=np.array(idx))
    # crash 2: a temp file of an unfinished write, and a checkpoint of a round never committed
    (s.root / "labels" / ".c0_5.abc.tmp.npz").write_bytes(b"half")
    (s.root / "checkpoints").mkdir(exist_ok=True)
    (s.root / "checkpoints" / "round_1.safetensors").write_bytes(b"partial")
    (s.root / "labels" / "c0_999.npz").write_bytes(b"garbage")
    again, repairs = SessionStore.open_recovered(s.root)
    notes = " | ".join(repairs)
    assert "adopted label c0:%d" % idx in notes and "unfinished write" in notes
    assert "round_1.safetensors" in notes and "unreadable label" in notes
    assert again.budget()["total"] == {**again.budget()["total"], "labelled": 2, "contoured": 1}
    np.testing.assert_array_equal(again.label("c0", idx), case.labels[i])
    assert not list((s.root / "checkpoints").glob("*")) and not list((s.root / "labels").glob(".*"))
    assert SessionStore.open_recovered(s.root)[1] == []  # state is consistent now


def test_killed_while_labelling_keeps_every_committed_label(tmp_path):
    s = new_session(tmp_path)
    n = len(s.case("c0").images)
    s.close()  # the writer lock goes to the child process
    code = textwrap.dedent(f"""
        import numpy as np, sys
        from LongitudinalALLib.active.store import SessionStore
        s = SessionStore.open_recovered({str(s.root)!r})[0]
        idx = [p.slice_index for p in s.case("c0").provenance]
        k = 0
        while True:
            m = np.zeros((64, 64), np.uint8); m[k % 60: k % 60 + 3, 5:9] = 1
            s.add_label("c0", idx[k % {n}], m)
            k += 1
            if k == 3:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.7)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    again = SessionStore.open_recovered(s.root)[0]
    labels = again.labels()
    assert len(labels) >= 3
    for rec in labels:  # every label the state knows loads and holds the 3x4 square it was given
        assert again.label(rec.case_id, rec.slice_index).sum() == 12
    assert not [p for p in s.root.rglob(".*") if p.is_file() and p.name != ".lock"]
    json.loads((s.root / "state.json").read_text())


def test_suggest_train_round_resume_and_cancel(tmp_path):
    s = new_session(tmp_path, seed=3)
    truth = make_case("c0").labels
    picked = ActiveLoop(s).suggest(6, "fg_random").suggestions
    assert [p.rank for p in picked] == list(range(1, 7))
    assert len({p.slice_index for p in picked}) == 6 and all(len(p.slice_ras) == 3 for p in picked)
    for p in picked:
        s.add_label(p.case_id, p.slice_index, truth[s.position(p.case_id, p.slice_index)])
    i = _lesion_slice(make_case("c0"))
    s.add_label("c0", s.case("c0").provenance[i].slice_index, truth[i])
    cfg = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=4, crop_size=32, device="cpu")
    result = ActiveLoop(s).train(cfg)
    assert len(result.history) == 1 and (s.root / s.rounds[-1].checkpoint).is_file()
    assert s.rounds[-1].checkpoint.startswith("checkpoints/round_1_")
    # cancel: nothing committed, the previous round stays current
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        ActiveLoop(s).train(cfg, cancel=token)
    again = SessionStore.open_recovered(s.root)[0]
    n_labels = len(s.labels())
    assert n_labels >= 6 and again.round_number == 1 and again.rounds[0].budget["labelled"] == n_labels
    model = ActiveLoop(again).current_model()
    assert model.cfg.channels == (8, 16, 32)
    nxt = ActiveLoop(again).suggest(3, "entropy_mean").suggestions
    labelled = {(r.case_id, r.slice_index) for r in again.labels()}
    assert not labelled & {(p.case_id, p.slice_index) for p in nxt}
    assert len(again.suggestion_batches()) == 2


def test_suggest_runs_on_the_given_predictor(tmp_path):
    """The caller's Predictor (its device, e.g. the user's "use CPU") does the scoring; none is built."""
    from LongitudinalALLib.model import Predictor

    s = new_session(tmp_path)
    predictor = Predictor(ActiveLoop(s).current_model(), device="cpu", amp=False)
    seen = []
    predictor.model.head.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].shape[0]))
    picked = ActiveLoop(s).suggest(3, "entropy_mean", predictor=predictor).suggestions
    assert len(picked) == 3 and sum(seen) > 0
    seen.clear()
    ActiveLoop(s).suggest(3, "cold_start", predictor=predictor).suggestions  # needs no model: the predictor stays idle
    assert seen == []


def test_the_pool_is_scored_once_and_that_pass_is_returned(tmp_path):
    """One model pass serves the strategy and the caller's maps (``keep_outputs``): no second pass."""
    from LongitudinalALLib.model import Predictor

    s = new_session(tmp_path)
    predictor = Predictor(ActiveLoop(s).current_model(), device="cpu", amp=False)
    images, fg, _ = s.pool_arrays()
    expected = predictor.predict_all(images, fg).probs
    seen = []
    predictor.model.head.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].shape[0]))
    query = ActiveLoop(s).suggest(3, "entropy_mean", predictor=predictor, keep_outputs=True)
    assert sum(seen) == len(images)  # one deterministic pass over the pool
    np.testing.assert_allclose(query.outputs.probs, expected, atol=1e-6)
    seen.clear()
    label_free = ActiveLoop(s).suggest(3, "cold_start", predictor=predictor, keep_outputs=True)
    assert sum(seen) == len(images) and label_free.outputs is not None  # the maps still get their pass
    assert [p.row for p in query.suggestions] == [s.position("c0", p.slice_index) for p in query.suggestions]
