"""Decision logic of the in-Slicer dependency helper (the Slicer call itself runs only inside Slicer)."""

from __future__ import annotations

import pytest

from LongitudinalALLib.scene import install


def test_plan_installs_only_what_is_missing_and_never_torch_or_simpleitk_by_pip():
    reqs = ["monai>=1.4", "scikit-learn>=1.3", "safetensors", "torch>=2.2", "SimpleITK>=2.3", "nibabel>=5.0"]
    present = {"monai", "nibabel", "SimpleITK"}
    plan = install.plan_install(reqs, importable=lambda m: m in present)
    assert plan.need_torch
    assert plan.pip == ["scikit-learn>=1.3", "safetensors"]
    assert plan.skipped == ["torch>=2.2", "SimpleITK>=2.3"]
    everything = install.plan_install(reqs, importable=lambda m: True)
    assert everything.nothing_to_do and everything.skipped == ["torch>=2.2", "SimpleITK>=2.3"]


def test_import_names_and_bundled_requirements():
    assert install.import_name("scikit-learn>=1.3") == "sklearn"
    assert install.import_name("monai[nibabel]>=1.4") == "monai"
    assert install.distribution_name("tqdm ; python_version>'3'") == "tqdm"
    reqs = install.read_requirements()
    assert "monai>=1.4" in reqs and not any(r.lower().startswith(("torch", "simpleitk")) for r in reqs)
    # in this environment (torch and everything installed) the real check finds nothing to do
    assert install.plan_install(reqs).nothing_to_do


# ---------------------------------------------------------------- ensure_dependencies inside a fake Slicer
# The fakes keep the real signatures: slicer.util (v5.10.0 util.py), slicer.packaging.pip_ensure
# (v5.12.3 packaging.py) and PyTorchUtilsLogic.installTorch (fepegar/SlicerPyTorch).

class FakeUtil:
    def __init__(self, answers=(True,)):
        self.calls, self.answers = [], list(answers)

    def confirmOkCancelDisplay(self, text, windowTitle=None, parent=None, **kwargs):
        self.calls.append(("confirm", text))
        return self.answers.pop(0)

    def confirmYesNoDisplay(self, text, windowTitle=None, parent=None, **kwargs):
        self.calls.append(("restart?", text))
        return False

    def errorDisplay(self, text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
        self.calls.append(("error", text))

    def pip_install(self, requirements):  # 5.10: one string or a list of pip arguments
        args = list(requirements)
        constraints = args[args.index("-c") + 1] if "-c" in args else None
        self.calls.append(("pip_install", args, open(constraints).read() if constraints else None))

    def restart(self):
        self.calls.append(("restart",))


class FakePackaging:
    def __init__(self, util):
        self.util = util

    def pip_ensure(self, requirements, constraints=None, skip_packages=None, prompt_install=True,
                   prompt_restart=True, requester=None, skip_in_testing=True, show_progress=True):
        pins = open(constraints).read() if constraints else None
        self.util.calls.append(("pip_ensure", list(requirements), skip_packages, prompt_install, requester, pins))


class FakePyTorchUtils:
    calls: list = []

    class PyTorchUtilsLogic:
        def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None,
                         torchvisionVersionRequirement=None):
            FakePyTorchUtils.calls.append((askConfirmation, torchVersionRequirement))
            return object()


def _fake_slicer(version: str, answers=(True,)):
    import types

    fake = types.ModuleType(f"fake_slicer_{version.replace('.', '_')}")  # no real slicer.packaging behind it
    fake.util = FakeUtil(answers)
    if version >= "5.12":
        fake.packaging = FakePackaging(fake.util)
    return fake


@pytest.fixture
def missing(monkeypatch):
    """torch and scikit-learn are not installed; SimpleITK 2.5.0 is (Slicer's own)."""
    versions = {"SimpleITK": "2.5.0", "torch": None}
    monkeypatch.setattr(install, "is_importable", lambda m: m != "sklearn" and (m != "torch" or versions["torch"]))
    monkeypatch.setattr(install, "installed_version", lambda name: versions.get(name, "1.0"))
    FakePyTorchUtils.calls = []
    return versions


def test_slicer_512_uses_pip_ensure_with_the_installed_torch_pinned_and_asks_once(missing):
    """Review M4: skip_packages installs with --no-deps, so monai 1.6 (torch>=2.8) could land over torch 2.2;
    a constraints file makes pip pick a monai that accepts the torch PyTorchUtils installed."""
    slicer = _fake_slicer("5.12")
    missing["torch"] = "2.2.2"  # what installTorch left, e.g. on an Intel Mac
    assert install.ensure_dependencies(slicer=slicer, pytorch_utils=FakePyTorchUtils)
    kinds = [c[0] for c in slicer.util.calls]
    assert kinds == ["confirm", "pip_ensure"]  # one question for torch and pip together
    _, reqs, skip, prompt_install, requester, pins = slicer.util.calls[1]
    assert reqs == ["scikit-learn>=1.3"] and skip is None
    assert {"torch==2.2.2", "SimpleITK==2.5.0"} <= set(pins.splitlines())
    assert prompt_install is False and requester == "LongitudinalAL"
    assert FakePyTorchUtils.calls == []  # 2.2.2 meets the floor


def test_slicer_510_pins_the_installed_torch_and_simpleitk_for_pip(missing):
    missing["torch"] = "2.4.1+cu121"  # e.g. installed by PyTorchUtils for this GPU
    slicer = _fake_slicer("5.10")
    assert install.ensure_dependencies(slicer=slicer, pytorch_utils=FakePyTorchUtils)
    (_, _), (kind, args, constraints) = slicer.util.calls
    assert kind == "pip_install" and args[0] == "-c" and args[2:] == ["scikit-learn>=1.3"]
    assert "torch==2.4.1+cu121" in constraints.splitlines() and "SimpleITK==2.5.0" in constraints.splitlines()
    assert FakePyTorchUtils.calls == []  # a new enough torch is kept


def test_declining_installs_nothing_and_an_old_torch_goes_through_pytorchutils(missing):
    slicer = _fake_slicer("5.12", answers=(False,))
    assert not install.ensure_dependencies(slicer=slicer, pytorch_utils=FakePyTorchUtils)
    assert [c[0] for c in slicer.util.calls] == ["confirm"] and FakePyTorchUtils.calls == []
    missing["torch"] = "2.0.1"
    assert install.torch_too_old("2.0.1") and not install.torch_too_old("2.13.0+cpu")
    slicer = _fake_slicer("5.12")
    assert install.ensure_dependencies(slicer=slicer, pytorch_utils=FakePyTorchUtils)
    assert "2.0.1 is too old" in slicer.util.calls[0][1] and FakePyTorchUtils.calls == [(False, ">=2.2")]
