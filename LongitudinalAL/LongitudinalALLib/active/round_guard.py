"""Never worse: a round's model replaces the previous one only on evidence it did not train on (issue 24).

Each round holds out part of the labels given since the previous round (the
previous model never saw them either; they are trained on from the next round
on, so the held-out set rotates), and both models predict them and the pool's
unlabelled slices. The new model becomes current only when all of these hold
(:func:`decide`); otherwise the round is committed with the previous weights and
the record says why, so the CLI and the Slicer panel tell the user which model is
in use.

1. It predicts no NaN.
2. It does not fire everywhere: on the unlabelled pool it finds at most
   ``POOL_RATIO`` times the previous model's predicted lesions (+ ``POOL_SLACK``).
   Why: on real scans a fine-tune on 6 labels more than doubled the false lesions
   on the test patient (4 -> 9) while its Dice on 2 held-out lesion slices went
   up (0.33 -> 0.43): pixel Dice on lesion slices rewards a model that fires more.
   The pool is the user's own scans, so a few-label round that multiplies what it
   finds there is firing everywhere, whatever the labels say.
3. It adds no false lesion on the held-out slices (lesion-free slices count: any
   prediction there is a false lesion).
4. It is better, not merely not worse, on enough evidence: at least
   ``MIN_LESION_SLICES`` held-out slices hold lesions, it finds no fewer of their
   lesions, and its pooled Dice there is higher by ``DICE_GAIN / sqrt(those
   slices)`` (a gain on 3 slices must be large to count, on 16 a small one will do).
   Why: with 2 held-out lesion slices "not worse by 0.02" and even "one more lesion
   found" are noise. On the patient03 fold (pool patient12) a round judged on 2
   lesion slices (1 -> 2 lesions found, Dice 0.33 -> 0.43) cost 0.09 test Dice.
   Keeping the previous model costs one round; accepting a worse one costs the
   user's model. So the first rounds, whose held-out third is 2-3 slices, keep
   the model the user had until enough labels are in.

Lesions here are 2D components of ``p >= threshold`` inside the foreground whose
peak reaches the lesion-mask step's ``peak`` and whose area is at least
``MIN_PIXELS`` (the product's mask rule, per slice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import ndimage

from LongitudinalALLib.active.records import hash01
from LongitudinalALLib.model.lesion_mask import DEFAULT, components, keep

DICE_GAIN = 0.1       # pooled held-out Dice must rise by this / sqrt(lesion slices held out)
MIN_LESION_SLICES = 3  # fewer held-out slices with lesions cannot show that a model is better
POOL_RATIO = 1.5      # the new model may find this many times the previous one's lesions on the unlabelled pool
POOL_SLACK = 3        # ... plus this many (a model that found 0 may find a few)
MIN_PIXELS = 5        # a predicted 2D component smaller than this is no lesion (about 5 mm^2 at 1 mm)


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


def predicted_lesions(probs: np.ndarray, fg: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Per slice of probs (K,H,W): an int label map (H,W) of its predicted lesions (1..n), 0 elsewhere.

    The product's lesion-mask rules (``model.lesion_mask``: components at ``threshold``, the peak rule)
    applied per slice, with ``MIN_PIXELS`` pixels as the size floor.
    """
    rule = replace(DEFAULT.at_threshold(threshold), min_volume_mm3=MIN_PIXELS)
    out = []
    for p, f in zip(np.asarray(probs), np.asarray(fg, bool)):
        comps = components(p[None], (1.0, 1.0, 1.0), threshold, f[None])  # one slice: 8-connected in-plane
        kept = keep(comps, rule)
        out.append(np.concatenate([[0], np.cumsum(kept) * kept])[comps.labels[0]])
    return out


