"""Rounds that train while the clinician labels: which labels a round has not seen, and how its batch lands.

Why: the clinician should never wait for a round. The panel's job runner starts
a round on the labels committed so far and keeps labelling enabled; labels
accepted meanwhile stay in the live session and join the next round
(:func:`..jobs.staging.merge_round` records exactly what each round trained on).
When a round ends its batch replaces the old one without moving the views: the
suggestion being painted stays first, slices labelled meanwhile are left out,
and ``roundNews`` says what changed.
"""

from __future__ import annotations

from typing import Any

from LongitudinalALLib.active.records import label_key
from LongitudinalALLib.active.suggestions import PENDING, Suggestion


def untrained_labels(session) -> list[str]:
    """Keys of the labels the current model has not trained on (new, or changed since its round)."""
    rounds = session.rounds
    if not rounds:
        return [rec.key for rec in session.labels()]
    last = rounds[-1]
    if last.trained_on is None:  # a round trained in the foreground: every label given before it
        return [rec.key for rec in session.labels() if rec.round >= last.round]
    from LongitudinalALLib.jobs.staging import label_digest

    return [rec.key for rec in session.labels()
            if last.trained_on.get(rec.key) != label_digest(session.root / rec.file)]


def merge_batch(old: list[Suggestion], index: int, new: list[Suggestion], session,
                result: dict[str, Any]) -> tuple[list[Suggestion], dict[str, Any]]:
    """(the batch to show, the news): the shown pending suggestion first, then the new slices not labelled yet."""
    labelled = {rec.key for rec in session.labels()}
    shown = old[index] if 0 <= index < len(old) else None
    keep = shown is not None and shown.status == PENDING and label_key(shown.case_id, shown.slice_index) not in labelled
    fresh = [s for s in new if label_key(s.case_id, s.slice_index) not in labelled
             and not (keep and (s.case_id, s.slice_index) == (shown.case_id, shown.slice_index))]
    batch = ([shown] if keep else []) + fresh
    trained = len(session.rounds[-1].trained_on or {}) if session.rounds else 0
    message = (f"Round {result.get('round', session.round_number)} is ready (trained on {trained} labels): "
               f"{len(fresh)} new suggestions" + ("; the slice you are on stays first." if keep else "."))
    return batch, {"round": int(result.get("round", session.round_number)), "trained_on": trained,
                   "new": len(fresh), "kept_current": keep, "message": message}
