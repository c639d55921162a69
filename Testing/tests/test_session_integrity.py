"""Session integrity under attack: concurrent writers, hostile state.json, damaged files (reliability D2, D11, D14, D15, D18)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from test_session import make_case, new_session

from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.commands.cli import main
from LongitudinalALLib.core.errors import InputError, SessionError
from LongitudinalALLib.model.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--crop", "32", "--device", "cpu", "--quiet"]


def _labelled(tmp_path) -> SessionStore:
    """A session with 4 labels (one with a lesion), closed again (no lock held)."""
    s = new_session(tmp_path)
    truth = make_case("c0").labels
    rows = [0, 1, 2, int(np.flatnonzero(truth.reshape(len(truth), -1).any(1))[0])]
    for i in rows:
        s.add_label("c0", s.case("c0").provenance[i].slice_index, truth[i])
    s.close()
    return s


def _trained(tmp_path, rounds: int = 1) -> SessionStore:
    s = _labelled(tmp_path)
    with SessionStore.open_recovered(s.root)[0] as w:
        for _ in range(rounds):
            ActiveLoop(w).train(TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, crop_size=32, device="cpu"))
    return s


class Holder:
    """Another process that opens the session for writing, like a running `train`, and holds it."""

    def __init__(self, root, hold: float = 60.0):
        code = textwrap.dedent(f"""
            import time
            from LongitudinalALLib.active.loop import ActiveLoop
            from LongitudinalALLib.active.store import SessionStore
            s = SessionStore.open_recovered({str(root)!r})[0]
            print("holding", flush=True)
            time.sleep({hold})
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "holding"

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


# ---------------------------------------------------------------- D2: one writer
@pytest.mark.parametrize("command", [["train", *QUICK], ["label", "--slices", "5"], ["suggest", "-k", "2"],
                                     ["rollback"]])
def test_a_second_writer_gets_one_line_naming_the_holder(tmp_path, capsys, command):
    s = _labelled(tmp_path)
    holder = Holder(s.root)
    before = (s.root / "state.json").read_bytes()
    try:
        argv = [command[0], "--session", str(s.root), *command[1:]]
        if command[0] == "label":
            mask = tmp_path / "empty.nii.gz"
            _write_empty_mask(mask)
            argv += ["--mask", str(mask)]
        assert main(argv) == 2
    finally:
        holder.kill()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"pid {holder.proc.pid}" in err and "--wait" in err
    assert (s.root / "state.json").read_bytes() == before  # nothing written by the refused writer


def _write_empty_mask(path):
    import SimpleITK as sitk
    from test_session import _mni_volumes
    base = _mni_volumes()[0]
    m = sitk.Image(base.GetSize(), sitk.sitkUInt8)
    m.CopyInformation(base)
    sitk.WriteImage(m, str(path))


def test_the_lock_dies_with_its_process_and_wait_queues_behind_it(tmp_path):
    s = _labelled(tmp_path)
    holder = Holder(s.root)
    holder.kill()  # SIGKILL: no clean-up ran, yet the next writer gets in at once
    SessionStore.open_recovered(s.root)[0].close()
    holder = Holder(s.root, hold=1.5)
    t0 = time.monotonic()
    with SessionStore.open_recovered(s.root, wait=30)[0] as w:
        assert w.writable and time.monotonic() - t0 >= 0.5
    holder.proc.wait()


def test_a_reader_during_a_write_changes_nothing_and_cannot_commit(tmp_path):
    """Race C and B of the review: a reader used to delete the writer's checkpoint and temporary file."""
    s = _labelled(tmp_path)
    holder = Holder(s.root)
    try:
        (s.root / "checkpoints").mkdir(exist_ok=True)
        pending = s.root / "checkpoints" / "round_1_abcd1234.safetensors"   # written, not yet committed
        temp = s.root / "labels" / ".c0_7.x1.tmp.npz"                      # a write in flight
        pending.write_bytes(b"weights")
        temp.write_bytes(b"half")
        reader = SessionStore.open(s.root)
        assert reader.budget()["total"]["labelled"] == 4 and not reader.writable
        assert pending.read_bytes() == b"weights" and temp.read_bytes() == b"half"
        with pytest.raises(SessionError, match="read-only"):
            reader.add_label("c0", reader.case("c0").provenance[9].slice_index, np.zeros((64, 64)))
        with pytest.raises(SessionError, match="in use by another process"):
            SessionStore.open_recovered(s.root)[0]
    finally:
        holder.kill()
    assert pending.exists()  # only a writer holding the lock recovers (and then removes it)
    assert "round_1_abcd1234" in " ".join(SessionStore.open_recovered(s.root)[1])


