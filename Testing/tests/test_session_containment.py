"""The session folder: nothing outside it is ever touched, nothing the tool did not write is deleted,
and what steers paths or allocation is checked like state.json (reliability review 2: N1, N2, N8, N12).

Each test is the review's reproduction (or a sharper one) on real session files; each failed on d9e08f4.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from test_session import _mni_volumes, make_case, new_session

from LongitudinalALLib.active import loop as loop_module
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.commands.cli import main
from LongitudinalALLib.core.errors import SessionError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _labelled(tmp_path, n: int = 3) -> SessionStore:
    """A closed session with ``n`` lesion-free labels."""
    s = new_session(tmp_path)
    for row in range(n):
        s.add_label("c0", s.case("c0").provenance[row].slice_index, np.zeros(s.case("c0").images.shape[2:]))
    s.close()
    return s


def _outside(tmp_path):
    other = tmp_path / "shared_models"
    other.mkdir()
    (other / "my_other_model.safetensors").write_bytes(b"weights of another project")
    (other / "README.txt").write_text("keep me")
    return other


# ---------------------------------------------------------------- N1: crash recovery deletes outside files
@pytest.mark.parametrize("sub", ["checkpoints", "scores"])
def test_symlinked_subfolder_is_refused_and_outside_files_stay(tmp_path, sub):
    s = _labelled(tmp_path)
    other = _outside(tmp_path)
    if (s.root / sub).exists():
        os.rmdir(s.root / sub)
    os.symlink(other, s.root / sub)
    with pytest.raises(SessionError, match="symbolic link") as err:
        SessionStore.open_recovered(s.root)
    assert "\n" not in str(err.value)
    assert sorted(os.listdir(other)) == ["README.txt", "my_other_model.safetensors"]


def test_foreign_files_in_checkpoints_are_moved_aside_not_deleted(tmp_path):
    s = _labelled(tmp_path)
    ck = s.root / "checkpoints"
    ck.mkdir(exist_ok=True)
    (ck / "README.txt").write_text("notes about the models")
    (ck / "backup.safetensors").write_bytes(b"a backup")
    (ck / "round_7_0badcafe.safetensors").write_bytes(b"partial")  # the tool's own name, never committed
    store, notes = SessionStore.open_recovered(s.root)
    store.close()
    assert not (ck / "round_7_0badcafe.safetensors").exists()
    assert (s.root / "damaged" / "checkpoints_README.txt").read_text() == "notes about the models"
    assert (s.root / "damaged" / "checkpoints_backup.safetensors").read_bytes() == b"a backup"
    assert any("README.txt" in n and "did not write" in n for n in notes)


@pytest.mark.parametrize("name", ["state.json", "labels"])
def test_symlinked_state_or_labels_is_refused(tmp_path, name):
    s = _labelled(tmp_path)
    real = tmp_path / f"real_{name}"
    os.replace(s.root / name, real)
    os.symlink(real, s.root / name)
    for opener in (lambda: SessionStore.open(s.root), lambda: SessionStore.open_recovered(s.root)):
        with pytest.raises(SessionError, match="symbolic link"):
            opener()


def test_symlinked_lock_file_never_truncates_its_target(tmp_path):
    """Found in the third round: the writer lock truncates and rewrites ``.lock`` (an outside file by a link)."""
    s = _labelled(tmp_path)
    precious = tmp_path / "precious.txt"
    precious.write_text("a file outside the session")
    (s.root / ".lock").unlink(missing_ok=True)
    os.symlink(precious, s.root / ".lock")
    with pytest.raises(SessionError, match="symbolic link"):
        SessionStore.open_recovered(s.root)
    assert precious.read_text() == "a file outside the session"


def session_with_misnamed_round(tmp_path):
    """A session whose state.json names round 1's checkpoint ``checkpoints/notes.safetensors``, beside the
    user's ``notes.safetensors|txt|json``; returns the checkpoints folder."""
    s = _labelled(tmp_path)
    ck = s.root / "checkpoints"
    ck.mkdir(exist_ok=True)
    for name in ("notes.safetensors", "notes.txt", "notes.json"):
        (ck / name).write_text("user file")
    state = json.loads((s.root / "state.json").read_text())
    state["rounds"] = [{"round": 1, "checkpoint": "checkpoints/notes.safetensors"}]
    (s.root / "state.json").write_text(json.dumps(state))
    return ck


