"""prepare.py and `longitudinal-al prepare` end to end on a small real-anatomy pair."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from anatomy_fixtures import brain_center, make_followup, mean_displacement_error, mni_brain_mask, mni_t1, random_affine
from LongitudinalALLib import cli
from LongitudinalALLib.errors import CancelledError, InputError
from LongitudinalALLib.prepare import OUTPUT_FILES, PrepareOptions, prepare_pair, write_prepared
from LongitudinalALLib.progress import CancelToken


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    base = mni_t1(2)
    truth = random_affine(11, brain_center(base))
    follow = make_followup(base, truth, seed=11)
    sitk.WriteImage(base, str(d / "sub01_baseline.nii.gz"))
    sitk.WriteImage(follow, str(d / "sub01_followup.nrrd"))
    sitk.WriteImage(mni_brain_mask(2), str(d / "brain.nii.gz"))
    return d, truth


def test_cli_writes_every_output(pair_files, tmp_path, capsys):
    d, truth = pair_files
    out = tmp_path / "prepared"
    rc = cli.main(["prepare", str(d / "sub01_baseline.nii.gz"), str(d / "sub01_followup.nrrd"), "--out", str(out),
                   "--size", "112", "--spacing", "2", "--mask", str(d / "brain.nii.gz"), "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "registration ok" in printed and "NCC" in printed
    for name in OUTPUT_FILES.values():
        assert (out / name).is_file(), name
    transform = sitk.ReadTransform(str(out / "followup_to_baseline.tfm"))
    assert mean_displacement_error(transform, truth.GetInverse(), mni_brain_mask(2)) < 0.5
    qc = json.loads((out / "qc.json").read_text())
    assert qc["case_id"] == "sub01_baseline" and qc["registration"]["failed"] is False
    assert qc["registration"]["ncc_after"] > qc["registration"]["ncc_before"]
    assert set(qc["seconds"]) == {"load", "n4", "mask", "registration", "pairing"}
    diff = sitk.ReadImage(str(out / "difference.nii.gz"))
    reg = sitk.ReadImage(str(out / "followup_registered.nii.gz"))
    base = sitk.ReadImage(str(out / "baseline_preprocessed.nii.gz"))
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(diff),
                               sitk.GetArrayViewFromImage(reg) - sitk.GetArrayViewFromImage(base), atol=1e-5)
    assert diff.GetSize() == mni_t1(2).GetSize()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_cli_exits_2_with_one_line_on_bad_input(pair_files, tmp_path, capsys):
    d, _ = pair_files
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    rc = cli.main(["prepare", str(d / "sub01_baseline.nii.gz"), str(bad), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and str(bad) in err and "unsupported file format" in err
    assert not (tmp_path / "o").exists()


def test_prepare_pair_api_stages_labels_and_cancel(pair_files):
    d, _ = pair_files
    base = sitk.ReadImage(str(d / "sub01_baseline.nii.gz"))
    labels = sitk.Cast(base > 220, sitk.sitkUInt8)
    stages = []
    pair = prepare_pair(base, str(d / "sub01_followup.nrrd"), PrepareOptions(n4=False, size=96, spacing_mm=2.0),
                        case_id="api", labels=labels, progress=lambda st, fr, msg="": stages.append(st))
    assert list(dict.fromkeys(stages)) == ["load", "n4", "mask", "registration", "pairing"]
    assert pair.slices.images.shape == (base.GetSize()[2], 3, 96, 96)
    assert pair.slices.labels is not None and pair.slices.labels.any()
    assert pair.foreground.GetPixelID() == sitk.sitkUInt8 and not pair.qc.failed
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        prepare_pair(base, str(d / "sub01_followup.nrrd"), PrepareOptions(n4=False), cancel=token)
    with pytest.raises(InputError, match="labels: not on the baseline grid"):
        prepare_pair(base, str(d / "sub01_followup.nrrd"), PrepareOptions(n4=False), labels=mni_brain_mask(4))
    with pytest.raises(InputError, match="modality"):
        prepare_pair(base, base, PrepareOptions(modality="xray"))


def test_write_prepared_round_trip(pair_files, tmp_path):
    d, _ = pair_files
    pair = prepare_pair(str(d / "sub01_baseline.nii.gz"), str(d / "sub01_followup.nrrd"),
                        PrepareOptions(n4=False, size=64, spacing_mm=3.0))
    paths = write_prepared(pair, tmp_path)
    geom = json.loads(paths["geometry"].read_text())
    assert geom["size"] == [64, 64] and geom["axis"] == "axial"
    mask = sitk.ReadImage(str(paths["foreground"]))
    assert mask.GetPixelID() == sitk.sitkUInt8 and sitk.GetArrayViewFromImage(mask).any()
