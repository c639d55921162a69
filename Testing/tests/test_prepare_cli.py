"""prepare.py and `longitudinal-al prepare` end to end on a small real-anatomy pair."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from anatomy_fixtures import brain_center, make_followup, mean_displacement_error, mni_brain_mask, mni_t1, random_affine

from LongitudinalALLib.commands import cli
from LongitudinalALLib.core.errors import CancelledError, InputError
from LongitudinalALLib.core.progress import CancelToken
from LongitudinalALLib.imaging.prepare import OUTPUT_FILES, PrepareOptions, prepare_pair, write_prepared


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


@pytest.mark.slow
def test_cli_writes_every_output(pair_files, cli_outputs):
    _, truth = pair_files
    rc, printed, out = cli_outputs
    assert rc == 0, printed
    assert "registration ok in" in printed and "NCC" in printed and "edge alignment" in printed
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
    """From the pair's true transform (every stage still runs and reports; no optimisation, issue 23)."""
    d, truth = pair_files
    base = sitk.ReadImage(str(d / "sub01_baseline.nii.gz"))
    labels = sitk.Cast(base > 220, sitk.sitkUInt8)
    stages = []
    pair = prepare_pair(base, str(d / "sub01_followup.nrrd"),
                        PrepareOptions(n4=False, size=96, spacing_mm=2.0, initial_transform=truth.GetInverse()),
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
    """Prepared from the pair's true transform (no optimisation; issue 23): under test is the writer and the
    reader, registration is checked by test_cli_writes_every_output."""
    d, truth = pair_files
    pair = prepare_pair(str(d / "sub01_baseline.nii.gz"), str(d / "sub01_followup.nrrd"),
                        PrepareOptions(n4=False, size=64, spacing_mm=3.0, initial_transform=truth.GetInverse()))
    paths = write_prepared(pair, tmp_path)
    geom = json.loads(paths["geometry"].read_text())
    assert geom["size"] == [64, 64] and geom["axis"] == "axial"
    mask = sitk.ReadImage(str(paths["foreground"]))
    assert mask.GetPixelID() == sitk.sitkUInt8 and sitk.GetArrayViewFromImage(mask).any()
    from LongitudinalALLib.imaging.prepare import read_prepared  # the reader beside the writer

    again = read_prepared(tmp_path, pair.case_id, axis="axial", size=64, spacing_mm=3.0)
    assert again.images.shape == pair.slices.images.shape
    np.testing.assert_allclose(again.images, pair.slices.images, atol=1e-3)  # the saved volumes' float rounding


def test_transform_file_is_read_by_slicer_with_the_right_direction(cli_outputs):
    """Real MRML: the .tfm loads as a linear transform that moves the follow-up onto the baseline."""
    _, _, out = cli_outputs
    path = out / "followup_to_baseline.tfm"
    *_, matrix = _transform_node(path)
    to_parent = np.array([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)])
    itk = sitk.ReadTransform(str(path))
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    for p in ((10.0, -20.0, 30.0), (-40.0, 5.0, -12.0)):
        follow_ras = np.asarray(itk.TransformPoint(p)) * lps_to_ras  # where baseline point p lies in the follow-up
        np.testing.assert_allclose((to_parent @ np.r_[follow_ras, 1.0])[:3], np.asarray(p) * lps_to_ras, atol=1e-4)


def _transform_node(path):
    """(scene, linear transform node, its storage node, to-parent matrix) of a .tfm read by real MRML."""
    import slicer
    import vtk

    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    storage = scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    matrix = vtk.vtkMatrix4x4()
    node.GetMatrixTransformToParent(matrix)
    return scene, node, storage, matrix


def _run_cli(argv, capsys) -> tuple[int, str, str]:
    rc = cli.main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    prefix = "longitudinal-al prepare: error: "
    return rc, captured.out, err[len(prefix):] if err.startswith(prefix) else err


def _slicer_edit(tfm_in, tfm_out, shift_ras):
    """Real MRML: load a .tfm into a linear transform node, shift it in place (as the Transforms module does), save."""
    _scene, node, storage, matrix = _transform_node(tfm_in)
    for axis, value in enumerate(shift_ras):
        matrix.SetElement(axis, 3, matrix.GetElement(axis, 3) + value)
    node.SetMatrixTransformToParent(matrix)
    storage.SetFileName(str(tfm_out))
    assert storage.WriteData(node) == 1


@pytest.mark.slow  # two full multi-start registrations of a 90-degree turn
def test_flagged_pair_exits_2_with_one_line_unless_accepted(pair_files, tmp_path, capsys):
    """D7: a follow-up turned 90 degrees printed 'registration ok' (rc 0)."""
    d, _ = pair_files
    follow = sitk.ReadImage(str(d / "sub01_followup.nrrd"))
    turned = sitk.GetImageFromArray(np.ascontiguousarray(np.rot90(sitk.GetArrayFromImage(follow), axes=(1, 2))))
    turned.SetSpacing(follow.GetSpacing())
    turned.SetOrigin(follow.GetOrigin())
    turned.SetDirection(follow.GetDirection())
    sitk.WriteImage(turned, str(tmp_path / "turned.nii.gz"))
    args = ["prepare", str(d / "sub01_baseline.nii.gz"), str(tmp_path / "turned.nii.gz"), "--size", "64",
            "--spacing", "4", "--no-n4", "--quiet"]
    rc, out, err = _run_cli(args + ["--out", str(tmp_path / "o")], capsys)
    tfm = tmp_path / "o" / "followup_to_baseline.tfm"
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("case sub01_baseline: registration failed QC: ")
    assert err.endswith(f"Open {tfm} in Slicer (Transforms module), correct it, save it, and run again with "
                        f"--initial-transform {tfm}; or keep this result with --accept-qc-failure.")
    assert tfm.is_file() and json.loads((tmp_path / "o" / "qc.json").read_text())["registration"]["failed"]
    rc, out, err = _run_cli(args + ["--out", str(tmp_path / "a"), "--accept-qc-failure"], capsys)
    assert rc == 0 and "registration FAILED QC" in out and "Registration looks wrong: " in out and err == ""


