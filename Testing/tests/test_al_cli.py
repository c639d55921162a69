"""`longitudinal-al suggest | label | train` end to end on a tiny simulated pair (real registration)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LongitudinalALLib.cli import main
from LongitudinalALLib.session import ALSession

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


def test_suggest_label_train_round_trip(tmp_path, pair_dir, capsys):
    s = tmp_path / "session"
    rc, out, err = _run(capsys, "suggest", "--session", str(s), "--baseline", str(pair_dir / "baseline.nii.gz"),
                        "--followup", str(pair_dir / "followup.nii.gz"), "--size", "64", "--spacing", "4",
                        "--weights", "scratch", "--strategy", "fg_random", "-k", "4", "--json", "--quiet")
    assert rc == 0, err
    first = json.loads(out)
    assert len(first["suggestions"]) == 4 and [x["rank"] for x in first["suggestions"]] == [1, 2, 3, 4]
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
    session = ALSession.open(s)
    labelled = {r["slice_index"] for r in session.state["labels"].values()}
    last = session.state["suggestions"][-1]["slices"]
    assert len(last) == 3 and not labelled & {x["slice_index"] for x in last}


def test_suggest_from_prepared_folder(tmp_path, pair_dir, capsys):
    from LongitudinalALLib.prepare import PrepareOptions, prepare_pair, write_prepared

    prepared = tmp_path / "prepared"
    pair = prepare_pair(str(pair_dir / "baseline.nii.gz"), str(pair_dir / "followup.nii.gz"),
                        PrepareOptions(size=64, spacing_mm=4.0), case_id="p1")
    write_prepared(pair, prepared)
    rc, out, err = _run(capsys, "suggest", "--session", str(tmp_path / "s"), "--pair", str(prepared),
                        "--size", "64", "--spacing", "4", "--weights", "scratch", "--strategy", "random",
                        "-k", "2", "--json", "--quiet")
    assert rc == 0, err
    res = json.loads(out)
    assert len(res["suggestions"]) == 2 and res["suggestions"][0]["case_id"] == "prepared"
    case = ALSession.open(tmp_path / "s").case("prepared")
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
