"""Where one CPU training step spends its time: the parts of ``train_loop._Stepper`` timed one by one.

Used by ``bench_accept_to_suggest.py --profile`` (issue 14). The step is rebuilt
here from the same library calls the loop makes (batch indices, lesion-biased
crop origins, crop, tensors, augmentation, forward, DiceFocal loss, backward,
AdamW + schedule), each part timed with ``process_time`` (CPU seconds, so a
loaded machine inflates it less than wall time) and ``perf_counter``. The
per-period work (a copy of the weights when there is no validation split,
validation Dice when there is) and the post-training collapse check are timed
too. Returns mean seconds per step (or per call) per part.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections import defaultdict

import numpy as np
import torch


class _Clock:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def part(self, name: str):
        c, w = time.process_time(), time.perf_counter()
        yield
        self.cpu[name] += time.process_time() - c
        self.wall[name] += time.perf_counter() - w


def profile_steps(model, images: np.ndarray, labels: np.ndarray, foreground: np.ndarray | None, cfg,
                  steps: int = 20, warmup: int = 3, channels_last: bool = False) -> dict:
    """Time ``steps`` training steps of ``cfg`` on images (N,3,H,W), labels (N,H,W); model is not changed."""
    from LongitudinalALLib.model.augment import augment_batch, crop_arrays, lesion_biased_crops
    from LongitudinalALLib.model.losses import build_loss
    from LongitudinalALLib.model.train_collapse import check_lesion_slices
    from LongitudinalALLib.model.train_loop import _batches, cpu_state, evaluate_dice, lr_factor

    model = copy.deepcopy(model).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    y_all = (labels > 0).astype(np.float32)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    loss_fn = build_loss(cfg.loss)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps + warmup))
    les = np.flatnonzero(y_all.reshape(len(y_all), -1).any(1))
    clock = _Clock()
    for i in range(warmup + steps):
        if i == warmup:
            clock = _Clock()
        with clock.part("batch_indices"):
            idx = _batches(rng, len(images), les, cfg, 1)[0]
        with clock.part("crop"):
            imgs, labs = images[idx], y_all[idx]
            if cfg.crop_size:
                fg = foreground[idx] if foreground is not None else None
                origins = lesion_biased_crops(labs, cfg.crop_size, cfg.p_lesion_crop, rng, fg)
                imgs, labs = crop_arrays(imgs, labs, origins, cfg.crop_size)
        with clock.part("to_tensor"):
            x = torch.from_numpy(np.ascontiguousarray(imgs, dtype=np.float32)).contiguous(memory_format=fmt)
            y = torch.from_numpy(np.ascontiguousarray(labs, dtype=np.float32))[:, None]
        with clock.part("augment"):
            if cfg.augment is not None:
                x, y = augment_batch(x, y, cfg.augment, gen)
        with clock.part("forward"):
            opt.zero_grad(set_to_none=True)
            logits = model(x)
        with clock.part("loss"):
            loss = loss_fn(logits.float(), y)
        with clock.part("backward"):
            loss.backward()
        with clock.part("optimizer"):
            opt.step()
            sched.step()
            float(loss.detach())
    per_step = {k: round(v / steps, 4) for k, v in clock.cpu.items()}
    wall_step = {k: round(v / steps, 4) for k, v in clock.wall.items()}
    once = _Clock()
    with once.part("period_weight_copy"):
        cpu_state(model)
    with once.part("period_validation_dice"):
        evaluate_dice(model, images, y_all, torch.device("cpu"), cfg.threshold)
    with once.part("collapse_check"):
        check_lesion_slices(model, images, y_all, torch.device("cpu"), cfg.threshold)
    return {"steps_timed": steps, "crop_size": cfg.crop_size, "batch_size": cfg.batch_size,
            "augment": cfg.augment is not None, "channels_last": channels_last,
            "cpu_s_per_step": per_step, "cpu_s_per_step_total": round(sum(per_step.values()), 4),
            "wall_s_per_step": wall_step, "wall_s_per_step_total": round(sum(wall_step.values()), 4),
            "cpu_s_per_call": {k: round(v, 4) for k, v in once.cpu.items()},
            "wall_s_per_call": {k: round(v, 4) for k, v in once.wall.items()},
            "note": f"validation Dice timed on the {len(images)} labelled slices (a split would be a part of them)"}