def test_rollback_deletes_only_checkpoint_names_the_tool_writes(tmp_path):
    """Rollback deleted ``notes.*`` (every file sharing the recorded checkpoint's stem)."""
    ck = session_with_misnamed_round(tmp_path)
    with SessionStore.open(ck.parent, write=True) as store:
        assert store.rollback(0) == 0
    assert sorted(os.listdir(ck)) == ["notes.json", "notes.safetensors", "notes.txt"]


# ---------------------------------------------------------------- N2: create wipes a folder without state.json
def test_session_without_state_json_keeps_its_labels(tmp_path):
    s = _labelled(tmp_path, n=3)
    (s.root / "state.json").unlink()
    before = sorted(os.listdir(s.root / "labels"))
    with pytest.raises(SessionError, match="3 label files of an earlier session") as err:
        SessionStore.create(s.root, [make_case("c0")], init_weights="scratch")
    assert "\n" not in str(err.value)
    assert sorted(os.listdir(s.root / "labels")) == before and len(before) == 3


def test_project_folder_given_as_session_is_refused_untouched(tmp_path):
    proj = tmp_path / "proj"
    files = {"labels/patient1_seg.nii.gz": "seg", "scores/reader_study.csv": "a,b", "pool/notes.txt": "n"}
    for rel, text in files.items():
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text(text)
    with pytest.raises(SessionError, match="not empty"):
        SessionStore.create(proj, [make_case("c0")], init_weights="scratch")
    assert {rel: (proj / rel).read_text() for rel in files} == files


def test_new_session_in_missing_or_empty_folder_and_overwrite_keeps_foreign_files(tmp_path):
    (tmp_path / "empty" / "labels").mkdir(parents=True)
    SessionStore.create(tmp_path / "empty", [make_case("c0")], init_weights="scratch").close()
    s = _labelled(tmp_path)
    (s.root / "labels" / "my_notes.txt").write_text("mine")
    with pytest.raises(SessionError, match="my_notes.txt"):
        SessionStore.create(s.root, [make_case("c0")], init_weights="scratch", overwrite=True)
    assert len(list((s.root / "labels").glob("*.npz"))) == 3
    (s.root / "labels" / "my_notes.txt").unlink()
    SessionStore.create(s.root, [make_case("c0")], init_weights="scratch", overwrite=True).close()
    assert list((s.root / "labels").iterdir()) == []


# ---------------------------------------------------------------- N8: the pool record steers allocation
def _edit_pool(root, edit) -> None:
    path = root / "pool" / "c0.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, words", [
    (lambda m: m["geometry"].__setitem__("shape", [63, 100000, 100000]), "baseline grid"),
    (lambda m: m["provenance"][0].__setitem__("extra", 1), "provenance"),
    (lambda m: m.__setitem__("provenance", m["provenance"][:-1]), "slices"),
    (lambda m: m["geometry"].__setitem__("direction", [1, 0, 0]), "geometry"),
])
def test_damaged_pool_record_is_one_line(tmp_path, edit, words):
    s = _labelled(tmp_path)
    _edit_pool(s.root, edit)
    with pytest.raises(SessionError, match=f"Pool record .*c0.json is damaged.*{words}") as err:
        SessionStore.open(s.root).case("c0")
    assert "\n" not in str(err.value)


def _npz_declaring(path, name: str, shape: tuple[int, ...], extra: dict) -> None:
    """An npz whose member ``name`` declares ``shape`` (float32) but holds 16 bytes."""
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}.npy", buf.getvalue() + b"\0" * 16)
        for k, v in extra.items():
            b = io.BytesIO()
            np.save(b, v)
            zf.writestr(f"{k}.npy", b.getvalue())


def test_pool_and_label_files_declaring_huge_arrays_are_refused_before_loading(tmp_path):
    s = _labelled(tmp_path)
    n = s.n_slices("c0")
    _npz_declaring(s.root / "pool" / "c0.npz", "images", (n, 3, 100_000, 100_000),
                   {"foreground": np.zeros((n, 64, 64), bool)})
    with pytest.raises(SessionError, match="Pool file .*c0.npz is missing or damaged.*images declares shape"):
        SessionStore.open(s.root).case("c0")
    t = _labelled(tmp_path / "t")
    _npz_declaring(t.root / "labels" / "c0_999.npz", "mask", (200_000, 200_000),
                   {"case_id": np.array("c0"), "slice_index": np.array(3)})
    store, notes = SessionStore.open_recovered(t.root)
    store.close()
    assert (t.root / "damaged" / "labels_c0_999.npz").is_file() and any("c0_999.npz" in n for n in notes)


