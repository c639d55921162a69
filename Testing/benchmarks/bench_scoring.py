"""Scoring throughput (slices/s): plain inference and MC-dropout BALD, product vs two peers.

Timed on one pool of real-anatomy slice pairs (MNI ICBM152 T1 axial slices,
padded to the product's 256x256 window; follow-up = baseline with a smooth
intensity change and noise; difference = follow-up - baseline) and one network
(the bundled model when present, else a freshly built default ChangeSegNet):

* product: ``model.inference.Predictor.predict`` and ``.mc_statistics``
  (T passes streamed per batch), fp32 and mixed precision (CUDA: the
  Predictor's own fp16 autocast; CPU: a bf16-autocast subclass, timed here as a
  proposal because the Predictor enables autocast on CUDA only), optionally
  channels_last and torch.compile;
* peer 1, the naive loop of the LMI-AL reference code: the model is rebuilt and
  its state dict re-read from disk (``torch.load``) for every call of 8 slices,
  fp32 under ``no_grad``, T separate passes whose full maps are kept and turned
  into BALD with NumPy;
* peer 2, baal 2.x (``MCDropoutModule`` + ``ModelWrapper.predict_on_batch(x,
  iterations=T)`` + ``BALD(reduction='mean')``), run in the separate virtualenv
  ``.venv-baal`` (Testing/benchmarks/setup_baal_env.sh) as a subprocess on the
  same pool file and weights file; skipped with a note when that env is absent.

BALD scores of every implementation are compared with the product's (Spearman
rank correlation; the dropout masks differ, so they agree only statistically).
Speed-ups are peer time / product time on the same device and pool.

Run:  .venv/bin/python Testing/benchmarks/bench_scoring.py [--tiny] [--device all|cpu|cuda] [--compile]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

BAAL_PYTHON = bc.REPO_ROOT / ".venv-baal" / "bin" / "python"
TINY_CONFIG = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 1, "head_features": 4}


# ---------------------------------------------------------------------- pool
def make_pool(n: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, size, size) float32 slice pairs and (N, size, size) bool foreground from the MNI T1."""
    import SimpleITK as sitk
    from nilearn.datasets import MNI152_FILE_PATH

    vol = sitk.GetArrayFromImage(sitk.ReadImage(str(MNI152_FILE_PATH))).astype(np.float32)  # (z, y, x)
    vol /= max(float(np.percentile(vol[vol > 0], 99)), 1e-6)
    zs = np.flatnonzero((vol > 0.1).mean(axis=(1, 2)) > 0.02)  # slices with brain
    picks = zs[np.linspace(0, len(zs) - 1, n).round().astype(int)] if n <= len(zs) else np.resize(zs, n)
    rng = np.random.default_rng(seed)
    h, w = vol.shape[1:]
    out = np.zeros((n, 3, size, size), dtype=np.float32)
    ch, cw = min(h, size), min(w, size)
    y0, x0, oy, ox = (h - ch) // 2, (w - cw) // 2, (size - ch) // 2, (size - cw) // 2
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i, z in enumerate(picks):
        base = np.zeros((size, size), dtype=np.float32)
        base[oy:oy + ch, ox:ox + cw] = vol[z, y0:y0 + ch, x0:x0 + cw]
        gain = 1.0 + 0.05 * np.sin(2 * np.pi * (yy + xx + rng.uniform()))
        fu = base * gain.astype(np.float32) + rng.normal(0, 0.01, base.shape).astype(np.float32) * (base > 0)
        out[i] = base, fu, fu - base
    return out, out[:, 0] > 0.1


# ---------------------------------------------------------------------- peers
def bald_numpy(preds: np.ndarray) -> np.ndarray:
    """(T, B, H, W) sigmoid outputs -> (B,) mean-over-pixels BALD (nats), the reference way."""
    eps = 1e-12
    p = np.clip(preds.astype(np.float64), eps, 1 - eps)
    h = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    m = p.mean(axis=0)
    return (-(m * np.log(m) + (1 - m) * np.log(1 - m)) - h.mean(axis=0)).reshape(len(m), -1).mean(axis=1)


