"""User-facing errors: each names the problem and what to do about it.

Code that checks user input raises one of these instead of letting a library
traceback escape; the command line and the Slicer module show ``str(err)``.
"""

from __future__ import annotations


class LongitudinalALError(Exception):
    """Base class: a problem the user can fix, with the fix in the message."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem} {fix}")


class InputError(LongitudinalALError, ValueError):
    """A file, volume or node given by the user cannot be used as it is."""


class RegistrationError(LongitudinalALError, RuntimeError):
    """Registration diverged or made the alignment worse."""


class ResourceError(LongitudinalALError, RuntimeError):
    """The machine ran out of memory (or another resource) for a step; the input itself is fine."""


class SessionError(LongitudinalALError, RuntimeError):
    """An active-learning session directory is missing, damaged or inconsistent."""


class CancelledError(LongitudinalALError, RuntimeError):
    """The user cancelled a long-running step; the last good state was kept."""

    def __init__(self, what: str = "The operation"):
        super().__init__(f"{what} was cancelled.", "The last good state was kept.")