def test_a_stale_writer_cannot_overwrite_a_newer_commit(tmp_path):
    """Race A1 of the review: a label committed from a stale state used to drop a trained round."""
    s = _labelled(tmp_path)
    a = SessionStore.open_recovered(s.root)[0]
    b = SessionStore.open_recovered(s.root)[0]   # same process: shares the lock, but not the state
    b.add_label("c0", b.case("c0").provenance[20].slice_index, np.zeros((64, 64)))
    with pytest.raises(SessionError, match="changed by another writer"):
        a.add_label("c0", a.case("c0").provenance[21].slice_index, np.zeros((64, 64)))
    a.close()
    b.close()
    assert len(SessionStore.open(s.root).labels()) == 5


def test_two_trains_never_share_a_checkpoint_file(tmp_path):
    s = _trained(tmp_path, rounds=2)
    ckpts = [r.checkpoint for r in SessionStore.open(s.root).rounds]
    assert len(set(ckpts)) == 2 and all(c.startswith(f"checkpoints/round_{i}_") for i, c in enumerate(ckpts, 1))


# ---------------------------------------------------------------- D15, D18: hostile state.json
def _edit_state(root, edit):
    state = json.loads((root / "state.json").read_text())
    state = edit(state)
    (root / "state.json").write_text(json.dumps(state))


WRONG_SHAPES = {
    "a list": lambda st: [],
    "empty object": lambda st: {},
    "missing labels": lambda st: {k: v for k, v in st.items() if k != "labels"},
    "string seed": lambda st: {**st, "seed": "0"},
    "null checkpoint": lambda st: {**st, "rounds": [{**st["rounds"][0], "checkpoint": None}]},
    "empty slice list": lambda st: {**st, "cases": {"c0": {**st["cases"]["c0"], "slice_indices": []}}},
    "case id with a path": lambda st: {**st, "cases": {"../sub/x": st["cases"]["c0"]}, "labels": {}},
    "absolute checkpoint": lambda st: {**st, "rounds": [{**st["rounds"][0], "checkpoint": "/etc/passwd"}]},
    "checkpoint outside": lambda st: {**st, "rounds": [{**st["rounds"][0], "checkpoint": "checkpoints/../../x"}]},
    "label file outside": lambda st: {**st, "labels": {k: {**v, "file": "../../x.npz"} for k, v in st["labels"].items()}},
}


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory):
    return _trained(tmp_path_factory.mktemp("tpl")).root


