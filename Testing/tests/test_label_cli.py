"""`longitudinal-al label`: a wrong mask is refused, never recorded as confident wrong labels.

Review rows 37-42 and 46, defects D4, D5, D8. The session comes from real MNI anatomy
(test_session helpers) and is created the way the Slicer jobs create it: no prepared
folder is recorded, so the baseline grid must come from the session's pool record.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_session import _mni_volumes, new_session

from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.commands.cli import main
from LongitudinalALLib.core.errors import InputError


def _released(s: SessionStore) -> SessionStore:
    """Let the command open the session: release this process's writer lock where sessions have one."""
    getattr(s, "close", lambda: None)()
    return s


@pytest.fixture
def session(tmp_path) -> SessionStore:
    return _released(new_session(tmp_path))


def _lesion() -> sitk.Image:
    return _mni_volumes()[3]


def _write(tmp_path: Path, name: str, array: np.ndarray | None = None, like: sitk.Image | None = None) -> str:
    like = like or _lesion()
    img = like if array is None else sitk.GetImageFromArray(array)
    if array is not None:
        img.CopyInformation(like)
    path = tmp_path / name
    sitk.WriteImage(img, str(path))
    return str(path)


def _label(capsys, session: SessionStore, mask: str, *extra: str) -> tuple[int, dict | str, str]:
    rc = main(["label", "--session", str(session.root), "--mask", mask, *extra])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 and "--json" in extra else out.out), out.err


def _lesion_slices() -> list[int]:
    arr = sitk.GetArrayViewFromImage(_lesion())
    return [int(k) for k in np.flatnonzero(arr.reshape(len(arr), -1).any(1))]


def _assert_refused(rc, err, *words):
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_good_mask_records_its_lesion_slices(tmp_path, session, capsys):
    rc, res, err = _label(capsys, session, _write(tmp_path, "m.nii.gz"), "--json")
    assert rc == 0, err
    assert sorted(res["contoured"]) == _lesion_slices() and not res["lesion_free"]


def test_truncated_mask_is_refused_and_nothing_recorded(tmp_path, session, capsys):
    """D5 / row 42: a cut .nii.gz read as zeros turned 3 lesion slices into 'lesion-free'."""
    full = Path(_write(tmp_path, "m.nii.gz"))
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    slices = ",".join(map(str, _lesion_slices()))
    rc, _, err = _label(capsys, session, str(cut), "--slices", slices)
    _assert_refused(rc, err, "truncated or damaged", str(cut))
    assert SessionStore.open_recovered(session.root)[0].labels() == []


@pytest.mark.parametrize("kind, words", [
    ("negative", ["negative values", "0 (background) and 1 (lesion)"]),
    ("nan", ["NaN", "replace them"]),
    ("scan", ["looks like an intensity scan, not a mask"]),
    ("multi", ["label values 0, 2", "--label-value 2"]),
    ("fraction", ["fractional values", "Threshold"]),
])
def test_bad_mask_values_are_refused(tmp_path, session, capsys, kind, words):
    """D8 / rows 37-39, 41: -1 and NaN became 'no lesion'; a scan became 63 contoured slices."""
    lab = sitk.GetArrayFromImage(_lesion())
    arrays = {
        "negative": lab.astype(np.int16) * -1,
        "nan": np.where(lab > 0, np.nan, 0).astype(np.float32),
        "scan": sitk.GetArrayFromImage(_mni_volumes()[0]),
        "multi": lab.astype(np.uint8) * 2,
        "fraction": lab.astype(np.float32) * 0.5,
    }
    rc, _, err = _label(capsys, session, _write(tmp_path, f"{kind}.nii.gz", arrays[kind]),
                        "--slices", ",".join(map(str, _lesion_slices())))
    _assert_refused(rc, err, *words)
    assert SessionStore.open_recovered(session.root)[0].labels() == []


def test_label_value_picks_one_label(tmp_path, session, capsys):
    lab = sitk.GetArrayFromImage(_lesion()).astype(np.uint8)
    multi = lab * 3 + ((lab == 0) & (sitk.GetArrayFromImage(_mni_volumes()[2]) > 0)) * 1  # 1 = brain, 3 = lesion
    rc, res, err = _label(capsys, session, _write(tmp_path, "multi.nii.gz", multi), "--label-value", "3", "--json")
    assert rc == 0, err
    assert sorted(res["contoured"]) == _lesion_slices()
    rc, _, err = _label(capsys, session, _write(tmp_path, "multi.nii.gz", multi), "--label-value", "7")
    _assert_refused(rc, err, "no voxel has the label value 7", "1, 3")


def test_mask_geometry_comes_from_the_session_not_a_prepared_folder(tmp_path, session, capsys):
    """D4 / row 46: with no prepared folder the header was ignored (lesion in the other hemisphere)."""
    m = _lesion()
    arr = sitk.GetArrayFromImage(m)
    flipped = sitk.GetImageFromArray(arr[:, :, ::-1].copy())  # same voxels in space, LR-flipped header
    d = np.array(m.GetDirection()).reshape(3, 3)
    d[:, 0] *= -1
    flipped.SetSpacing(m.GetSpacing())
    flipped.SetDirection(tuple(d.ravel()))
    flipped.SetOrigin(m.TransformIndexToPhysicalPoint((m.GetSize()[0] - 1, 0, 0)))
    path = tmp_path / "flipped_header.nii.gz"
    sitk.WriteImage(flipped, str(path))
    assert session.prepared == {}
    rc, res, err = _label(capsys, session, str(path), "--json")
    assert rc == 0, err
    assert "resampled" in res["note"]
    reference = new_session(tmp_path / "ref")
    reference.add_labels_from_volume("c0", arr)
    _released(reference)
    s = SessionStore.open_recovered(session.root)[0]
    for k in _lesion_slices():
        np.testing.assert_array_equal(s.label("c0", k), reference.label("c0", k))