# ---------------------------------------------------------------- CLI: N2 and N12 on the real command
@pytest.fixture()
def prepared(tmp_path):
    """A folder like `prepare` writes (the MNI volumes stand in for registered ones)."""
    base, fu, fg, _ = _mni_volumes()
    out = tmp_path / "prepared_pair"
    out.mkdir()
    for image, name in ((base, "baseline_preprocessed"), (fu, "followup_registered"), (fg, "foreground_mask")):
        sitk.WriteImage(image, str(out / f"{name}.nii.gz"))
    return out


def _suggest(session, pair, *extra):
    return main(["suggest", "--session", str(session), "--pair", str(pair), "--size", "64", "--spacing", "4",
                 "-k", "2", "--quiet", *extra])


def test_cli_first_suggest_refuses_a_project_folder(tmp_path, prepared, capsys):
    proj = tmp_path / "proj"
    (proj / "labels").mkdir(parents=True)
    (proj / "labels" / "patient1_seg.nii.gz").write_text("seg")
    assert _suggest(proj, prepared) == 2
    err = capsys.readouterr().err.strip()
    assert "not empty" in err and len(err.splitlines()) == 1
    assert (proj / "labels" / "patient1_seg.nii.gz").read_text() == "seg"


def test_cli_first_suggest_with_unusable_weights_leaves_nothing(tmp_path, prepared, capsys):
    import hashlib

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"x")
    (tmp_path / "bad.json").write_text(json.dumps({"format": "longitudinal-al-weights", "config": {},
                                                   "sha256": hashlib.sha256(b"x").hexdigest()}))
    assert _suggest(tmp_path / "b", prepared, "--weights", str(bad)) == 2
    assert "bad.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_cli_first_suggest_that_fails_midway_leaves_nothing(tmp_path, prepared, capsys, monkeypatch):
    def broken(self, *a, **k):
        raise SessionError("the scoring failed.", "Try again.")

    monkeypatch.setattr(loop_module.ActiveLoop, "suggest", broken)
    (tmp_path / "given").mkdir()  # an empty folder the user made stays; what the tool wrote goes
    assert _suggest(tmp_path / "new", prepared, "--weights", "scratch") == 2
    assert _suggest(tmp_path / "given", prepared, "--weights", "scratch") == 2
    assert not (tmp_path / "new").exists() and os.listdir(tmp_path / "given") == []
    monkeypatch.undo()
    assert _suggest(tmp_path / "new", prepared, "--weights", "scratch") == 0  # the first call can be repeated
    capsys.readouterr()


# ---------------------------------------------------------------- third round (issue 22 item 5, attack_round3.py)
def test_damaged_folder_link_is_refused_and_quarantine_never_overwrites(tmp_path):
    s = _labelled(tmp_path)
    for content in (b"first damaged copy", b"second damaged copy"):  # R3-6: the second replaced the first
        (s.root / "labels" / "c0_998.npz").write_bytes(content)
        SessionStore.open_recovered(s.root)[0].close()
    assert sorted(p.read_bytes() for p in (s.root / "damaged").iterdir()) == [b"first damaged copy",
                                                                               b"second damaged copy"]
    t = _labelled(tmp_path / "t")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", t.root / "damaged")  # R3-5: unreadable labels were moved out of the session
    (t.root / "labels" / "c0_998.npz").write_bytes(b"garbage")
    with pytest.raises(SessionError, match="symbolic link"):
        SessionStore.open_recovered(t.root)
    assert os.listdir(tmp_path / "elsewhere") == []


def test_label_linked_to_a_device_is_moved_aside_without_reading_it(tmp_path):
    s = _labelled(tmp_path)
    os.symlink("/dev/zero", s.root / "labels" / "c0_997.npz")
    store, notes = SessionStore.open_recovered(s.root)
    store.close()
    assert (s.root / "damaged" / "labels_c0_997.npz").is_symlink() and any("c0_997" in n for n in notes)


