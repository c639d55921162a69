"""What the module panel offers, fixed at import time and without torch.

Why: Slicer's parameter node wrapper fills a bound combo box from a ``Choice``
annotation (it clears whatever the Widget added), and int/float fields without
``WithinRange`` get an unbounded spin box. Listing the choices here keeps
opening the panel free of torch/sklearn imports (heavy work stays in the worker);
a test checks this list against the registered strategies.
"""

from __future__ import annotations

from LongitudinalALLib.active import policy

#: query strategies offered in the panel (== strategies.available_strategies(), checked by a test)
STRATEGIES = ("clasp_pe", "entropy_mean", "entropy_sum", "entropy_topk", "least_confidence", "margin",
              "diff_weighted_entropy", "mc_entropy", "bald", "powerbald", "badge", "coreset",
              "cluster_margin", "lmi_hybrid", "cold_start", "fg_random", "random")
DEFAULT_STRATEGY = policy.DEFAULT_STRATEGY

#: (minimum, maximum) of the numeric options; the .ui's spin boxes carry the same ranges
SPACING_MM = (0.5, 5.0)
SIZE_PX = (64, 512)
K_PER_ROUND = (1, 100)

#: compute devices in the order the panel offers them (best first); "cpu" is always there. "mps" comes
#: after "cpu": training refuses it (model/devices.resolve_device), so it is never the default (review M1)
DEVICE_ORDER = ("cuda", "cpu", "mps")
#: file in the work root where a worker job records what torch really found (read on the next start)
DEVICES_FILE = "devices.json"


def available_devices(work_root=None) -> tuple[str, ...]:
    """Devices to offer, best first, without importing torch.

    Why: the GUI process never imports torch. A worker job writes torch's own
    answer to ``work_root/devices.json`` (see ``jobs.record_devices``); until one
    has run, a cheap probe guesses: CUDA when torch is installed and an NVIDIA
    driver is present, MPS on Apple silicon.
    """
    import json
    from pathlib import Path

    if work_root is not None:
        try:
            found = json.loads((Path(work_root) / DEVICES_FILE).read_text(encoding="utf-8"))["devices"]
            devices = tuple(d for d in DEVICE_ORDER if d in found)
            if "cpu" in devices:
                return devices
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no job has run yet (or the file is damaged): probe
    return tuple(d for d in DEVICE_ORDER if _probe(d))


def torch_installed() -> bool:
    """Whether torch can be imported, without importing it (extension build machines have none)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _probe(device: str) -> bool:
    import os
    import platform
    import shutil
    import sys

    if device == "cpu":
        return True
    if not torch_installed():
        return False
    if device == "cuda":
        return bool(shutil.which("nvidia-smi")) or os.path.exists("/proc/driver/nvidia/version")
    return sys.platform == "darwin" and platform.machine() == "arm64"
