"""The one device resolver: which torch device a job runs on, checked, with one line when it cannot.

Why one: scoring (``inference.Predictor``), training (``train_plan.check_config`` and
``training.train_model``) and the Slicer jobs used two resolvers with different rules
and messages. ``None``/"" means the best this torch offers (CUDA, else CPU); a named
device must be usable here. Training refuses MPS (the losses and augmentation were
not validated there); scoring accepts it.
"""

from __future__ import annotations

import torch

from LongitudinalALLib.core.errors import InputError

_FIX = "Pick another device in the panel's 'Compute on' list, or use --device cpu."


def available_devices() -> list[str]:
    """Device types this torch can use, best first (e.g. ``["cuda", "cpu"]``)."""
    mps = getattr(torch.backends, "mps", None)
    found = {"cuda": torch.cuda.is_available(), "mps": bool(mps is not None and mps.is_available()), "cpu": True}
    return [name for name, ok in found.items() if ok]


def resolve_device(name: str | None = None, *, training: bool = False) -> torch.device:
    """The device named ``name`` ("cpu", "cuda", "cuda:1", "mps"), or the best one for ``None``/""."""
    if not name:
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"Device {name!r} is not a torch device.", "Use cpu, cuda or cuda:N.") from None
    offered = ", ".join(available_devices())
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"Device {name!r} was asked for, but this torch has no usable CUDA GPU "
                             f"(it offers {offered}).", _FIX)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"Device {name!r} does not exist ({torch.cuda.device_count()} GPU(s)).",
                             f"Use cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
    elif dev.type == "mps":
        if training:
            raise InputError(f"Device {name!r} is not supported for training.", "Use cpu or cuda.")
        if "mps" not in available_devices():
            raise InputError(f"Device {name!r} is not available here (this torch offers {offered}).", _FIX)
    elif dev.type != "cpu":
        raise InputError(f"Device {name!r} is not supported.", "Use cpu, cuda or mps.")
    return dev
