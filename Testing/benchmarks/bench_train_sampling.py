#!/usr/bin/env python
"""Batch assembly for training: our batched crops and augmentation against MONAI's per-sample transforms.

Issue 10 asks to replace hand-written pieces by MONAI or torch where that is not
slower, keeping a batched path only where a benchmark shows it faster. One
training batch (B slices of 3 x H x W with their labels) is cropped around
lesions and augmented, both ways, with the same probabilities and ranges:

* ours: ``augment.lesion_biased_crops`` + ``crop_arrays`` (numpy) and
  ``augment_batch`` (one torch call for the whole batch: flips, one
  ``affine_grid``/``grid_sample`` for rotation+zoom, gain and noise);
* MONAI: ``RandCropByPosNegLabeld`` -> ``RandFlipd`` (both axes) ->
  ``RandAffined`` (rotation, zoom; bilinear image, nearest label) ->
  ``RandScaleIntensityd`` -> ``RandGaussianNoised`` per sample, then stacked;
* torch's ``WeightedRandomSampler`` against ``train_loop._batches`` for drawing
  the batch's slice indices with half of them lesion slices.

Prints milliseconds per batch (median of repeats, one thread) and writes JSON.

    .venv/bin/python Testing/benchmarks/bench_train_sampling.py
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_common import describe_machine, time_call, write_results  # noqa: E402


def _data(n: int, size: int, rng: np.random.Generator):
    images = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), np.float32)
    for i in range(0, n, 2):  # half the slices hold a small lesion
        y, x = rng.integers(20, size - 20, 2)
        labels[i, y - 4:y + 4, x - 4:x + 4] = 1
    return images, labels, np.ones((n, size, size), bool)


def ours(images, labels, fg, crop, rng, gen):
    from LongitudinalALLib.model.augment import AugmentConfig, augment_batch, crop_arrays, lesion_biased_crops

    origins = lesion_biased_crops(labels, crop, 0.8, rng, fg)
    imgs, labs = crop_arrays(images, labels, origins, crop)
    return augment_batch(torch.from_numpy(imgs), torch.from_numpy(labs)[:, None], AugmentConfig(), gen)


def monai_pipeline(crop: int, seed: int):
    from monai.transforms import (
        Compose,
        RandAffined,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandGaussianNoised,
        RandScaleIntensityd,
    )

    keys = ("image", "label")
    t = Compose([
        RandCropByPosNegLabeld(keys, label_key="label", spatial_size=(crop, crop), pos=0.8, neg=0.2, num_samples=1),
        RandFlipd(keys, prob=0.5, spatial_axis=0), RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandAffined(keys, prob=0.5, rotate_range=math.radians(10), scale_range=0.1, mode=("bilinear", "nearest"),
                    padding_mode="zeros"),
        RandScaleIntensityd("image", factors=0.1, prob=0.5), RandGaussianNoised("image", prob=0.5, std=0.02),
    ])
    t.set_random_state(seed)
    return t


def monai(images, labels, pipeline):
    out = [pipeline({"image": images[i], "label": labels[i][None]})[0] for i in range(len(images))]
    return torch.stack([torch.as_tensor(o["image"]) for o in out]), torch.stack([torch.as_tensor(o["label"]) for o in out])


def sampler_ours(rng, n, lesion_idx, steps, batch):
    from LongitudinalALLib.model.train_loop import _batches

    return _batches(rng, n, lesion_idx, SimpleNamespace(batch_size=batch, lesion_fraction=0.5), steps)


def sampler_torch(n, lesion_idx, steps, batch, gen):
    from torch.utils.data import WeightedRandomSampler

    w = np.full(n, 0.5 / max(1, n - len(lesion_idx)))
    w[lesion_idx] = 0.5 / max(1, len(lesion_idx))
    s = iter(WeightedRandomSampler(torch.as_tensor(w), steps * batch, replacement=True, generator=gen))
    return [np.array([next(s) for _ in range(batch)]) for _ in range(steps)]


def _median_ms(fn, repeats: int) -> float:
    return 1000 * time_call(fn, repeats=repeats, warmup=1, memory=False).median_s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args(argv)
    if args.tiny:
        args.batch, args.size, args.crop, args.repeats = 4, 64, 32, 3
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images, labels, fg = _data(4 * args.batch, args.size, rng)
    pick = lambda: rng.choice(len(images), args.batch, replace=False)  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    pipe = monai_pipeline(args.crop, 0)
    lesion_idx = np.arange(0, 200, 2)
    res = {
        "ours_ms": _median_ms(lambda: ours(*(a[pick()] for a in (images, labels, fg)), args.crop, rng, gen), args.repeats),
        "monai_ms": _median_ms(lambda: monai(*(a[pick()] for a in (images, labels)), pipe), args.repeats),
        "sampler_ours_ms_per_100_batches": _median_ms(lambda: sampler_ours(rng, 200, lesion_idx, 100, args.batch),
                                                      args.repeats),
        "sampler_torch_ms_per_100_batches": _median_ms(lambda: sampler_torch(200, lesion_idx, 100, args.batch, gen),
                                                       args.repeats),
    }
    res["monai_over_ours"] = res["monai_ms"] / res["ours_ms"]
    res["torch_sampler_over_ours"] = res["sampler_torch_ms_per_100_batches"] / res["sampler_ours_ms_per_100_batches"]
    for k, v in res.items():
        print(f"{k:36s} {v:9.2f}")
    write_results("train_sampling", {"benchmark": "train_sampling", "tiny": args.tiny, "args": vars(args),
                                     "command": "python Testing/benchmarks/bench_train_sampling.py "
                                     + " ".join(sys.argv[1:] if argv is None else argv),
                                     **res, "machine": describe_machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
