"""Diversity strategies on embeddings: core-set (k-center greedy), cluster-margin, BADGE.

The geometric kernels are vectorised torch code on the predictor's device (GPU
when present): k-center greedy keeps one min-distance vector over the
candidates and updates it once per pick, O(N k D) time and O(N) extra memory.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import AgglomerativeClustering

from LongitudinalALLib.active.strategies.base import (
    QueryContext,
    QueryStrategy,
    Selection,
    check_k,
    rank_candidates,
    register,
)
from LongitudinalALLib.active.strategies.base import reduce_pixels
from LongitudinalALLib.model.devices import resolve_device
from LongitudinalALLib.model.reductions import PixelReduction, as_reduction


def context_device(ctx: QueryContext) -> torch.device:
    return ctx.predictor.device if ctx.predictor is not None else resolve_device()


def _min_distances(x: torch.Tensor, centres: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """(M, D), (C, D) -> (M,) Euclidean distance of each row of x to its nearest centre."""
    best = torch.full((x.shape[0],), float("inf"), device=x.device)
    for a in range(0, centres.shape[0], chunk):
        best = torch.minimum(best, torch.cdist(x, centres[a:a + chunk]).min(dim=1).values)
    return best


def k_center_greedy(features: np.ndarray, candidates: np.ndarray, centres: np.ndarray, k: int,
                    device: torch.device | str = "cpu", first: int | None = None) -> np.ndarray:
    """Greedy k-center (Sener & Savarese core-set) over ``candidates``; returns picks in order.

    features (N, D); candidates / centres index arrays into it. Each pick is the
    candidate farthest from all centres so far (``centres`` start as the
    already-labelled slices). With no centres the first pick is ``first`` (a
    position in ``candidates``) or else the candidate nearest the candidates' mean.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    k = min(int(k), len(candidates))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=device)
    xc = x[torch.as_tensor(candidates, device=device)]
    sq = (xc * xc).sum(1)
    picks: list[int] = []
    centres = np.asarray(centres, dtype=np.int64)
    if len(centres):
        min_d2 = _min_distances(xc, x[torch.as_tensor(centres, device=device)]) ** 2
    else:
        j = int(first) if first is not None else int(torch.cdist(xc, xc.mean(0, keepdim=True))[:, 0].argmin())
        picks.append(j)
        min_d2 = _squared_distances_to(xc, sq, j)
        min_d2[j] = -1.0
    while len(picks) < k:
        j = int(min_d2.argmax())
        picks.append(j)
        # one mat-vec per pick (no (M, D) temporary); a picked row stays at -1 forever
        min_d2 = torch.minimum(min_d2, _squared_distances_to(xc, sq, j))
        min_d2[j] = -1.0
    return candidates[np.asarray(picks, dtype=np.int64)]


def _squared_distances_to(x: torch.Tensor, sq: torch.Tensor, j: int) -> torch.Tensor:
    """||x_i - x_j||^2 for all rows i, as sq_i - 2 x_i.x_j + sq_j (one mat-vec), clamped at 0 against rounding."""
    return (sq - 2.0 * (x @ x[j]) + sq[j]).clamp_min_(0.0)


def kmeans_pp_seeding(features: np.ndarray, k: int, rng: np.random.Generator,
                      device: torch.device | str = "cpu") -> np.ndarray:
    """k-means++ seeding (as in BADGE): first the largest-norm row, then rows drawn with p ~ D^2.

    Returns positions into ``features`` (M, D), in pick order.
    """
    m = len(features)
    k = min(int(k), m)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=device)
    sq = (x * x).sum(1)
    picks = [int(sq.argmax())]
    d2 = _squared_distances_to(x, sq, picks[0])
    while len(picks) < k:
        d2[picks[-1]] = 0.0
        cdf = d2.double().cumsum(0)
        total = float(cdf[-1])
        if total > 0:  # the same draw as Generator.choice(m, p=d2/total), without copying d2 to the host
            j = int(torch.searchsorted(cdf, torch.tensor([rng.random() * total], dtype=cdf.dtype, device=cdf.device),
                                       right=True)[0])
            j = min(j, m - 1)
        else:  # all remaining rows coincide with a pick: any of them is as good
            rest = np.setdiff1d(np.arange(m), picks)
            j = int(rng.choice(rest))
        picks.append(j)
        d2 = torch.minimum(d2, _squared_distances_to(x, sq, j))
    return np.asarray(picks, dtype=np.int64)


