"""ClaSP PE for slices: class-stratified predictive entropy with power noise that decays over rounds.

Why: nnActive (TMLR 2025) found no established strategy reliably beats
foreground-aware random sampling; ClaSP PE (arXiv 2601.13677) is the first that
does. Facts taken from its code (MIC-DKFZ/nnActive,
``nnactive/strategies/entropy_balanced.py`` and ``utils.py``; read, not copied):

* two score channels per region: the predictive entropy H of the prediction,
  and the class-weighted entropy H * p_c of each foreground class;
* a query takes ``ratio_fg = 0.66`` of its items from the foreground-class
  channel and the rest from plain H; a region picked by one channel is not
  picked again by the other;
* power noising: ``log(score) + Gumbel(0, 1/beta)``, i.e. sampling without
  replacement with probability ~ score**beta;
* beta follows a schedule over the query steps, exponential from 1 to 100, so
  the noise decays as the model gets better.

Here a region is a slice; both channels are summed over the slice's tissue
(nnActive averages over fixed-size patches; our slices share one size). The
foreground share is drawn only from slices where the model predicts a new
lesion (some tissue pixel with p >= ``threshold``); when there are fewer, the
rest of the query goes to the entropy channel.

Our option, label context (``context_weight``; 0, the default, turns it off):
on an unlabelled slice next to a contoured one, the contour's footprint
(:mod:`label_context`) raises the probability to at least ``context_weight``
before both channels are computed. At 0.5 such pixels are maximally uncertain
foreground, so a lesion's continuation the model misses joins the foreground
share, while one it already predicts confidently gains nothing (H*p stays
low). Why it exists: the lesion slices a 5 % query missed were mostly small
lesion ends beside contoured slices. Why it is off: on tuning families 777/778
it raised the final Dice 0.602 -> 0.632 (AUBC 0.482 -> 0.493), but on the
benchmark's sim:1234 with 15 seeds the final Dice rose 0.639 -> 0.660 while the
AUBC fell 0.599 -> 0.576 (neither significant, two-sided p 0.12 / 0.13 over 45
seed x case): the early queries spend labels on one lesion's neighbours instead
of finding other lesions (``Testing/benchmarks/NOTES.md``).
"""

from __future__ import annotations

import numpy as np

from LongitudinalALLib.active.strategies.base import (
    QueryContext,
    QueryStrategy,
    Selection,
    check_k,
    rank_candidates,
    register,
)
from LongitudinalALLib.active.strategies.selection import interleave
from LongitudinalALLib.active.strategies.base import reduce_pixels
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model.reductions import PixelReduction, binary_entropy

LESION_REASON = "uncertain new lesion"  # the foreground channel (score: summed entropy x probability)
_SUM = PixelReduction("sum")
_MAX = PixelReduction("topk", 1)


def exponential_schedule(steps: int, start: float, end: float) -> np.ndarray:
    """(steps,) values from ``start`` to ``end``, evenly spaced in log scale."""
    return start * (end / start) ** np.linspace(0.0, 1.0, steps)


def power_noise(scores: np.ndarray, beta: float, rng: np.random.Generator) -> np.ndarray:
    """(N,) keys ``log(score) + Gumbel(0, 1/beta)``; scores <= 0 get -inf (never ahead of a positive one)."""
    s = np.asarray(scores, dtype=np.float64)
    with np.errstate(divide="ignore"):
        keys = np.where(s > 0, np.log(np.where(s > 0, s, 1.0)), -np.inf)
    return keys + rng.gumbel(0.0, 1.0 / beta, size=s.shape)


class ClaspPEStrategy(QueryStrategy):
    """Class-stratified (foreground share) power-noised predictive entropy; see the module docstring."""

    name = "clasp_pe"
    reason = "explore: uncertain tissue"  # the entropy channel (score: summed entropy)

    def __init__(self, fg_share: float = 0.66, beta_start: float = 1.0, beta_end: float = 100.0,
                 rounds: int = 10, noise: bool = True, threshold: float = 0.5, context_weight: float = 0.0,
                 **kw) -> None:
        super().__init__(**kw)
        if not 0.0 <= float(fg_share) <= 1.0:
            raise InputError(f"fg_share {fg_share} is not a fraction.", "Use a value in [0, 1], e.g. 0.66.")
        if not (float(beta_start) > 0 and float(beta_end) > 0) or int(rounds) < 1:
            raise InputError(f"Noise schedule beta {beta_start}->{beta_end} over {rounds} rounds is invalid.",
                             "Use positive betas (e.g. 1 -> 100) and rounds >= 1.")
        if not 0.0 <= float(context_weight) <= 1.0:
            raise InputError(f"context_weight {context_weight} is not a fraction.", "Use a value in [0, 1], e.g. 0.5.")
        self.fg_share, self.noise, self.threshold = float(fg_share), bool(noise), float(threshold)
        self.context_weight = float(context_weight)
        self.uses_lesion_context = self.context_weight > 0
        self.betas = exponential_schedule(int(rounds), float(beta_start), float(beta_end))

    def beta(self, round_index: int) -> float:
        """Noise inverse-scale for a query after ``round_index`` trained rounds (round 1 -> first value)."""
        return float(self.betas[int(np.clip(round_index - 1, 0, len(self.betas) - 1))])

    def channels(self, ctx: QueryContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,) each: sum of H*p over tissue, sum of H over tissue, predicted-lesion flag."""
        probs = ctx.probs(self.name)
        if self.context_weight > 0 and ctx.lesion_context is not None:
            # a contoured neighbour's footprint counts as foreground of probability >= context_weight
            probs = np.maximum(probs, self.context_weight * ctx.lesion_context)
        fg = reduce_pixels(ctx, probs, lambda p, _: binary_entropy(p) * p.float(), _SUM)
        ent = reduce_pixels(ctx, probs, lambda p, _: binary_entropy(p), _SUM)
        peak = reduce_pixels(ctx, probs, lambda p, _: p.float(), _MAX)
        return fg, ent, peak >= self.threshold

    def score(self, ctx: QueryContext) -> np.ndarray:
        return self.channels(ctx)[1]

    def keys(self, ctx: QueryContext, scores: np.ndarray) -> np.ndarray:
        if not self.noise:
            return np.asarray(scores, dtype=np.float64)
        return power_noise(scores, self.beta(ctx.round_index), ctx.rng)

    def select(self, ctx: QueryContext, k: int) -> Selection:
        """``round(fg_share * k)`` predicted-lesion slices by noisy H*p, interleaved with the rest by noisy H."""
        k = check_k(k)
        fg, ent, lesion = self.channels(ctx)
        fg_order = rank_candidates(ctx, self.keys(ctx, fg), self.min_foreground)
        fg_order = fg_order[lesion[fg_order] & (ctx.foreground_fraction[fg_order] >= self.min_foreground)]
        n_fg = min(len(fg_order), int(round(self.fg_share * k)))
        ent_order = rank_candidates(ctx, self.keys(ctx, ent), self.min_foreground)
        picks = interleave(fg_order[:n_fg], ent_order, n_fg / k if k else 0.0)[:k]
        lesion_picks = set(fg_order[:n_fg].tolist())
        why = {int(i): (LESION_REASON, float(fg[i])) if int(i) in lesion_picks else (self.reason, float(ent[i]))
               for i in picks}
        return Selection(picks, ent, why)

register("clasp_pe", ClaspPEStrategy,
         "ClaSP PE: 2/3 from predicted-lesion slices (entropy x p), rest by entropy; power noise decaying 1->100")
