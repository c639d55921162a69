#!/usr/bin/env python
"""Train the bundled change-segmentation weights (change_unet.safetensors + .json).

Generates the simulated cohort (make-cohort) on real anatomy, prepares every
pair exactly as the product does (register, pair, 256x256 slices at 1 mm),
trains the default ChangeSegNet on the train split with the standard recipe
(training.py) and early stopping on the val split, scores the test split per
subject, and writes the weights with all settings in the sidecar metadata.

    python Resources/Weights/train_bundled.py --work /tmp/bundled

``--minutes`` bounds the training time on a CPU: training stops there and keeps
the best validation epoch so far.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="scratch folder for the cohort and the prepared slices")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "change_unet.safetensors"))
    p.add_argument("--n-pairs", type=int, default=12)
    p.add_argument("--cohort-seed", type=int, default=2025)
    p.add_argument("--spacing", type=float, default=1.0, help="cohort voxel size and model pixel size, mm")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--anatomies", default="mni,colin27")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=0.0, help="stop training after this long (0 = no limit)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    return p.parse_args(argv)


def stack(cases, rng: np.random.Generator, empty_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lesion slices plus ``empty_ratio`` times as many lesion-free slices with tissue: images, labels, foreground."""
    imgs, labs, fgs = [], [], []
    for oc in cases:
        c = oc.slices
        les = c.labels.reshape(len(c.labels), -1).any(1)
        tissue = c.foreground.reshape(len(c.foreground), -1).mean(1) > 0.05
        empty = np.flatnonzero(~les & tissue)
        n_empty = min(len(empty), max(2, int(round(empty_ratio * max(1, les.sum())))))
        keep = np.sort(np.concatenate([np.flatnonzero(les), rng.choice(empty, n_empty, replace=False)]))
        imgs.append(c.images[keep]), labs.append(c.labels[keep]), fgs.append(c.foreground[keep])
    return np.concatenate(imgs), np.concatenate(labs), np.concatenate(fgs)


def main(argv=None) -> int:
    args = parse_args(argv)
    from LongitudinalALLib.cohort.generator import CohortOptions, generate_cohort
    from LongitudinalALLib.model import ModelConfig, build_model, count_parameters, save_weights
    from LongitudinalALLib.simulate import evaluate, load_cohort_cases
    from LongitudinalALLib.training import TrainConfig, train_model

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    t0 = time.perf_counter()
    cohort_opts = CohortOptions(n_pairs=args.n_pairs, seed=args.cohort_seed, spacing_mm=args.spacing,
                                anatomies=tuple(a for a in args.anatomies.split(",") if a))
    manifest = work / "cohort" / "manifest.json"
    if not manifest.is_file():
        generate_cohort(work / "cohort", cohort_opts)
    print(f"cohort ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    kw = dict(size=args.size, spacing_mm=args.spacing, seed=args.seed, cache_dir=work / "prepared")
    train = load_cohort_cases(work / "cohort", ("train",), **kw)
    val = load_cohort_cases(work / "cohort", ("val",), **kw)
    test = load_cohort_cases(work / "cohort", ("test",), **kw)
    print(f"prepared {len(train)}/{len(val)}/{len(test)} pairs ({time.perf_counter() - t0:.0f} s)", flush=True)
    rng = np.random.default_rng(args.seed)
    x, y, fg = stack(train, rng, empty_ratio=1.0)
    xv, yv, _ = stack(val, rng, empty_ratio=1.0)
    print(f"training slices {len(x)} ({int(y.reshape(len(y), -1).any(1).sum())} with new lesions), "
          f"validation slices {len(xv)}", flush=True)

    cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                      crop_size=args.crop, lr=args.lr, patience=args.patience, seed=args.seed,
                      max_seconds=args.minutes * 60 or None)  # the time cap re-plans the schedule to fit
    torch.manual_seed(args.seed)
    model = build_model(ModelConfig())
    last = [0.0]

    def progress(stage: str, fraction: float, message: str = "") -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"  {stage} {100 * fraction:5.1f}% {message}", flush=True)

    result = train_model(model, x, y, xv, yv, cfg, train_foreground=fg, progress=progress)
    test_metrics = evaluate(model, test)
    summary = {
        "command": "python Resources/Weights/train_bundled.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cohort": {"n_pairs": args.n_pairs, "seed": args.cohort_seed, "spacing_mm": args.spacing,
                   "anatomies": args.anatomies, "pairs_per_split": [len(train), len(val), len(test)]},
        "slices": {"size": args.size, "spacing_mm": args.spacing, "axis": "axial",
                   "train": int(len(x)), "val": int(len(xv))},
        "train_config": cfg.to_dict(), "time_limit_minutes": args.minutes,
        "result": result.summary(), "history": result.history,
        "final_val_dice": result.best_val_dice,
        "test": {k: v for k, v in test_metrics.to_dict().items() if k != "subjects"},
        "parameters": count_parameters(model), "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.system()}, {torch.get_num_threads()} threads, "
                   f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    save_weights(model, args.out, summary)
    print(json.dumps({k: summary[k] for k in ("result", "final_val_dice", "test", "total_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
