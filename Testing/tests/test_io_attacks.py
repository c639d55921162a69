"""Attacks on the image readers (reliability review 2: N3, N4, N5, N10, N11; issue 22 item 3).

Each test is the review's reproduction or a sharper one, and failed on d9e08f4: headers that
read other files, declared sizes that allocate gigabytes, pipes that block, DICOM series with
missing slices, NIfTI headers that mirror or misplace the scan. Cases that would hang or allocate
on the old code run in a child process with a memory cap and a timeout.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from anatomy_fixtures import mni_t1
from test_io import _write_dicom_series

import LongitudinalALLib
from LongitudinalALLib.commands import cli
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.io import read_image
from LongitudinalALLib.imaging.label_masks import read_label_mask
from LongitudinalALLib.imaging.registration.qc import RegistrationQC, judge

_CHILD = """
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.io import read_image
out = {}
for path in sys.argv[2:]:
    try:
        read_image(path)
        out[path] = "read"
    except InputError as err:
        out[path] = "InputError: " + str(err)
    except BaseException as err:
        out[path] = type(err).__name__ + ": " + str(err).strip().splitlines()[-1]
print(json.dumps(out))
"""


def _read_in_child(paths: list[Path], memory_gib: float = 1.5, timeout: float = 60) -> dict[str, str]:
    """read_image on each path in a child process under an address-space cap; 'hung' if it times out."""
    env = dict(os.environ, PYTHONPATH=str(Path(LongitudinalALLib.__file__).parents[1]), OMP_NUM_THREADS="1",
               ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1")
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(int(memory_gib * 2**30)), *map(str, paths)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {str(p): "hung" for p in paths}
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _nrrd(path: Path, fields: str, data: bytes = b"") -> Path:
    path.write_bytes(b"NRRD0004\n" + fields.encode() + (b"\n" + data if path.suffix == ".nrrd" else b""))
    return path


_SMALL = "type: uchar\ndimension: 3\nsizes: 4 4 4\nspacings: 3 3 3\nencoding: raw\n"
_META = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"


def _expect(call, *words) -> str:
    with pytest.raises(InputError) as info:
        call()
    msg = str(info.value)
    assert all(w in msg for w in words), msg
    assert "\n" not in msg
    return msg


# --- N10: a header reads only its own data, or ONE regular file in its own folder -------------------------------

@pytest.fixture
def secret(tmp_path) -> Path:
    """A 0/1 file in another folder: a plausible mask, so only the reader's rule can refuse it."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "secret.bin").write_bytes(bytes([0, 1] * 32))
    return other / "secret.bin"


def test_detached_header_may_not_read_a_file_in_another_folder(tmp_path, secret):
    """F14/F16: absolute path and ../.. (the old reader read the bytes as a valid 0/1 mask)."""
    hdr = _nrrd(tmp_path / "abs.nhdr", _SMALL + f"data file: {secret}\n")
    _expect(lambda: read_label_mask(str(hdr)), "outside the header's own folder")
    (tmp_path / "sub").mkdir()
    rel = _nrrd(tmp_path / "sub" / "rel.nhdr", _SMALL + "data file: ../elsewhere/secret.bin\n")
    _expect(lambda: read_label_mask(str(rel)), "outside the header's own folder")
    mhd = tmp_path / "abs.mhd"  # F19
    mhd.write_text(_META + f"ElementDataFile = {secret}\n")
    _expect(lambda: read_label_mask(str(mhd)), "outside the header's own folder")


def test_attached_headers_are_held_to_the_same_rule(tmp_path, secret):
    """Sharper than F14: a `.nrrd`/`.mha` (no detached suffix) with a data-file line was followed too."""
    nrrd = _nrrd(tmp_path / "attached.nrrd", _SMALL + f"data file: {secret}\n")
    _expect(lambda: read_image(nrrd), "outside the header's own folder")
    mha = tmp_path / "attached.mha"
    mha.write_text(_META + f"ElementDataFile = {secret}\n")
    _expect(lambda: read_image(mha), "outside the header's own folder")


