"""The heavy jobs behind the Slicer module, as plain functions on files (no ``slicer``).

Each job takes a JSON-able spec, ``progress`` and ``cancel``, works in a work
directory and returns a JSON-able result; :mod:`.worker` runs the same
functions in a child process, the headless Logic runs them in-process.

Work directory layout (all of it travels inside the .mrb, see session_scene)::

    inputs/          baseline.nrrd, followup.nrrd exported from the scene
    prepared/        imaging.prepare.SCENE_FILES (.nrrd volumes, transform.tfm, qc.json, slice geometry)
    session/         the session store (active/store.py: pool, labels, checkpoints, state.json)
    maps/            probability, uncertainty, lesion_mask (.nrrd) on the baseline grid (latest model)
    suggestions.json the current suggestions (active.suggestions.Suggestion dicts)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import SimpleITK as sitk

from LongitudinalALLib.active.policy import DEFAULT_STRATEGY
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.active.suggestions import place_on_baseline
from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError, SessionError
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, check_cancel, report
from LongitudinalALLib.imaging.io import read_image, save_image
from LongitudinalALLib.imaging.ras import image_ijk_to_ras
from LongitudinalALLib.imaging.prepare import SCENE_FILES
from LongitudinalALLib.jobs import staging


def _write_image(image: sitk.Image, path: Path) -> str:
    return str(save_image(image, path))


def _prepare_options(options: dict[str, Any]):
    from LongitudinalALLib.imaging.prepare import PrepareOptions

    known = PrepareOptions.__dataclass_fields__
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(f"Unknown preparation options {unknown}.", f"Use only {sorted(known)}.")
    return PrepareOptions(**options)


def job_prepare(spec: dict[str, Any], progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None) -> dict[str, Any]:
    """Register + pair the inputs, start a session, score the pool; see module docstring."""
    from LongitudinalALLib.imaging.prepare import prepare_pair, write_prepared

    work = Path(spec["work_dir"])
    if SessionStore.exists(work / "session"):  # never replace someone's session (labels, rounds)
        raise SessionError(f"{work} already holds a session.", "Press Run again: it starts in a new folder.")
    checked_device(spec)  # an unusable device fails here, not after the whole registration
    pair = prepare_pair(spec["baseline"], spec["followup"], _prepare_options(spec.get("prepare", {})),
                        case_id=spec.get("case_id", "case"), progress=progress, cancel=cancel)
    check_cancel(cancel, "Preparation")
    write_prepared(pair, work / "prepared", SCENE_FILES)  # the one writer of a prepared folder
    s = spec.get("session", {})
    store = SessionStore.create(work / "session", [pair.slices], strategy=s.get("strategy", DEFAULT_STRATEGY),
                                seed=int(s.get("seed", 0)), model_config=s.get("model_config"),
                                init_weights=s.get("init_weights", "bundled"))
    store.close()
    result = job_suggest(spec, progress, cancel)
    result["qc"] = pair.qc.to_dict()
    return result


def job_suggest(spec: dict[str, Any], progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None) -> dict[str, Any]:
    """Rank unlabelled slices with the session's strategy; write maps and suggestions.json."""
    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.active.round_maps import case_maps
    from LongitudinalALLib.model import Predictor

    work = Path(spec["work_dir"])
    out_dir = Path(spec.get("out_dir") or work)  # a staged train job writes beside its staged session
    s = spec.get("session", {})
    device = checked_device(spec)
    session = SessionStore.open_recovered(spec.get("session_dir") or work / "session")[0]
    with session:
        loop = ActiveLoop(session)
        predictor = Predictor(loop.current_model(), device=device)  # the user's device, loaded once
        query = loop.suggest(int(s.get("k", 10)), s.get("strategy"), predictor=predictor, progress=progress,
                             cancel=cancel, keep_outputs=True)  # one model pass: strategy, maps and triage
        budget = session.budget()["total"]
    report(progress, "Mapping", 0.0, "model output on the baseline grid")
    mapped = case_maps(query, session)  # the first case is the scene's pair
    case_id, pair_probability = mapped.case_id, mapped.pair_probability
    case = session.case(case_id)
    baseline = read_image(work / "prepared" / SCENE_FILES["baseline"])
    maps = {}
    for name, array in mapped.volumes.items():  # (K, J, I) on the baseline grid
        volume = sitk.GetImageFromArray(array)
        volume.CopyInformation(baseline)
        maps[name] = _write_image(volume, out_dir / "maps" / f"{name}.nrrd")
    difference = sitk.GetArrayFromImage(read_image(work / "prepared" / SCENE_FILES["difference"]))
    foreground = sitk.GetArrayFromImage(read_image(work / "prepared" / SCENE_FILES["foreground"]))
    suggestions = place_on_baseline(query.suggestions, difference, foreground, image_ijk_to_ras(baseline),
                                    case.geometry.axis)
    for x in suggestions:  # issue 15's triage score of this pair
        x.extra["pair_probability"] = pair_probability
    dicts = [x.to_dict() for x in suggestions]
    atomic.write_json(out_dir / "suggestions.json", dicts)
    report(progress, "Mapping", 1.0, f"{len(dicts)} suggestions")
    return {"suggestions": dicts, "maps": maps, "round": query.round, "budget": budget,
            "device": str(device), "case_id": case_id, "pair_probability": pair_probability}