@dataclass
class Evidence:
    """One model on the held-out labels (K,H,W) and on the unlabelled pool: what :func:`decide` compares."""

    dice: float | None            # pooled over held-out slices; None when no held-out lesion pixel
    slice_dice: list              # per held-out slice (None where the slice holds no lesion)
    lesions_found: int            # held-out true lesions (2D components) touched by a prediction
    false_lesions: int            # predicted lesions on held-out slices touching no true lesion
    fp_pixels: int                # predicted pixels outside the truth on held-out slices
    pool_lesions: int | None      # predicted lesions on the unlabelled pool slices (None: no pool given)
    finite: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def evidence(probs: np.ndarray, labels: np.ndarray, fg: np.ndarray, threshold: float,
             pool_probs: np.ndarray | None = None, pool_fg: np.ndarray | None = None) -> Evidence:
    """Score one model's probabilities (K,H,W) on held-out labels (K,H,W) and (M,H,W) on the pool."""
    fg = np.asarray(fg, bool)
    truth = np.asarray(labels) > 0
    pred = (np.asarray(probs) >= threshold) & fg
    found = false = 0
    slice_dice = []
    for lab, t, p in zip(predicted_lesions(probs, fg, threshold), truth, pred):
        tl, nt = ndimage.label(t, structure=np.ones((3, 3), bool))
        found += len(set(np.unique(tl[lab > 0])) - {0})
        false += len(set(np.unique(lab[~t])) - set(np.unique(lab[t])) - {0})
        slice_dice.append(round(2 * float((p & t).sum()) / float(p.sum() + t.sum()), 4) if nt else None)
    tp, denom = int((pred & truth).sum()), int(pred.sum() + truth.sum())
    pool = None if pool_probs is None else int(sum(lab.max(initial=0) for lab in predicted_lesions(
        pool_probs, pool_fg, threshold)))
    return Evidence(2 * tp / denom if truth.any() else None, slice_dice, found, false,
                    int((pred & ~truth).sum()), pool,
                    bool(np.isfinite(probs).all() and (pool_probs is None or np.isfinite(pool_probs).all())))


def decide(prev: Evidence, new: Evidence, n_lesion_slices: int) -> tuple[bool, str]:
    """(accept the new model, what decided it): the four rules of the module docstring, in order."""
    if not new.finite:
        return False, "it predicts NaN"
    if new.pool_lesions is not None and prev.pool_lesions is not None and \
            new.pool_lesions > POOL_RATIO * prev.pool_lesions + POOL_SLACK:
        return False, (f"it fires everywhere: {new.pool_lesions} lesions on the unlabelled slices against "
                       f"{prev.pool_lesions}")
    if new.false_lesions > prev.false_lesions:
        return False, f"{new.false_lesions} false lesions on the held-out slices against {prev.false_lesions}"
    if n_lesion_slices < MIN_LESION_SLICES:
        return False, (f"too little evidence: {n_lesion_slices} held-out slices with lesions, at least "
                       f"{MIN_LESION_SLICES} are needed to show a better model")
    gain = DICE_GAIN / np.sqrt(n_lesion_slices)
    dice = f"held-out Dice {new.dice:.2f} against {prev.dice:.2f}, {new.lesions_found} lesions found against " \
        f"{prev.lesions_found}"
    if new.lesions_found >= prev.lesions_found and new.dice >= prev.dice + gain:
        return True, f"{dice} (a Dice gain of at least {gain:.2f} counts on {n_lesion_slices} lesion slices)"
    return False, f"not clearly better: {dice} (a Dice gain of {gain:.2f} and no lesion lost are needed)"


@dataclass
class GuardDecision:
    kept: str                 # "new" or "previous"
    reason: str
    held_out: int             # slices compared on
    held_out_lesion: int      # of which with lesion pixels
    previous: dict            # Evidence.to_dict() of the previous model
    new: dict
    rule: dict = field(default_factory=lambda: {"dice_gain": DICE_GAIN, "min_lesion_slices": MIN_LESION_SLICES,
                                                "pool_ratio": POOL_RATIO,
                                                "pool_slack": POOL_SLACK, "min_pixels": MIN_PIXELS})

    def to_dict(self) -> dict:
        return asdict(self)


def compare(previous_probs: np.ndarray, new_probs: np.ndarray, labels: np.ndarray, fg: np.ndarray,
            round_number: int, threshold: float = 0.5, previous_pool: np.ndarray | None = None,
            new_pool: np.ndarray | None = None, pool_fg: np.ndarray | None = None) -> GuardDecision:
    """Decide which model stays current from their probabilities (K,H,W) on the held-out labels (K,H,W)
    and, when given, (M,H,W) on the unlabelled pool slices (``pool_fg`` (M,H,W))."""
    prev, new = (evidence(p, labels, fg, threshold, q, pool_fg)
                 for p, q in ((previous_probs, previous_pool), (new_probs, new_pool)))
    n_les = int(np.asarray(labels).reshape(len(labels), -1).any(1).sum())
    accept, what = decide(prev, new, n_les)
    where = f"{len(labels)} held-out labelled slices, {n_les} with lesions"
    before = f"round {round_number - 1}'s model" if round_number > 1 else "the starting model"
    if accept:
        reason = f"Round {round_number}'s model is in use: better than {before} ({what}; {where})."
    else:
        reason = (f"Round {round_number}'s retrained model was not better than {before} ({what}; {where}); "
                  f"{before} stays in use. Label more slices and retrain.")
    return GuardDecision("new" if accept else "previous", reason, len(labels), n_les, prev.to_dict(), new.to_dict())