def test_detached_header_may_not_read_lists_devices_or_links_out(tmp_path, secret):
    """F15, F17, F18, F21 and a link next to the header that points elsewhere."""
    lst = _nrrd(tmp_path / "list.nhdr", _SMALL + "data file: LIST\nsecret.bin\n")
    _expect(lambda: read_image(lst), "list or pattern of files")
    mlist = tmp_path / "list.mhd"
    mlist.write_text(_META + "ElementDataFile = LIST\nsecret.bin\n")
    _expect(lambda: read_image(mlist), "list or pattern of files")
    zero = _nrrd(tmp_path / "zero.nhdr", _SMALL + "data file: /dev/zero\n")
    _expect(lambda: read_label_mask(str(zero)), "outside the header's own folder")
    (tmp_path / "link.raw").symlink_to(secret)
    link = _nrrd(tmp_path / "link.nhdr", _SMALL + "data file: link.raw\n")
    _expect(lambda: read_label_mask(str(link)), "a link to a file outside the header's own folder")
    (tmp_path / "dev.raw").symlink_to("/dev/zero")
    dev = _nrrd(tmp_path / "dev.nhdr", _SMALL + "data file: dev.raw\n")
    _expect(lambda: read_label_mask(str(dev)), "outside the header's own folder")


def test_detached_header_with_its_data_file_next_to_it_still_reads(tmp_path):
    """The legitimate case keeps working: .nhdr + .raw.gz and .mhd + .zraw written by ITK, and ./name."""
    img = sitk.Cast(mni_t1(4) * 10.0, sitk.sitkInt16)
    for name in ("scan.nhdr", "scan.mhd"):
        sitk.WriteImage(img, str(tmp_path / name), True)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(tmp_path / name)),
                                      sitk.GetArrayFromImage(img))
    (tmp_path / "dot.raw").write_bytes(bytes(range(64)))
    dot = _nrrd(tmp_path / "dot.nhdr", _SMALL + "data file: ./dot.raw\n")
    assert sitk.GetArrayFromImage(read_image(dot)).ravel()[5] == 5
    text = tmp_path / "ascii.mha"  # text data is shorter than the binary size: not "truncated"
    text.write_text(_META.replace("MET_UCHAR", "MET_FLOAT") + "BinaryData = False\nElementDataFile = LOCAL\n"
                    + " ".join(str(v) for v in range(64)) + "\n")
    assert sitk.GetArrayFromImage(read_image(text)).ravel()[3] == 3.0