def job_train(spec: dict[str, Any], progress: ProgressCallback | None = None,
              cancel: CancelToken | None = None) -> dict[str, Any]:
    """One training round on every accepted label (warm start), then new suggestions.

    With ``spec["staged"]`` (the module's background jobs) the round is trained in a
    staged copy of the session that only the parent commits (:mod:`.staging`), so a
    cancelled or killed job commits nothing; the result names the copy as ``staged``.
    """
    from LongitudinalALLib.active.loop import ActiveLoop

    work = Path(spec["work_dir"])
    session_dir = work / "session"
    if spec.get("staged"):
        out_dir = Path(spec["staged"])
        if spec.get("staged_by_parent"):  # the snapshot of the labels is the one taken when the round started
            session_dir = out_dir / "session"
        else:
            session_dir = staging.stage(session_dir, out_dir / "session")
        spec = {**spec, "session_dir": str(session_dir), "out_dir": str(out_dir)}
    overrides = dict(spec.get("train", {}))
    if spec.get("device"):  # the user's choice in the panel decides, alone
        overrides["device"] = spec["device"]
    with SessionStore.open_recovered(session_dir)[0] as session:
        loop = ActiveLoop(session)
        result = loop.train(loop.train_config(**overrides), progress=progress, cancel=cancel)
    out = job_suggest(spec, progress, cancel)
    out["train"] = {**result.summary(), "device": out["device"]}  # the round record names where it ran
    if spec.get("staged"):
        out["staged"] = spec["staged"]
    return out


def job_device(spec: dict[str, Any], progress: ProgressCallback | None = None,
               cancel: CancelToken | None = None) -> dict[str, Any]:
    """Which device the jobs would use, and the torch version (shown in the module panel)."""
    import torch

    from LongitudinalALLib.model.devices import available_devices, resolve_device

    device = resolve_device(spec.get("device"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    if spec.get("devices_file"):
        record_devices(Path(spec["devices_file"]))
    return {"device": str(device), "name": name, "torch": torch.__version__, "devices": available_devices()}


def checked_device(spec: dict[str, Any]):
    """The spec's device (torch.device), after recording what torch found for the panel.

    Why first: a panel guess torch cannot honour (an NVIDIA driver with a CPU-only torch)
    must be corrected at the next start even when this job fails on it (review M5).
    """
    from LongitudinalALLib.model.devices import resolve_device

    work = Path(spec["work_dir"])
    record_devices(Path(spec.get("devices_file") or work.parent / "devices.json"))
    return resolve_device(spec.get("device"))


def record_devices(path: Path) -> None:
    """Write torch's device list where the panel reads it without torch (panel_options.available_devices)."""
    from LongitudinalALLib.model.devices import available_devices

    try:
        atomic.write_json(path, {"devices": available_devices()})
    except OSError:  # a read-only work root only costs the panel its cached answer
        pass


JOBS: dict[str, Callable[..., dict[str, Any]]] = {
    "prepare": job_prepare, "suggest": job_suggest, "train": job_train, "device": job_device,
}
