"""The query-strategy interface, the pool context with cached model outputs, and the registry.

A strategy scores every slice of a pool (higher = more worth labelling) and
selects ``k`` unlabelled slices, best first. Slices with (almost) no
foreground are never preferred: they are ranked after every slice with tissue
and only returned when nothing else is left. The :class:`QueryContext` runs
the model at most once per kind of output (deterministic pass; MC dropout per
(passes, reduction)), so several strategies on one pool share forward passes.

Monte-Carlo dropout costs T deterministic passes per slice. On a large pool the
context therefore runs it only on a shortlist: the unlabelled slices with the
highest deterministic entropy (the pass the other strategies need anyway), sized
so that T passes over it cost about ``MC_BUDGET`` deterministic passes over the
pool (issue 14: any strategy within 3x the deterministic ones). Slices outside
the shortlist get NaN MC statistics and rank after it, by deterministic entropy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback
from LongitudinalALLib.model.inference import MCStatistics, PoolOutputs, Predictor
from LongitudinalALLib.model.reductions import PixelReduction, as_reduction

#: a slice whose foreground is under this share of its case's largest cross-section counts as empty:
#: the end slices below the cerebellum and at the vertex hold too little brain to be worth a look (issue 27)
MIN_SECTION_SHARE = 0.03
MC_BUDGET = 2.0        # auto shortlist: T x M slices of MC work ~ this many passes over the pool
MC_MIN_SHORTLIST = 32  # ... but never fewer than this many slices (k=10 with lmi_hybrid wants ~50)
#: (probs chunk (B, H, W), the chunk's slice of the pool) -> (B, H, W) pixel scores
PixelMap = Callable[[torch.Tensor, slice], torch.Tensor]


def reduce_pixels(ctx: QueryContext, probs: np.ndarray, pixel_map: PixelMap,
                  reduction: PixelReduction, chunk: int = 128) -> np.ndarray:
    """Apply ``pixel_map(probs_chunk (B,H,W), slice)`` and reduce over foreground, chunk by chunk -> (N,)."""
    out = np.empty(ctx.n, dtype=np.float64)
    for a in range(0, ctx.n, chunk):
        sl = slice(a, min(ctx.n, a + chunk))
        values = pixel_map(torch.from_numpy(np.ascontiguousarray(probs[sl])), sl)
        out[sl] = reduction(values, torch.from_numpy(ctx.foreground[sl])).double().numpy()
    return out


@dataclass
class QueryContext:
    """One pool of slices and what is known about it.

    images (N, 3, H, W) float32 (baseline, registered follow-up, difference);
    foreground (N, H, W) bool; labelled (N,) bool; predictor may be None for
    label-free strategies (random, cold start). ``outputs`` may be given when
    the caller already ran the model on this pool. The cache assumes the
    predictor's weights do not change: call :meth:`clear_cache` after training.
    ``round_index`` = trained rounds so far (for noise that decays with rounds).
    ``lesion_context`` (N, H, W) float32 or None: known lesion evidence from the
    labels (:func:`label_context.neighbour_lesion_map`), for strategies that use it.
    ``mc_shortlist``: how many slices MC dropout runs on: "auto" (see the module
    docstring), an int, or None for every slice with tissue (the pre-issue-14 path).
    ``groups`` (N,): the case of each slice (None: one case); a slice with less than
    ``MIN_SECTION_SHARE`` of its case's largest foreground section counts as empty.
    ``pixel_mm``: the slices' pixel size (``SliceGeometry.spacing_mm``), for rules stated in mm.
    """

    images: np.ndarray
    foreground: np.ndarray
    labelled: np.ndarray
    predictor: Predictor | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    mc_seed: int = 0
    round_index: int = 0
    outputs: PoolOutputs | None = None
    progress: ProgressCallback | None = None
    cancel: CancelToken | None = None
    mc_shortlist: int | str | None = "auto"
    lesion_context: np.ndarray | None = None
    groups: np.ndarray | None = None
    pixel_mm: float = 1.0
    _mc_cache: dict[tuple[int, str, int], MCStatistics] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        self.foreground = np.asarray(self.foreground, dtype=bool)
        self.labelled = np.asarray(self.labelled, dtype=bool)
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise InputError(f"Pool images have shape {self.images.shape}; expected (N, 3, H, W).",
                             "Build the pool from prepared slice pairs (CaseSlices.images).")
        n, _, h, w = self.images.shape
        if self.foreground.shape != (n, h, w):
            raise InputError(f"Pool foreground has shape {self.foreground.shape}; expected {(n, h, w)}.",
                             "Pass the foreground masks of the same slices.")
        if self.labelled.shape != (n,):
            raise InputError(f"Labelled flags have shape {self.labelled.shape}; expected ({n},).",
                             "Pass one flag per pool slice.")
        if self.lesion_context is not None:
            self.lesion_context = np.asarray(self.lesion_context, dtype=np.float32)
            if self.lesion_context.shape != (n, h, w):
                raise InputError(f"Lesion context has shape {self.lesion_context.shape}; expected {(n, h, w)}.",
                                 "Build it for the same pool rows (label_context.neighbour_lesion_map).")
        if not isinstance(self.rng, np.random.Generator):
            self.rng = np.random.default_rng(self.rng)
        self._fg_fraction = section_fractions(self.foreground, self.groups)
        if not (self.mc_shortlist in (None, "auto") or (isinstance(self.mc_shortlist, (int, np.integer))
                                                        and not isinstance(self.mc_shortlist, bool)
                                                        and self.mc_shortlist >= 1)):
            raise InputError(f"MC shortlist {self.mc_shortlist!r} is not 'auto', None or a positive integer.",
                             "Use mc_shortlist='auto' (default), e.g. 64, or None to score every slice.")
        self.unscored_key: np.ndarray | None = None  # (N,) orders slices whose scores are NaN

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def foreground_fraction(self) -> np.ndarray:
        """(N,) fraction of foreground pixels per slice (0 for a section too small, see ``section_fractions``)."""
        return self._fg_fraction

    @property
    def difference(self) -> np.ndarray:
        """(N, H, W) the difference channel (a view, no copy)."""
        return self.images[:, 2]

    def clear_cache(self) -> None:
        self.outputs = None
        self.unscored_key = None
        self._mc_cache.clear()

    def require_predictor(self, who: str) -> Predictor:
        if self.predictor is None:
            raise InputError(f"Strategy {who!r} needs a model, but none was given.",
                             "Load a model first, or use 'random', 'fg_random' or 'cold_start' for round 0.")
        return self.predictor

    def model_outputs(self, who: str = "this strategy") -> PoolOutputs:
        """Probabilities, embeddings and gradient embeddings from one deterministic pass (cached)."""
        if self.outputs is None:
            self.outputs = self.require_predictor(who).predict_all(
                self.images, self.foreground, progress=self.progress, cancel=self.cancel)
        return self.outputs

    def probs(self, who: str = "this strategy") -> np.ndarray:
        """(N, H, W) float32 new-lesion probabilities (dropout off)."""
        return self.model_outputs(who).probs

    def mc(self, passes: int, reduction: str | PixelReduction, who: str = "this strategy") -> MCStatistics:
        """Monte-Carlo dropout statistics over foreground pixels (cached per passes/reduction/seed).

        Only the :meth:`mc_rows` shortlist is run; the other slices' statistics are NaN.
        """
        red = as_reduction(reduction)
        key = (int(passes), red.key, int(self.mc_seed))
        if key not in self._mc_cache:
            predictor = self.require_predictor(who)
            self._mc_cache[key] = predictor.mc_statistics(
                self.images, passes=passes, reduction=red, foreground=self.foreground, seed=self.mc_seed,
                progress=self.progress, cancel=self.cancel, rows=self.mc_rows(passes, red, who))
        return self._mc_cache[key]

    def shortlist_size(self, passes: int) -> int | None:
        """M slices for MC dropout with T = ``passes``, or None for all (see the module docstring)."""
        if self.mc_shortlist is None:
            return None
        if self.mc_shortlist == "auto":
            tissue = int((self._fg_fraction > 0).sum())
            return max(MC_MIN_SHORTLIST, int(np.ceil(MC_BUDGET * tissue / max(1, int(passes)))))
        return int(self.mc_shortlist)

    def mc_rows(self, passes: int, reduction: str | PixelReduction, who: str = "this strategy") -> np.ndarray | None:
        """Sorted (M,) indices MC dropout runs on, or None for every slice with tissue.

        When every slice with tissue fits, all run (labelled ones too, as before).
        Otherwise the M unlabelled slices with tissue and the highest deterministic
        entropy (same reduction); that entropy then orders the rest (``unscored_key``).
        """
        size = self.shortlist_size(passes)
        if size is None or int((self._fg_fraction > 0).sum()) <= size:
            return None
        from LongitudinalALLib.model.reductions import binary_entropy

        proxy = reduce_pixels(self, self.probs(who), lambda p, _: binary_entropy(p), as_reduction(reduction))
        self.unscored_key = proxy
        cand = np.flatnonzero(~self.labelled & (self._fg_fraction > 0))
        return np.sort(cand[np.argsort(-proxy[cand], kind="stable")[:size]])


def section_shares(foreground: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """(N,) each (N, H, W) slice's foreground area over the largest one of its group (case); 0 for an empty case."""
    n = len(foreground)
    area = foreground.reshape(n, -1).sum(axis=1).astype(np.float64)
    groups = np.zeros(n) if groups is None else np.asarray(groups)
    if groups.shape != (n,):
        raise InputError(f"Pool groups have shape {groups.shape}; expected ({n},).", "Give one case per pool slice.")
    largest = np.zeros(n)
    for g in np.unique(groups):
        largest[groups == g] = area[groups == g].max()
    return np.divide(area, largest, out=np.zeros(n), where=largest > 0)