def test_cli_refuses_a_header_reading_etc_passwd_in_one_line(tmp_path, capsys):
    """F15 through `longitudinal-al prepare`: exit 2, one line naming the problem, no traceback."""
    hdr = _nrrd(tmp_path / "p.nhdr", _SMALL + "data file: /etc/passwd\n")
    good = tmp_path / "fu.nii.gz"
    sitk.WriteImage(mni_t1(4), str(good))
    rc = cli.main(["prepare", str(hdr), str(good), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "outside the header's own folder" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


# --- N5: the declared size is checked against a cap and the bytes on disk before allocating ---------------------

def test_declared_size_is_refused_before_allocating(tmp_path):
    """F7/F8 (1400^3 float in 4 KB), sharpened: run under a 1.5 GiB address-space cap, so the old reader's
    allocation fails; the new one refuses from the header (cap, or bytes on disk) without allocating."""
    bomb = "type: float\ndimension: 3\nsizes: {}\nspacings: 1 1 1\nendian: little\nencoding: {}\n"
    raw = _nrrd(tmp_path / "raw.nrrd", bomb.format("1400 1400 1400", "raw"), bytes(4000))
    gz = _nrrd(tmp_path / "gz.nrrd", bomb.format("1400 1400 1400", "gzip"), gzip.compress(bytes(4000)))
    short_raw = _nrrd(tmp_path / "short.nrrd", bomb.format("1000 1000 300", "raw"), bytes(4000))
    short_gz = _nrrd(tmp_path / "short_gz.nrrd", bomb.format("1000 1000 300", "gzip"), gzip.compress(bytes(4000)))
    mha = tmp_path / "short.mha"  # F9: MetaImage with 4 KB of LOCAL data
    mha.write_bytes(b"ObjectType = Image\nNDims = 3\nDimSize = 1000 1000 300\nElementType = MET_FLOAT\n"
                    b"ElementDataFile = LOCAL\n" + bytes(4000))
    nii = tmp_path / "big.nii.gz"  # F3: the NIfTI path is held to the same cap
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((32767, 32767, 32767))
    hdr.set_data_dtype(np.float64)
    with gzip.open(nii, "wb") as fh:
        fh.write(hdr.binaryblock + b"\0" * 4 + bytes(4000))
    out = _read_in_child([raw, gz, short_raw, short_gz, mha, nii])
    for path in (raw, gz, nii):
        assert out[str(path)].startswith("InputError") and "more than the 4 GiB this tool reads" in out[str(path)], out
    for path in (short_raw, short_gz, mha):
        assert out[str(path)].startswith("InputError") and "of the 1200000000 bytes its header announces" in \
            out[str(path)], out


def test_dicom_series_declaring_a_huge_matrix_is_refused_before_allocating(tmp_path):
    """Three 6 KB slices whose Rows/Columns say 65535 (25 GiB) or 4000 (96 MB, not on disk)."""
    img = sitk.Cast(mni_t1(4)[:, :, 10:13] * 10.0, sitk.sitkInt16)
    for name, side in (("huge", 65535), ("short", 4000)):
        _write_dicom_series(img, tmp_path / name, uid=f"1.2.3.{side}")
        for f in (tmp_path / name).iterdir():
            data = f.read_bytes()
            for tag in (b"\x28\x00\x10\x00\x02\x00\x00\x00", b"\x28\x00\x11\x00\x02\x00\x00\x00"):  # Rows, Columns
                at = data.index(tag) + len(tag)
                data = data[:at] + side.to_bytes(2, "little") + data[at + 2:]
            f.write_bytes(data)
    out = _read_in_child([tmp_path / "huge", tmp_path / "short"])
    assert "more than the 4 GiB this tool reads" in out[str(tmp_path / "huge")], out
    assert "fewer than the 32000000 bytes of pixels its header announces" in out[str(tmp_path / "short")], out


def test_damaged_compressed_nrrd_and_metaimage_are_refused(tmp_path):
    """Found in round 3 (R9, R12): ITK read a gzip NRRD with 100 flipped bytes and a MetaImage whose zlib
    data was cut to 50 KB without complaint (garbage or zeros in the scan)."""
    arr = sitk.GetArrayFromImage(sitk.Cast(mni_t1(4) * 10.0, sitk.sitkUInt16))
    body = bytearray(gzip.compress(arr.tobytes(), 1))
    body[len(body) // 2:len(body) // 2 + 100] = bytes(255 - x for x in body[len(body) // 2:len(body) // 2 + 100])
    sizes = " ".join(str(n) for n in arr.shape[::-1])
    nrrd = _nrrd(tmp_path / "flipped.nrrd", f"type: ushort\ndimension: 3\nsizes: {sizes}\nendian: little\n"
                 "encoding: gzip\n", bytes(body))
    _expect(lambda: read_image(nrrd), "truncated or damaged", "compressed data cannot be read")
    mha = tmp_path / "cut.mha"
    mha.write_bytes(f"ObjectType = Image\nNDims = 3\nDimSize = {sizes}\nElementType = MET_USHORT\n"
                    "CompressedData = True\nElementDataFile = LOCAL\n".encode() + zlib.compress(arr.tobytes())[:5000])
    _expect(lambda: read_image(mha), "truncated or damaged", f"of the {arr.size * 2} bytes its header announces")


def test_nifti_data_offset_beyond_the_file_is_refused(tmp_path):
    """Found in round 3 (R6): vox_offset = 2^40 on a real FLAIR passed the size check (it ignored the offset)
    and ITK read the voxels shifted."""
    sitk.WriteImage(sitk.Cast(mni_t1(4) * 10.0, sitk.sitkInt16), str(tmp_path / "src.nii"))
    data = bytearray((tmp_path / "src.nii").read_bytes())
    data[108:112] = np.float32(2.0 ** 40).tobytes()  # vox_offset
    (tmp_path / "far.nii").write_bytes(bytes(data))
    _expect(lambda: read_image(tmp_path / "far.nii"), "truncated or damaged", "1099511")


# --- N11: only regular files are read ----------------------------------------------------------------------------

def test_pipes_and_devices_given_as_scans_are_refused_at_once(tmp_path):
    """F23/F24: a FIFO named like a scan blocked forever; now refused in one line."""
    paths = []
    for name in ("x.nii.gz", "x.nrrd", "x.dcm", "x"):
        os.mkfifo(tmp_path / name)
        paths.append(tmp_path / name)
    (tmp_path / "z.nhdr").symlink_to("/dev/zero")
    paths.append(tmp_path / "z.nhdr")
    start = time.monotonic()
    out = _read_in_child(paths, timeout=30)
    assert time.monotonic() - start < 30
    for path in paths:
        assert "is not a regular file" in out[str(path)], out


# --- N3: DICOM series with missing or silently dropped slices ----------------------------------------------------

def _series(tmp_path: Path, name: str, keep=None) -> Path:
    img = sitk.Cast(mni_t1(4) * 10.0, sitk.sitkInt16)
    folder = tmp_path / name
    _write_dicom_series(img, folder, uid="1.2.3.9")
    for k in range(img.GetDepth()):
        if keep is not None and k not in keep:
            (folder / f"slice{k:03d}.dcm").unlink()
    return folder


def test_dicom_series_with_a_gap_is_refused(tmp_path):
    """D1: slices 20-22 and 40 missing were stacked at one spacing (anatomy shifted up to 12 mm)."""
    folder = _series(tmp_path, "gap", keep=[k for k in range(47) if k not in (20, 21, 22, 40)])
    _expect(lambda: read_image(folder), "unevenly spaced", "16.00 mm between slices 20 and 21", "slices missing?")
    assert read_image(_series(tmp_path, "whole")).GetSize()[2] == 47  # the complete series still reads


def test_dicom_folder_holding_a_pipe_or_device_link_is_refused(tmp_path):
    """D3 and sharper: a link to /dev/zero or a FIFO named *.dcm made GDCM drop real slices (3 of 63, 13 of 47)."""
    dev = _series(tmp_path, "dev")
    (dev / "zzz.dcm").symlink_to("/dev/zero")
    fifo = _series(tmp_path, "fifo")
    os.mkfifo(fifo / "zz.dcm")
    out = _read_in_child([dev, fifo], timeout=60)
    assert "holds 1 entry that is not a regular file (zzz.dcm" in out[str(dev)], out
    assert "holds 1 entry that is not a regular file (zz.dcm" in out[str(fifo)], out


def test_dicom_slices_at_one_position_are_refused(tmp_path):
    """D4, sharper: the same position twice was caught only later by registration QC."""
    folder = _series(tmp_path, "dup")
    position = [sitk.ReadImage(str(folder / f"slice0{k}.dcm")).GetMetaData("0020|0032").encode() for k in (11, 12)]
    assert len(position[0]) == len(position[1])
    data = (folder / "slice012.dcm").read_bytes()
    (folder / "slice012.dcm").write_bytes(data.replace(position[1], position[0]))
    _expect(lambda: read_image(folder), "2 slices of DICOM series 1.2.3.9 share one position")


# --- N4: NIfTI orientation that readers interpret differently ------------------------------------------------------

def _nifti(tmp_path: Path, name: str, edit) -> Path:
    img = sitk.Cast(mni_t1(4) * 10.0, sitk.sitkInt16)
    sitk.WriteImage(img, str(tmp_path / "src.nii.gz"))
    src = nib.load(str(tmp_path / "src.nii.gz"))
    out = nib.Nifti1Image(np.asanyarray(src.dataobj), src.affine, src.header.copy())
    edit(out, src.affine)
    nib.save(out, str(tmp_path / name))
    return tmp_path / name


def test_negative_or_zero_pixdim_is_refused(tmp_path):
    """F10: pixdim[1] = -3 made ITK read the x axis mirrored; F11: 0 became 1 mm."""
    def negative(img, _):
        img.header["pixdim"][1] = -4

    def zero(img, _):
        img.header["pixdim"][3] = 0

    _expect(lambda: read_image(_nifti(tmp_path, "neg.nii.gz", negative)), "pixdim[1] = -4", "mirrored")
    _expect(lambda: read_image(_nifti(tmp_path, "zero.nii.gz", zero)), "pixdim[3] = 0", "1 mm")


def test_disagreeing_qform_and_sform_are_refused(tmp_path):
    """F12: sform flipped in x and shifted 100 mm; ITK followed the qform, FSL/nibabel the sform."""
    def disagree(img, affine):
        flipped = affine.copy()
        flipped[0, :] *= -1
        flipped[:3, 3] += 100
        img.set_qform(affine, code=1)
        img.set_sform(flipped, code=2)

    def agree(img, affine):
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=2)

    _expect(lambda: read_image(_nifti(tmp_path, "qs.nii.gz", disagree)), "qform and the sform", "mirror it")
    assert read_image(_nifti(tmp_path, "same.nii.gz", agree)).GetSize() == (49, 58, 47)


def test_no_correlation_before_registration_fails_qc():
    """F10's "registration ok (NCC nan -> 0.978)": a NaN starting NCC is a QC problem, not ok."""
    good = dict(mattes_before=-0.3, mattes_after=-0.6, ncc_after=0.95, edge_after=0.9, dice=0.95,
                inverse_consistency_mm=0.1, mirror_edge=0.1, edge_gain=0.0)
    qc = RegistrationQC(ncc_before=math.nan, **good)
    judge(qc)
    assert qc.failed and any("hardly overlap where their headers place them" in p for p in qc.problems)
    ok = RegistrationQC(ncc_before=0.5, **good)
    judge(ok)
    assert not ok.failed, ok.problems