def test_simulation_never_replaces_what_it_did_not_write(tmp_path):
    from LongitudinalALLib.active.simulate import OracleCase, SimulationConfig, fork_simulation, run_simulation
    from LongitudinalALLib.core.errors import InputError
    from LongitudinalALLib.core.progress import CancelToken

    cancel = CancelToken()
    cancel.cancel()
    pool = [OracleCase(make_case("c0"), np.zeros((1, 1, 1), np.uint8))]
    proj = tmp_path / "proj"                               # R3-7: simulate --out a project folder wiped labels/
    (proj / "labels").mkdir(parents=True)
    (proj / "labels" / "patient1_seg.nii.gz").write_text("seg")
    with pytest.raises(SessionError, match="not empty"):
        run_simulation(proj, pool, [], SimulationConfig(rounds=1), cancel=cancel)
    assert (proj / "labels" / "patient1_seg.nii.gz").read_text() == "seg"
    src = _labelled(tmp_path).root                         # R3-8: a damaged simulation.json gave a TypeError
    (src / "simulation.json").write_text("[]")
    with pytest.raises(InputError, match="simulation.json is damaged"):
        run_simulation(src, pool, [], SimulationConfig(rounds=1), cancel=cancel)
    dst = tmp_path / "my_results"                          # R3-9: fork_simulation rmtree'd its destination
    dst.mkdir()
    (dst / "thesis_figures.pdf").write_text("months of work")
    with pytest.raises(InputError, match="not empty"):
        fork_simulation(src, dst, SimulationConfig())
    assert (dst / "thesis_figures.pdf").read_text() == "months of work"


def test_cached_truth_declaring_a_huge_volume_is_refused_before_loading(tmp_path):
    """R3-10: the simulate cache's truth.npz was loaded unchecked (a 3.55 PiB MemoryError traceback)."""
    from LongitudinalALLib.active import simulate

    cohort = cohort_with_truth_bomb(tmp_path)
    with pytest.raises(SessionError, match="truth.npz is damaged.*volume declares shape"):
        simulate.load_cohort_cases(cohort, ("train",), size=64, spacing_mm=4.0, cache_dir=tmp_path / "cache")


def cohort_with_truth_bomb(tmp_path):
    """A one-pair cohort whose simulate cache (``tmp_path/cache``) holds a truth.npz declaring 10^15 voxels."""
    from LongitudinalALLib.active import pool_store, simulate

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    files = {"baseline": "b.nii.gz", "followup": "f.nii.gz", "new_lesions": "n.nii.gz"}
    (cohort / "manifest.json").write_text(json.dumps({"format": "longitudinal-al-cohort", "pairs": [
        {"pair_id": "c0", "split": "train", "files": files}]}))
    opts = {"size": 64, "spacing_mm": 4.0, "axis": "axial", "seed": 0}
    cdir = tmp_path / "cache" / simulate._cache_key("c0", str((cohort / "manifest.json").resolve()), opts)
    case = make_case("c0")
    pool_store.save_case(cdir, case)
    _npz_declaring(cdir / "truth.npz", "volume", (100_000, 100_000, 100_000),
                   {"labels": np.zeros(case.labels.shape, np.uint8)})
    return cohort


@pytest.mark.slow  # registers the pair (about 15 s alone)
def test_cli_first_suggest_from_scans_that_fails_leaves_no_prepared_volumes(tmp_path, capsys, monkeypatch):
    """The --baseline/--followup route writes prepared/ into the session folder: it must go with the session."""
    import scene_testdata

    base, fu, _ = scene_testdata.make_pair(3.0)
    for image, name in ((base, "base"), (fu, "fu")):
        sitk.WriteImage(image, str(tmp_path / f"{name}.nii.gz"))

    def broken(self, *a, **k):
        raise SessionError("the scoring failed.", "Try again.")

    monkeypatch.setattr(loop_module.ActiveLoop, "suggest", broken)
    rc = main(["suggest", "--session", str(tmp_path / "s"), "--baseline", str(tmp_path / "base.nii.gz"),
               "--followup", str(tmp_path / "fu.nii.gz"), "--size", "64", "--spacing", "3", "-k", "2",
               "--weights", "scratch", "--quiet"])
    assert rc == 2 and "scoring failed" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
