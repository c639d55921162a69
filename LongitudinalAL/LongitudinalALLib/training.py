"""Train the change segmenter on labelled slices (arrays in, best weights out).

The recipe is built for few labels on a CPU: random crops biased towards
lesions (a 128x128 crop of a 256x256 slice costs a quarter of the compute),
oversampling of the rare lesion slices in every batch, light augmentation,
Dice + focal loss, AdamW, and early stopping on a validation split of the
labelled slices (those labels count in the budget too). A seed fixes every
random draw, so two runs with the same inputs give the same weights on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .augment import AugmentConfig, augment_batch, crop_arrays, lesion_biased_crops
from .errors import InputError
from .losses import build_loss
from .metrics import dice_foreground
from .progress import CancelToken, ProgressCallback, report


@dataclass
class TrainConfig:
    """Training recipe; every field is stored with the checkpoint it produced."""

    epochs: int = 40
    batch_size: int = 8
    steps_per_epoch: int | None = None   # None: ceil(n_train / batch_size), at least min_steps
    min_steps: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    crop_size: int | None = 128          # None: whole slices
    p_lesion_crop: float = 0.8           # crop centred on a lesion when the slice has one
    lesion_fraction: float = 0.5         # share of each batch drawn from lesion slices
    loss: str = "dicefocal"
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    patience: int = 8                    # epochs without validation improvement
    min_delta: float = 1e-3              # smaller validation gains do not count as improvement
    min_epochs: int = 2
    threshold: float = 0.5
    amp: bool | None = None              # None: on for CUDA only
    device: str | None = None            # None: CUDA when present
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        aug = d.pop("augment", None)
        cfg = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        cfg.augment = AugmentConfig(**aug) if isinstance(aug, dict) else (aug if aug is None else AugmentConfig())
        return cfg


@dataclass
class TrainResult:
    history: list[dict[str, float]]      # one row per epoch
    best_epoch: int                      # 1-based; 0 when no epoch finished
    best_val_dice: float                 # NaN without validation data
    state_dict: dict[str, torch.Tensor]  # best weights, on the CPU
    stopped_early: bool = False
    cancelled: bool = False
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-friendly digest (no tensors)."""
        return {
            "best_epoch": self.best_epoch, "best_val_dice": self.best_val_dice,
            "epochs_run": len(self.history), "stopped_early": self.stopped_early,
            "cancelled": self.cancelled, "seconds": round(self.seconds, 2),
            "final_train_loss": self.history[-1]["train_loss"] if self.history else float("nan"),
        }


def _check_arrays(images: np.ndarray, labels: np.ndarray, what: str) -> None:
    if images.ndim != 4 or labels.ndim != 3 or images.shape[0] != labels.shape[0] \
            or images.shape[2:] != labels.shape[1:]:
        raise InputError(
            f"{what} images {images.shape} and labels {labels.shape} do not match.",
            "Pass images (N, 3, H, W) and labels (N, H, W) for the same slices.",
        )
    if len(images) == 0:
        raise InputError(f"No {what.lower()} slices were given.", "Label at least one slice first.")


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def evaluate_dice(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device,
                  threshold: float = 0.5, batch_size: int = 16) -> float:
    """Pooled foreground Dice of thresholded predictions over (N,3,H,W)/(N,H,W)."""
    model.eval()
    preds = np.empty(labels.shape, dtype=bool)
    with torch.inference_mode():
        for a in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[a:a + batch_size], dtype=np.float32)).to(device)
            preds[a:a + batch_size] = (torch.sigmoid(model(x).float())[:, 0] >= threshold).cpu().numpy()
    return dice_foreground(preds, labels)


def _batches(rng: np.random.Generator, n: int, lesion_idx: np.ndarray, cfg: TrainConfig,
             steps: int) -> list[np.ndarray]:
    """Index batches for one epoch, each with ``lesion_fraction`` lesion slices when there are any."""
    out = []
    n_les = int(round(cfg.batch_size * cfg.lesion_fraction)) if len(lesion_idx) else 0
    for _ in range(steps):
        les = rng.choice(lesion_idx, size=n_les, replace=True) if n_les else np.empty(0, np.int64)
        rest = rng.integers(0, n, size=cfg.batch_size - n_les)
        out.append(np.concatenate([les, rest]).astype(np.int64))
    return out


