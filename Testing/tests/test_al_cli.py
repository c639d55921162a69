"""`longitudinal-al suggest | label | train` end to end on a tiny simulated pair (real registration)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.commands.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pair")
    assert main(["make-cohort", "--n", "1", "--flat", "--spacing", "3", "--anatomies", "mni", "--seed", "3",
                 "--min-new-lesions", "2", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.slow
def test_suggest_label_train_round_trip(tmp_path, pair_dir, capsys):
    s = tmp_path / "session"
    rc, out, err = _run(capsys, "suggest", "--session", str(s), "--baseline", str(pair_dir / "baseline.nii.gz"),
                        "--followup", str(pair_dir / "followup.nii.gz"), "--size", "64", "--spacing", "4",
                        "--weights", "scratch", "--strategy", "fg_random", "-k", "4", "--json", "--quiet")
    assert rc == 0, err
    first = json.loads(out)
    assert len(first["suggestions"]) == 4 and [x["rank"] for x in first["suggestions"]] == [1, 2, 3, 4]
    assert {x["reason"] for x in first["suggestions"]} == {"random draw weighted by tissue"}  # why each was picked
    picked = [x["slice_index"] for x in first["suggestions"]]

    # the four suggested slices, answered from the ground-truth mask (empty ones = no new lesion)
    mask = str(pair_dir / "new_lesions.nii.gz")
    rc, out, err = _run(capsys, "label", "--session", str(s), "--mask", mask,
                        "--slices", ",".join(map(str, picked)), "--json")
    assert rc == 0, err
    lab = json.loads(out)
    assert sorted(lab["contoured"] + lab["lesion_free"]) == sorted(picked)
    # every slice where the mask is non-zero
    rc, out, err = _run(capsys, "label", "--session", str(s), "--mask", mask, "--json")
    assert rc == 0, err
    all_lab = json.loads(out)
    assert all_lab["contoured"] and not all_lab["lesion_free"]
    truth = sitk.GetArrayFromImage(sitk.ReadImage(mask))
    assert all_lab["budget"]["contoured"] == len(set(all_lab["contoured"]) | set(lab["contoured"]))
    assert truth.any()

    rc, out, err = _run(capsys, "train", "--session", str(s), "--epochs", "1", "--steps-per-epoch", "2",
                        "--crop", "32", "--batch-size", "4", "--device", "cpu", "--json", "--quiet")
    assert rc == 0, err
    tr = json.loads(out)
    assert tr["round"] == 1 and Path(tr["checkpoint"]).is_file()

    rc, out, err = _run(capsys, "suggest", "--session", str(s), "-k", "3", "--strategy", "entropy_mean")
    assert rc == 0, err
    assert "round 1" in out and "entropy_mean" in out
    assert "why (rule score)" in out and any(w in out for w in ("highest entropy_mean score (", "large change before"))
    session = SessionStore.open_recovered(s)[0]
    labelled = {r.slice_index for r in session.labels()}
    last = session.suggestion_batches()[-1].slices
    assert len(last) == 3 and not labelled & {x.slice_index for x in last}


def test_suggest_from_prepared_folder(tmp_path, pair_dir, capsys):
    from LongitudinalALLib.imaging.prepare import PrepareOptions, prepare_pair, write_prepared

    prepared = tmp_path / "prepared"  # from the true transform, no N4: registration is test_prepare_cli's (issue 23)
    pair = prepare_pair(str(pair_dir / "baseline.nii.gz"), str(pair_dir / "followup.nii.gz"),
                        PrepareOptions(size=64, spacing_mm=4.0, n4=False,
                                       initial_transform=pair_dir / "registration_truth.tfm"),
                        case_id="p1")
    write_prepared(pair, prepared)
    rc, out, err = _run(capsys, "suggest", "--session", str(tmp_path / "s"), "--pair", str(prepared),
                        "--size", "64", "--spacing", "4", "--weights", "scratch", "--strategy", "random",
                        "-k", "2", "--json", "--quiet")
    assert rc == 0, err
    res = json.loads(out)
    assert len(res["suggestions"]) == 2 and res["suggestions"][0]["case_id"] == "prepared"
    case = SessionStore.open_recovered(tmp_path / "s")[0].case("prepared")
    # re-pairing the written volumes gives the slices preparation made
    np.testing.assert_allclose(case.images, pair.slices.images, atol=1e-4)
    # labels from a mask on the baseline grid work through the prepared folder's baseline
    rc, out, err = _run(capsys, "label", "--session", str(tmp_path / "s"), "--mask",
                        str(pair_dir / "new_lesions.nii.gz"), "--json")
    assert rc == 0, err
    assert json.loads(out)["contoured"]


def test_clear_errors(tmp_path, pair_dir, capsys):
    rc, _, err = _run(capsys, "suggest", "--session", str(tmp_path / "none"))
    assert rc == 2 and "--baseline" in err and "Traceback" not in err
    rc, _, err = _run(capsys, "label", "--session", str(tmp_path / "none"), "--mask", "x.nii.gz")
    assert rc == 2 and "no state.json" in err
    rc, _, err = _run(capsys, "train", "--session", str(tmp_path / "none"))
    assert rc == 2 and "session" in err
    rc, _, err = _run(capsys, "simulate", "--cohort", str(tmp_path), "--strategy", "nope")
    assert rc == 2 and "Unknown strategy" in err


# ---------------------------------------------------------------- input checks before any computation
def _one_line_error(rc: int, err: str, *words: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_prepare_refuses_bad_out_before_computing(tmp_path, pair_dir, capsys):
    """D12 / row 33: `--out` a file, or below a file, failed with a traceback after the whole computation."""
    import time

    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    scans = [str(pair_dir / "baseline.nii.gz"), str(pair_dir / "followup.nii.gz")]
    for out, words in ((afile, ("is a file", "Choose a folder")), (afile / "x", ("lies below the file",))):
        start = time.perf_counter()
        rc, _, err = _run(capsys, "prepare", *scans, "--out", str(out), "--size", "64", "--spacing", "4", "--quiet")
        _one_line_error(rc, err, str(out), *words)
        assert time.perf_counter() - start < 5.0  # refused up front, not after registration
    assert afile.read_text() == "not a folder"


def test_prepare_refuses_huge_size_before_allocating(tmp_path, pair_dir, capsys):
    """D16 / row 35: --size 100000 ended in a numpy MemoryError traceback (2.29 TiB)."""
    scans = [str(pair_dir / "baseline.nii.gz"), str(pair_dir / "followup.nii.gz")]
    for size in ("100000", "0", "-5"):
        rc, _, err = _run(capsys, "prepare", *scans, "--out", str(tmp_path / "o"), "--size", size, "--quiet")
        _one_line_error(rc, err, f"--size {size} cannot be used", "--size 256")
    assert not (tmp_path / "o").exists()


def test_label_map_given_as_scan_names_the_file(tmp_path, pair_dir, capsys):
    """D17 / row 21: 'the scan is constant inside the mask', without the file name."""
    mask = str(pair_dir / "new_lesions.nii.gz")
    rc, _, err = _run(capsys, "prepare", mask, str(pair_dir / "followup.nii.gz"), "--out", str(tmp_path / "o"),
                      "--quiet")
    _one_line_error(rc, err, mask, "looks like a label map")


@pytest.mark.slow
def test_session_stores_prepared_relative_and_survives_a_move(tmp_path, pair_dir, capsys):
    """D4: `prepared` was absolute, so a moved session lost its geometry check."""
    import os
    import shutil

    work = tmp_path / "work"
    rc, _, err = _run(capsys, "suggest", "--session", str(work / "s"), "--baseline", str(pair_dir / "baseline.nii.gz"),
                      "--followup", str(pair_dir / "followup.nii.gz"), "--size", "64", "--spacing", "4",
                      "--weights", "scratch", "--strategy", "random", "-k", "2", "--quiet")
    assert rc == 0, err
    state = json.loads((work / "s" / "state.json").read_text())
    (case_id, where), = state["prepared"].items()
    assert not os.path.isabs(where) and (work / "s" / where / "baseline_preprocessed.nii.gz").is_file()
    shutil.move(str(work), str(tmp_path / "moved"))
    rc, out, err = _run(capsys, "label", "--session", str(tmp_path / "moved" / "s"), "--mask",
                        str(pair_dir / "new_lesions.nii.gz"), "--json")
    assert rc == 0, err
    from LongitudinalALLib.active.pool_store import load_case

    case = load_case(tmp_path / "moved" / "s" / "pool", case_id)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(pair_dir / "new_lesions.nii.gz"))) > 0
    on_model_grid = case.geometry.to_slices(truth, order=0)
    expected = [case.provenance[n].slice_index for n in np.flatnonzero(on_model_grid.any(axis=(1, 2)))]
    assert expected and sorted(json.loads(out)["contoured"]) == sorted(expected)


def test_truncated_scan_and_session_below_a_file_are_one_line(tmp_path, pair_dir, capsys):
    """D5 rows 4-5: a cut scan gave an EOFError traceback or was read with zeros; D12: --session below a file."""
    full = pair_dir / "baseline.nii.gz"
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    rc, _, err = _run(capsys, "prepare", str(cut), str(pair_dir / "followup.nii.gz"), "--out", str(tmp_path / "o"),
                      "--quiet")
    _one_line_error(rc, err, str(cut), "truncated or damaged")
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc, _, err = _run(capsys, "suggest", "--session", str(afile / "s"), "--baseline", str(full), "--followup",
                      str(pair_dir / "followup.nii.gz"), "--weights", "scratch", "--quiet")
    _one_line_error(rc, err, "--session", "lies below the file")


def test_prepare_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, pair_dir, capsys, monkeypatch):
    """D12 / row 55: ENOSPC while writing gave an OSError traceback; now one line, no partial output."""
    import errno
    import os

    real, calls = os.replace, []

    def fills_up(src, dst, *a, **k):  # the third output file hits a full disk
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", fills_up)
    out = tmp_path / "out"  # from the cohort's true transform, no N4: nothing costly runs before the writes (issue 23)
    rc, _, err = _run(capsys, "prepare", str(pair_dir / "baseline.nii.gz"), str(pair_dir / "followup.nii.gz"),
                      "--out", str(out), "--size", "64", "--spacing", "4", "--quiet", "--no-n4",
                      "--initial-transform", str(pair_dir / "registration_truth.tfm"))
    _one_line_error(rc, err, "no space is left on the disk", "Free some space")
    assert len(calls) == 3 and not out.exists() and sorted(tmp_path.iterdir()) == []


def test_every_strategy_help_names_the_default_the_code_uses():
    """Architecture review 2, section 5: `suggest --strategy` still said "else entropy_mean"."""
    from LongitudinalALLib.active.policy import DEFAULT_STRATEGY
    from LongitudinalALLib.commands.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "suggest" in a.choices).choices
    helps = {name: action.help for name, sub in subparsers.items() for action in sub._actions
             if "--strategy" in action.option_strings}
    assert helps and all(DEFAULT_STRATEGY in h or "default" not in h for h in helps.values()), helps
    assert "entropy_mean" not in helps["suggest"]
