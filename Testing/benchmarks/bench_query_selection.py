"""Query-selection time: core-set (k-center greedy) and BADGE seeding, product vs NumPy/scikit-learn.

What is timed: picking ``k`` slices out of a pool of N embeddings (N = 10k and
100k slices, D = 256 and 512, some slices already labelled), with the product's
kernels ``strategies.diversity.k_center_greedy`` / ``kmeans_pp_seeding`` on CPU
and (when present) on the GPU, against the straightforward implementations
people write with NumPy/scikit-learn:

* core-set peer: ``sklearn.metrics.pairwise_distances`` to the labelled set,
  then one ``pairwise_distances(X, x_j)`` per pick (the structure of the
  reference core-set code, google/active-learning ``kcenter_greedy.py``);
* BADGE peers: ``sklearn.cluster.kmeans_plusplus`` (greedy k-means++), and the
  BADGE reference's loop (``pairwise_distances`` per pick, D^2 sampling).

Candidate rewrites of both kernels (``kcenter_matvec`` / ``kmeanspp_matvec``
below: squared norms plus one mat-vec per pick instead of materialising X - x_j,
and for BADGE the D^2 draw done on the device) are timed too; they are
proposals for the strategies' owner, not product code.

Quality is checked, not assumed: for core-set the covering radius (max over the
pool of the distance to the nearest labelled-or-selected slice; lower is
better) and whether the same slices were chosen; for BADGE the k-means++
potential (sum of squared distances to the nearest chosen centre) and the
covering radius. Embeddings are clustered Gaussians (slices of one case sit
close together), not uniform noise.

Run:  .venv/bin/python Testing/benchmarks/bench_query_selection.py [--tiny] [--device all|cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

from LongitudinalALLib.active.strategies.diversity import k_center_greedy, kmeans_pp_seeding  # noqa: E402


# ---------------------------------------------------------------------- data
def make_pool(n: int, dim: int, seed: int = 0, n_clusters: int | None = None) -> np.ndarray:
    """(n, dim) float32 embeddings: Gaussian clusters (one per 'case') of unequal spread."""
    rng = np.random.default_rng(seed)
    n_clusters = n_clusters or max(4, n // 180)  # ~180 slices per case
    centres = rng.normal(0.0, 1.0, (n_clusters, dim)).astype(np.float32) * 3.0
    which = rng.integers(0, n_clusters, n)
    spread = rng.uniform(0.3, 1.5, n_clusters).astype(np.float32)
    x = centres[which] + rng.normal(0.0, 1.0, (n, dim)).astype(np.float32) * spread[which, None]
    return np.maximum(x, 0.0)  # post-ReLU pooled features are non-negative


# ---------------------------------------------------------------------- peers
def kcenter_sklearn(x: np.ndarray, candidates: np.ndarray, centres: np.ndarray, k: int) -> np.ndarray:
    """Reference-style k-center greedy: pairwise_distances per pick (float32 in, as given)."""
    from sklearn.metrics import pairwise_distances

    xc = x[candidates]
    min_d = pairwise_distances(xc, x[centres]).min(axis=1)
    picks: list[int] = []
    for _ in range(k):
        j = int(np.argmax(min_d))
        picks.append(j)
        min_d = np.minimum(min_d, pairwise_distances(xc, xc[j:j + 1])[:, 0])
        min_d[j] = -1.0
    return candidates[np.asarray(picks, dtype=np.int64)]


def kcenter_matvec(x: np.ndarray, candidates: np.ndarray, centres: np.ndarray, k: int,
                   device: torch.device | str = "cpu") -> np.ndarray:
    """Proposed product kernel: |a-b|^2 = |a|^2 - 2 a.b + |b|^2 with one (M,D)@(D,) per pick.

    Reads the candidate matrix once per pick and allocates only O(M) per pick
    (the current kernel writes and re-reads an (M, D) difference matrix).
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
    xc = xt[torch.as_tensor(candidates, device=device)]
    sq = (xc * xc).sum(dim=1)
    cen = xt[torch.as_tensor(centres, device=device)]
    min_d2 = torch.full((len(xc),), float("inf"), device=device)
    for a in range(0, len(cen), 256):  # (M, 256) blocks keep the start-up memory small
        c = cen[a:a + 256]
        d2 = sq[:, None] - 2.0 * (xc @ c.T) + (c * c).sum(dim=1)[None, :]
        min_d2 = torch.minimum(min_d2, d2.min(dim=1).values)
    picks: list[int] = []
    for _ in range(k):
        j = int(min_d2.argmax())
        picks.append(j)
        min_d2 = torch.minimum(min_d2, sq - 2.0 * (xc @ xc[j]) + sq[j])
        min_d2[j] = -1.0
    return np.asarray(candidates)[np.asarray(picks, dtype=np.int64)]


