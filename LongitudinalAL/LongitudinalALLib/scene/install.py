"""Which Python packages the module still needs inside Slicer, and installing them on request.

``plan_install`` is a pure decision (what to install given what imports), unit
tested; ``ensure_dependencies`` is the thin Slicer call made when the user
presses Run for the first time, never at import time. torch comes only from
the PyTorch extension (``installTorch`` with a version floor), which picks the
build for the user's GPU; pip never replaces torch or Slicer's SimpleITK.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from LongitudinalALLib.core.resources import resources_dir

#: distribution name -> import name, where they differ
IMPORT_NAMES = {"scikit-learn": "sklearn", "simpleitk": "SimpleITK", "pyyaml": "yaml"}
#: never installed by pip from this module
SKIP = ("torch", "SimpleITK")
#: oldest torch the model code runs on (pyproject's floor); older ones are upgraded through PyTorchUtils
TORCH_FLOOR = "2.2"
TORCH_REQUIREMENT = f">={TORCH_FLOOR}"


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


def plan_install(requirements: list[str], importable: Callable[[str], bool] | None = None) -> InstallPlan:
    """Decide what to install: torch via the PyTorch extension, the rest via pip, skipping SKIP."""
    importable = importable or is_importable
    plan = InstallPlan(need_torch=not importable("torch"))
    skip = {s.lower() for s in SKIP}
    for req in requirements:
        if distribution_name(req).lower() in skip:
            plan.skipped.append(req)
        elif not importable(import_name(req)):
            plan.pip.append(req)
    return plan


def installed_version(distribution: str) -> str | None:
    """Version of an installed distribution, read from its metadata (never imports it)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_too_old(version: str | None, floor: str = TORCH_FLOOR) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return version is not None and Version(version.split("+")[0]) < Version(floor)
    except InvalidVersion:
        return False


def pinned_constraints(skip: tuple[str, ...] = SKIP, version: Callable[[str], str | None] | None = None) -> str:
    """Constraints that keep the installed torch and SimpleITK exactly as they are (pip ``-c``)."""
    version = version or installed_version
    return "".join(f"{name}=={v}\n" for name in skip if (v := version(name)))


def install_message(plan: InstallPlan, torch_version: str | None) -> str:
    lines = []
    if plan.need_torch:
        lines.append(f"PyTorch {TORCH_REQUIREMENT} (through the PyTorch extension, the build for your GPU)"
                     + (f"; {torch_version} is too old" if torch_version else ""))
    lines += plan.pip
    return ("LongitudinalAL needs these Python packages:\n  " + "\n  ".join(lines)
            + "\n\nInstall them now? This can take several minutes.")


def ensure_dependencies(requester: str = "LongitudinalAL", slicer=None, pytorch_utils=None) -> bool:
    """Inside Slicer: one confirmation, then torch via PyTorchUtils and the rest via pip; False if declined.

    Both paths give pip a constraints file pinning the installed torch and SimpleITK, so a
    dependency can never replace them and pip picks versions that accept them (a monai
    that supports this torch) or fails. Slicer >= 5.12: ``slicer.packaging.pip_ensure``
    with ``constraints`` and its restart prompt. Slicer 5.10 has no ``slicer.packaging``:
    ``slicer.util.pip_install`` with ``-c``, then our own restart prompt when an already
    imported package changed.
    ``slicer``/``pytorch_utils`` are for tests (fakes with the real signatures).
    """
    if slicer is None:
        import slicer
    torch_version = installed_version("torch")
    plan = plan_install(read_requirements())
    plan.need_torch = plan.need_torch or torch_too_old(torch_version)
    if plan.nothing_to_do:
        return True
    if plan.need_torch and pytorch_utils is None:
        try:
            import PyTorchUtils as pytorch_utils  # the PyTorch extension, a build dependency of LongitudinalAL
        except ImportError:
            slicer.util.errorDisplay("LongitudinalAL needs PyTorch: install the 'PyTorch' extension "
                                     "from the Extensions Manager and restart Slicer.")
            return False
    if not slicer.util.confirmOkCancelDisplay(install_message(plan, torch_version)):
        return False
    if plan.need_torch:
        logic = pytorch_utils.PyTorchUtilsLogic()
        if logic.installTorch(askConfirmation=False, torchVersionRequirement=TORCH_REQUIREMENT) is None:
            return False
    if plan.pip:
        _pip(slicer, plan.pip, requester)
    return True


def _pip(slicer, requirements: list[str], requester: str) -> None:
    packaging_api = getattr(slicer, "packaging", None)
    if packaging_api is None:
        try:  # a submodule that Slicer >= 5.12 has and that is imported on demand
            packaging_api = importlib.import_module(f"{slicer.__name__}.packaging")
        except ImportError:
            packaging_api = None
    before = {name: installed_version(name) for name in map(distribution_name, requirements)}
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "keep-torch.txt"
        constraints.write_text(pinned_constraints())
        if packaging_api is not None and hasattr(packaging_api, "pip_ensure"):
            # constraints, not skip_packages: skip_packages installs with --no-deps (packaging.py:968-1081,
            # 5.12.3), so pip would take monai 1.6 (torch>=2.8) over an older torch (review M4)
            packaging_api.pip_ensure(requirements, constraints=str(constraints), prompt_install=False,
                                     prompt_restart=True, requester=requester)
            return
        slicer.util.pip_install(["-c", str(constraints), *requirements])
    changed = [name for name, v in before.items() if v and v != installed_version(name)
               and import_name(name) in sys.modules]
    if changed and slicer.util.confirmYesNoDisplay(
            "These packages were updated but an older version is already loaded: " + ", ".join(changed)
            + ".\n\nRestart Slicer now?"):
        slicer.util.restart()