def naive_loop(state_path: Path, cfg: Any, images: np.ndarray, device: torch.device, passes: int,
               batch_size: int = 8) -> np.ndarray:
    """LMI-AL reference style: reload per call of ``batch_size`` slices, fp32, T passes kept whole."""
    from LongitudinalALLib.model import build_model
    from LongitudinalALLib.model.network import dropout_modules

    scores = []
    for a in range(0, len(images), batch_size):
        model = build_model(cfg)
        model.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
        model.to(device).eval()
        if passes > 1:
            for d in dropout_modules(model):
                d.train()
        x = torch.from_numpy(images[a:a + batch_size]).to(device)
        with torch.no_grad():
            preds = np.stack([torch.sigmoid(model(x))[:, 0].cpu().numpy() for _ in range(passes)])
        scores.append(bald_numpy(preds) if passes > 1 else preds[0].reshape(len(x), -1).mean(axis=1))
    return np.concatenate(scores)


def run_baal(pool_path: Path, weights_path: Path, device: torch.device, passes: int, batch_size: int,
             repeats: int) -> dict[str, Any]:
    """Time baal in .venv-baal (subprocess); returns its JSON or {'skipped': reason}."""
    if not BAAL_PYTHON.exists():
        return {"skipped": f"{BAAL_PYTHON} missing: run Testing/benchmarks/setup_baal_env.sh"}
    out = pool_path.with_name("baal_result.json")
    cmd = [str(BAAL_PYTHON), __file__, "--baal-worker", "--pool", str(pool_path), "--weights", str(weights_path),
           "--device", str(device), "--passes", str(passes), "--batch-size", str(batch_size),
           "--repeats", str(repeats), "--worker-out", str(out)]
    env = {"PYTHONPATH": str(bc.REPO_ROOT / "LongitudinalAL"), "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"skipped": f"baal worker failed (rc {proc.returncode}): {proc.stderr.strip()[-800:]}"}
    return json.loads(out.read_text())


def baal_worker(args: argparse.Namespace) -> None:
    """Runs inside .venv-baal: baal's own MC-dropout prediction and BALD heuristic."""
    from importlib.metadata import version

    import baal
    from baal.active.heuristics import BALD
    from baal.bayesian.dropout import MCDropoutModule
    from baal.modelwrapper import ModelWrapper, TrainingArgs

    from LongitudinalALLib.model import load_weights

    class TwoClass(torch.nn.Module):
        """(B,3,H,W) -> (B,2,H,W) class probabilities [1-p, p], the layout baal's heuristics expect."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logit = self.net(x)
            return torch.softmax(torch.cat([torch.zeros_like(logit), logit], dim=1), dim=1)

    device = torch.device(args.device)
    images = np.load(args.pool)
    model = MCDropoutModule(TwoClass(load_weights(args.weights))).to(device)
    wrapper = ModelWrapper(model, TrainingArgs(batch_size=args.batch_size, use_cuda=device.type == "cuda"))
    wrapper.eval()
    heuristic = BALD(reduction="mean")
    result: dict[str, np.ndarray] = {}

    def call() -> None:
        scores = []
        for a in range(0, len(images), args.batch_size):
            x = torch.from_numpy(images[a:a + args.batch_size])
            preds = wrapper.predict_on_batch(x, iterations=args.passes).cpu().numpy()  # (B, 2, H, W, T)
            scores.append(heuristic.get_uncertainties(preds))
        result["scores"] = np.concatenate(scores)

    wrapper.predict_on_batch(torch.from_numpy(images[:args.batch_size]), iterations=2)  # warm-up
    t = bc.time_call(call, repeats=args.repeats, warmup=0, device=device)
    doc = {**t.to_dict(), "baal_version": version("baal"), "batch_size": args.batch_size,
           "replicate_in_memory": True, "scores": result["scores"].tolist(), "n": int(len(images)),
           "baal_module": baal.__name__}
    Path(args.worker_out).write_text(json.dumps(doc, default=bc._json_default))


# ---------------------------------------------------------------------- product
def product_predictor(model: Any, device: torch.device, precision: str, channels_last: bool,
                      batch_size: int | None) -> Any:
    """The product Predictor; CPU bf16 through a subclass (the Predictor autocasts on CUDA only)."""
    from LongitudinalALLib.model import Predictor

    if precision == "fp32":
        return Predictor(model, device, batch_size=batch_size, amp=False, channels_last=channels_last)
    if device.type == "cuda" and precision == "fp16":
        return Predictor(model, device, batch_size=batch_size, amp=True, channels_last=channels_last)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16

    class AutocastPredictor(Predictor):
        def _autocast(self):  # noqa: D401 - proposal: autocast on any device
            return torch.autocast(device_type=self.device.type, dtype=dtype)

    return AutocastPredictor(model, device, batch_size=batch_size, amp=False, channels_last=channels_last)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def bench_device(device: torch.device, model: Any, cfg: Any, state_path: Path, weights_path: Path,
                 pool: np.ndarray, fg: np.ndarray, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    cuda = device.type == "cuda"
    n_plain = args.plain_slices or (8 if args.tiny else (2048 if cuda else 32))
    n_mc = args.mc_slices or (8 if args.tiny else (512 if cuda else 16))
    repeats = args.repeats or (1 if args.tiny or not cuda else 3)
    warm = 0 if not cuda else 1  # CPU: a short warm-up call below instead of a whole repeat
    plain_x, mc_x, mc_fg = np.resize(pool, (n_plain, *pool.shape[1:])), pool[:n_mc], fg[:n_mc]
    amp = "fp16" if cuda else "bf16"
    res: dict[str, Any] = {"device": str(device), "plain_slices": n_plain, "mc_slices": n_mc,
                           "passes": args.passes, "repeats": repeats, "plain": {}, "mc_dropout": {}}
    variants = [("fp32", False), (amp, False)] + ([("fp32", True), (amp, True)] if cuda else [])
    mc_scores: dict[str, np.ndarray] = {}
    for precision, cl in variants:
        name = f"product_{precision}" + ("_channels_last" if cl else "")
        pred = product_predictor(model, device, precision, cl, args.batch_size)
        if args.compile:
            pred.model = torch.compile(pred.model)
            name += "_compiled"
        # warm-up with full batches of both kinds: the first dropout-mode pass on CPU costs seconds
        # (allocator, oneDNN primitives), which would otherwise be charged to whichever call runs first
        pred.predict(pool[:pred.batch_size])
        pred.mc_statistics(pool[:pred.batch_size], passes=2)
        t = bc.time_call(lambda: pred.predict(plain_x), repeats=repeats, warmup=warm, device=device)
        res["plain"][name] = {**t.to_dict(), "slices_per_s": n_plain / t.median_s, "batch_size": pred.batch_size}
        out: dict[str, Any] = {}
        t = bc.time_call(lambda: out.update(s=pred.mc_statistics(mc_x, passes=args.passes, foreground=None)),
                         repeats=repeats, warmup=warm, device=device)
        mc_scores[name] = out["s"].mutual_information
        res["mc_dropout"][name] = {**t.to_dict(), "slices_per_s": n_mc / t.median_s, "batch_size": pred.batch_size}
    model.to("cpu")

    # peer 1: naive reference loop (same device, batch 8, fp32, reload per call)
    naive: dict[str, Any] = {}
    naive_loop(state_path, cfg, mc_x[:8], device, 2)  # warm-up, like the others
    t = bc.time_call(lambda: naive_loop(state_path, cfg, plain_x, device, 1), repeats=repeats, warmup=0,
                     device=device)
    res["plain"]["peer_naive_reload_b8_fp32"] = {**t.to_dict(), "slices_per_s": n_plain / t.median_s}
    t = bc.time_call(lambda: naive.update(s=naive_loop(state_path, cfg, mc_x, device, args.passes)),
                     repeats=repeats, warmup=0, device=device)
    mc_scores["peer_naive_reload_b8_fp32"] = naive["s"]
    res["mc_dropout"]["peer_naive_reload_b8_fp32"] = {**t.to_dict(), "slices_per_s": n_mc / t.median_s}

    # peer 2: baal in its own virtualenv
    if not args.no_baal:
        pool_path = tmp / "mc_pool.npy"
        np.save(pool_path, mc_x)
        b = run_baal(pool_path, weights_path, device, args.passes, args.baal_batch_size or 8, repeats)
        if "scores" in b:
            mc_scores["peer_baal"] = np.asarray(b.pop("scores"))
            b["slices_per_s"] = n_mc / b["median_s"]
        res["mc_dropout"]["peer_baal"] = b

    ref = mc_scores.get("product_fp32")
    for name, s in mc_scores.items():
        res["mc_dropout"][name]["bald_spearman_vs_product_fp32"] = spearman(ref, s)
    for kind in ("plain", "mc_dropout"):
        rows = res[kind]
        best = min((v["median_s"], k) for k, v in rows.items() if k.startswith("product_"))
        res[f"{kind}_best_product"] = best[1]
        for peer in [k for k in rows if k.startswith("peer_") and "median_s" in rows[k]]:
            res[f"{kind}_speedup_vs_{peer[5:]}"] = {
                "best_product": rows[peer]["median_s"] / best[0],
                "product_fp32": rows[peer]["median_s"] / rows["product_fp32"]["median_s"]}
    return res


def load_model(tiny: bool) -> tuple[Any, str]:
    from LongitudinalALLib.model import ModelConfig, build_model, load_bundled_model

    if tiny:
        return build_model(ModelConfig(**TINY_CONFIG)), "tiny random-init ChangeSegNet"
    try:
        return load_bundled_model(), "bundled model"
    except Exception as err:  # noqa: BLE001 - bundled weights may not exist yet: say so in the JSON
        return build_model(), f"freshly built default ChangeSegNet (bundled model unavailable: {err})"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = bc.common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--passes", type=int, default=10, help="MC-dropout passes T")
    parser.add_argument("--plain-slices", type=int, default=None)
    parser.add_argument("--mc-slices", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="product batch size (default: Predictor's)")
    parser.add_argument("--baal-batch-size", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile the product model")
    parser.add_argument("--no-baal", action="store_true")
    parser.add_argument("--baal-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pool", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baal_worker:
        args.repeats = args.repeats or 1
        baal_worker(args)
        return {}
    bc.apply_threads(args.threads)
    from LongitudinalALLib.model import save_weights

    t0 = time.perf_counter()
    model, model_note = load_model(args.tiny)
    size = 32 if args.tiny else 256
    n = max(args.plain_slices or 0, args.mc_slices or 0, 8 if args.tiny else 64)
    pool, fg = make_pool(min(n, 180), size)
    devices = bc.devices_to_run(args.device)
    payload: dict[str, Any] = {"tiny": args.tiny, "machine": bc.describe_machine(devices[-1]),
                               "model": model_note, "model_config": model.cfg.to_dict(), "slice_size": size,
                               "targets": {"mc_dropout_speedup_vs_naive": 20.0}, "devices": {}}
    with tempfile.TemporaryDirectory(prefix="bench_scoring_") as tmp_name:
        tmp = Path(tmp_name)
        weights_path = tmp / "model.safetensors"
        save_weights(model, weights_path, {"purpose": "benchmark"})
        state_path = tmp / "model_state.pt"
        torch.save(model.state_dict(), state_path)
        for dev in devices:
            payload["devices"][dev.type] = bench_device(dev, model, model.cfg, state_path, weights_path,
                                                        pool, fg, args, tmp)
            _print_device(payload["devices"][dev.type])
    payload["wall_s"] = time.perf_counter() - t0
    path = bc.write_results("scoring" + ("_tiny" if args.tiny else ""), payload, args.out_dir)
    print(f"wrote {path}")
    return payload


def _print_device(res: dict[str, Any]) -> None:
    print(f"\n{res['device']}: plain {res['plain_slices']} slices, MC dropout T={res['passes']} "
          f"on {res['mc_slices']} slices")
    rows = []
    for kind in ("plain", "mc_dropout"):
        for name, r in res[kind].items():
            if "median_s" not in r:
                rows.append([kind, name, "-", "-", "-", r.get("skipped", "")[:60]])
                continue
            mem = r.get("memory") or {}
            rows.append([kind, name, bc.fmt_s(r["median_s"]), f"{r['slices_per_s']:.2f}",
                         f"{mem.get('rss_delta_mb', 0):.0f}/{mem.get('gpu_peak_mb') or 0:.0f}",
                         f"{r.get('bald_spearman_vs_product_fp32', float('nan')):.2f}"])
    bc.print_table(rows, ["kind", "implementation", "median", "slices/s", "+RSS/GPU MiB", "BALD rho"])
    for key, v in res.items():
        if "_speedup_vs_" in key:
            print(f"{key}: best product {v['best_product']:.2f}x, fp32 product {v['product_fp32']:.2f}x")


if __name__ == "__main__":
    main()