def train_model(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    config: TrainConfig | None = None,
    *,
    train_foreground: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Train ``model`` in place and leave the best weights loaded in it.

    train_images (N,3,H,W) float32, train_labels (N,H,W) {0,1}; optional
    validation arrays of the same layout drive early stopping and the choice of
    the best epoch (without them the last epoch is kept). ``train_foreground``
    (N,H,W) bool steers crops of lesion-free slices onto tissue. On cancel the
    loop stops between steps, the best state so far (or the starting weights)
    is loaded and the result has ``cancelled=True``.
    """
    cfg = config or TrainConfig()
    train_labels = (np.asarray(train_labels) > 0).astype(np.float32)
    _check_arrays(train_images, train_labels, "Training")
    has_val = val_images is not None and val_labels is not None and len(val_images) > 0
    if has_val:
        val_labels = (np.asarray(val_labels) > 0)
        _check_arrays(val_images, val_labels, "Validation")

    device = torch.device(cfg.device) if cfg.device else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    use_amp = (device.type == "cuda") if cfg.amp is None else bool(cfg.amp and device.type == "cuda")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    model.to(device)
    loss_fn = build_loss(cfg.loss)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    n = len(train_images)
    steps = cfg.steps_per_epoch or max(cfg.min_steps, math.ceil(n / cfg.batch_size))
    total_steps = steps * cfg.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps,
                                                pct_start=0.1, anneal_strategy="cos")
    lesion_idx = np.flatnonzero(train_labels.reshape(n, -1).any(1))

    best_state = _cpu_state(model)
    best_dice, best_epoch, bad_epochs = -math.inf, 0, 0
    history: list[dict[str, float]] = []
    stopped_early = cancelled = False
    t0 = time.perf_counter()
    step_no = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        for idx in _batches(rng, n, lesion_idx, cfg, steps):
            if cancel is not None and cancel.cancelled:
                cancelled = True
                break
            imgs, labs = train_images[idx], train_labels[idx]
            if cfg.crop_size:
                fg = train_foreground[idx] if train_foreground is not None else None
                origins = lesion_biased_crops(labs, cfg.crop_size, cfg.p_lesion_crop, rng, fg)
                imgs, labs = crop_arrays(imgs, labs, origins, cfg.crop_size)
            x = torch.from_numpy(np.ascontiguousarray(imgs, dtype=np.float32))
            y = torch.from_numpy(np.ascontiguousarray(labs, dtype=np.float32))[:, None]
            if cfg.augment is not None:
                x, y = augment_batch(x, y, cfg.augment, gen)
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            ctx = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
            with ctx:
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            sched.step()
            step_no += 1
            losses.append(float(loss.detach()))
            report(progress, "Training", step_no / total_steps,
                   f"epoch {epoch}/{cfg.epochs} loss {np.mean(losses):.4f}")
        if cancelled:
            break
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": float(sched.get_last_lr()[0])}
        if has_val:
            row["val_dice"] = evaluate_dice(model, val_images, val_labels, device, cfg.threshold)
            score = row["val_dice"]
        else:
            score = float(epoch)  # no validation: keep the latest epoch
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
        if score > best_dice + (cfg.min_delta if has_val and best_epoch else 0.0):
            best_dice, best_epoch, bad_epochs = score, epoch, 0
            best_state = _cpu_state(model)
        else:
            bad_epochs += 1
        if has_val and epoch >= cfg.min_epochs and bad_epochs >= cfg.patience:
            stopped_early = True
            break

    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        history=history,
        best_epoch=best_epoch,
        best_val_dice=float(best_dice) if has_val and best_epoch else float("nan"),
        state_dict=best_state,
        stopped_early=stopped_early,
        cancelled=cancelled,
        seconds=time.perf_counter() - t0,
    )
