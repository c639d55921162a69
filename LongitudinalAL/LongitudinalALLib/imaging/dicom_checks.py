"""Checks on a DICOM series before ITK stacks it: the folder, the declared size, the slice positions.

Why: GDCM silently leaves slices out when the folder holds a pipe or a link to a device
(13 of 47 slices vanished with one FIFO named ``zz.dcm``), and ITK stacks whatever list it
gets at one uniform spacing, so a series with missing slices shifts the anatomy past the gap
by up to the gap's size, with only a warning on stderr. The declared matrix of a few small
files can also ask for gigabytes before any pixel is read.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.read_guard import check_declared_size, damaged, header_size

UNEVEN_SPACING = 0.10  # a step between neighbouring slices off the median step by more than this share
_POSITION, _ORIENTATION = "0020|0032", "0020|0037"
_UNCOMPRESSED = {"", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_RECOPY = "Copy or export the complete series again, or convert it to NIfTI (e.g. with dcm2niix) and give that file."


def refuse_special_entries(folder: Path, label: str) -> None:
    """Pipes, devices, sockets and links to them in the folder make GDCM drop real slices (or block)."""
    odd = sorted(e.name for e in os.scandir(folder) if not (e.is_dir() or e.is_file()))
    if odd:
        shown = ", ".join(odd[:3]) + (f" and {len(odd) - 3} more" if len(odd) > 3 else "")
        what = "1 entry that is not a regular file" if len(odd) == 1 else f"{len(odd)} entries that are not regular files"
        raise InputError(f"{label}: the DICOM folder holds {what} ({shown}: a pipe, device, socket or broken link); "
                         "the DICOM reader then skips real slices.",
                         "Remove them, or copy the series' files into a folder of their own.")


def check_series(files: list[str], sid: str, label: str) -> None:
    """Refuse a series whose declared voxels exceed the cap or the bytes on disk, or whose slices are uneven."""
    infos = [read_header(f) for f in files]
    if any(info is None for info in infos):
        return  # ITK's own reading reports an unreadable file
    _reject_mixed_sizes(infos, sid, label)
    nbytes = header_size(infos[0])[1]
    check_declared_size(nbytes * len(files), list(infos[0].GetSize()[:2]) + [len(files)], label)
    for f in files:
        if _transfer_syntax(f) in _UNCOMPRESSED and os.path.getsize(f) < nbytes:
            raise damaged(label, f"slice {Path(f).name} holds {os.path.getsize(f)} bytes, fewer than the "
                                 f"{nbytes} bytes of pixels its header announces")
    _check_positions(infos, sid, label)


def _reject_mixed_sizes(infos: list[sitk.ImageFileReader], sid: str, label: str) -> None:
    """ITK fails with a bare 'Size: [...]' when one series mixes matrix sizes: say so."""
    sizes = Counter("x".join(str(n) for n in info.GetSize()[:2]) for info in infos)
    if len(sizes) > 1:
        found = ", ".join(f"{size} ({n} files)" for size, n in sizes.most_common())
        raise InputError(f"{label}: DICOM series {sid} mixes slices of different matrix sizes: {found}.",
                         "Export that series again, or keep only the slices of one size in the folder.")


def _check_positions(infos: list[sitk.ImageFileReader], sid: str, label: str) -> None:
    """Slice positions along the slice normal must be distinct and evenly spaced."""
    if not all(i.HasMetaDataKey(_POSITION) and i.HasMetaDataKey(_ORIENTATION) for i in infos) or len(infos) < 3:
        return
    try:
        cosines = np.array([float(v) for v in infos[0].GetMetaData(_ORIENTATION).split("\\")])
        positions = np.array([[float(v) for v in i.GetMetaData(_POSITION).split("\\")] for i in infos])
    except ValueError:
        return
    if cosines.shape != (6,) or positions.shape[1:] != (3,):
        return
    along = np.sort(positions @ np.cross(cosines[:3], cosines[3:]))
    steps = np.diff(along)
    step = float(np.median(steps))
    same = int(np.count_nonzero(steps <= 1e-3 * max(step, 1e-3)))
    if same or step <= 0:
        raise InputError(f"{label}: {same + 1} slices of DICOM series {sid} share one position (duplicated or "
                         "mixed acquisitions).", _RECOPY)
    off = np.flatnonzero(np.abs(steps - step) > UNEVEN_SPACING * step)
    if off.size:
        k = int(off[np.argmax(np.abs(steps[off] - step))])
        raise InputError(f"{label}: the slices of DICOM series {sid} are unevenly spaced: {steps[k]:.2f} mm "
                         f"between slices {k + 1} and {k + 2} of {len(steps) + 1}, where the usual step is "
                         f"{step:.2f} mm ({off.size} uneven step{'s' if off.size > 1 else ''}: slices missing?). Stacking them at one "
                         "spacing would shift the anatomy.", _RECOPY)


def read_header(path: str) -> sitk.ImageFileReader | None:
    """A reader holding the file's header and tags (no pixels), or None when GDCM cannot parse it."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    return reader


def has_dicom_magic(path: str | os.PathLike) -> bool:
    """'DICM' after the 128-byte preamble: a DICOM Part 10 file."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _transfer_syntax(path: str) -> str:
    """The file meta group's transfer syntax UID (explicit VR little endian by the standard), '' if none."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head[128:132] != b"DICM":
        return ""
    pos = 132
    while pos + 8 <= len(head):
        group, element = struct.unpack_from("<HH", head, pos)
        if group != 2:
            break
        if head[pos + 4:pos + 6] in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            length, start = struct.unpack_from("<I", head, pos + 8)[0] if pos + 12 <= len(head) else 0, pos + 12
        else:
            length, start = struct.unpack_from("<H", head, pos + 6)[0], pos + 8
        if element == 0x0010:
            return head[start:start + length].decode("ascii", "replace").strip("\0 ")
        pos = start + length
    return ""
