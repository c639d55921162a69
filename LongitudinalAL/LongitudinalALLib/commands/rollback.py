"""``longitudinal-al rollback``: make an earlier round's model current again (labels are kept)."""

from __future__ import annotations

import argparse

from LongitudinalALLib.commands.session_args import add_wait_option, open_for_writing

HELP = "Return a session to an earlier round's model (e.g. when the latest checkpoint is damaged); labels are kept."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--session", required=True, help="session directory")
    p.add_argument("--to-round", type=int, default=None,
                   help="round to return to (0 = the starting model; default: the newest round whose model loads)")
    add_wait_option(p)


def run(args: argparse.Namespace) -> int:
    from LongitudinalALLib.active.loop import ActiveLoop

    session = open_for_writing(args)
    before = session.round_number
    now = ActiveLoop(session).rollback(args.to_round)
    what = f"round {now}" if now else "the starting model"
    print(f"{session.root}: dropped {before - now} round(s); {what} is current. "
          f"{session.budget()['total']['labelled']} labels kept; run `longitudinal-al train` to train again.")
    return 0