def kmeanspp_matvec(g: np.ndarray, k: int, rng: np.random.Generator, device: torch.device | str = "cpu") -> np.ndarray:
    """Proposed BADGE seeding: squared distances by mat-vec, D^2 draw by cumsum + searchsorted on device.

    Draws the same way ``Generator.choice(p=...)`` does (one uniform per pick,
    inverse CDF in float64), so with the same ``rng`` it follows the product's
    picks up to float rounding, without copying N weights to the host per pick.
    """
    x = torch.as_tensor(np.asarray(g, dtype=np.float32), device=device)
    sq = (x * x).sum(dim=1)
    picks = [int(sq.argmax())]
    d2 = (sq - 2.0 * (x @ x[picks[0]]) + sq[picks[0]]).clamp(min=0.0)
    while len(picks) < min(k, len(x)):
        d2[picks[-1]] = 0.0
        cdf = d2.double().cumsum(0)
        total = float(cdf[-1])
        if total <= 0:
            break
        u = torch.tensor([rng.random() * total], dtype=torch.float64, device=x.device)
        j = min(int(torch.searchsorted(cdf, u, right=True)), len(x) - 1)
        picks.append(j)
        d2 = torch.minimum(d2, (sq - 2.0 * (x @ x[j]) + sq[j]).clamp(min=0.0))
    return np.asarray(picks, dtype=np.int64)


