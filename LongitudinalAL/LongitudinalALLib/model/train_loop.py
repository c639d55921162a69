"""One training run: optimiser steps in evaluation periods, validation, early stopping, kept weights.

Split from :mod:`training` (which decides the data, the plan and what to do
with a collapsed model) so that a recovery run ("train longer", "start
again") is the same loop with another plan.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, report
from LongitudinalALLib.model.augment import augment_batch, crop_arrays, lesion_biased_crops
from LongitudinalALLib.model.losses import build_loss
from LongitudinalALLib.model.metrics import dice_foreground
from LongitudinalALLib.model.probabilities import predict_probabilities
from LongitudinalALLib.model.train_anchor import L2SP, distill_loss, freeze_batch_norm
from LongitudinalALLib.model.train_plan import StepPlan, TimeBudget

REPLAN_EVERY = 1   # steps between re-plans against the wall-time cap: on a loaded machine one step can take
                   # tens of seconds, so waiting for 5 let a 20 s cap run for minutes


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def evaluate_dice(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device,
                  threshold: float = 0.5, batch_size: int = 16) -> float:
    """Pooled foreground Dice of thresholded predictions over (N,3,H,W)/(N,H,W)."""
    return dice_foreground(predict_probabilities(model, images, device, batch_size) >= threshold, labels)


def _batches(rng: np.random.Generator, n: int, lesion_idx: np.ndarray, cfg, steps: int) -> list[np.ndarray]:
    """Index batches for one period, each with ``lesion_fraction`` lesion slices when there are any."""
    out = []
    n_les = int(round(cfg.batch_size * cfg.lesion_fraction)) if len(lesion_idx) else 0
    for _ in range(steps):
        les = rng.choice(lesion_idx, size=n_les, replace=True) if n_les else np.empty(0, np.int64)
        rest = rng.integers(0, n, size=cfg.batch_size - n_les)
        out.append(np.concatenate([les, rest]).astype(np.int64))
    return out


def lr_factor(step: int, total: int) -> float:
    """10 % linear warm-up from 1/25 of the peak, then cosine decay to ~0 over the (possibly re-planned) total."""
    warm = max(1, int(0.1 * total))
    if step < warm:
        return 0.04 + 0.96 * step / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm)))) + 1e-4


@dataclass
class FitOutcome:
    history: list[dict[str, float]]     # one row per evaluation period
    best_epoch: int                     # period of the kept weights (0: none finished)
    best_val_dice: float                # NaN without validation
    steps: int
    planned_steps: int                  # after any wall-time re-plan
    stop_reason: str                    # "budget", "early_stop", "time_cap", "cancelled"
    note: str = ""                      # why the kept weights differ from the rule's choice


class _Stepper:
    """One optimiser step on a batch of slice indices (crop, augment, forward, backward)."""

    def __init__(self, model, data, cfg, device, seed: int, total: TimeBudget) -> None:
        self.model, self.data, self.cfg, self.device = model, data, cfg, device
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.use_amp = (device.type == "cuda") if cfg.amp is None else bool(cfg.amp and device.type == "cuda")
        self.loss_fn = build_loss(cfg.loss)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, total.total_steps))
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None
        self.l2sp = L2SP(model, cfg.l2sp)
        use = data.distill is not None and cfg.distill_weight > 0
        self.n_distill = max(1, int(round(cfg.batch_size * cfg.distill_fraction))) if use else 0

    def _crops(self, imgs, labs, fg, p_lesion):
        if self.cfg.crop_size:
            origins = lesion_biased_crops(labs, self.cfg.crop_size, p_lesion, self.rng, fg)
            imgs, labs = crop_arrays(imgs, labs, origins, self.cfg.crop_size)
        return imgs, labs

    def __call__(self, idx: np.ndarray) -> float:
        cfg, d = self.cfg, self.data
        fg = d.fg[idx] if d.fg is not None else None
        imgs, labs = self._crops(d.x[idx], d.y[idx], fg, cfg.p_lesion_crop)
        if self.n_distill:  # rehearsal: unlabelled slices, crops anywhere on tissue, soft targets
            r = d.distill
            j = self.rng.integers(0, len(r.x), size=self.n_distill)
            ri, rp = self._crops(r.x[j], r.p[j], r.fg[j] if r.fg is not None else None, 0.0)
            imgs, labs = np.concatenate([imgs, ri]), np.concatenate([labs, rp])
        x = torch.from_numpy(np.ascontiguousarray(imgs, dtype=np.float32))
        y = torch.from_numpy(np.ascontiguousarray(labs, dtype=np.float32))[:, None]
        if cfg.augment is not None:
            x, y = augment_batch(x, y, cfg.augment, self.gen)
        x, y = x.to(self.device), y.to(self.device)
        self.opt.zero_grad(set_to_none=True)
        ctx = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else contextlib.nullcontext()
        with ctx:
            logits = self.model(x)
        n = len(idx)
        loss = self.loss_fn(logits[:n].float(), y[:n]) + self.l2sp(self.model)
        if self.n_distill:
            loss = loss + cfg.distill_weight * distill_loss(logits[n:].float(), y[n:])
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        self.sched.step()
        return float(loss.detach())


def fit(model: nn.Module, data, cfg, plan: StepPlan, device: torch.device, seed: int, *,
        stop_after: int = 0, progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None, stage: str = "Training") -> FitOutcome:
    """Run ``plan`` on ``data`` (training._Data) and leave the kept weights loaded in ``model``.

    With validation (``data.xv``) the best period by validation Dice is kept and early
    stopping may end the run, but never before ``stop_after`` steps; a validation Dice
    that never left 0 measures nothing, so then the last weights are kept. Without
    validation the last finished period is kept. On cancel the loop stops between
    steps and the kept state so far (or the starting weights) is loaded.
    """
    torch.manual_seed(seed)
    model.to(device)
    budget = TimeBudget(cfg.max_seconds, plan.total_steps)
    step_fn = _Stepper(model, data, cfg, device, seed, budget)
    lesion_idx = np.flatnonzero(data.y.reshape(len(data.y), -1).any(1))
    use_val = data.xv is not None
    best_state, best, best_epoch, bad = cpu_state(model), -math.inf, 0, 0
    budget.start()
    history: list[dict[str, float]] = []
    step, epoch, stop = 0, 0, "budget"
    while step < budget.total_steps and stop == "budget":
        epoch += 1
        model.train()
        if cfg.freeze_bn:
            freeze_batch_norm(model)
        losses = []
        for idx in _batches(step_fn.rng, len(data.x), lesion_idx, cfg, min(plan.period, budget.total_steps - step)):
            if cancel is not None and cancel.cancelled:
                stop = "cancelled"
                break
            losses.append(step_fn(idx))
            step += 1
            if step % REPLAN_EVERY == 0:
                budget.replan(step)
            n_epochs = math.ceil(budget.total_steps / plan.period)
            report(progress, stage, step / budget.total_steps,
                   f"epoch {epoch}/{n_epochs} loss {np.mean(losses):.4f}")
            if step >= budget.total_steps:
                break
        if stop == "cancelled":
            break
        row = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)),
               "lr": float(step_fn.sched.get_last_lr()[0])}
        if use_val:
            row["val_dice"] = evaluate_dice(model, data.xv, data.yv, device, cfg.threshold)
        row["seconds"] = round(budget.elapsed(), 3)
        history.append(row)
        score = row["val_dice"] if use_val else float(epoch)
        if score > best + (cfg.min_delta if use_val and best_epoch else 0.0):
            best, best_epoch, bad = score, epoch, 0
            best_state = cpu_state(model)
        else:
            bad += 1
        budget.replan(step)
        if use_val and epoch >= cfg.min_epochs and bad >= cfg.patience and step >= stop_after:
            stop = "early_stop"
    if stop == "budget" and budget.capped:
        stop = "time_cap"
    note = ""
    if use_val and best_epoch and best <= 0.0 and stop != "cancelled":
        best_state, best_epoch, note = cpu_state(model), epoch, "validation Dice stayed 0: last weights kept"
    model.load_state_dict(best_state)
    model.eval()
    return FitOutcome(history, best_epoch, float(best) if use_val and best_epoch and not note else float("nan"),
                      step, budget.total_steps, stop, note)
