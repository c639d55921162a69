"""Which Python packages the module still needs inside Slicer, and installing them on request.

``plan_install`` is a pure decision (what to install given what imports), unit
tested; ``ensure_dependencies`` is the thin Slicer call made when the user
presses Run for the first time, never at import time. torch comes only from
the PyTorch extension (``PyTorchUtilsLogic().installTorch(askConfirmation=True)``),
which picks the build for the user's GPU; SimpleITK is Slicer's own and is never
replaced by pip.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..resources import resources_dir

#: distribution name -> import name, where they differ
IMPORT_NAMES = {"scikit-learn": "sklearn", "simpleitk": "SimpleITK", "pyyaml": "yaml"}
#: never installed by pip from this module
SKIP = ("torch", "SimpleITK")


@dataclass
class InstallPlan:
    need_torch: bool                              # ask the PyTorch extension to install torch
    pip: list[str] = field(default_factory=list)  # requirement strings for pip
    skipped: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not self.need_torch and not self.pip


def read_requirements(path: Path | None = None) -> list[str]:
    """Requirement strings of ``Resources/requirements.txt`` (comments and blanks dropped)."""
    path = path or resources_dir() / "requirements.txt"
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def distribution_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]


def import_name(requirement: str) -> str:
    dist = distribution_name(requirement)
    return IMPORT_NAMES.get(dist.lower(), dist.replace("-", "_"))


def is_importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def plan_install(requirements: list[str], importable: Callable[[str], bool] = is_importable) -> InstallPlan:
    """Decide what to install: torch via the PyTorch extension, the rest via pip, skipping SKIP."""
    plan = InstallPlan(need_torch=not importable("torch"))
    skip = {s.lower() for s in SKIP}
    for req in requirements:
        if distribution_name(req).lower() in skip:
            plan.skipped.append(req)
        elif not importable(import_name(req)):
            plan.pip.append(req)
    return plan


def ensure_dependencies(requester: str = "LongitudinalAL") -> bool:
    """Inside Slicer: ask, then install what ``plan_install`` says; False if the user declined."""
    import slicer

    plan = plan_install(read_requirements())
    if plan.nothing_to_do:
        return True
    if plan.need_torch:
        try:
            import PyTorchUtils  # the PyTorch extension, a build dependency of LongitudinalAL
        except ImportError:
            slicer.util.errorDisplay("LongitudinalAL needs PyTorch: install the 'PyTorch' extension "
                                     "from the Extensions Manager and restart Slicer.")
            return False
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
            return False
    if plan.pip:
        if not slicer.util.confirmOkCancelDisplay(
                "LongitudinalAL needs these Python packages:\n" + "\n".join(plan.pip) + "\n\nInstall them now?"):
            return False
        pydeps = getattr(slicer, "pydeps", None)
        if pydeps is not None and hasattr(pydeps, "pip_ensure"):  # Slicer >= 5.11
            from packaging.requirements import Requirement

            pydeps.pip_ensure([Requirement(r) for r in plan.pip], skip_packages=list(SKIP), requester=requester)
        else:
            slicer.util.pip_install(" ".join(plan.pip))
    return True
