"""Never worse: a round's model is compared with the previous one on labels it did not train on (issue 24).

Each round holds out part of the labels given since the previous round (the
previous model never saw them either; they are trained on from the next round
on, so the held-out set rotates). Both models predict the held-out slices; the
new one becomes current only when it is not worse there: pooled Dice over the
held-out slices when they hold lesion pixels, else the count of false-positive
pixels on them (every held-out slice is "no new lesion"). Otherwise the round
is committed with the previous weights and the record says why, so the CLI and
the Slicer panel can tell the user which model is in use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from LongitudinalALLib.active.records import hash01

DICE_MARGIN = 0.02    # the new model may score this much lower pooled Dice and still count as "not worse"
FP_SLACK = 20         # ... or this many more false-positive pixels on held-out lesion-free slices


def holdout_keys(records, round_number: int, fraction: float, seed: int) -> set[tuple[str, int]]:
    """Labels given since round ``round_number`` to hold out: ``fraction`` of the lesion and of the empty ones.

    A lesion slice is held out only when another new lesion slice stays for training; fewer
    than two new labels hold out nothing. records: the store's LabelRecords.
    """
    new = [r for r in records if r.round == round_number]
    if len(new) < 2 or fraction <= 0:
        return set()
    out = set()
    for group in ([r for r in new if r.lesion_pixels], [r for r in new if not r.lesion_pixels]):
        group = sorted(group, key=lambda r: hash01("guard", seed, round_number, r.case_id, r.slice_index))
        n = int(np.ceil(fraction * len(group)))
        if group and group[0].lesion_pixels:  # at least one new lesion slice always trains
            n = min(n, len(group) - 1)
        out |= {(r.case_id, r.slice_index) for r in group[:n]}
    return out


@dataclass
class GuardDecision:
    kept: str                 # "new" or "previous"
    reason: str
    held_out: int             # slices compared on
    held_out_lesion: int      # of which with lesion pixels
    previous: dict            # {"dice": pooled Dice or None, "fp_pixels": n}
    new: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _scores(probs: np.ndarray, labels: np.ndarray, fg: np.ndarray, threshold: float) -> dict:
    pred = (probs >= threshold) & fg
    truth = labels > 0
    tp = int((pred & truth).sum())
    denom = int(pred.sum() + truth.sum())
    return {"dice": 2 * tp / denom if truth.any() else None,
            "fp_pixels": int((pred & ~truth).sum()), "fp_pixels_lesion_free": int(pred[~truth.reshape(
                len(truth), -1).any(1)].sum())}


def compare(previous_probs: np.ndarray, new_probs: np.ndarray, labels: np.ndarray, fg: np.ndarray,
            round_number: int, threshold: float = 0.5) -> GuardDecision:
    """Decide which model stays current from their probabilities (K,H,W) on the held-out labels (K,H,W)."""
    prev, new = (_scores(p, labels, fg, threshold) for p in (previous_probs, new_probs))
    n_les = int(labels.reshape(len(labels), -1).any(1).sum())
    if not np.isfinite(new_probs).all():
        worse, what = True, "it predicts NaN"
    elif n_les:
        worse = new["dice"] < prev["dice"] - DICE_MARGIN
        what = (f"Dice {new['dice']:.2f} against {prev['dice']:.2f} on {len(labels)} held-out labelled slices "
                f"({n_les} with lesions)")
    else:
        worse = new["fp_pixels"] > prev["fp_pixels"] + FP_SLACK
        what = (f"{new['fp_pixels']} false lesion pixels against {prev['fp_pixels']} on {len(labels)} held-out "
                "lesion-free labelled slices")
    before = f"round {round_number - 1}'s model" if round_number > 1 else "the starting model"
    if worse:
        reason = (f"Round {round_number}'s retrained model was worse than {before} ({what}); {before} stays in "
                  "use. Label more slices and retrain.")
    else:
        reason = f"Round {round_number}'s model is in use: not worse than {before} ({what})."
    return GuardDecision("previous" if worse else "new", reason, len(labels), n_les, prev, new)