def top_then_k_center(ctx: QueryContext, scores: np.ndarray, features: np.ndarray, k: int, factor: int,
                      min_foreground: float, eligible: np.ndarray | None = None) -> np.ndarray:
    """The one "top-k then k-center" recipe: the ``factor * k`` best unlabelled slices with tissue by
    ``scores`` (ranked as every strategy ranks, NaN last), then ``k`` of them by k-center greedy on
    ``features`` (N, D), the labelled slices as the first centres (none: the best candidate first).
    ``eligible`` (N,) bool: only these slices are candidates (None: all).
    """
    ok = ~ctx.labelled & (ctx.foreground_fraction >= min_foreground)
    if eligible is not None:
        ok &= np.asarray(eligible, dtype=bool)
    cand = rank_candidates(ctx, scores, min_foreground)
    cand = cand[ok[cand]][: factor * k]
    return k_center_greedy(features, cand, np.flatnonzero(ctx.labelled), k, context_device(ctx), first=0)


class CoreSetStrategy(QueryStrategy):
    """Core-set: k-center greedy on bottleneck embeddings, labelled slices as the first centres."""

    name = "coreset"

    def score(self, ctx: QueryContext) -> np.ndarray:
        """Distance to the nearest labelled slice in embedding space (to the pool mean when none)."""
        emb = ctx.model_outputs(self.name).embeddings
        x = torch.as_tensor(emb, device=context_device(ctx))
        lab = np.flatnonzero(ctx.labelled)
        centres = x[torch.as_tensor(lab, device=x.device)] if len(lab) else x.mean(0, keepdim=True)
        return _min_distances(x, centres).double().cpu().numpy()

    def select(self, ctx: QueryContext, k: int) -> Selection:
        k = check_k(k)
        emb = ctx.model_outputs(self.name).embeddings
        eligible, _ = self.split_candidates(ctx)
        picks = k_center_greedy(emb, eligible, np.flatnonzero(ctx.labelled), k, context_device(ctx))
        return self.fill(ctx, picks, k, self.score(ctx))


class ClusterMarginStrategy(QueryStrategy):
    """Cluster-margin (Citovsky et al., 2021): the lowest-margin slices, spread over embedding clusters.

    The ``margin_factor * k`` smallest-margin unlabelled slices are clustered
    (agglomerative, average linkage, on bottleneck embeddings); clusters are
    visited smallest first, round robin, each giving its lowest-margin slice.
    """

    name = "cluster_margin"

    def __init__(self, margin_factor: int = 10, n_clusters: int | None = None,
                 reduction: str | PixelReduction = "topk", **kw) -> None:
        super().__init__(**kw)
        self.margin_factor = max(1, int(margin_factor))
        self.n_clusters = n_clusters
        self.reduction = as_reduction(reduction)

    def score(self, ctx: QueryContext) -> np.ndarray:
        return reduce_pixels(ctx, ctx.probs(self.name), lambda p, _: 1.0 - (2.0 * p - 1.0).abs(), self.reduction)

    def select(self, ctx: QueryContext, k: int) -> Selection:
        k = check_k(k)
        scores = self.score(ctx)
        eligible, _ = self.split_candidates(ctx)
        cand = eligible[np.argsort(-scores[eligible], kind="stable")][: self.margin_factor * k]
        if len(cand) <= k or k == 0:
            return self.fill(ctx, cand, k, scores)
        n_clusters = min(len(cand), self.n_clusters or k)
        emb = ctx.model_outputs(self.name).embeddings[cand]
        labels = AgglomerativeClustering(n_clusters=n_clusters, linkage="average").fit_predict(emb)
        # cand is sorted best-first, so each cluster's list is best-first too
        clusters = [list(cand[labels == c]) for c in range(n_clusters)]
        clusters.sort(key=lambda members: (len(members), -scores[members[0]]))
        picks: list[int] = []
        while len(picks) < k:
            for members in clusters:
                if members and len(picks) < k:
                    picks.append(int(members.pop(0)))
        return self.fill(ctx, picks, k, scores)


class BADGEStrategy(QueryStrategy):
    """BADGE (Ash et al., 2020): k-means++ seeding on last-layer gradient embeddings.

    Gradient norms are large where the model is unsure, and D^2 sampling keeps
    the batch diverse; see ``gradient_embedding_from_features`` for the embedding.
    """

    name = "badge"

    def score(self, ctx: QueryContext) -> np.ndarray:
        """Gradient-embedding norm (how much labelling this slice would move the last layer)."""
        return np.linalg.norm(ctx.model_outputs(self.name).gradient_embeddings.astype(np.float64), axis=1)

    def select(self, ctx: QueryContext, k: int) -> Selection:
        k = check_k(k)
        g = ctx.model_outputs(self.name).gradient_embeddings
        eligible, _ = self.split_candidates(ctx)
        picks = eligible[kmeans_pp_seeding(g[eligible], k, ctx.rng, context_device(ctx))]
        return self.fill(ctx, picks, k, self.score(ctx))


register("coreset", CoreSetStrategy, "core-set k-center greedy on model embeddings")
register("cluster_margin", ClusterMarginStrategy, "lowest-margin slices, round robin over embedding clusters")
register("badge", BADGEStrategy, "BADGE: k-means++ on last-layer gradient embeddings")
