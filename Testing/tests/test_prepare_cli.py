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


@pytest.fixture(scope="module")
def cli_outputs(pair_files, tmp_path_factory):
    d, _ = pair_files
    out = tmp_path_factory.mktemp("prepared")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["prepare", str(d / "sub01_baseline.nii.gz"), str(d / "sub01_followup.nrrd"), "--out",
                       str(out), "--size", "112", "--spacing", "2", "--mask", str(d / "brain.nii.gz"), "--quiet"])
    return rc, buf.getvalue(), out


def test_cli_writes_every_output(pair_files, cli_outputs):
    _, truth = pair_files
    rc, printed, out = cli_outputs
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


def test_transform_file_is_read_by_slicer_with_the_right_direction(cli_outputs):
    """Real MRML: the .tfm loads as a linear transform that moves the follow-up onto the baseline."""
    import slicer
    import vtk

    _, _, out = cli_outputs
    path = out / "followup_to_baseline.tfm"
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    storage = scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    matrix = vtk.vtkMatrix4x4()
    node.GetMatrixTransformToParent(matrix)
    to_parent = np.array([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)])
    itk = sitk.ReadTransform(str(path))
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    for p in ((10.0, -20.0, 30.0), (-40.0, 5.0, -12.0)):
        follow_ras = np.asarray(itk.TransformPoint(p)) * lps_to_ras  # where baseline point p lies in the follow-up
        np.testing.assert_allclose((to_parent @ np.r_[follow_ras, 1.0])[:3], np.asarray(p) * lps_to_ras, atol=1e-4)
