#!/usr/bin/env python
"""Train the bundled change-segmentation weights on domain-randomised pairs (issue 13).

Each training pair comes from ``cohort/randomise.py`` (MNI and pycortex S1 subjects, every visit
its own contrast curve, grid, pose, bias and noise; 40 % lesion-free), goes
through the product's own ``prepare_pair`` (so train and use see the same
inputs), then gets a small residual misregistration (``randomise.misregister``)
and, with ``--matching pairwise``, the voxel-pairwise intensity match
(``intensity_match``). Prepared volumes are cached under ``--work``, so a rerun
only trains. Training uses the public ``training.train_model`` / ``TrainConfig``.
Held-out scores come from ``Testing/benchmarks/model_heldout/bench_model_heldout.py``.

    python Resources/Weights/train_bundled.py --work /tmp/bundled --n-pairs 36 --minutes 30
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
    p.add_argument("--work", required=True, help="scratch folder for the prepared pairs")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "change_unet.safetensors"))
    p.add_argument("--n-pairs", type=int, default=36, help="training pairs after the validation ones (3 per subject)")
    p.add_argument("--n-val", type=int, default=3, help="validation pairs: the first ones (whole subjects)")
    p.add_argument("--family", choices=("v1", "real1"), default="v1",
                   help="randomised family (cohort/randomise.py): v1, or real1 set from the real pairs (issue 24)")
    p.add_argument("--family-seed", type=int, default=1313, help="data seed of the randomised family")
    p.add_argument("--val-family-seed", type=int, default=None,
                   help="validate on --n-val fresh pairs of this family seed (whole subjects, other draws) instead of "
                        "the first --n-val pairs of --family-seed; all --n-pairs then train")
    p.add_argument("--matching", choices=("histogram", "pairwise"), default="histogram")
    p.add_argument("--init", default="", help="weights to start from ('bundled' or a path; empty = random)")
    p.add_argument("--empty-ratio", type=float, default=1.5, help="lesion-free slices per lesion slice")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=12)
    p.add_argument("--lesion-fraction", type=float, default=0.35, help="share of each batch from lesion slices")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=0.0, help="stop training after this long (0 = no limit)")
    p.add_argument("--prepare-only", action="store_true", help="prepare and cache the pairs, then stop")
    p.add_argument("--shard", default="0/1", help="with --prepare-only: prepare only subjects s with s %% N == K "
                   "(K/N), so N processes can fill the cache in parallel")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--cached-only", action="store_true",
                   help="train and validate on the pairs already prepared under --work (skip the others)")
    return p.parse_args(argv)


def cache_path(work: Path, seed: int, index: int, family: str = "v1") -> Path:
    """Where pair ``index`` of ``family``/``seed`` is cached once prepared."""
    from LongitudinalALLib.cohort import randomise

    return work / "prepared" / f"{randomise.pair_name(seed, index, family)}.npz"


def prepared_pair(work: Path, seed: int, index: int, subjects: dict, family: str = "v1") -> Path:
    """Render, prepare (the product's path) and misregister pair ``index``; cached volumes on the baseline grid."""
    import SimpleITK as sitk

    from LongitudinalALLib.cohort import randomise
    from LongitudinalALLib.imaging.prepare import prepare_pair

    path = cache_path(work, seed, index, family)
    if path.is_file():
        return path
    pair = randomise.make_pair(seed, index, subjects=subjects, family=family)
    pp = prepare_pair(pair.baseline, pair.followup, case_id=pair.pair_id, labels=pair.truth)
    moved = randomise.misregister(pp.baseline, pp.followup_registered, pp.foreground, pair.params["residual"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, baseline=sitk.GetArrayFromImage(pp.baseline), registered=sitk.GetArrayFromImage(moved),
                        foreground=sitk.GetArrayFromImage(pp.foreground), truth=sitk.GetArrayFromImage(pair.truth),
                        spacing=np.array(pp.baseline.GetSpacing()), origin=np.array(pp.baseline.GetOrigin()),
                        direction=np.array(pp.baseline.GetDirection()),
                        params=np.array(json.dumps(pair.params | {"qc": pp.qc.to_dict()})))
    tmp.replace(path)
    return path


def case_slices(path: Path, matching: str):
    """CaseSlices of a cached pair, the follow-up matched as the product would (``matching``)."""
    import SimpleITK as sitk

    from LongitudinalALLib.imaging.intensity_match import match_registered
    from LongitudinalALLib.imaging.pairing import pair_slices

    with np.load(path) as z:
        d = {k: z[k] for k in z.files}

    def img(a):
        im = sitk.GetImageFromArray(a)
        im.SetSpacing(tuple(map(float, d["spacing"]))), im.SetOrigin(tuple(map(float, d["origin"])))
        im.SetDirection(tuple(map(float, d["direction"])))
        return im

    base, reg, fg = img(d["baseline"]), img(d["registered"]), img(d["foreground"])
    if matching == "pairwise":
        reg = match_registered(reg, base, fg)
    return pair_slices(base, reg, fg, path.stem, labels=d["truth"])


def select(cases, rng: np.random.Generator, empty_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lesion slices plus ``empty_ratio`` times as many lesion-free tissue slices (at least 8 per pair)."""
    imgs, labs, fgs = [], [], []
    for c in cases:
        les = c.labels.reshape(len(c.labels), -1).any(1)
        tissue = c.foreground.reshape(len(c.foreground), -1).mean(1) > 0.05
        empty = np.flatnonzero(~les & tissue)
        n_empty = min(len(empty), max(8, int(round(empty_ratio * les.sum()))))
        keep = np.sort(np.concatenate([np.flatnonzero(les), rng.choice(empty, n_empty, replace=False)]))
        imgs.append(c.images[keep]), labs.append(c.labels[keep]), fgs.append(c.foreground[keep])
    return np.concatenate(imgs), np.concatenate(labs), np.concatenate(fgs)


def main(argv=None) -> int:
    args = parse_args(argv)
    from LongitudinalALLib.cohort import randomise
    from LongitudinalALLib.core.errors import InputError
    from LongitudinalALLib.model import ModelConfig, build_model, count_parameters, load_weights, save_weights
    from LongitudinalALLib.model.training import TrainConfig, train_model

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    t0 = time.perf_counter()
    subjects: dict = {}
    paths, failed = [], []
    shard, n_shards = (int(v) for v in args.shard.split("/"))
    n_family = args.n_pairs + (0 if args.val_family_seed is not None else args.n_val)
    for i in range(n_family):
        if args.prepare_only and (i // randomise.PAIRS_PER_SUBJECT) % n_shards != shard:
            continue
        if args.cached_only and not cache_path(work, args.family_seed, i, args.family).is_file():
            continue
        try:
            paths.append(prepared_pair(work, args.family_seed, i, subjects, args.family))
        except InputError as err:  # the product refuses the pair (e.g. registration on very thick slices)
            failed.append({"index": i, "error": err.problem})
            paths.append(None)
        print(f"prepared {i + 1}/{n_family} ({time.perf_counter() - t0:.0f} s)"
              + (f" refused: {failed[-1]['error']}" if paths[-1] is None else ""), flush=True)
    if args.val_family_seed is not None and not args.prepare_only:
        val_subjects: dict = {}
        val_p = [prepared_pair(work, args.val_family_seed, i, val_subjects, args.family) for i in range(args.n_val)
                 if not args.cached_only or cache_path(work, args.val_family_seed, i, args.family).is_file()]
        train_p = [p for p in paths if p is not None]
    else:
        val_p = [p for p in paths[:args.n_val] if p is not None]  # the first subjects validate
        train_p = [p for p in paths[args.n_val:] if p is not None]
    t_data = time.perf_counter() - t0
    if args.prepare_only:
        return 0
    rng = np.random.default_rng(args.seed)
    x, y, fg = select([case_slices(p, args.matching) for p in train_p], rng, args.empty_ratio)
    xv, yv, _ = select([case_slices(p, args.matching) for p in val_p], rng, args.empty_ratio)
    paths = train_p + val_p
    n_free = sum(1 for p in paths if not np.load(p)["truth"].any())
    print(f"training slices {len(x)} ({int(y.reshape(len(y), -1).any(1).sum())} with new lesions), "
          f"validation slices {len(xv)}; lesion-free pairs {n_free}/{len(paths)}", flush=True)

    cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                      crop_size=args.crop, lr=args.lr, patience=args.patience, seed=args.seed,
                      lesion_fraction=args.lesion_fraction,
                      max_seconds=args.minutes * 60 or None)  # the time cap re-plans the schedule to fit
    torch.manual_seed(args.seed)
    init = str(Path(__file__).resolve().parent / "change_unet.safetensors") if args.init == "bundled" else args.init
    model = load_weights(init) if init else build_model(ModelConfig())
    last = [0.0]

    def progress(stage: str, fraction: float, message: str = "") -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"  {stage} {100 * fraction:5.1f}% {message}", flush=True)

    result = train_model(model, x, y, xv, yv, cfg, train_foreground=fg, progress=progress)
    summary = {
        "command": "python Resources/Weights/train_bundled.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": {"family": f"cohort/randomise.py ({args.family})", "family_seed": args.family_seed,
                 "n_train_pairs": len(train_p),
                 "val_family_seed": args.val_family_seed,
                 "n_val_pairs": len(val_p), "lesion_free_pairs": n_free, "refused_pairs": failed, "matching": args.matching,
                 "init": args.init or "random", "seconds": round(t_data, 1)},
        "slices": {"size": 256, "spacing_mm": 1.0, "axis": "axial", "train": int(len(x)), "val": int(len(xv))},
        "train_config": cfg.to_dict(), "time_limit_minutes": args.minutes,
        "result": result.summary(), "history": result.history, "final_val_dice": result.best_val_dice,
        "parameters": count_parameters(model), "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.system()}, {torch.get_num_threads()} threads, "
                   f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    save_weights(model, args.out, summary)
    print(json.dumps({k: summary[k] for k in ("result", "final_val_dice", "data", "total_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
