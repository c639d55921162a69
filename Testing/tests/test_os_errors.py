"""os_errors: I/O failures a user can cause become one line naming the path and the fix (review D12)."""

from __future__ import annotations

import errno

import pytest

from LongitudinalALLib.core.os_errors import user_os_error


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, ("no space is left", "Free some space")),
    (errno.EROFS, ("read-only", "folder you can write to")),
    (errno.EACCES, ("permission denied", "permissions")),
    (errno.ENOTDIR, ("is a file, not a folder", "Choose a path")),
    (errno.EEXIST, ("a file is in the way", "Remove or rename")),
])
def test_user_errors_name_the_path_and_the_fix(code, words):
    err = user_os_error(OSError(code, "raw text", "/data/out/x.nii.gz"))
    assert err is not None and str(err).startswith("/data/out/x.nii.gz: ")
    for w in words:
        assert w in str(err)
    assert err.fix


def test_library_errors_saying_disk_full_are_mapped_and_others_are_not():
    from safetensors import SafetensorError  # reports ENOSPC as text only (review row 55)

    mapped = user_os_error(SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                           'message: "No space left on device" })'))
    assert mapped is not None and "no space is left" in str(mapped).lower()
    assert user_os_error(OSError(errno.EIO, "I/O error")) is None  # a hardware fault is not the user's to fix
    assert user_os_error(ValueError("bad")) is None
