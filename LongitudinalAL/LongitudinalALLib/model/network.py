"""The change-segmentation network: a MONAI 2D residual U-Net with a 1x1 logit head.

Input is one slice pair as 3 channels (baseline, registered follow-up,
difference); output is the new-lesion logit (probability = sigmoid). Three
things matter for active learning and drive the design:

* real dropout inside every MONAI block, so Monte-Carlo dropout passes differ
  (:func:`mc_dropout` switches on *only* the dropout modules; batch norm stays
  in eval mode and keeps its running statistics);
* a bottleneck embedding (global-average-pooled features of the U-Net's bottom
  block, ``channels[-1]`` <= 512 dims) for the diversity strategies;
* an explicit last layer, a 1x1 convolution on ``head_features`` activated
  features, whose loss gradient has a closed form (BADGE gradient embeddings,
  see ``inference.gradient_embedding_from_features``).

The network is fully convolutional: any H, W divisible by the total stride work
(the bundled weights were trained on 128x128 crops, active-learning rounds train on 96x96
since issue 14; run on 256x256 slices).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator

import torch
from monai.networks.nets import UNet
from torch import nn

from LongitudinalALLib.core.errors import InputError

MAX_EMBEDDING_DIM = 512
MAX_LEVELS = 8          # a sidecar is untrusted input: MONAI builds one nested block per level
MAX_RES_UNITS = 8
MAX_CHANNELS = 512      # every level, not only the last (a sidecar asked for 10^6: 18 GB)
MAX_HEAD_FEATURES = 256
MAX_STRIDE = 4
NORMS = ("batch", "instance")  # the MONAI norms that build from a name alone


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters that fully determine the architecture (stored beside the weights)."""

    in_channels: int = 3
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 2
    dropout: float = 0.2
    norm: str = "batch"
    head_features: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        if len(self.channels) < 2 or len(self.strides) != len(self.channels) - 1:
            raise InputError(
                f"Model config has channels={self.channels} and strides={self.strides}.",
                "Give at least two channel counts and exactly one stride fewer than channels.",
            )
        if len(self.channels) > MAX_LEVELS or not 0 <= self.num_res_units <= MAX_RES_UNITS:
            raise InputError(
                f"Model config has {len(self.channels)} levels and {self.num_res_units} residual units.",
                f"Use at most {MAX_LEVELS} levels and {MAX_RES_UNITS} residual units (the file may be damaged).",
            )
        if self.channels[-1] > MAX_EMBEDDING_DIM:
            raise InputError(
                f"Model config bottleneck has {self.channels[-1]} channels (embedding limit {MAX_EMBEDDING_DIM}).",
                f"Use at most {MAX_EMBEDDING_DIM} channels in the last level.",
            )
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"Model config dropout={self.dropout} is not in [0, 1).", "Use e.g. 0.2.")
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Bound every size a sidecar can name before anything is allocated (reliability review 2, N6)."""
        if self.in_channels != 3:
            raise InputError(f"Model config has in_channels={self.in_channels}; the model reads 3 channels "
                             "(baseline, follow-up, difference).", "Use the sidecar written with the weights.")
        if not all(1 <= c <= MAX_CHANNELS for c in self.channels) or not all(1 <= s <= MAX_STRIDE for s in self.strides):
            raise InputError(f"Model config has channels={list(self.channels)} and strides={list(self.strides)}.",
                             f"Use 1 to {MAX_CHANNELS} channels and strides of 1 to {MAX_STRIDE} per level.")
        if not isinstance(self.head_features, int) or not 1 <= self.head_features <= MAX_HEAD_FEATURES:
            raise InputError(f"Model config has head_features={self.head_features!r}.",
                             f"Use 1 to {MAX_HEAD_FEATURES} (the default is 16).")
        if not isinstance(self.norm, str) or self.norm.lower() not in NORMS:
            raise InputError(f"Model config has norm={self.norm!r:.50}.", f"Use one of {', '.join(NORMS)}.")

    @property
    def total_stride(self) -> int:
        """Input H and W must be multiples of this."""
        return int(math.prod(self.strides))

    @property
    def embedding_dim(self) -> int:
        return self.channels[-1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["strides"] = list(self.strides)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        if not isinstance(d, dict):
            raise InputError(f"Model config {d!r:.200} is not an object.", "Use the sidecar written with the weights.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(
                f"Model config has unknown keys {unknown}.",
                "The weights were made by a newer or different version; retrain or update LongitudinalAL.",
            )
        try:
            return cls(**d)
        except InputError:
            raise
        except (TypeError, ValueError) as err:
            raise InputError(f"Model config {d!r:.200} has values of the wrong type ({err}).",
                             "Use the sidecar written together with the weights, or retrain.") from err


class _UNetWithBottleneck(UNet):
    """MONAI UNet that remembers its bottom block (without registering it twice)."""

    def _get_bottom_layer(self, in_channels: int, out_channels: int) -> nn.Module:
        layer = super()._get_bottom_layer(in_channels, out_channels)
        # stored outside _modules so the state dict holds each tensor once
        self.__dict__["bottleneck"] = layer
        return layer


class ChangeSegNet(nn.Module):
    """U-Net change segmenter: (B, 3, H, W) -> new-lesion logits (B, 1, H, W)."""

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ModelConfig()
        self.body = _UNetWithBottleneck(
            spatial_dims=2,
            in_channels=self.cfg.in_channels,
            out_channels=self.cfg.head_features,
            channels=self.cfg.channels,
            strides=self.cfg.strides,
            num_res_units=self.cfg.num_res_units,
            norm=self.cfg.norm,
            dropout=self.cfg.dropout,
        )
        self.head_act = nn.PReLU(self.cfg.head_features)
        self.head = nn.Conv2d(self.cfg.head_features, 1, kernel_size=1)

    @property
    def embedding_dim(self) -> int:
        return self.cfg.embedding_dim

    def check_input(self, x: torch.Tensor) -> None:
        """Raise InputError for a tensor the network cannot take."""
        s = self.cfg.total_stride
        if x.ndim != 4 or x.shape[1] != self.cfg.in_channels:
            raise InputError(
                f"Model input has shape {tuple(x.shape)}; expected (B, {self.cfg.in_channels}, H, W).",
                "Pass slice pairs stacked as (baseline, follow-up, difference) channels.",
            )
        if x.shape[2] % s or x.shape[3] % s:
            raise InputError(
                f"Model input is {x.shape[2]}x{x.shape[3]} pixels, not a multiple of the network stride {s}.",
                f"Crop or pad slices to a multiple of {s} (e.g. 128 or 256).",
            )

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return logits (B, 1, H, W) and the head's input features (B, head_features, H, W)."""
        self.check_input(x)
        feats = self.head_act(self.body(x))
        return self.head(feats), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return logits (B,1,H,W), bottleneck embedding (B,D) and head features (B,F,H,W) in one pass."""
        captured: list[torch.Tensor] = []
        hook = self.body.bottleneck.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            logits, feats = self.forward_with_features(x)
        finally:
            hook.remove()
        embedding = captured[-1].float().mean(dim=(2, 3))
        return logits, embedding, feats

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return logits (B, 1, H, W) and the pooled bottleneck embedding (B, D), D = channels[-1]."""
        logits, embedding, _ = self.forward_all(x)
        return logits, embedding


def build_model(cfg: ModelConfig | None = None) -> ChangeSegNet:
    """A freshly initialised network in eval mode."""
    return ChangeSegNet(cfg).eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


@contextlib.contextmanager
def mc_dropout(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Eval mode with only the dropout modules training (Monte-Carlo dropout).

    Normalisation layers stay in eval mode, so passes differ only by their
    dropout masks. The model's previous train/eval flags are restored on exit.
    """
    previous = {m: m.training for m in model.modules()}
    model.eval()
    if enabled:
        drops = dropout_modules(model)
        if not drops or all(getattr(d, "p", 0.0) == 0.0 for d in drops):
            raise InputError(
                "Monte-Carlo dropout asked for, but the model has no active dropout layer.",
                "Build the model with ModelConfig(dropout > 0) or use a non-Bayesian strategy.",
            )
        for d in drops:
            d.train()
    try:
        yield model
    finally:
        for m, flag in previous.items():
            m.training = flag
