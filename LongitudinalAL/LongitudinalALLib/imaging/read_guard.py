"""Decide whether an image file may be read, before ITK opens its data or allocates its voxels.

Why: ITK reads whatever a header names. A NRRD ``data file:`` or MetaImage ``ElementDataFile``
(in a detached ``.nhdr``/``.mhd`` and in an attached ``.nrrd``/``.mha`` alike) may point at
``/etc/passwd``, a device, ``../..`` or a LIST of files, and the bytes become voxels that travel
on into prepared volumes and scenes. A 4 KB header may declare 11 GB of voxels that ITK allocates
and touches before it finds the data short, and a pipe given as a scan blocks forever.
So, before ITK reads: only regular files; a header's voxel data only from the header file
itself or from ONE regular file in the header's own folder; the declared voxel bytes below
:data:`MAX_IMAGE_BYTES` and present on disk (compressed data is counted by streaming it once,
in flat memory). ITK's reader is then pinned to the format the suffix names.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core.errors import InputError

MAX_IMAGE_BYTES = 4 << 30  # declared voxel data; a 512x512x2000 int16 CT is 1 GiB
MAX_HEADER_BYTES = 1 << 20  # a NRRD/MetaImage text header is a few hundred bytes
IMAGE_IOS = {".nii.gz": "NiftiImageIO", ".nii": "NiftiImageIO", ".nrrd": "NrrdImageIO", ".nhdr": "NrrdImageIO",
             ".mha": "MetaImageIO", ".mhd": "MetaImageIO"}
_CHUNK = 1 << 22
_NRRD_ENCODINGS = {"raw": ("raw",), "zlib": ("gz", "gzip"), "text": ("txt", "text", "ascii"), "hex": ("hex",)}
_CONVERT = "convert it to a single .nrrd, .mha or .nii.gz file (e.g. load it in Slicer and save it as .nrrd)."
_SINGLE_FILE = _CONVERT[0].upper() + _CONVERT[1:]


@dataclass(frozen=True)
class DataSource:
    """Where a NRRD/MetaImage header says its voxel bytes are."""

    path: Path      # the header itself (attached data) or its one data file
    offset: int     # bytes to skip before the voxel data
    encoding: str   # "raw", "zlib" (a gzip or zlib stream), "text" or "hex"


def damaged(label: str, why: str) -> InputError:
    """The one message for a file shorter or more broken than its header says."""
    return InputError(f"{label}: the file is truncated or damaged ({why}).",
                      "Copy or export it again from the original (an interrupted copy or download, or a full "
                      "disk, cuts files short).")


def require_regular_file(path: Path, label: str) -> None:
    """Refuse pipes, devices, sockets and links to them: reading one blocks forever or never ends."""
    if not path.is_file():
        raise InputError(f"{label}: is not a regular file (a pipe, device, socket or a link to one).",
                         "Give the image file itself; copy it to a regular file first if it comes from a stream.")


def guard_image_file(path: Path, suffix: str, label: str) -> None:
    """Check ``path`` (an image with the recognised ``suffix``) can be read safely.

    NIfTI keeps its data in the file itself; its declared size and bytes on disk are checked
    from nibabel's reading of the header by ``io._check_nifti``.
    """
    require_regular_file(path, label)
    if IMAGE_IOS[suffix] == "NiftiImageIO":
        return
    parse = nrrd_data_source if IMAGE_IOS[suffix] == "NrrdImageIO" else meta_data_source
    source = parse(path, label)
    values, nbytes = declared_size(path, IMAGE_IOS[suffix], label)
    check_bytes_on_disk(source, values, nbytes, label)


def declared_size(path: Path, image_io: str, label: str) -> tuple[int, int]:
    """(values, bytes) of voxel data the header declares (ITK's header reader, pinned to ``image_io``).

    Refused above :data:`MAX_IMAGE_BYTES`. A header ITK cannot parse raises its ``RuntimeError``,
    which ``io.read_image`` reports.
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO(image_io)
    reader.ReadImageInformation()
    values, nbytes = header_size(reader)
    check_declared_size(nbytes, list(reader.GetSize()), label)
    return values, nbytes


def header_size(reader: sitk.ImageFileReader) -> tuple[int, int]:
    """(values, bytes) of voxel data a reader's header declares (after ``ReadImageInformation``)."""
    size = [int(n) for n in reader.GetSize()]
    components = max(1, int(reader.GetNumberOfComponents()))
    pixel = sitk.Image([1] * len(size), reader.GetPixelID(), components).GetSizeOfPixelComponent()
    values = int(np.prod(size, dtype=object)) * components
    return values, values * int(pixel)


def check_declared_size(nbytes: int, size: list[int], label: str) -> None:
    if nbytes > MAX_IMAGE_BYTES:
        shown = " x ".join(str(n) for n in size)
        raise InputError(f"{label}: its header declares {shown} voxels ({nbytes / 2**30:.1f} GiB of voxel data), "
                         f"more than the {MAX_IMAGE_BYTES / 2**30:.0f} GiB this tool reads (a damaged or "
                         "crafted header, or a very large volume).",
                         "Check the file is the scan you meant; crop or downsample a very large volume first "
                         "(e.g. Slicer's Crop Volume).")


def check_bytes_on_disk(source: DataSource, values: int, nbytes: int, label: str) -> None:
    """Refuse data shorter than the header declares, before ITK allocates the declared volume."""
    stored = source.path.stat().st_size - source.offset
    if source.encoding == "text":  # one digit and one separator per value, at the least
        have, need = stored, 2 * values - 1
    elif source.encoding == "hex":
        have, need = stored, 2 * nbytes
    elif source.encoding == "zlib":
        have, need = _inflated_bytes(source, nbytes, label), nbytes
    else:
        have, need = stored, nbytes
    if have < need:
        raise damaged(label, f"{max(0, have)} of the {need} bytes its header announces")


def _inflated_bytes(source: DataSource, enough: int, label: str) -> int:
    """Bytes a gzip/zlib stream inflates to, counted in chunks (flat memory).

    Read to the stream's end, so its checksum is verified (ITK does not: a gzip NRRD with flipped
    bytes was read as garbage); stops early only when the data runs well past ``enough``.
    """
    unpack = zlib.decompressobj(47)  # 47: a gzip or a zlib header, detected
    total = 0
    try:
        with open(source.path, "rb") as fh:
            fh.seek(source.offset)
            while total <= enough + _CHUNK and not unpack.eof and (chunk := fh.read(_CHUNK)):
                while chunk and total <= enough + _CHUNK:
                    total += len(unpack.decompress(chunk, _CHUNK))
                    chunk = unpack.unconsumed_tail
            if not unpack.eof:
                total += len(unpack.flush())
    except (zlib.error, OSError) as err:
        raise damaged(label, f"its compressed data cannot be read: {err}") from None
    return total


def _header_lines(path: Path, label: str):
    """Yield the header's text lines with the byte offset after each; refuse a text header over the cap."""
    with open(path, "rb") as fh:
        head = fh.read(MAX_HEADER_BYTES + 1)
    pos = 0
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            if len(head) > MAX_HEADER_BYTES:
                raise InputError(f"{label}: its text header is longer than {MAX_HEADER_BYTES >> 20} MiB.",
                                 "Check the file is a NRRD/MetaImage image. " + _SINGLE_FILE)
            end = len(head) - 1
        yield head[pos:end + 1].decode("latin-1").rstrip("\r\n"), end + 1
        pos = end + 1


def nrrd_data_source(path: Path, label: str) -> DataSource:
    """Parse a NRRD header (attached or detached) for its encoding and where its data is."""
    lines = _header_lines(path, label)
    if not next(lines, ("", 0))[0].startswith("NRRD"):
        raise InputError(f"{label}: is not a NRRD file (no 'NRRD' magic line).", "Check the file and its suffix.")
    fields: dict[str, list[str]] = {}
    data_offset = None
    for text, after in lines:
        if not text.strip():
            data_offset = after
            break
        if text.startswith("#") or ":" not in text:
            continue
        key, value = text.split(":", 1)
        key = key.strip().lower().replace(" ", "")
        if key == "datafile" or not value.startswith("="):  # "key:=value" lines are comments to the reader
            fields.setdefault(key, []).append(value.strip())
    encoding = _nrrd_encoding(fields.get("encoding", ["raw"])[-1], label)
    skip = _int_field(fields.get("byteskip", ["0"])[-1], label, "byte skip")
    names = fields.get("datafile", [])
    if not names:  # attached: data follows the blank line that ends the header
        return DataSource(path, (data_offset if data_offset is not None else path.stat().st_size) + max(skip, 0),
                          encoding)
    if len(names) > 1:
        raise InputError(f"{label}: its header names several data files.", _SINGLE_FILE)
    return DataSource(confined_data_file(path, names[0], label), max(skip, 0), encoding)


def meta_data_source(path: Path, label: str) -> DataSource:
    """Parse a MetaImage header (``.mha``/``.mhd``) for compression and where its data is."""
    fields: dict[str, str] = {}
    for text, after in _header_lines(path, label):
        if "=" not in text:
            continue
        key, value = (part.strip() for part in text.split("=", 1))
        fields[key.lower()] = value
        if key.lower() == "elementdatafile":  # MetaImage's last header field: data follows it
            encoding = "zlib" if fields.get("compresseddata", "false").lower() == "true" else \
                "text" if fields.get("binarydata", "true").lower() == "false" else "raw"
            skip = _int_field(fields.get("headersize", "0"), label, "HeaderSize")
            if value.upper() == "LOCAL":
                return DataSource(path, after + max(skip, 0), encoding)
            return DataSource(confined_data_file(path, value, label), max(skip, 0), encoding)
    raise InputError(f"{label}: its MetaImage header has no ElementDataFile line.",
                     "Check the file is a complete MetaImage (.mha/.mhd) header; " + _SINGLE_FILE)


def confined_data_file(header: Path, name: str, label: str) -> Path:
    """The header's one data file: a plain name resolving to a regular file in the header's own folder."""
    if not name.split() or name.split()[0].upper() == "LIST" or "%" in name or len(name.split()) > 1:
        raise InputError(f"{label}: its header reads the voxels from a list or pattern of files ('{name}').",
                         _SINGLE_FILE)
    plain = os.path.normpath(name)
    if "/" in plain or "\\" in plain or plain in (".", "..") or ":" in plain:
        raise InputError(f"{label}: its header reads the voxels from '{name}', outside the header's own folder; "
                         "only a data file next to the header is read.", "Put the data file next to the header "
                         "and name it without a folder, or " + _CONVERT)
    data = header.parent / name
    real = Path(os.path.realpath(data))
    if real.parent != Path(os.path.realpath(header.parent)):
        raise InputError(f"{label}: its data file '{name}' is a link to a file outside the header's own folder "
                         f"({real}); only a data file next to the header is read.", _SINGLE_FILE)
    if not real.exists():
        raise InputError(f"{label}: its data file '{name}' is missing (looked for {data}).",
                         "Copy the data file next to the header, or " + _CONVERT)
    require_regular_file(real, f"{label}: its data file '{name}'")
    return real


def _nrrd_encoding(value: str, label: str) -> str:
    key = value.strip().lower()
    for encoding, names in _NRRD_ENCODINGS.items():
        if key in names:
            return encoding
    raise InputError(f"{label}: its NRRD encoding '{value}' is not supported.", _SINGLE_FILE)


def _int_field(value: str, label: str, field: str) -> int:
    try:
        return int(value.split()[0])
    except (ValueError, IndexError):
        raise InputError(f"{label}: its header's {field} '{value}' is not a whole number.",
                         "Fix the header, or " + _CONVERT) from None
