"""The shapes an ``.npz`` declares, read from its headers without loading a byte of data.

Why: ``np.load`` allocates whatever shape a member's header names, so a small
crafted file in a session (a label, a pool file) could ask for gigabytes.
Callers compare these shapes with what they expect before loading.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np


def npz_shapes(path: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """member name (without ``.npy``) -> (shape, dtype) for every member; ValueError when damaged."""
    out = {}
    if not Path(path).is_file():  # a device or FIFO (e.g. a link to /dev/zero) would be read without end
        raise ValueError(f"{Path(path).name} cannot be read (it is not a regular file)")
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version in ((2, 0), (3, 0)):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:
                        raise ValueError(f"unknown .npy version {version}")
                out[info.filename.removesuffix(".npy")] = (tuple(int(n) for n in shape), np.dtype(dtype))
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, TypeError, SyntaxError) as err:
        raise ValueError(f"{Path(path).name} cannot be read ({err})") from err
    return out


def check_npz(path: str | Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Refuse (ValueError) an npz whose members named in ``expected`` are missing or have another shape."""
    shapes = npz_shapes(path)
    for name, shape in expected.items():
        if name not in shapes:
            raise ValueError(f"{Path(path).name} has no array {name!r}")
        if shapes[name][0] != tuple(shape):
            raise ValueError(f"{Path(path).name}: {name} declares shape {shapes[name][0]}, expected {tuple(shape)}")


def load_checked(path: str | Path, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The members named in ``expected`` ({name: array}), loaded only after their declared shapes match.

    Raises ValueError (damaged, missing member, other shape) or OSError (unreadable); callers
    turn either into their own one-line message.
    """
    check_npz(path, expected)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in expected}
    except (KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{Path(path).name} cannot be read ({err})") from err
