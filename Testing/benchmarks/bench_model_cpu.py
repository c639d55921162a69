"""CPU cost of the default change-segmentation model at 256x256.

Prints the parameter count, the weight file size and the CPU throughput
(slices/s) of plain prediction, prediction with embeddings + BADGE gradients
and Monte-Carlo dropout with T=10, and writes them to
Testing/benchmarks/results/model_cpu.json. Timings on a shared machine are
inflated by other load; the load average is recorded beside them.

Usage: python Testing/benchmarks/bench_model_cpu.py [--slices 32] [--mc-slices 8] [--size 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from LongitudinalALLib.core import atomic
from LongitudinalALLib.model import ModelConfig, Predictor, build_model, count_parameters, save_weights

RESULTS = Path(__file__).resolve().parent / "results" / "model_cpu.json"


def _timed(fn, repeats: int = 2) -> float:
    """Best wall time of ``repeats`` runs (the best is the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=32)
    ap.add_argument("--mc-slices", type=int, default=8)
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg = ModelConfig()
    model = build_model(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "change_unet.safetensors"
        save_weights(model, path, {"benchmark": True})
        weight_bytes = path.stat().st_size

    pred = Predictor(model, device="cpu", batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.slices, 3, args.size, args.size)).astype(np.float32)
    fg = np.ones((args.slices, args.size, args.size), bool)
    pred.predict(images[: args.batch_size])  # warm-up (allocator, MKL-DNN kernels)

    t_plain = _timed(lambda: pred.predict(images))
    t_all = _timed(lambda: pred.predict_all(images, fg))
    mc_images = images[: args.mc_slices]
    t_mc = _timed(lambda: pred.mc_statistics(mc_images, passes=args.passes, foreground=fg[: args.mc_slices]), 1)

    result = {
        "config": cfg.to_dict(),
        "parameters": count_parameters(model),
        "weights_file_bytes": weight_bytes,
        "weights_file_mb": round(weight_bytes / 1e6, 3),
        "embedding_dim": cfg.embedding_dim,
        "image_size": [args.size, args.size],
        "batch_size": args.batch_size,
        "predict_slices_per_s": round(args.slices / t_plain, 2),
        "predict_all_slices_per_s": round(args.slices / t_all, 2),
        "mc_passes": args.passes,
        "mc_slices_per_s": round(args.mc_slices / t_mc, 3),
        "mc_forward_passes_per_s": round(args.mc_slices * args.passes / t_mc, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    width = max(map(len, result))
    for key, value in result.items():
        if key != "config":
            print(f"{key:<{width}}  {value}")
    atomic.write_json(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
