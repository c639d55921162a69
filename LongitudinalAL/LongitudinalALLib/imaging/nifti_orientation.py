"""Refuse NIfTI headers whose orientation different readers interpret differently.

Why: a negative voxel size (pixdim) makes ITK read the axis mirrored while nibabel takes its
absolute value, a zero one becomes 1 mm, and when the qform and sform disagree ITK may follow
one and FSL/nibabel the other. Either way the scan silently lands mirrored or shifted, and the
lesion labels drawn on it follow. One clear line is better than a mirrored session.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from LongitudinalALLib.core.errors import InputError

QFORM_SFORM_MM = 1.0  # corners of the volume placed further apart than this: the two records disagree


def check_nifti_orientation(path: Path, header_class, label: str) -> None:
    """Raise :class:`InputError` on an ambiguous orientation of the NIfTI at ``path``.

    ``header_class``: nibabel's header class for it. The header is read again unchecked, because
    ``nibabel.load`` silently replaces a negative pixdim by its absolute value.
    """
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as fh:
        header = header_class.from_fileobj(fh, check=False)
    ndim = int(header["dim"][0])
    zooms = [float(v) for v in header["pixdim"][1:1 + min(3, max(ndim, 1))]]
    bad = [(i, v) for i, v in enumerate(zooms, 1) if not np.isfinite(v) or v <= 0]
    if bad:
        shown = ", ".join(f"pixdim[{i}] = {v:g}" for i, v in bad)
        effect = "ITK would read the scan mirrored along that axis" if any(v < 0 for _, v in bad) else \
            "ITK would assume 1 mm"
        raise InputError(f"{label}: its header gives a voxel size that is not positive ({shown}); {effect}.",
                         "Re-export the scan from its DICOM (e.g. with dcm2niix), or write the positive voxel "
                         "sizes into the header (e.g. nibabel: img.header.set_zooms(...)).")
    if int(header["qform_code"]) > 0 and int(header["sform_code"]) > 0:
        _check_forms_agree(header, label)


def _check_forms_agree(header, label: str) -> None:
    qform, sform = header.get_qform(), header.get_sform()
    if not (np.isfinite(qform).all() and np.isfinite(sform).all()):
        raise InputError(f"{label}: its orientation records (qform/sform) hold NaN or infinite numbers, so where "
                         "the scan lies is undefined.", "Re-export the scan from its DICOM (e.g. with dcm2niix).")
    shape = [max(1, int(n)) for n in header.get_data_shape()[:3]] + [1] * (3 - len(header.get_data_shape()[:3]))
    corners = np.array([[c * (n - 1) for c, n in zip(pick, shape)] + [1.0]
                        for pick in itertools.product((0, 1), repeat=3)]).T  # (4, 8) voxel corners
    gap = float(np.linalg.norm(((qform - sform) @ corners)[:3], axis=0).max())
    mirrored = np.sign(np.linalg.det(qform[:3, :3])) != np.sign(np.linalg.det(sform[:3, :3]))
    if gap > QFORM_SFORM_MM or mirrored:
        how = " and mirror it" if mirrored else ""
        raise InputError(f"{label}: its two orientation records disagree: the qform and the sform place the volume "
                         f"up to {gap:.0f} mm apart{how}. ITK may follow one and FSL/nibabel the other, so where "
                         "the scan lies is ambiguous.",
                         "Make them agree (e.g. `fslorient -copysform2qform` or nibabel's "
                         "img.set_qform(img.get_sform())), or re-export the scan from its DICOM.")
