"""Train the change segmenter on labelled slices (arrays in, chosen weights out).

The recipe is built for few labels on a CPU: random crops biased towards
lesions (a 128x128 crop of a 256x256 slice costs a quarter of the compute),
oversampling of the rare lesion slices in every batch, light augmentation,
Dice + focal loss, AdamW with warm-up and cosine decay. How long it trains and
how it picks the kept weights is decided up front (:mod:`train_plan`): a step
budget with a floor that does not depend on the label count, a wall-time cap,
and early stopping only on a validation split that can measure something.
After training, a model that predicts no lesion on the labelled lesion slices
is retrained (:mod:`train_collapse`) or the starting weights are kept, with a
warning. A seed fixes every random draw, so two runs with the same inputs
give the same weights on CPU (unless the wall-time cap cuts a run).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback
from LongitudinalALLib.model.augment import AugmentConfig
from LongitudinalALLib.model.train_anchor import rehearsal_set
from LongitudinalALLib.model.train_collapse import check_lesion_slices, reinitialise
from LongitudinalALLib.model.train_loop import cpu_state, evaluate_dice, fit
from LongitudinalALLib.model.devices import resolve_device
from LongitudinalALLib.model.train_plan import (
    SelectionRule,
    check_config,
    plan_steps,
    selection_rule,
    warm_start,
)

__all__ = ["TrainConfig", "TrainResult", "evaluate_dice", "train_model"]


@dataclass
class TrainConfig:
    """Training recipe; every field is stored with the checkpoint it produced.

    Budget (see ``train_plan.plan_steps``): ``epochs`` passes over the labels, at least
    ``min_total_steps`` optimiser steps and at most ``max_total_steps``, evaluated
    ``epochs`` times; an explicit ``steps_per_epoch`` makes it exactly
    ``epochs * steps_per_epoch`` steps. ``max_seconds`` caps the wall time of the run.
    Warm start (the starting model's Dice on the labelled lesion slices >= ``warm_dice``):
    ``warm_epochs`` passes, at least ``warm_min_total_steps``; ``None`` turns it off.
    """

    epochs: int = 40                     # evaluation periods (and passes over the labels)
    batch_size: int = 8
    steps_per_epoch: int | None = None   # set: exact budget, no floor; None: see above
    min_steps: int = 4                   # steps per pass over the labels, at least
    min_total_steps: int = 200           # floor whatever the label count (measured: docs in README)
    warm_min_total_steps: int | None = None  # warm-start floor, e.g. 100 (issue 14: 2x faster, small AUBC cost)
    warm_epochs: int = 10                # passes over the labels of a warm start
    warm_dice: float = 0.25              # starting Dice on the labelled lesion slices that counts as warm
    max_total_steps: int | None = 4000
    max_seconds: float | None = 180.0    # wall-time cap of one run (None: none)
    lr: float = 3e-4                     # issue 24: 1e-3 pulled the bundled model into firing everywhere on real scans
    weight_decay: float = 1e-4
    crop_size: int | None = 96           # None: whole slices; 96 (issue 14): 0.6x the step time, no learning-curve drop
    p_lesion_crop: float = 0.8           # crop centred on a lesion when the slice has one
    lesion_fraction: float = 0.5         # share of each batch drawn from lesion slices
    loss: str = "dicefocal"
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    patience: int = 8                    # evaluation periods without validation improvement
    min_delta: float = 1e-3              # smaller validation gains do not count as improvement
    min_epochs: int = 2
    min_val_slices: int = 5              # validation needs this many slices ...
    min_val_lesion_slices: int = 2       # ... and this many with lesion pixels, else it is trained on
    collapse_actions: tuple[str, ...] = ("extend", "reinit")  # tried in order when no lesion is predicted
    # anchors to the starting model when fine-tuning a trained one (issue 24: on real scans a few labelled slices
    # pulled the bundled model into firing everywhere); see :mod:`train_anchor`. A run from scratch ignores them.
    distill_weight: float = 1.0          # weight of the soft-target loss on unlabelled pool slices (0: off)
    distill_fraction: float = 0.5        # unlabelled slices added to each batch, as a share of batch_size
    distill_slices: int = 64             # unlabelled pool slices kept as the rehearsal set, at most
    freeze_bn: bool = True               # keep batch-norm running statistics (eval-mode BN while training)
    l2sp: float = 0.0                    # penalty l2sp * sum((w - w_start)^2) toward the starting weights
    guard: bool = True                   # keep the previous model unless the new one is better on held-out labels
    guard_fraction: float = 0.34         # share of a round's new labels held out for that comparison
    threshold: float = 0.5
    amp: bool | None = None              # None: on for CUDA only
    device: str | None = None            # None: CUDA when present
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["collapse_actions"] = list(self.collapse_actions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Fields present in ``d`` override the defaults; ``"augment": None`` turns augmentation off.

        A missing ``augment`` keeps the default augmentation (it used to mean "off", so the
        Slicer panel's rounds, built from a few overrides, trained without it).
        """
        d = dict(d)
        aug = d.pop("augment", AugmentConfig())
        cfg = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        cfg.collapse_actions = tuple(cfg.collapse_actions)
        cfg.augment = AugmentConfig(**aug) if isinstance(aug, dict) else aug
        return cfg


@dataclass
class TrainResult:
    history: list[dict[str, float]]      # one row per evaluation period of the main run
    best_epoch: int                      # 1-based period of the kept weights; 0 when none finished
    best_val_dice: float                 # NaN without (trusted) validation data
    state_dict: dict[str, torch.Tensor]  # kept weights, on the CPU
    stopped_early: bool = False
    cancelled: bool = False
    seconds: float = 0.0
    steps: int = 0                       # optimiser steps, recovery included
    planned_steps: int = 0
    budget_rule: str = ""                # "exact", "passes", "floor", "warm_passes" or "warm_floor"
    start_dice: float = float("nan")     # starting model's Dice on the labelled lesion slices (warm test)
    stop_reason: str = ""                # "budget", "early_stop", "time_cap", "cancelled"
    selection: str = ""                  # "validation_dice" or "last_weights"
    selection_reason: str = ""
    n_train: int = 0
    n_val: int = 0
    n_distill: int = 0                   # unlabelled slices rehearsed with the starting model's soft targets
    anchored: bool = False               # the anchors to the starting model applied (fine-tuning a trained model)
    collapse: dict[str, Any] = field(default_factory=dict)
    guard: dict[str, Any] = field(default_factory=dict)   # round_guard.GuardDecision (set by ActiveLoop.train)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly digest (no tensors)."""
        return {
            "best_epoch": self.best_epoch, "best_val_dice": self.best_val_dice,
            "epochs_run": len(self.history), "stopped_early": self.stopped_early,
            "cancelled": self.cancelled, "seconds": round(self.seconds, 2),
            "final_train_loss": self.history[-1]["train_loss"] if self.history else float("nan"),
            "steps": self.steps, "planned_steps": self.planned_steps, "budget_rule": self.budget_rule,
            "start_dice": round(self.start_dice, 4),
            "stop_reason": self.stop_reason, "selection": self.selection,
            "selection_reason": self.selection_reason, "n_train": self.n_train, "n_val": self.n_val,
            "n_distill": self.n_distill, "anchored": self.anchored, "collapse": self.collapse, "guard": self.guard,
            "model_in_use": self.guard.get("reason", ""), "warnings": list(self.warnings),
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


def _n_lesion(labels: np.ndarray) -> int:
    return int(np.asarray(labels).reshape(len(labels), -1).any(1).sum()) if len(labels) else 0


@dataclass
class _Data:
    """Arrays after the validation rule: x (N,3,H,W), y (N,H,W) float {0,1}, fg (N,H,W) or None; val or None."""

    x: np.ndarray
    y: np.ndarray
    fg: np.ndarray | None
    xv: np.ndarray | None
    yv: np.ndarray | None
    rule: SelectionRule
    distill: Any = None                  # train_anchor.Rehearsal or None


def _prepare_data(train_images, train_labels, val_images, val_labels, train_fg, val_fg, cfg) -> _Data:
    """Check shapes and apply the validation rule: an untrustworthy split is trained on, not wasted."""
    y = (np.asarray(train_labels) > 0).astype(np.float32)
    _check_arrays(train_images, y, "Training")
    has_val = val_images is not None and val_labels is not None and len(val_images) > 0
    yv = (np.asarray(val_labels) > 0) if has_val else None
    if has_val:
        _check_arrays(val_images, yv, "Validation")
    rule = selection_rule(len(yv) if has_val else 0, _n_lesion(yv) if has_val else 0, _n_lesion(y), cfg)
    if rule.name == "validation_dice" or not has_val:
        return _Data(train_images, y, train_fg, val_images if has_val else None, yv, rule)
    fg = None
    if train_fg is not None:
        fg = np.concatenate([train_fg, val_fg if val_fg is not None else np.ones(yv.shape, bool)])
    return _Data(np.concatenate([train_images, val_images]), np.concatenate([y, yv.astype(np.float32)]),
                 fg, None, None, rule)


def without_anchors(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` for a model that starts from nothing: no rehearsal, batch-norm statistics learnt, no L2-SP."""
    return replace(cfg, distill_weight=0.0, freeze_bn=False, l2sp=0.0)


def _recover(model, data, cfg, plan, device, start_state, progress, cancel) -> tuple[dict, int, list[str]]:
    """Handle a model that predicts no lesion on the labelled lesion slices: the actions in order, else the start.

    "extend" trains the collapsed weights for another ``plan`` worth of steps; "reinit"
    starts from fresh weights with the cold plan (a fresh model is never warm). Returns
    the collapse record, the extra steps and the warnings for the user.
    """
    record: dict[str, Any] = {"checked": True, "detected": True, "attempts": [], "outcome": ""}
    extra = 0
    for i, action in enumerate(cfg.collapse_actions, 1):
        if cancel is not None and cancel.cancelled:
            break
        if action == "reinit":
            reinitialise(model, cfg.seed + 7919 * i)
            cfg = without_anchors(cfg)
            plan = plan_steps(cfg, len(data.x))
        out = fit(model, data, cfg, plan, device, cfg.seed + 7919 * i, stop_after=plan.total_steps,
                  progress=progress, cancel=cancel, stage=f"Training ({action}: no lesion predicted)")
        extra += out.steps
        check = check_lesion_slices(model, data.x, data.y, device, cfg.threshold)
        record["attempts"].append({"action": action, "steps": out.steps, "stop_reason": out.stop_reason,
                                   "check": check.to_dict()})
        if out.stop_reason == "cancelled":
            break
        if not check.collapsed:
            record["outcome"] = action
            return record, extra, [f"The model predicted no lesion on the contoured slices; "
                                   f"'{action}' fixed it ({check.slices_hit}/{check.lesion_slices} slices hit)."]
    model.load_state_dict(start_state)
    model.eval()
    record["outcome"] = "kept_previous"
    return record, extra, ["The model still predicts no lesion on the contoured slices after "
                           f"{', '.join(cfg.collapse_actions) or 'no retry'}; the previous model was kept. "
                           "Contour a few more lesion slices (or check the labels), then train again."]


def train_model(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    config: TrainConfig | None = None,
    *,
    train_foreground: np.ndarray | None = None,
    val_foreground: np.ndarray | None = None,
    unlabelled_images: np.ndarray | None = None,
    unlabelled_foreground: np.ndarray | None = None,
    fine_tune: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Train ``model`` in place and leave the kept weights loaded in it.

    train_images (N,3,H,W) float32, train_labels (N,H,W) {0,1}; optional
    validation arrays of the same layout drive early stopping and the choice of
    the kept period only when :func:`train_plan.selection_rule` trusts them
    (otherwise they are trained on). ``train_foreground`` / ``val_foreground``
    (N,H,W) bool steer crops of lesion-free slices onto tissue. On cancel the
    loop stops between steps, the kept state so far (or the starting weights)
    is loaded and the result has ``cancelled=True``. ``unlabelled_images`` (M,3,H,W) with
    ``unlabelled_foreground`` (M,H,W): pool slices nobody labelled, rehearsed with the starting
    model's own predictions as soft targets when ``cfg.distill_weight`` > 0. The anchors
    (rehearsal, ``freeze_bn``, ``l2sp``) apply only with ``fine_tune`` (``model`` is a trained
    model, e.g. the bundled or the previous round's); a model from scratch has nothing to keep.
    """
    t0 = time.perf_counter()
    cfg = config or TrainConfig()
    check_config(cfg)
    if not fine_tune:
        cfg = without_anchors(cfg)
    data = _prepare_data(train_images, train_labels, val_images, val_labels, train_foreground, val_foreground, cfg)
    device = resolve_device(cfg.device, training=True)
    start_state = cpu_state(model)
    data.distill = rehearsal_set(model.to(device), unlabelled_images, unlabelled_foreground, cfg, device)
    start_dice = check_lesion_slices(model.to(device), data.x, data.y, device, cfg.threshold).dice \
        if cfg.warm_min_total_steps is not None and not cfg.steps_per_epoch else float("nan")
    plan = plan_steps(cfg, len(data.x), warm_start(start_dice, cfg))
    stop_after = 0 if plan.rule == "exact" else min(cfg.min_total_steps, plan.total_steps)
    out = fit(model, data, cfg, plan, device, cfg.seed, stop_after=stop_after, progress=progress, cancel=cancel)
    result = TrainResult(
        history=out.history, best_epoch=out.best_epoch, best_val_dice=out.best_val_dice,
        state_dict={}, stopped_early=out.stop_reason == "early_stop", cancelled=out.stop_reason == "cancelled",
        steps=out.steps, planned_steps=out.planned_steps, budget_rule=plan.rule, stop_reason=out.stop_reason,
        selection=data.rule.name, selection_reason="; ".join(r for r in (data.rule.reason, out.note) if r),
        n_train=int(len(data.x)), n_val=int(len(data.xv)) if data.xv is not None else 0, start_dice=start_dice,
        n_distill=len(data.distill.x) if data.distill is not None else 0,
        anchored=fine_tune and (cfg.distill_weight > 0 or cfg.freeze_bn or cfg.l2sp > 0),
    )
    if out.stop_reason == "time_cap":
        result.warnings.append(f"Training stopped at the {cfg.max_seconds:.0f} s time budget after "
                               f"{out.steps} steps.")
    if not result.cancelled:
        check = check_lesion_slices(model, data.x, data.y, device, cfg.threshold)
        result.collapse = {"checked": check.lesion_slices > 0, "detected": check.collapsed,
                           "check": check.to_dict(), "outcome": "ok" if not check.collapsed else ""}
        if check.collapsed:
            record, extra, warnings = _recover(model, data, cfg, plan, device, start_state, progress, cancel)
            result.collapse.update({k: v for k, v in record.items() if k != "checked"})
            result.steps += extra
            result.warnings += warnings
            result.cancelled = cancel is not None and cancel.cancelled
    result.state_dict = cpu_state(model)
    result.seconds = time.perf_counter() - t0
    return result
