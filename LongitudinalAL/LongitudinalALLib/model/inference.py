"""Batched inference for the change segmenter: probabilities, embeddings, MC dropout.

A :class:`Predictor` moves the model to its device once and streams the pool
through it in batches under ``torch.inference_mode`` (mixed precision on CUDA
only). When a batch runs out of memory the batch size is halved and the same
batch retried, and the smaller size is kept for later calls.

Monte-Carlo dropout never holds T x N x H x W numbers: for each batch the T
passes are accumulated into running sums of p and of the binary entropy H(p_t),
from which the pixel maps of predictive entropy H(mean p), expected entropy
mean_t H(p_t) and BALD mutual information (their difference) follow; those are
reduced to one number per slice before the next batch.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from LongitudinalALLib.core.errors import InputError, ResourceError
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, check_cancel, report
from LongitudinalALLib.model.devices import resolve_device
from LongitudinalALLib.model.network import ChangeSegNet, mc_dropout
from LongitudinalALLib.model.reductions import PixelReduction, as_reduction, binary_entropy


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA OOM (its own class or the older RuntimeError text) and CPU allocation failures."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def gradient_embedding_from_features(
    probs: torch.Tensor, feats: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """BADGE gradient embedding of the 1x1 logit head, in closed form: (B,H,W), (B,F,H,W) -> (B, F+1).

    Per pixel i the head computes z_i = w . f_i + b and p_i = sigmoid(z_i). With
    the model's own hard label y_i = [p_i >= 0.5] and the slice loss
    L = (1/M) sum_i BCE(p_i, y_i) over its M (foreground) pixels,
    dL/dz_i = p_i - y_i, hence dL/dw = (1/M) sum_i (p_i - y_i) f_i and
    dL/db = (1/M) sum_i (p_i - y_i). Their concatenation is the embedding; its
    norm grows with how unsure the model is on that slice.
    """
    probs = probs.float()
    resid = probs - (probs >= 0.5).float()  # (B,H,W)
    if mask is not None:
        m = mask.to(device=probs.device, dtype=torch.float32)
        resid = resid * m
        count = m.flatten(1).sum(dim=1).clamp(min=1.0)
    else:
        count = torch.full((probs.shape[0],), float(probs[0].numel()), device=probs.device)
    grad_w = torch.einsum("bhw,bfhw->bf", resid, feats.float()) / count[:, None]
    grad_b = resid.flatten(1).sum(dim=1) / count
    return torch.cat([grad_w, grad_b[:, None]], dim=1)


@dataclass
class PoolOutputs:
    """Everything one deterministic pass over a pool gives the strategies."""

    probs: np.ndarray  # (N, H, W) float32 new-lesion probability
    embeddings: np.ndarray  # (N, D) float32 pooled bottleneck features
    gradient_embeddings: np.ndarray  # (N, F+1) float32 BADGE embeddings


@dataclass
class MCStatistics:
    """Per-slice Monte-Carlo dropout statistics (nats), reduced with ``reduction``."""

    predictive_entropy: np.ndarray  # (N,) reduce(H[mean_t p_t])
    expected_entropy: np.ndarray  # (N,) reduce(mean_t H[p_t])
    mutual_information: np.ndarray  # (N,) reduce(BALD = predictive - expected), >= 0
    mean_prob: np.ndarray | None  # (N, H, W) float32 when asked for
    passes: int
    reduction: str


def content_window(images: np.ndarray, stride: int, margin: int = 16) -> tuple[slice, slice]:
    """The (rows, cols) window around every non-zero pixel of ``images`` (N, C, H, W), plus ``margin``.

    Rounded outward to multiples of ``stride`` and clipped to the slice (H and W
    are stride multiples, so the window's sides are too). Pairing
    pads the model window with zeros around the foreground, so on brain scans
    this window is about half of a 256x256 slice: scoring only it halves the
    work. Outside it the outputs are 0 (no tissue, no lesion).
    """
    h, w = images.shape[2:]
    nonzero = np.zeros((h, w), dtype=bool)
    for start in range(0, len(images), 64):  # chunked: no (N, C, H, W) boolean temporary
        nonzero |= (images[start:start + 64] != 0).any(axis=(0, 1))
    if not nonzero.any():
        return slice(0, h), slice(0, w)
    spans = []
    for axis_any, size in ((nonzero.any(axis=1), h), (nonzero.any(axis=0), w)):
        idx = np.flatnonzero(axis_any)
        lo = max(0, (idx[0] - margin) // stride * stride)
        hi = min(size, -(-(idx[-1] + 1 + margin) // stride) * stride)
        spans.append(slice(int(lo), int(hi)))
    return spans[0], spans[1]


def eta_text(began: float, done: int, total: int) -> str:
    """'about 40 s left' from the rate so far (what a progress bar shows beside the fraction)."""
    left = (time.perf_counter() - began) / max(1, done) * (total - done)
    return f"about {left:.0f} s left" if left < 90 else f"about {left / 60:.0f} min left"


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX), where CPU autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Predictor:
    """Runs a ChangeSegNet over (N, 3, H, W) float32 arrays in batches on one device."""

    def __init__(
        self,
        model: ChangeSegNet,
        device: torch.device | str | None = None,
        batch_size: int | None = None,
        amp: bool | None = None,
        channels_last: bool = False,
        crop_to_content: bool = True,
        mc_replicas: int = 4,
    ) -> None:
        self.crop_to_content = crop_to_content
        self.mc_replicas = max(1, int(mc_replicas))  # MC passes stacked into one forward call
        self.device = torch.device(device) if device is not None else resolve_device()
        # mixed precision: fp16 on CUDA; bf16 on CPUs with native bf16 units (about 1.4x faster
        # there, same BALD ranking in bench_scoring), plain fp32 on other CPUs
        native = self.device.type == "cuda" or cpu_has_native_bf16()
        self.amp = native if amp is None else bool(amp and native)
        self.channels_last = channels_last
        self.batch_size = int(batch_size or (32 if self.device.type == "cuda" else 8))
        if self.batch_size < 1:
            raise InputError(f"Batch size {batch_size} is not positive.", "Use a batch size of 1 or more.")
        memory_format = torch.channels_last if channels_last else torch.preserve_format
        self.model = model.to(device=self.device, memory_format=memory_format).eval()

    # ------------------------------------------------------------------ plumbing
    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        cfg = self.model.cfg
        if images.ndim != 4 or images.shape[1] != cfg.in_channels:
            raise InputError(
                f"Images have shape {images.shape}; the model needs (N, {cfg.in_channels}, H, W).",
                "Pass the pool's slice pairs (baseline, follow-up, difference) as one array.",
            )
        s = cfg.total_stride
        if images.shape[2] % s or images.shape[3] % s:
            raise InputError(
                f"Slices are {images.shape[2]}x{images.shape[3]} pixels, not a multiple of the network stride {s}.",
                f"Prepare the pairs with a size that is a multiple of {s} (e.g. 256).",
            )
        if not np.isfinite(images).all():
            raise InputError("Images contain NaN or infinite values.", "Re-run preparation; check the input scans.")
        return images

    @staticmethod
    def _check_foreground(foreground: np.ndarray | None, images: np.ndarray) -> np.ndarray | None:
        if foreground is None:
            return None
        foreground = np.asarray(foreground, dtype=bool)
        expected = (images.shape[0], *images.shape[2:])
        if foreground.shape != expected:
            raise InputError(f"Foreground masks have shape {foreground.shape}; expected {expected}.",
                             "Pass one mask per slice, from the same preparation as the images.")
        return foreground

    def _to_device(self, batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        if self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)

    def _run_batches(
        self,
        images: np.ndarray,
        step: Callable[[int, int, torch.Tensor, tuple[slice, slice]], None],
        stage: str,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
        rows: np.ndarray | None = None,
        replicated: bool = False,
    ) -> None:
        """Call ``step(start, stop, x, window)`` on consecutive batches, halving the batch size on OOM.

        With ``rows`` only those slices run and start/stop are positions in ``rows``.
        ``replicated`` steps stack ``mc_replicas`` copies of the batch: on OOM those
        are halved before the batch is. ``x`` holds only the content ``window`` (rows, cols) of the slices (see
        :func:`content_window`): the network never runs on the zero padding.
        """
        n = len(images) if rows is None else len(rows)
        window = content_window(images if rows is None else images[rows], self.model.cfg.total_stride) \
            if self.crop_to_content else (slice(None), slice(None))
        start, began = 0, time.perf_counter()
        while start < n:
            check_cancel(cancel, stage)
            stop = min(n, start + self.batch_size)
            batch = images[start:stop] if rows is None else images[rows[start:stop]]
            try:
                with torch.inference_mode(), self._autocast():
                    step(start, stop, self._to_device(batch[(Ellipsis, *window)]), window)
            except RuntimeError as err:
                if not is_out_of_memory(err):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if replicated and self.mc_replicas > 1:  # first stack fewer MC passes per call
                    self.mc_replicas //= 2
                    continue
                if stop - start <= 1:
                    raise ResourceError(
                        f"Out of memory on {self.device} even for one {images.shape[2]}x{images.shape[3]} slice.",
                        "Free memory (close other programs) or run on the CPU.",
                    ) from err
                self.batch_size = max(1, (stop - start) // 2)
                continue
            start = stop
            report(progress, stage, start / n, f"{start}/{n} slices, {eta_text(began, start, n)}")

    # ------------------------------------------------------------------ outputs
    def predict(
        self, images: np.ndarray, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
    ) -> np.ndarray:
        """(N, 3, H, W) -> new-lesion probabilities (N, H, W) float32 (dropout off)."""
        images = self._check_images(images)
        out = np.zeros((len(images), *images.shape[2:]), dtype=np.float32)

        def step(a: int, b: int, x: torch.Tensor, win: tuple[slice, slice]) -> None:
            out[(slice(a, b), *win)] = torch.sigmoid(self.model(x).float())[:, 0].cpu().numpy()

        self._run_batches(images, step, "Predicting", progress, cancel)
        return out

    def predict_all(
        self,
        images: np.ndarray,
        foreground: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> PoolOutputs:
        """Probabilities, bottleneck embeddings and BADGE gradient embeddings from one pass.

        ``foreground`` (N, H, W) bool restricts the gradient-embedding mean to tissue pixels.
        """
        images = self._check_images(images)
        foreground = self._check_foreground(foreground, images)
        n = len(images)
        probs = np.zeros((n, *images.shape[2:]), dtype=np.float32)
        emb = np.empty((n, self.model.embedding_dim), dtype=np.float32)
        grads = np.empty((n, self.model.cfg.head_features + 1), dtype=np.float32)

        def step(a: int, b: int, x: torch.Tensor, win: tuple[slice, slice]) -> None:
            logits, e, feats = self.model.forward_all(x)
            p = torch.sigmoid(logits.float())[:, 0]
            mask = None if foreground is None else torch.from_numpy(foreground[(slice(a, b), *win)])
            probs[(slice(a, b), *win)] = p.cpu().numpy()
            emb[a:b] = e.float().cpu().numpy()
            grads[a:b] = gradient_embedding_from_features(p, feats, mask).cpu().numpy()

        self._run_batches(images, step, "Predicting", progress, cancel)
        return PoolOutputs(probs, emb, grads)

    def gradient_embeddings(self, images: np.ndarray, foreground: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """(N, 3, H, W) -> BADGE gradient embeddings (N, head_features + 1) float32."""
        return self.predict_all(images, foreground, **kwargs).gradient_embeddings

    def mc_statistics(
        self,
        images: np.ndarray,
        passes: int = 10,
        reduction: str | PixelReduction = "mean",
        foreground: np.ndarray | None = None,
        seed: int = 0,
        keep_mean_prob: bool = False,
        dropout: bool = True,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        rows: np.ndarray | None = None,
    ) -> MCStatistics:
        """Stream T = ``passes`` dropout passes batch by batch into per-slice statistics.

        With ``foreground`` (N, H, W) bool the reductions run over tissue pixels
        and slices without any tissue are skipped (their statistics are 0, and
        their mean probability 0): they cannot be suggested anyway. Each batch gets its own seed derived from ``seed`` and its first index, so
        results are reproducible and do not change when a batch is retried after
        an out-of-memory error. ``dropout=False`` runs the same code with dropout
        off (every pass identical, mutual information 0): a control for tests.
        ``rows`` (M,) slice indices: only those run (T passes cost T deterministic passes
        each, so a shortlist is what keeps MC strategies interactive); every other
        slice's statistics are NaN, "not scored". Same rows, same seed: same numbers.
        """
        if passes < 2:
            raise InputError(f"Monte-Carlo dropout needs at least 2 passes, got {passes}.", "Use e.g. passes=10.")
        images = self._check_images(images)
        foreground = self._check_foreground(foreground, images)
        reduce = as_reduction(reduction)
        n = len(images)
        pred_h, exp_h, mi = (np.zeros(n, dtype=np.float64) for _ in range(3))
        mean_prob = np.zeros((n, *images.shape[2:]), dtype=np.float32) if keep_mean_prob else None
        asked = self._asked_rows(n, rows)
        for stat in (pred_h, exp_h, mi):
            stat[~asked] = np.nan
        rows = np.flatnonzero(asked if foreground is None else asked & foreground.reshape(n, -1).any(axis=1))
        rng_devices = []
        if self.device.type == "cuda":
            rng_devices = [self.device.index if self.device.index is not None else torch.cuda.current_device()]

        def step(a: int, b: int, x: torch.Tensor, win: tuple[slice, slice]) -> None:
            idx = rows[a:b]
            mask = None if foreground is None else torch.from_numpy(foreground[idx][(Ellipsis, *win)])
            with torch.random.fork_rng(devices=rng_devices):
                torch.manual_seed((int(seed) * 1_000_003 + a) % (2**63))
                sum_p = torch.zeros((b - a, *x.shape[2:]), device=self.device)
                sum_h = torch.zeros_like(sum_p)
                # several passes per forward (the batch repeated): dropout draws a fresh mask per
                # sample, so this is the same estimator with fewer, larger calls (~2x on CPU)
                per_call = max(1, min(passes, self.mc_replicas))
                done = 0
                while done < passes:
                    r = min(per_call, passes - done)
                    p = torch.sigmoid(self.model(x.repeat(r, 1, 1, 1)).float())[:, 0].view(r, b - a, *x.shape[2:])
                    sum_p += p.sum(0)
                    sum_h += binary_entropy(p).sum(0)
                    done += r
            mean_p = sum_p / passes
            h_pred = binary_entropy(mean_p)
            h_exp = sum_h / passes
            mask_d = None if mask is None else mask.to(self.device)
            pred_h[idx] = reduce(h_pred, mask_d).cpu().numpy()
            exp_h[idx] = reduce(h_exp, mask_d).cpu().numpy()
            mi[idx] = reduce((h_pred - h_exp).clamp(min=0.0), mask_d).cpu().numpy()
            if mean_prob is not None:
                mean_prob[(idx, *win)] = mean_p.cpu().numpy()

        with mc_dropout(self.model, enabled=dropout):
            self._run_batches(images, step, "MC dropout", progress, cancel, rows=rows, replicated=True)
        return MCStatistics(pred_h, exp_h, mi, mean_prob, passes, reduce.key)

    @staticmethod
    def _asked_rows(n: int, rows: np.ndarray | None) -> np.ndarray:
        """(N,) bool: the slices ``rows`` names (all when None); bad indices are an InputError."""
        if rows is None:
            return np.ones(n, dtype=bool)
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and (rows.dtype.kind not in "iu" or rows.min() < 0 or rows.max() >= n)):
            raise InputError(f"MC rows must be slice indices in [0, {n}), got {rows!r:.80}.",
                             "Pass the positions of the slices to score, e.g. a shortlist.")
        asked = np.zeros(n, dtype=bool)
        asked[rows] = True
        return asked