def section_fractions(foreground: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """(N,) foreground fraction of each (N, H, W) slice; 0 under ``MIN_SECTION_SHARE`` of its group's largest."""
    fraction = foreground.reshape(len(foreground), -1).mean(axis=1)
    return np.where(section_shares(foreground, groups) < MIN_SECTION_SHARE, 0.0, fraction)


@dataclass(frozen=True)
class Selection:
    """A query, as baal's ``get_ranks`` gives it: the chosen slices and every slice's score.

    indices (k,) int64: unlabelled slices to label, best first; scores (N,)
    float64: the informativeness shown beside each slice (higher is better; NaN:
    not scored, e.g. outside an MC shortlist). Callers never need to know how a
    strategy chose: plain ranking, diversity or noise. ``why``: slice index ->
    (the rule that picked it, that rule's score), for the slices a strategy picked
    by a rule other than its plain ranking (e.g. ClaSP PE's two channels).
    """

    indices: np.ndarray
    scores: np.ndarray
    why: dict[int, tuple[str, float]] = field(default_factory=dict)


class QueryStrategy(ABC):
    """Score slices and pick the next ones to label.

    ``min_foreground``: slices whose foreground fraction is below it rank after
    all others (they carry no tissue to label).
    """

    name: ClassVar[str] = "base"
    needs_model: ClassVar[bool] = True
    reason: ClassVar[str] = ""  # why a slice of the plain ranking is picked; "" -> "highest <name> score"
    uses_lesion_context: bool = False  # True: the loop passes the labels' neighbour map (QueryContext.lesion_context)

    def __init__(self, min_foreground: float = 1e-3) -> None:
        self.min_foreground = float(min_foreground)

    def why(self) -> str:
        """Why this strategy's plain ranking picks a slice (shown beside each suggestion)."""
        return self.reason or f"highest {self.name} score"

    @abstractmethod
    def score(self, ctx: QueryContext) -> np.ndarray:
        """(N,) float64 informativeness of every slice (labelled ones too); higher is better."""

    def select(self, ctx: QueryContext, k: int) -> Selection:
        """Up to ``k`` unlabelled slices, best first, with every slice's score (plain ranking here)."""
        k = check_k(k)
        scores = self.score(ctx)
        return Selection(rank_candidates(ctx, scores, self.min_foreground)[:k], scores)

    # helpers for strategies that select with diversity
    def split_candidates(self, ctx: QueryContext) -> tuple[np.ndarray, np.ndarray]:
        """(eligible, empty): unlabelled slices with enough foreground, and the other unlabelled ones."""
        unl = ~ctx.labelled
        ok = ctx.foreground_fraction >= self.min_foreground
        return np.flatnonzero(unl & ok), np.flatnonzero(unl & ~ok)

    def fill(self, ctx: QueryContext, chosen: list[int] | np.ndarray, k: int, scores: np.ndarray,
             why: str | None = None) -> Selection:
        """A diverse pick topped up to ``k`` from the plain ranking (never repeating a slice), with ``scores``.

        ``why``: the reason recorded for the diverse picks (top-ups keep the plain ranking's).
        """
        chosen = [int(i) for i in chosen][:k]
        reasons = {i: (why, float(scores[i])) for i in chosen} if why else {}
        if len(chosen) < k:
            taken = set(chosen)
            for i in rank_candidates(ctx, scores, self.min_foreground):
                if len(chosen) >= k:
                    break
                if int(i) not in taken:
                    chosen.append(int(i))
        return Selection(np.asarray(chosen, dtype=np.int64), scores, reasons)


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InputError(f"Number of slices to select must be a non-negative integer, got {k!r}.",
                         "Ask for e.g. k=10 slices.")
    return int(k)


def rank_candidates(ctx: QueryContext, scores: np.ndarray, min_foreground: float) -> np.ndarray:
    """All unlabelled indices: those with foreground by descending score, then the rest (stable).

    NaN scores (slices outside an MC shortlist) come after every number, ordered by
    ``ctx.unscored_key`` (deterministic entropy) when the context has one.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (ctx.n,):
        raise InputError(f"Scores have shape {scores.shape}; expected ({ctx.n},).", "Give one score per pool slice.")
    nan = np.isnan(scores)
    s = np.where(nan, -np.inf, scores)
    key = getattr(ctx, "unscored_key", None)
    tie = np.where(nan, -np.asarray(key, dtype=np.float64), 0.0) if key is not None else np.zeros(ctx.n)
    order = np.lexsort((tie, -s, nan))
    order = order[~ctx.labelled[order]]
    has_fg = ctx.foreground_fraction[order] >= min_foreground
    return np.concatenate([order[has_fg], order[~has_fg]]).astype(np.int64)


# ---------------------------------------------------------------------- registry
_REGISTRY: dict[str, tuple[Callable[..., QueryStrategy], dict[str, Any], str]] = {}


def register(name: str, factory: Callable[..., QueryStrategy], help: str = "", **defaults: Any) -> None:
    """Make ``get_strategy(name, **kw)`` build ``factory(**defaults, **kw)``."""
    _REGISTRY[name] = (factory, defaults, help)


def available_strategies() -> list[str]:
    return sorted(_REGISTRY)


def describe_strategies() -> dict[str, str]:
    """Strategy name -> one-line description (for help texts)."""
    return {name: _REGISTRY[name][2] for name in available_strategies()}


def get_strategy(name: str, **kwargs: Any) -> QueryStrategy:
    """Build a registered strategy; unknown names or options raise InputError."""
    if name not in _REGISTRY:
        raise InputError(f"Unknown query strategy {name!r}.",
                         f"Choose one of: {', '.join(available_strategies())}.")
    factory, defaults, _ = _REGISTRY[name]
    try:
        strategy = factory(**{**defaults, **kwargs})
    except TypeError as err:
        raise InputError(f"Strategy {name!r} does not take these options: {sorted(kwargs)} ({err}).",
                         "Check the option names for this strategy.") from err
    strategy.name = name  # type: ignore[misc]
    return strategy
