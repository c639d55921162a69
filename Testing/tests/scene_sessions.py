"""Small scene sessions on chosen geometries, for the scene persistence and slice-row tests.

``start_session`` runs the scene logic's real ``run_spec``, ``job_suggest`` and
``apply_prepare_result``; only registration is skipped (the follow-up is built on
the baseline grid), so a session on a 20-slice volume starts in seconds. The
volume's direction is free, which is the point: coronal and sagittal runs, and
axial volumes whose k axis points inferior, flip the slice axis in pairing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.imaging.pairing import pair_slices
from LongitudinalALLib.jobs import jobs
from LongitudinalALLib.scene import volumes
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic, RunOptions

#: LPS direction matrices (row-major 3x3)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
K_INFERIOR = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)

TINY = {"channels": [4, 8], "strides": [2], "num_res_units": 1}


def options(axis: str, k: int = 3) -> RunOptions:
    return RunOptions(spacing_mm=2.0, prepare={"axis": axis, "size": 32, "n4": False}, k=k,
                      strategy="entropy_mean", model_config=TINY, init_weights="scratch", device="cpu",
                      train={"epochs": 1, "batch_size": 2, "steps_per_epoch": 1, "crop_size": None,
                             "augment": None, "min_epochs": 1})


def volume_pair(direction=IDENTITY, shape=(20, 22, 24), spacing: float = 2.0) -> tuple[sitk.Image, sitk.Image]:
    """(baseline, follow-up) (K, J, I) = ``shape``: an ellipsoid 'head' with a ramp, plus a bright blob later."""
    kk, jj, ii = np.indices(shape, dtype=np.float32)
    centre = (np.array(shape, np.float32) - 1) / 2
    radius = np.array(shape, np.float32) * 0.42
    inside = (((kk - centre[0]) / radius[0]) ** 2 + ((jj - centre[1]) / radius[1]) ** 2
              + ((ii - centre[2]) / radius[2]) ** 2) <= 1.0
    base = np.where(inside, 100.0 + 2.0 * kk + jj - ii, 0.0).astype(np.float32)
    blob = ((kk - 5) ** 2 + (jj - 9) ** 2 + (ii - 14) ** 2) <= 4
    follow = base + np.where(blob, 80.0, 0.0).astype(np.float32)
    images = []
    for array in (base, follow):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((spacing,) * 3)
        image.SetDirection(direction)
        image.SetOrigin((10.0, -20.0, 30.0))
        images.append(image)
    return images[0], images[1]


def _prepare_without_registration(spec: dict, baseline: sitk.Image, followup: sitk.Image) -> None:
    """What job_prepare writes, minus registration (the follow-up already is on the baseline grid)."""
    work = Path(spec["work_dir"])
    foreground = sitk.Cast(baseline > 0, sitk.sitkUInt8)
    for name, image in (("baseline", baseline), ("followup_registered", followup),
                        ("difference", followup - baseline), ("foreground", foreground)):
        (work / "prepared").mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(work / "prepared" / f"{name}.nrrd"), True)
    sitk.WriteTransform(sitk.Transform(3, sitk.sitkIdentity), str(work / "prepared" / "transform.tfm"))
    prep = spec["prepare"]
    case = pair_slices(baseline, followup, foreground, spec["case_id"], axis=prep["axis"], size=prep["size"],
                       spacing_mm=prep["spacing_mm"])
    s = spec["session"]
    SessionStore.create(work / "session", [case], strategy=s["strategy"], seed=s["seed"],
                     model_config=s["model_config"], init_weights=s["init_weights"])


def start_session(hs, work_root: Path, axis: str, direction=IDENTITY, k: int = 3) -> LongitudinalALSceneLogic:
    """A logic with a live session on a small volume: outputs in the scene, first suggestion shown."""
    baseline, followup = volume_pair(direction)
    base_node = volumes.sitk_to_node(baseline, hs.scene, "baseline")
    follow_node = volumes.sitk_to_node(followup, hs.scene, "follow-up")
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=work_root)
    spec = logic.run_spec(base_node, follow_node, options(axis, k))
    _prepare_without_registration(spec, baseline, followup)
    logic.apply_prepare_result(spec, jobs.job_suggest(spec))
    return logic


def tree(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int, bytes]]:
    """{relative path: (size, mtime_ns, first bytes)} of every file under ``root`` outside ``skip``."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not any(path.is_relative_to(s) for s in skip):
            st = path.stat()
            out[path.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns, path.read_bytes()[:4096])
    return out