def test_initial_transform_corrected_in_slicer_is_used_without_registering(pair_files, cli_outputs, tmp_path,
                                                                           capsys):
    d, truth = pair_files
    _, _, out = cli_outputs
    edited = tmp_path / "edited.tfm"
    _slicer_edit(out / "followup_to_baseline.tfm", edited, (0.4, 0.0, 0.0))
    base_args = ["prepare", str(d / "sub01_baseline.nii.gz"), str(d / "sub01_followup.nrrd"), "--size", "64",
                 "--spacing", "4", "--mask", str(d / "brain.nii.gz"), "--no-n4", "--quiet"]  # N4: cli_outputs
    rc, printed, err = _run_cli(base_args + ["--out", str(tmp_path / "o"), "--initial-transform", str(edited)], capsys)
    assert rc == 0, err
    assert "registration ok from the given transform" in printed
    used = sitk.ReadTransform(str(tmp_path / "o" / "followup_to_baseline.tfm"))
    given = sitk.ReadTransform(str(edited))
    for p in ((10.0, -20.0, 30.0), (-40.0, 5.0, -12.0)):
        np.testing.assert_allclose(used.TransformPoint(p), given.TransformPoint(p), atol=1e-6)
    assert json.loads((tmp_path / "o" / "qc.json").read_text())["registration"]["stages"] == []
    far = tmp_path / "far.tfm"
    _slicer_edit(out / "followup_to_baseline.tfm", far, (9.0, 0.0, 0.0))
    rc, _, err = _run_cli(base_args + ["--out", str(tmp_path / "f"), "--initial-transform", str(far)], capsys)
    assert rc == 2 and "registration failed QC" in err
    rc, _, err = _run_cli(base_args + ["--out", str(tmp_path / "m"), "--initial-transform", str(tmp_path / "no.tfm")],
                          capsys)
    assert rc == 2 and err == f"{tmp_path / 'no.tfm'}: transform file not found. Give the .tfm/.h5 saved by " \
                              "prepare or by Slicer's Transforms module."


def test_unusable_inputs_get_one_clear_line(pair_files, tmp_path, capsys):
    """D17 rows 15 and 22, D7 row 26: 10 mm voxels, a mask as both scans, a skewed direction matrix."""
    d, _ = pair_files
    coarse = sitk.BinShrink(mni_t1(2), [5, 5, 5])
    sitk.WriteImage(coarse, str(tmp_path / "coarse.nii.gz"))
    rc, _, err = _run_cli(["prepare", str(tmp_path / "coarse.nii.gz"), str(d / "sub01_followup.nrrd"), "--out",
                           str(tmp_path / "o"), "--quiet"], capsys)
    assert rc == 2 and err == (f"{tmp_path / 'coarse.nii.gz'}: voxels are 10.0 x 10.0 x 10.0 mm, too coarse to "
                               "register a brain (two axes must be 4 mm or finer). Give the original acquisition, "
                               "not a downsampled copy.")
    rc, _, err = _run_cli(["prepare", str(d / "brain.nii.gz"), str(d / "brain.nii.gz"), "--out", str(tmp_path / "o"),
                           "--quiet"], capsys)
    assert rc == 2 and err == (f"{d / 'brain.nii.gz'}: looks like a label map (its only values are 0, 1), not a "
                               "scan. Give the MRI/CT scan itself; lesion masks go to `longitudinal-al label --mask`.")
    skew = mni_t1(2)
    skew.SetDirection((1.0, 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(skew, str(tmp_path / "skew.nrrd"))
    rc, _, err = _run_cli(["prepare", str(tmp_path / "skew.nrrd"), str(d / "sub01_followup.nrrd"), "--out",
                           str(tmp_path / "o"), "--quiet"], capsys)
    assert rc == 2 and err.endswith("its direction matrix is not orthonormal (skewed or scaled axes), so voxel "
                                    "positions are ambiguous. Fix the header (re-export from the scanner, or resample "
                                    "it in Slicer with 'Resample Scalar Volume') and load it again.")
    assert not (tmp_path / "o").exists()


def test_same_scan_twice_warns(pair_files, tmp_path, capsys):
    """D17 row 23: the same file as both visits ran silently. From the identity (the true transform of a scan
    with itself; the check runs before registration), so no optimisation runs (issue 23)."""
    d, _ = pair_files
    path = str(d / "sub01_baseline.nii.gz")
    identity = tmp_path / "identity.tfm"
    sitk.WriteTransform(sitk.AffineTransform(3), str(identity))
    rc, out, _ = _run_cli(["prepare", path, path, "--out", str(tmp_path / "o"), "--size", "64", "--spacing", "4",
                           "--no-n4", "--initial-transform", str(identity), "--quiet"], capsys)
    assert rc == 0
    assert ("warning: baseline and follow-up are the same scan: the difference image is empty; check that the "
            "follow-up file is the later visit.") in out


def test_scene_prepare_job_takes_the_initial_transform_option(tmp_path):
    """The Slicer module re-runs pairing from a corrected transform node saved to a file, without registering."""
    from LongitudinalALLib.jobs.jobs import _prepare_options

    options = _prepare_options({"initial_transform": str(tmp_path / "corrected.tfm"), "n4": False})
    assert options.initial_transform == str(tmp_path / "corrected.tfm") and options.use_n4 is False