def badge_sklearn(g: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import kmeans_plusplus

    _, idx = kmeans_plusplus(g, n_clusters=k, random_state=seed)
    return np.asarray(idx, dtype=np.int64)


def badge_reference_numpy(g: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The BADGE reference loop: largest-norm first, then D^2 sampling, pairwise_distances per pick."""
    from sklearn.metrics import pairwise_distances

    rng = np.random.default_rng(seed)
    picks = [int(np.argmax(np.linalg.norm(g, axis=1)))]
    d2 = pairwise_distances(g, g[picks[0]:picks[0] + 1])[:, 0].astype(np.float64) ** 2
    while len(picks) < k:
        d2[picks] = 0.0
        j = int(rng.choice(len(g), p=d2 / d2.sum()))
        picks.append(j)
        d2 = np.minimum(d2, pairwise_distances(g, g[j:j + 1])[:, 0].astype(np.float64) ** 2)
    return np.asarray(picks, dtype=np.int64)


# ---------------------------------------------------------------------- quality
def covering_radius(x: np.ndarray, centre_idx: np.ndarray, chunk: int = 8192) -> float:
    """max_i min_c |x_i - x_c|: the core-set objective (lower = better cover)."""
    xt = torch.as_tensor(x)
    c = xt[torch.as_tensor(np.asarray(centre_idx, dtype=np.int64))]
    worst = 0.0
    for a in range(0, len(xt), chunk):
        worst = max(worst, float(torch.cdist(xt[a:a + chunk], c).min(dim=1).values.max()))
    return worst


def kmeans_potential(x: np.ndarray, centre_idx: np.ndarray, chunk: int = 8192) -> float:
    """sum_i min_c |x_i - x_c|^2: what k-means++ seeding keeps small."""
    xt = torch.as_tensor(x)
    c = xt[torch.as_tensor(np.asarray(centre_idx, dtype=np.int64))]
    return float(sum(float((torch.cdist(xt[a:a + chunk], c).min(dim=1).values.double() ** 2).sum())
                     for a in range(0, len(xt), chunk)))


# ---------------------------------------------------------------------- runs
def _timed(fn: Callable[[], np.ndarray], repeats: int, device: Any = None,
           warmup: int = 1) -> tuple[dict, np.ndarray]:
    result: dict[str, np.ndarray] = {}

    def call() -> None:
        result["picks"] = fn()

    t = bc.time_call(call, repeats=repeats, warmup=warmup, device=device)
    return t.to_dict(), result["picks"]


def bench_config(n: int, dim: int, k: int, n_labelled: int, repeats: int, devices: list[torch.device],
                 peers: bool) -> dict[str, Any]:
    x = make_pool(n, dim, seed=n + dim)
    rng = np.random.default_rng(1)
    labelled = np.sort(rng.choice(n, n_labelled, replace=False))
    candidates = np.setdiff1d(np.arange(n), labelled)
    row: dict[str, Any] = {"n_slices": n, "dim": dim, "k": k, "n_labelled": n_labelled,
                           "coreset": {}, "badge": {}}

    # --- core-set
    cs = row["coreset"]
    peer_repeats = 1 if n >= 100_000 else repeats  # the peers take minutes there
    picks: dict[str, np.ndarray] = {}
    for dev in devices:
        cs[f"product_{dev.type}"], picks[f"product_{dev.type}"] = _timed(
            lambda dev=dev: k_center_greedy(x, candidates, labelled, k, dev), repeats, dev)
        cs[f"proposed_matvec_{dev.type}"], picks[f"proposed_matvec_{dev.type}"] = _timed(
            lambda dev=dev: kcenter_matvec(x, candidates, labelled, k, dev), repeats, dev)
    if peers:
        cs["peer_sklearn_pairwise"], picks["peer_sklearn_pairwise"] = _timed(
            lambda: kcenter_sklearn(x, candidates, labelled, k), peer_repeats, warmup=0)
    for name, p in picks.items():
        cs[name]["covering_radius"] = covering_radius(x, np.concatenate([labelled, p]))
        cs[name]["same_picks_as_product_cpu"] = bool(np.array_equal(p, picks["product_cpu"])) if "product_cpu" in picks else None
    if peers:
        for name in picks:
            if name.startswith(("product_", "proposed_")):
                cs[name]["speedup_vs_peer"] = cs["peer_sklearn_pairwise"]["median_s"] / cs[name]["median_s"]

    # --- BADGE (gradient embeddings: same geometry, own seed)
    bd = row["badge"]
    g = x[candidates]
    bpicks: dict[str, np.ndarray] = {}
    for dev in devices:
        bd[f"product_{dev.type}"], bpicks[f"product_{dev.type}"] = _timed(
            lambda dev=dev: kmeans_pp_seeding(g, k, np.random.default_rng(0), dev), repeats, dev)
        bd[f"proposed_matvec_{dev.type}"], bpicks[f"proposed_matvec_{dev.type}"] = _timed(
            lambda dev=dev: kmeanspp_matvec(g, k, np.random.default_rng(0), dev), repeats, dev)
    if peers:
        bd["peer_sklearn_kmeans_plusplus"], bpicks["peer_sklearn_kmeans_plusplus"] = _timed(
            lambda: badge_sklearn(g, k, 0), peer_repeats, warmup=0)
        bd["peer_badge_reference_numpy"], bpicks["peer_badge_reference_numpy"] = _timed(
            lambda: badge_reference_numpy(g, k, 0), peer_repeats, warmup=0)
    for name, p in bpicks.items():
        bd[name]["kmeans_potential"] = kmeans_potential(g, p)
        bd[name]["covering_radius"] = covering_radius(g, p)
        bd[name]["distinct_picks"] = int(len(np.unique(p)))
        if "product_cpu" in bpicks:
            bd[name]["picks_shared_with_product_cpu"] = int(len(np.intersect1d(p, bpicks["product_cpu"])))
    if peers:
        for name in bpicks:
            if name.startswith(("product_", "proposed_")):
                bd[name]["speedup_vs_sklearn"] = bd["peer_sklearn_kmeans_plusplus"]["median_s"] / bd[name]["median_s"]
                bd[name]["speedup_vs_reference"] = bd["peer_badge_reference_numpy"]["median_s"] / bd[name]["median_s"]
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = bc.common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="pool sizes (default 10000 100000)")
    parser.add_argument("--dims", type=int, nargs="+", default=None, help="embedding dims (default 256 512)")
    parser.add_argument("-k", type=int, default=None, help="slices to select (default 100)")
    parser.add_argument("--no-peers", action="store_true", help="product kernels only")
    args = parser.parse_args(argv)
    bc.apply_threads(args.threads)
    sizes = args.sizes or ([300] if args.tiny else [10_000, 100_000])
    dims = args.dims or ([16] if args.tiny else [256, 512])
    k = args.k or (5 if args.tiny else 100)
    repeats = args.repeats or (1 if args.tiny else 3)
    devices = bc.devices_to_run(args.device)

    t0 = time.perf_counter()
    machine = bc.describe_machine(devices[-1])
    rows = []
    for n in sizes:
        for dim in dims:
            row = bench_config(n, dim, k, n_labelled=max(1, n // 100), repeats=repeats, devices=devices,
                               peers=not args.no_peers)
            rows.append(row)
            _print_row(row)
    payload = {"tiny": args.tiny, "machine": machine, "repeats": repeats,
               "targets": {"coreset_100k_gpu_s": 1.0},
               "configs": rows, "wall_s": time.perf_counter() - t0}
    path = bc.write_results("query_selection" + ("_tiny" if args.tiny else ""), payload, args.out_dir)
    print(f"wrote {path}")
    return payload


def _print_row(row: dict[str, Any]) -> None:
    print(f"\nN={row['n_slices']} D={row['dim']} k={row['k']} labelled={row['n_labelled']}")
    lines = []
    for kind in ("coreset", "badge"):
        for name, r in row[kind].items():
            quality = (f"radius {r['covering_radius']:.3f}" if kind == "coreset"
                       else f"potential {r['kmeans_potential']:.4g}")
            speed = r.get("speedup_vs_peer") or r.get("speedup_vs_sklearn")
            lines.append([kind, name, bc.fmt_s(r["median_s"]), quality,
                          f"{speed:.2f}x" if speed else "", f"{r['memory']['rss_delta_mb']:.0f}"])
    bc.print_table(lines, ["strategy", "implementation", "median", "quality", "vs peer", "+RSS MiB"])


if __name__ == "__main__":
    main()