def test_mask_far_away_is_refused(tmp_path, session, capsys):
    """Row 40: a mask 1 m away only got a note, then 4 slices were recorded lesion-free."""
    far = sitk.Image(_lesion())
    far.SetOrigin(tuple(np.add(far.GetOrigin(), 1000.0)))
    rc, _, err = _label(capsys, session, _write(tmp_path, "far.nii.gz", like=far),
                        "--slices", ",".join(map(str, _lesion_slices())))
    _assert_refused(rc, err, "does not overlap the session's baseline")


def test_listed_slice_outside_a_cropped_mask_is_an_error(tmp_path, session, capsys):
    """D8: a slice the mask does not cover is not 'no lesion'."""
    lesion = _lesion_slices()
    lo, hi = lesion[0], lesion[-1] + 1
    cropped = _lesion()[:, :, lo:hi]  # keeps the physical position of the kept slices
    path = _write(tmp_path, "cropped.nii.gz", like=cropped)
    outside = lo - 3
    rc, _, err = _label(capsys, session, path, "--slices", f"{lesion[0]},{outside}")
    _assert_refused(rc, err, f"does not cover slice(s) [{outside}]", "leave those slices out")
    rc, res, err = _label(capsys, session, path, "--slices", ",".join(map(str, lesion)), "--json")
    assert rc == 0, err
    assert sorted(res["contoured"]) == lesion


def test_replacing_a_contour_by_an_empty_answer_warns(tmp_path, session, capsys):
    rc, _, err = _label(capsys, session, _write(tmp_path, "m.nii.gz"))
    assert rc == 0, err
    k = _lesion_slices()[0]
    empty = _write(tmp_path, "empty.nii.gz", np.zeros(sitk.GetArrayViewFromImage(_lesion()).shape, np.uint8))
    rc, out, err = _label(capsys, session, empty, "--slices", str(k))
    assert rc == 0, err
    assert f"warning: slice(s) [{k}] of c0 had a contour" in err


@pytest.mark.parametrize("bad", [-1, np.nan, 255, 0.5])
def test_session_refuses_non_binary_volumes(tmp_path, bad):
    """The library call refuses what the CLI refuses: -1/NaN used to become 'no lesion'."""
    session = new_session(tmp_path)
    vol = sitk.GetArrayFromImage(_lesion()).astype(np.float32)
    vol[vol > 0] = bad
    with pytest.raises(InputError, match="other than 0 and 1"):
        session.add_labels_from_volume("c0", vol, _lesion_slices())
    assert session.labels() == []


def test_full_disk_while_labelling_is_one_line_and_leaves_no_temp_files(tmp_path, session, capsys, monkeypatch):
    """D12 / row 55: ENOSPC in label was an OSError traceback."""
    import errno
    import os

    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)
    rc, _, err = _label(capsys, session, _write(tmp_path, "m.nii.gz"))
    _assert_refused(rc, err, "no space is left on the disk", "Free some space")
    monkeypatch.undo()
    leftovers = [p for p in session.root.rglob("*") if ".tmp" in p.name]
    assert not leftovers
    assert SessionStore.open_recovered(session.root)[0].labels() == []


@pytest.mark.slow
def test_output_closed_early_ends_quietly(tmp_path):
    """Other observations: `longitudinal-al suggest ... | head -2` ended in a BrokenPipeError traceback."""
    import os
    import subprocess
    import sys

    import LongitudinalALLib

    s = _released(new_session(tmp_path, strategy="random"))
    env = dict(os.environ, PYTHONPATH=str(Path(LongitudinalALLib.__file__).parents[1]))
    code = "import sys; from LongitudinalALLib.commands.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "suggest", "--session", str(s.root), "-k", "5", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before anything is written, like `head` after two lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert len(SessionStore.open_recovered(s.root)[0].suggestion_batches()) == 1  # the work itself was done


def test_mask_from_a_dicom_folder_with_several_series_takes_series(tmp_path, session, capsys):
    from test_io import _write_dicom_series

    mask = sitk.Cast(_lesion(), sitk.sitkInt16)
    _write_dicom_series(mask, tmp_path / "dcm", uid="1.2.3.600")
    _write_dicom_series(mask[:, :, :4], tmp_path / "other", uid="1.2.3.700")
    for f in (tmp_path / "other").iterdir():
        f.rename(tmp_path / "dcm" / f"o_{f.name}")
    rc, _, err = _label(capsys, session, str(tmp_path / "dcm"), "--series", "1.2.3.999")
    _assert_refused(rc, err, "none of the series given with --series", "1.2.3.600")
    rc, res, err = _label(capsys, session, str(tmp_path / "dcm"), "--series", "1.2.3.600", "--json")
    assert rc == 0, err
    assert sorted(res["contoured"]) == _lesion_slices()
