"""Pick and read one DICOM series from a folder that may hold several.

Study exports often mix the wanted scan with localizers and other sequences.
Without a choice the largest series is used, and that choice is reported
(UID, SeriesDescription, number of files) so the user can pick another by UID.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import SimpleITK as sitk

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.dicom_checks import check_series, read_header, refuse_special_entries

_DESCRIPTION = "0008|103e"


def read_dicom_series(folder: Path, label: str, *, member: Path | None = None, series: Sequence[str] = (),
                      notes: list[str] | None = None) -> sitk.Image:
    """The series holding ``member``, else the one whose UID is in ``series``, else the largest.

    Refused (:mod:`dicom_checks`): a folder holding pipes or devices (GDCM then drops real slices),
    a declared size over the cap or beyond the bytes on disk, slices at one position or unevenly spaced.
    """
    refuse_special_entries(folder, label)
    ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ())
    if not ids:
        raise InputError(f"{label}: no DICOM series found in this folder.",
                         "Point to the folder holding the DICOM slices, or give NIfTI/NRRD/MetaImage.")
    files = {sid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid)) for sid in ids}
    largest = max(ids, key=lambda sid: len(files[sid]))
    if member is not None:
        chosen = next((sid for sid in ids if _holds(files[sid], member)), largest)
    else:
        chosen = _pick(ids, files, largest, series, label)
        if len(ids) > 1 and notes is not None and chosen not in series:
            notes.append(f"{label}: the folder holds {len(ids)} DICOM series; using {_describe(chosen, files)}. "
                         f"Others: {'; '.join(_describe(s, files) for s in ids if s != chosen)}. "
                         "Pick another with --series UID.")
    if len(files[chosen]) < 2:
        raise InputError(f"{label}: the DICOM series has only one slice.",
                         "Give the folder of a 3D series (or convert it to NIfTI).")
    check_series(files[chosen], chosen, label)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files[chosen])
    return reader.Execute()


def _pick(ids: list[str], files: dict[str, list[str]], largest: str, series: Sequence[str], label: str) -> str:
    wanted = [sid for sid in ids if sid in set(series)]
    if wanted:
        return wanted[0]
    if series and len(ids) > 1:
        raise InputError(f"{label}: none of the series given with --series is in this folder.",
                         f"It holds: {'; '.join(_describe(s, files) for s in ids)}.")
    return largest


def _holds(files: list[str], member: Path) -> bool:
    return str(member) in files or any(Path(f).samefile(member) for f in files)


def _describe(sid: str, files: dict[str, list[str]]) -> str:
    desc = _tag(files[sid][0], _DESCRIPTION)
    return f"{sid} ({repr(desc) + ', ' if desc else ''}{len(files[sid])} files)"


def _tag(path: str, key: str) -> str:
    reader = read_header(path)
    return reader.GetMetaData(key).strip() if reader is not None and reader.HasMetaDataKey(key) else ""
