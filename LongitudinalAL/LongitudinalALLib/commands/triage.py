"""``longitudinal-al triage``: rank a multi-case session's pairs by the chance of a new lesion.

Most follow-ups of a cohort hold no new lesion; the pairs at the bottom of
this list are the ones to confirm as "no new lesion" first (quickly), the top
ones to contour. Read-only: the session is not changed.
"""

from __future__ import annotations

import argparse
import json

HELP = "Rank the pairs of a session by the probability that the follow-up holds a new lesion (read-only)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--session", required=True, help="session directory")
    p.add_argument("--top", type=int, default=20, help="pixels averaged into a pair's probability (default 20)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="below it a pair is listed as likely lesion-free (default 0.5)")
    p.add_argument("--cpu", action="store_true", help="run the model on the CPU even when a GPU is present")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON")


def run(args: argparse.Namespace) -> int:
    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.active.store import SessionStore
    from LongitudinalALLib.active.triage import triage_cases
    from LongitudinalALLib.core.errors import InputError
    from LongitudinalALLib.model import Predictor

    if not 0.0 < args.threshold < 1.0:
        raise InputError(f"--threshold {args.threshold} is not a probability.", "Use a value in (0, 1), e.g. 0.5.")
    session = SessionStore.open(args.session)
    predictor = Predictor(ActiveLoop(session).current_model(), device="cpu" if args.cpu else None)
    rows = triage_cases([session.case(c) for c in session.case_ids], predictor, top=args.top,
                        threshold=args.threshold)
    budget = session.budget()["per_case"]
    if args.json:
        print(json.dumps({"session": str(session.root), "round": session.round_number,
                          "pairs": [{**r.to_dict(), "budget": budget[r.case_id]} for r in rows]}, indent=2))
        return 0
    print(f"session {session.root}: round {session.round_number}, {len(rows)} pairs, most likely new lesion first")
    print("rank  case            P(new lesion)  lesions  slices with one  labelled        call")
    for r in rows:
        b = budget[r.case_id]
        call = "contour" if r.probability >= args.threshold else "confirm no new lesion"
        print(f"{r.rank:4d}  {r.case_id:<14s}  {r.probability:13.3f}  {r.lesions:7d}  "
              f"{r.slices_flagged:5d} of {r.slices:<8d}  {b['labelled']:4d} of {b['slices']:<5d}  {call}")
    return 0
