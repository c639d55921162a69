"""Decision logic of the in-Slicer dependency helper (the Slicer call itself runs only inside Slicer)."""

from __future__ import annotations

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
