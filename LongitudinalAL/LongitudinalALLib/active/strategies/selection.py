"""One query from a strategy's ranking: cold-start mixing, and spreading over subjects.

Why: (1) while no labelled slice holds a lesion, a trained model predicts
nothing and uncertainty has nothing to point at: on our 3-seed learning curve
the seed whose initial set held no lesion never found one with any
uncertainty strategy (Dice 0). Until the labelled set holds a lesion,
``cold_start_share`` of each query of a model-based strategy comes from the
change-saliency cold start (label-free baselines stay pure: they are the
references). (2) A 2025 slice-selection study found that spreading labels over
more volumes with fewer slices each beats concentrating them: a per-subject cap
per query, or round robin over subjects.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from LongitudinalALLib.active.strategies.base import QueryContext, QueryStrategy, rank_candidates
from LongitudinalALLib.core.errors import InputError


@dataclass(frozen=True)
class SelectionOptions:
    """How a ranking becomes a query (all optional; the defaults only add the cold-start mix)."""

    cold_start_share: float = 0.5      # of each query until a labelled slice holds a lesion (0: off)
    per_subject_cap: int | None = None  # most slices of one subject in one query
    round_robin: bool = False          # take each subject's best in turn

    def __post_init__(self) -> None:
        share = self.cold_start_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise InputError(f"cold_start_share {share!r} is not a fraction.", "Use a value in [0, 1], e.g. 0.5.")
        cap = self.per_subject_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
            raise InputError(f"per_subject_cap {cap!r} is not a positive integer.", "Use e.g. 2, or leave it unset.")
        if not isinstance(self.round_robin, bool):
            raise InputError(f"round_robin {self.round_robin!r} is not true/false.", "Use true or false.")

    @classmethod
    def from_dict(cls, d: "dict[str, Any] | SelectionOptions | None") -> "SelectionOptions":
        if d is None or isinstance(d, SelectionOptions):
            return d or cls()
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError(f"Unknown selection options {unknown}.",
                             "Use cold_start_share, per_subject_cap and round_robin.")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def interleave(first: np.ndarray, second: np.ndarray, share: float) -> np.ndarray:
    """Merge two rankings, no repeats: every prefix takes about ``share`` of its items from ``first``.

    When one list runs out the other continues, so the result holds the union.
    """
    a, b = [int(i) for i in first], [int(i) for i in second]
    out: list[int] = []
    seen: set[int] = set()
    n_a = ia = ib = 0
    while ia < len(a) or ib < len(b):
        from_a = ia < len(a) and (n_a < share * (len(out) + 1) or ib >= len(b))
        if from_a:
            i, ia = a[ia], ia + 1
        else:
            i, ib = b[ib], ib + 1
        if i not in seen:
            seen.add(i)
            out.append(i)
            n_a += from_a
    return np.asarray(out, dtype=np.int64)


def strategy_order(strategy: QueryStrategy, ctx: QueryContext, k: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(every unlabelled index, best first; (N,) display scores; the strategy's ``Selection.why``):
    the strategy's set, then its ranking."""
    query = strategy.select(ctx, k)
    chosen = np.asarray(query.indices, dtype=np.int64)
    scores = np.asarray(query.scores, dtype=np.float64)
    rest = rank_candidates(ctx, scores, strategy.min_foreground)
    return np.concatenate([chosen, rest[~np.isin(rest, chosen)]]), scores, dict(query.why)


def spread(order: np.ndarray, groups: np.ndarray, k: int, options: SelectionOptions) -> np.ndarray:
    """The first ``k`` of ``order`` under the per-subject cap and/or round robin over ``groups`` (N,)."""
    cap = options.per_subject_cap or len(order)
    if options.round_robin:
        queues: dict[Any, list[int]] = {}
        for i in order:
            queues.setdefault(groups[i], []).append(int(i))
        queues = {g: q[:cap] for g, q in queues.items()}
        out = [q[j] for j in range(max(map(len, queues.values()), default=0)) for q in queues.values() if j < len(q)]
    else:
        count: dict[Any, int] = {}
        out = []
        for i in order:
            if count.get(groups[i], 0) < cap:
                count[groups[i]] = count.get(groups[i], 0) + 1
                out.append(int(i))
    if len(out) < k:
        raise InputError(f"A cap of {cap} slices per subject allows only {len(out)} of the {k} slices asked for.",
                         "Raise per_subject_cap, or ask for fewer slices.")
    return np.asarray(out[:k], dtype=np.int64)


def select_batch(strategy: QueryStrategy, ctx: QueryContext, k: int, groups, has_lesion: bool,
                 options: "dict[str, Any] | SelectionOptions | None" = None
                 ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, float]]]:
    """(chosen (k,) int64 best first, scores (N,) float64, why): the query a session asks the user to label.

    ``groups`` (N,): the subject (case) of each pool slice; ``has_lesion``:
    whether some labelled slice already holds a lesion. ``why`` (k,): for each chosen
    slice, the rule that picked it and that rule's score (e.g. a cold-start pick's
    change saliency, next to the strategy's own score of 0 for it).
    """
    from LongitudinalALLib.active.strategies.cold_start import ColdStartStrategy

    opts = SelectionOptions.from_dict(options)
    groups = np.asarray(groups)
    if groups.shape != (ctx.n,):
        raise InputError(f"Subjects have shape {groups.shape}; expected ({ctx.n},).", "Give one subject per pool slice.")
    order, scores, why = strategy_order(strategy, ctx, k)
    if opts.cold_start_share > 0 and strategy.needs_model and not has_lesion:
        cold = ColdStartStrategy().select(ctx, math.ceil(opts.cold_start_share * k))
        order = interleave(cold.indices, order, opts.cold_start_share)
        why.update(cold.why)
    chosen = spread(order, groups, k, opts)
    return chosen, scores, [why.get(int(i), (strategy.why(), float(scores[i]))) for i in chosen]
