"""io.py: geometry-preserving round trips through every format, and one test per bad input."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from anatomy_fixtures import mni_t1

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.io import check_overlap, load_image, save_image, validate_image


def _oblique_scan() -> sitk.Image:
    """Real anatomy (4 mm MNI) as int16 with anisotropic spacing, an odd origin and an oblique direction."""
    img = sitk.Cast(mni_t1(4) * 10.0, sitk.sitkInt16)
    img.SetSpacing((1.5, 2.25, 3.0))
    img.SetOrigin((-12.5, 40.25, 7.0))
    angle = np.radians(12.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    img.SetDirection(tuple((rot @ np.diag([-1.0, -1.0, 1.0])).ravel()))
    return img


def _assert_same(a: sitk.Image, b: sitk.Image, atol: float = 1e-4) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=atol)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=atol)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=atol)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"])
def test_round_trip_keeps_geometry_and_values(tmp_path, suffix):
    img = _oblique_scan()
    path = save_image(img, tmp_path / f"scan{suffix}")
    assert path.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name or p.name.startswith(".")]
    if suffix == ".mhd":
        assert any(p.suffix in (".raw", ".zraw") for p in tmp_path.iterdir())
    _assert_same(img, load_image(path))


def _write_dicom_series(img: sitk.Image, folder: Path, uid: str | None = None, description: str = "",
                        first: int = 0) -> None:
    """CT-like int16 slices with the tags a DICOM reader needs to rebuild the geometry."""
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    stamp = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    direction = img.GetDirection()
    series_uid = uid or "1.2.826.0.1.3680043.2.1125." + str(int(time.time()))
    for k in range(img.GetDepth()):
        sl = img[:, :, k]
        tags = {
            "0008|0020": stamp[0], "0008|0030": stamp[1], "0008|0060": "CT", "0008|0021": stamp[0],
            "0020|000d": series_uid + ".1", "0020|000e": uid or series_uid + ".2", "0010|0010": "Test^Anatomy",
            "0008|103e": description,
            "0020|0037": "\\".join(f"{v:.6f}" for v in (direction[0], direction[3], direction[6],
                                                         direction[1], direction[4], direction[7])),
            "0020|0032": "\\".join(f"{v:.6f}" for v in img.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0013": str(first + k + 1), "0018|0050": f"{img.GetSpacing()[2]:.6f}",
            "0028|1052": "0", "0028|1053": "1",
        }
        for key, value in tags.items():
            sl.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_folder_round_trip(tmp_path):
    img = sitk.Cast(mni_t1(4) * 10.0 - 1000.0, sitk.sitkInt16)  # CT-like range
    img.SetSpacing((0.8, 0.8, 2.5))
    img.SetOrigin((-30.0, -20.0, 15.0))
    _write_dicom_series(img, tmp_path / "series")
    loaded = load_image(tmp_path / "series")
    _assert_same(img, sitk.Cast(loaded, sitk.sitkInt16), atol=1e-3)
    one_file = load_image(tmp_path / "series" / "slice005.dcm")  # a member file finds its series
    assert one_file.GetSize() == img.GetSize()


def _expect_error(path_or_call, *words) -> InputError:
    with pytest.raises(InputError) as info:
        path_or_call()
    msg = str(info.value)
    for w in words:
        assert w in msg, msg
    assert info.value.fix, "every input error must say what to do"
    return info.value


def test_missing_file(tmp_path):
    p = tmp_path / "nope.nii.gz"
    _expect_error(lambda: load_image(p), str(p), "not found", "Check the path")


def test_unsupported_format(tmp_path):
    p = tmp_path / "photo.png"
    sitk.WriteImage(sitk.Cast(mni_t1(4)[:, :, 20], sitk.sitkUInt8), str(p))
    _expect_error(lambda: load_image(p), str(p), "unsupported", "Convert it to NIfTI")


def test_unreadable_file(tmp_path):
    p = tmp_path / "broken.nii.gz"
    p.write_bytes(b"this is not a nifti file" * 10)
    _expect_error(lambda: load_image(p), str(p), "cannot be read", "re-export")


def test_4d_image(tmp_path):
    vols = [mni_t1(4), mni_t1(4) * 2.0]
    p = tmp_path / "timeseries.nii.gz"
    sitk.WriteImage(sitk.JoinSeries(vols), str(p))
    _expect_error(lambda: load_image(p), str(p), "4D", "extract")


def test_single_volume_4d_is_accepted(tmp_path):
    p = tmp_path / "one.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([mni_t1(4)]), str(p))
    assert load_image(p).GetDimension() == 3


def test_multi_component_image(tmp_path):
    p = tmp_path / "rgb.nrrd"
    sitk.WriteImage(sitk.Compose([mni_t1(4)] * 3), str(p))
    _expect_error(lambda: load_image(p), str(p), "3 components", "single-channel")


def test_empty_image():
    empty = sitk.Image(0, 0, 0, sitk.sitkFloat32)
    _expect_error(lambda: validate_image(empty, "scan.nii"), "scan.nii", "empty", "Re-export")


def test_constant_image(tmp_path):
    p = tmp_path / "flat.mha"
    img = mni_t1(4) * 0.0 + 7.0
    sitk.WriteImage(img, str(p))
    _expect_error(lambda: load_image(p), str(p), "constant", "right file")


def test_nan_voxels(tmp_path):
    arr = sitk.GetArrayFromImage(mni_t1(4))
    arr[5, 6, 7] = np.nan
    arr[1, 2, 3] = np.inf
    img = sitk.GetImageFromArray(arr)
    for p in (tmp_path / "nan.nrrd", tmp_path / "nan.nii.gz"):  # ITK's NIfTI reader alone would turn them into 0
        sitk.WriteImage(img, str(p))
        _expect_error(lambda: load_image(p), str(p), "2 NaN or infinite", "replace them")


def test_non_overlapping_pair():
    base = mni_t1(4)
    far = sitk.Image(base)
    far.SetOrigin(tuple(np.add(base.GetOrigin(), (0.0, 0.0, 500.0))))
    _expect_error(lambda: check_overlap(base, far, baseline_name="b.nii", followup_name="f.nii"),
                  "b.nii", "f.nii", "do not overlap", "pre-align")
    shifted = sitk.Image(base)
    shifted.SetOrigin(tuple(np.add(base.GetOrigin(), (0.0, 0.0, 40.0))))
    frac = check_overlap(base, shifted)
    extent_z = base.GetSize()[2] * base.GetSpacing()[2]
    assert frac == pytest.approx((extent_z - 40.0) / extent_z, rel=1e-6)
    # one rule with the Slicer panel (scene/volumes.check_overlap): a 2 % sliver is refused too
    sliver = sitk.Image(base)
    sliver.SetOrigin(tuple(np.add(base.GetOrigin(), (0.0, 0.0, 0.98 * extent_z))))
    _expect_error(lambda: check_overlap(base, sliver), "2% of the smaller scan is shared")


def test_save_rejects_unknown_suffix(tmp_path):
    _expect_error(lambda: save_image(mni_t1(4), tmp_path / "x.png"), "unsupported output format")


# ---------------------------------------------------------------- D5: truncated NIfTI files
def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("pixel", [sitk.sitkInt16, sitk.sitkFloat32])
def test_truncated_nifti_is_refused_not_zero_filled(tmp_path, suffix, pixel):
    """Review D5, rows 4, 5, 42: ITK reads a cut file silently (zeros); nibabel raised EOFError for floats."""
    full = tmp_path / f"scan{suffix}"
    sitk.WriteImage(sitk.Cast(mni_t1(4) * 10.0, pixel), str(full))
    cut = _cut(full, tmp_path / f"cut{suffix}", 0.6)
    _expect_error(lambda: load_image(cut), str(cut), "truncated or damaged", "again")
    assert load_image(full).GetSize() == mni_t1(4).GetSize()  # the complete file still loads


def test_damaged_gzip_middle_is_refused(tmp_path):
    full = tmp_path / "scan.nii.gz"
    sitk.WriteImage(sitk.Cast(mni_t1(4) * 10.0, sitk.sitkInt16), str(full))
    data = bytearray(full.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)  # a damaged block: wrong CRC or invalid deflate data
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(bytes(data))
    _expect_error(lambda: load_image(bad), str(bad), "truncated or damaged")


# ---------------------------------------------------------------- D17 row 21: label map given as a scan
def test_label_map_given_as_scan_is_named(tmp_path):
    from LongitudinalALLib.imaging.io import load_scan

    p = tmp_path / "lesion_mask.nii.gz"
    sitk.WriteImage(sitk.Cast(mni_t1(4) > 150, sitk.sitkUInt8), str(p))
    _expect_error(lambda: load_scan(p), str(p), "looks like a label map", "scan itself")
    scan = tmp_path / "t1.nii.gz"
    sitk.WriteImage(mni_t1(4), str(scan))
    assert load_scan(scan).GetSize() == mni_t1(4).GetSize()


# ---------------------------------------------------------------- D13 / D17 row 30: DICOM folders
def test_dicom_folder_with_several_series_says_which_and_takes_series(tmp_path):
    from LongitudinalALLib.imaging.dicom_series import read_dicom_series

    big = sitk.Cast(mni_t1(4) * 10.0 - 1000.0, sitk.sitkInt16)
    _write_dicom_series(big, tmp_path / "a", uid="1.2.3.100", description="T1 MPRAGE")
    small = big[:, :, 10:16]
    _write_dicom_series(small, tmp_path / "b", uid="1.2.3.200", description="Localizer")
    study = tmp_path / "study"
    study.mkdir()
    for sub in ("a", "b"):
        for f in (tmp_path / sub).iterdir():
            f.rename(study / f"{sub}_{f.name}")
    notes: list[str] = []
    image = load_image(study, notes=notes)
    assert image.GetSize() == big.GetSize()
    assert len(notes) == 1 and "2 DICOM series" in notes[0] and "1.2.3.100" in notes[0]
    assert "'T1 MPRAGE'" in notes[0] and f"{big.GetDepth()} files" in notes[0] and "--series" in notes[0]
    picked = load_image(study, series=["9.9", "1.2.3.200"], notes=(more := []))
    assert picked.GetSize()[2] == 6 and not more
    _expect_error(lambda: read_dicom_series(study, "study", series=["9.9"]), "none of the series",
                  "1.2.3.100", "Localizer")


def test_dicom_series_mixing_matrix_sizes_is_explained(tmp_path):
    img = sitk.Cast(mni_t1(4) * 10.0, sitk.sitkInt16)
    _write_dicom_series(img[:, :, :8], tmp_path / "mixed", uid="1.2.3.300")
    _write_dicom_series(img[:30, :30, 8:12], tmp_path / "other", uid="1.2.3.300", first=8)
    for f in (tmp_path / "other").iterdir():
        f.rename(tmp_path / "mixed" / f"o_{f.name}")
    _expect_error(lambda: load_image(tmp_path / "mixed"), "mixes slices of different matrix sizes",
                  "1.2.3.300", "Export that series again")


# ---------------------------------------------------------------- D12: output folders
def test_output_dir_that_is_a_file_or_below_a_file(tmp_path):
    from LongitudinalALLib.imaging.io import check_output_dir

    afile = tmp_path / "afile"
    afile.write_text("x")
    _expect_error(lambda: check_output_dir(afile), str(afile), "is a file", "Choose a folder")
    _expect_error(lambda: check_output_dir(afile / "sub"), "lies below the file", str(afile))
    ok = check_output_dir(tmp_path / "new" / "deeper")
    assert ok == tmp_path / "new" / "deeper" and sorted(tmp_path.iterdir()) == [afile]  # nothing left behind


def test_output_dir_on_a_full_disk(tmp_path, monkeypatch):
    import errno
    import tempfile

    from LongitudinalALLib.imaging.io import check_output_dir

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    _expect_error(lambda: check_output_dir(tmp_path / "x"), str(tmp_path / "x"), "cannot write there",
                  "no space is left", "Free some space")


def test_prepare_series_option_reaches_the_dicom_reader(tmp_path, capsys):
    from LongitudinalALLib.commands.cli import main

    img = sitk.Cast(mni_t1(4) * 10.0, sitk.sitkInt16)
    _write_dicom_series(img, tmp_path / "dcm", uid="1.2.3.400")
    _write_dicom_series(img[:, :, :5], tmp_path / "loc", uid="1.2.3.500")
    for f in (tmp_path / "loc").iterdir():
        f.rename(tmp_path / "dcm" / f"loc_{f.name}")
    rc = main(["prepare", str(tmp_path / "dcm"), str(tmp_path / "dcm"), "--out", str(tmp_path / "o"),
               "--series", "7.7.7", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "none of the series given with --series" in err and "1.2.3.400" in err and "1.2.3.500" in err
