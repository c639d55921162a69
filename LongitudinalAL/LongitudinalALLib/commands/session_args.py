"""Options and opening shared by the commands that write a session (suggest, label, train, rollback)."""

from __future__ import annotations

import argparse


def add_wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="when another process is writing the session, wait up to this long for it (default 0: stop)")


def open_for_writing(args: argparse.Namespace):
    """The session store of ``args.session``, holding its writer lock; prints what crash recovery repaired."""
    from LongitudinalALLib.active.store import SessionStore
    from LongitudinalALLib.core.errors import InputError

    if not args.wait >= 0:
        raise InputError(f"--wait {args.wait} is not a number of seconds.", "Give 0 or more, e.g. --wait 60.")
    store, notes = SessionStore.open_recovered(args.session, wait=args.wait)
    for note in notes:
        print(f"recovered: {note}")
    return store
