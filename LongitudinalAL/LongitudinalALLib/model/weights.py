"""Model weights on disk: a safetensors state dict plus a JSON sidecar.

``name.safetensors`` holds only tensors (never a pickled model, so loading runs
no code); ``name.json`` beside it holds the ModelConfig, free metadata and the
sha256 of the tensor file, checked before anything is loaded. Both are written
atomically; the sidecar is written last, so a crash in between is caught as a
checksum mismatch instead of silently loading mixed files.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.core.json_file import read_json
from LongitudinalALLib.core.resources import weights_dir
from LongitudinalALLib.model.network import ChangeSegNet, ModelConfig, build_model, count_parameters

FORMAT = "longitudinal-al-weights"
FORMAT_VERSION = 1
BUNDLED_NAME = "change_unet.safetensors"


def sidecar_path(path: str | Path) -> Path:
    """``foo.safetensors`` -> ``foo.json``."""
    return Path(path).with_suffix(".json")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_weights(model: ChangeSegNet, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically; return the sidecar path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(f"Weights file {path} does not end in .safetensors.", "Name it e.g. model.safetensors.")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic.atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
        digest = sha256_file(tmp)
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "weights_file": path.name,
        "sha256": digest,
        "config": model.cfg.to_dict(),
        "parameters": count_parameters(model),
        "torch_version": torch.__version__,
        "metadata": metadata or {},
    }
    side = sidecar_path(path)
    atomic.write_json(side, sidecar)
    return side


def read_weights_info(path: str | Path) -> dict[str, Any]:
    """The sidecar of ``path`` after checking it exists, parses and matches the tensor file's sha256."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise InputError(f"Model weights {path} do not exist.", "Check the path, or train a model first.")
    if not side.is_file():
        raise InputError(
            f"Model weights {path} have no sidecar {side.name} (config and checksum).",
            "Copy the .json file that was written together with the weights next to them.",
        )
    info = read_json(side, lambda why: InputError(f"Weights sidecar {side} cannot be read ({why}).",
                                                  "Restore it from the training output."))
    if not isinstance(info, dict) or info.get("format") != FORMAT or "sha256" not in info or "config" not in info:
        raise InputError(f"{side} is not a LongitudinalAL weights sidecar.", "Restore it from the training output.")
    if int(info.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(f"{side} was written by a newer LongitudinalAL.", "Update LongitudinalAL to load it.")
    actual = sha256_file(path)
    if actual != info["sha256"]:
        raise InputError(
            f"Model weights {path} are damaged or were replaced: sha256 {actual[:12]}... does not match "
            f"{info['sha256'][:12]}... recorded in {side.name}.",
            "Copy the weights and their .json sidecar again from the same training run (or retrain).",
        )
    return info


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> ChangeSegNet:
    """Verify the checksum and config, then build the network and load the tensors (eval mode).

    The sidecar dictionary is kept as ``model.weights_info``.
    """
    path = Path(path)
    info = read_weights_info(path)
    try:
        cfg = ModelConfig.from_dict(info["config"])
    except InputError as err:  # name the file the bad value came from
        raise InputError(f"Weights sidecar {sidecar_path(path)}: {err.problem}", err.fix) from None
    check_tensor_shapes(path, cfg)  # nothing is allocated before the file is known to hold every tensor
    try:
        model = build_model(cfg)
    except (RuntimeError, ValueError, TypeError) as err:
        raise InputError(f"The architecture in {sidecar_path(path)} cannot be built ({_first_line(err)}).",
                         "Use the sidecar written together with these weights.") from None
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"Model weights {path} cannot be read as safetensors ({err}).", "Retrain or re-copy them.") from err
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = _first_line(err)
        raise InputError(
            f"Model weights {path} do not fit the architecture in {sidecar_path(path).name}: {first}",
            "Use the sidecar written together with these weights.",
        ) from err
    model.weights_info = info  # type: ignore[attr-defined]
    return model.to(device).eval()


#: most parameters a sidecar may ask for (the default network has 1.6 M)
MAX_PARAMETERS = 50_000_000


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err).strip() else type(err).__name__


def check_tensor_shapes(path: Path, cfg: ModelConfig) -> None:
    """Refuse (one InputError line) weights whose sidecar asks for a huge network, or whose tensor file
    does not hold exactly the tensors that network has: checked on the meta device (no memory) and
    from the safetensors header (no data read), before the real network is built."""
    side = sidecar_path(path).name
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in ChangeSegNet(cfg).state_dict().items()}
    except (RuntimeError, ValueError, TypeError) as err:
        raise InputError(f"The architecture in {side} cannot be built ({_first_line(err)}).",
                         "Use the sidecar written together with these weights.") from None
    n_params = sum(math.prod(s) for s in expected.values())
    if n_params > MAX_PARAMETERS:
        raise InputError(f"The architecture in {side} has {n_params:,} parameters (limit {MAX_PARAMETERS:,}).",
                         "The sidecar is damaged or not from LongitudinalAL; use the one written with the weights.")
    try:
        with safe_open(str(path), framework="pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"Model weights {path} cannot be read as safetensors ({err}).", "Retrain or re-copy them.") from err
    if stored != expected:
        diff = sorted(set(stored) ^ set(expected)) or [k for k in expected if stored[k] != expected[k]]
        raise InputError(f"Model weights {path} do not fit the architecture in {side} "
                         f"({len(diff)} tensors differ, e.g. {diff[0]}).",
                         "Use the sidecar written together with these weights.")


def bundled_weights_path() -> Path:
    return weights_dir() / BUNDLED_NAME


def load_bundled_model(device: str | torch.device = "cpu") -> ChangeSegNet:
    """The pretrained model shipped in ``Resources/Weights`` (checksum verified)."""
    path = bundled_weights_path()
    if not path.is_file():
        raise InputError(
            f"The bundled model {path} is missing.",
            "Create it with `python Resources/Weights/train_bundled.py --work <dir>` (writes "
            f"change_unet.safetensors and change_unet.json into {path.parent}), or set LONGITUDINAL_AL_RESOURCES "
            "to a folder whose Weights/ holds both files.",
        )
    return load_weights(path, device=device)