@pytest.mark.parametrize("name", sorted(WRONG_SHAPES))
def test_state_of_the_wrong_shape_is_one_line(trained_template, tmp_path, capsys, name):
    import shutil

    root = tmp_path / "s"
    shutil.copytree(trained_template, root)
    _edit_state(root, WRONG_SHAPES[name])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["suggest", "--session", str(root), "-k", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "state.json" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created, nothing removed


def test_a_damaged_label_is_set_aside_with_the_slice_to_relabel(tmp_path, capsys):
    s = _labelled(tmp_path)
    rec = next(iter(SessionStore.open(s.root).labels()))
    (s.root / rec.file).write_bytes(b"garbage")
    assert main(["train", "--session", str(s.root), *QUICK]) == 0
    out = capsys.readouterr().out
    assert f"label slice {rec.slice_index} again" in out
    assert (s.root / "damaged" / f"labels_{rec.file.split('/')[-1]}").read_bytes() == b"garbage"
    assert len(SessionStore.open(s.root).labels()) == 3


def test_a_sidecar_with_thousands_of_levels_is_refused_cleanly(tmp_path, capsys):
    s = _trained(tmp_path)
    ck = s.root / SessionStore.open(s.root).rounds[-1].checkpoint
    side = ck.with_suffix(".json")
    info = json.loads(side.read_text())
    info["config"]["channels"] = [8] * 5000
    info["config"]["strides"] = [2] * 4999
    side.write_text(json.dumps(info))
    assert main(["suggest", "--session", str(s.root), "-k", "2", "--quiet", "--strategy", "entropy_mean"]) == 2
    assert "levels" in capsys.readouterr().err
    nested = "[" * 5000 + "]" * 5000
    side.write_text(json.dumps({**info, "config": "X"}).replace('"X"', nested))
    assert main(["suggest", "--session", str(s.root), "-k", "2", "--quiet", "--strategy", "entropy_mean"]) == 2
    assert "cannot be read" in capsys.readouterr().err


# ---------------------------------------------------------------- D11: damaged latest checkpoint
def test_a_damaged_latest_model_rolls_back_with_one_command(tmp_path, capsys):
    s = _trained(tmp_path, rounds=2)
    last = s.root / SessionStore.open(s.root).rounds[-1].checkpoint
    with open(last, "r+b") as fh:
        fh.truncate(1000)
    for cmd in (["suggest", "-k", "2", "--quiet", "--strategy", "entropy_mean"], ["train", *QUICK]):
        assert main([cmd[0], "--session", str(s.root), *cmd[1:]]) == 2
        err = capsys.readouterr().err
        assert "round 2 cannot be loaded" in err and f"longitudinal-al rollback --session {s.root}" in err
    assert main(["rollback", "--session", str(s.root)]) == 0
    assert "round 1 is current" in capsys.readouterr().out
    assert not last.exists()
    assert main(["suggest", "--session", str(s.root), "-k", "2", "--quiet", "--strategy", "entropy_mean"]) == 0
    assert main(["train", "--session", str(s.root), *QUICK]) == 0
    assert SessionStore.open(s.root).round_number == 2
    assert main(["rollback", "--session", str(s.root), "--to-round", "7"]) == 2


# ---------------------------------------------------------------- D14: checks before the first write
@pytest.mark.parametrize("bad", [["--weights", "nope.safetensors"], ["--strategy", "no_such_strategy"]])
def test_first_suggest_checks_weights_and_strategy_before_writing(tmp_path, capsys, bad):
    pair = tmp_path / "pair"
    _prepared_folder(pair)
    session = tmp_path / "s"
    argv = ["suggest", "--session", str(session), "--pair", str(pair), "--size", "64", "--spacing", "4",
            "-k", "2", "--quiet"]
    assert main(argv + bad) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (session / "state.json").exists()
    assert main(argv + ["--weights", "scratch"]) == 0


def _prepared_folder(folder):
    """baseline / followup_registered / foreground volumes as `prepare` writes them (MNI at 4 mm)."""
    import SimpleITK as sitk
    from test_session import _mni_volumes

    from LongitudinalALLib.imaging.prepare import OUTPUT_FILES
    base, fu, fg, _ = _mni_volumes()
    folder.mkdir(parents=True)
    for name, img in (("baseline", base), ("followup_registered", fu), ("foreground", fg)):
        sitk.WriteImage(img, str(folder / OUTPUT_FILES[name]))


@pytest.mark.parametrize("value", [-1, 255, 0.5, np.nan])
def test_a_slice_label_of_other_values_than_0_and_1_is_refused(tmp_path, value):
    """The Slicer path (add_label) as well as label masks: -1 or NaN once became "no lesion"."""
    s = new_session(tmp_path)
    mask = np.zeros((64, 64), np.float32)
    mask[10:14, 10:14] = value
    with pytest.raises(InputError, match="other than 0 and 1"):
        s.add_label("c0", s.case("c0").provenance[5].slice_index, mask)
    assert s.labels() == [] and not list((s.root / "labels").glob("*"))
