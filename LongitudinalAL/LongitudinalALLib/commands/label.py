"""``longitudinal-al label``: import the annotator's answers from a mask in baseline space."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .session_args import add_wait_option, open_for_writing

HELP = ("Record labels for slices of a session from a new-lesion mask drawn on the baseline "
        "(a listed slice that is empty in the mask means 'no new lesion').")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_wait_option(p)
    p.add_argument("--session", required=True, help="session directory")
    p.add_argument("--mask", required=True, help="new-lesion mask on the baseline (non-zero = lesion)")
    p.add_argument("--slices", default=None,
                   help="comma-separated slice indices, e.g. 40,41 (default: every slice where the mask is non-zero)")
    p.add_argument("--case", default=None, help="case id (default: the session's only case)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def parse_slices(text: str | None) -> list[int] | None:
    from ..errors import InputError

    if text is None:
        return None
    try:
        out = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise InputError(f"--slices {text!r} is not a comma-separated list of integers.",
                         "Write e.g. --slices 40,41,57.") from None
    if not out:
        raise InputError("--slices is empty.", "List at least one slice index, or leave it out.")
    return out


def load_mask_on_baseline(mask_path: str, baseline_path: Path | None):
    """(K,J,I) uint8 mask on the baseline grid; resampled (nearest) when only the grid differs."""
    import numpy as np
    import SimpleITK as sitk

    from ..errors import InputError

    try:
        mask = sitk.ReadImage(str(mask_path))
    except RuntimeError as err:
        raise InputError(f"Mask {mask_path} cannot be read ({str(err).strip().splitlines()[-1]}).",
                         "Give a NIfTI/NRRD label volume.") from None
    if mask.GetNumberOfComponentsPerPixel() != 1 or mask.GetDimension() != 3:
        raise InputError(f"Mask {mask_path} is not a 3D single-channel volume.", "Save the mask as a 3D label map.")
    note = ""
    if baseline_path is not None and baseline_path.is_file():
        ref = sitk.ReadImage(str(baseline_path))
        same = (mask.GetSize() == ref.GetSize()
                and np.allclose(mask.GetSpacing(), ref.GetSpacing(), atol=1e-4)
                and np.allclose(mask.GetOrigin(), ref.GetOrigin(), atol=1e-3)
                and np.allclose(mask.GetDirection(), ref.GetDirection(), atol=1e-4))
        if not same:
            mask = sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
            note = f"mask resampled onto the baseline grid of {baseline_path.name}"
    return (sitk.GetArrayFromImage(mask) > 0).astype(np.uint8), note


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from .suggest import find_volume

    session = open_for_writing(args)
    case_id = args.case
    if case_id is None:
        if len(session.case_ids) != 1:
            raise InputError(f"The session has {len(session.case_ids)} cases.", f"Pick one with --case ({session.case_ids}).")
        case_id = session.case_ids[0]
    prepared = session.state.get("prepared", {}).get(case_id)
    baseline = None
    if prepared:
        try:
            baseline = find_volume(Path(prepared), "baseline")
        except InputError:
            baseline = None
    volume, note = load_mask_on_baseline(args.mask, baseline)
    expected = session.case(case_id).geometry
    slices = parse_slices(args.slices)
    added = session.add_labels_from_volume(case_id, volume, slices)
    if not added:
        raise InputError(f"Mask {args.mask} is empty and no --slices were given.",
                         "List the slices you checked with --slices to record them as 'no new lesion'.")
    recs = [session.state["labels"][f"{case_id}:{s}"] for s in added]
    contoured = [r["slice_index"] for r in recs if r["lesion_pixels"]]
    empty = [r["slice_index"] for r in recs if not r["lesion_pixels"]]
    b = session.budget()["total"]
    if args.json:
        print(json.dumps({"case_id": case_id, "contoured": contoured, "lesion_free": empty, "budget": b,
                          "note": note, "axis": expected.axis}, indent=2))
        return 0
    if note:
        print(note)
    print(f"{case_id}: {len(contoured)} contoured slice(s) {contoured}, {len(empty)} lesion-free {empty}")
    print(f"budget: {b['labelled']} of {b['slices']} slices ({100 * b['fraction']:.1f} %), "
          f"{b['contoured']} contoured, {b['lesion_free']} lesion-free")
    return 0
