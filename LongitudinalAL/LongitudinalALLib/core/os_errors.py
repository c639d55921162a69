"""Turn operating-system errors a user can cause (disk full, read-only folder, a file
where a folder should be) into one :class:`InputError` line naming the path and the fix.

Kept free of heavy imports: the command line imports it only when an error happens.
"""

from __future__ import annotations

import errno
import os

from LongitudinalALLib.core.errors import InputError

#: errno -> (what happened, what to do)
_MESSAGES = {
    errno.ENOSPC: ("no space is left on the disk", "Free some space or choose another folder, then run the "
                   "command again (files are written atomically, so nothing was half-written)."),
    errno.EDQUOT: ("the disk quota is exceeded", "Free some space or choose another folder, then run it again."),
    errno.EROFS: ("the file system is read-only", "Choose a folder you can write to (e.g. in your home folder)."),
    errno.EACCES: ("permission denied", "Choose a folder you can write to, or fix its permissions."),
    errno.EPERM: ("the operation is not permitted", "Choose a folder you can write to, or fix its permissions."),
    errno.ENOTDIR: ("part of this path is a file, not a folder", "Choose a path whose folders are folders."),
    errno.EEXIST: ("a file is in the way", "Remove or rename it, or choose another path."),
    errno.EISDIR: ("this is a folder, a file was expected", "Give the path of a file."),
    errno.ENOENT: ("the file or folder does not exist (any more)", "Check the path, then run the command again."),
}


def user_os_error(err: BaseException, path: str | os.PathLike | None = None) -> InputError | None:
    """The one-line error for ``err``, or None when it is not something the user can fix."""
    code = getattr(err, "errno", None)
    if code is None and "No space left on device" in str(err):  # e.g. safetensors' SafetensorError
        code = errno.ENOSPC
    if code not in _MESSAGES:
        return None
    where = path if path is not None else getattr(err, "filename", None)
    problem, fix = _MESSAGES[code]
    return InputError(f"{where}: {problem}." if where else f"{problem[0].upper()}{problem[1:]}.", fix)
