"""``longitudinal-al label``: import the annotator's answers from a mask in baseline space."""

from __future__ import annotations

import argparse
import json
import sys

from LongitudinalALLib.commands.session_args import add_wait_option, open_for_writing

HELP = ("Record labels for slices of a session from a new-lesion mask drawn on the baseline "
        "(a listed slice that is empty in the mask means 'no new lesion'; it must lie inside the mask).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_wait_option(p)
    p.add_argument("--session", required=True, help="session directory")
    p.add_argument("--mask", required=True, help="new-lesion mask on the baseline (0 = background, 1 = lesion)")
    p.add_argument("--label-value", type=float, default=None,
                   help="the value marking new lesions in a multi-label mask (default: the mask must be 0/1)")
    p.add_argument("--series", action="append", metavar="UID",
                   help="DICOM series UID of the mask when its folder holds several series")
    p.add_argument("--slices", default=None,
                   help="comma-separated slice indices, e.g. 40,41 (default: every slice where the mask is non-zero)")
    p.add_argument("--case", default=None, help="case id (default: the session's only case)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def parse_slices(text: str | None) -> list[int] | None:
    from LongitudinalALLib.core.errors import InputError

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


def run(args: argparse.Namespace) -> int:
    from LongitudinalALLib.core.errors import InputError
    from LongitudinalALLib.imaging.label_masks import mask_on_baseline, read_label_mask, uncovered_slices

    slices = parse_slices(args.slices)
    session = open_for_writing(args)
    notes: list[str] = []
    mask = read_label_mask(args.mask, args.label_value, series=args.series or (), notes=notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    case_id = args.case
    if case_id is None:
        if len(session.case_ids) != 1:
            raise InputError(f"The session has {len(session.case_ids)} cases.", f"Pick one with --case ({session.case_ids}).")
        case_id = session.case_ids[0]
    case = session.case(case_id)
    on_base = mask_on_baseline(mask, case.geometry, f"Mask {args.mask}")
    if slices is not None:
        missing = uncovered_slices(case, on_base.covered, slices, [session.position(case_id, s) for s in slices])
        if missing:
            raise InputError(f"Mask {args.mask} does not cover slice(s) {missing} of {case_id}, so it cannot say "
                             "they are lesion-free.", "Give a mask covering the whole baseline, or leave those "
                             "slices out of --slices.")
    before = {r.slice_index: r.lesion_pixels for r in session.labels() if r.case_id == case_id}
    added = session.add_labels_from_volume(case_id, on_base.volume, slices)
    if not added:
        raise InputError(f"Mask {args.mask} is empty and no --slices were given.",
                         "List the slices you checked with --slices to record them as 'no new lesion'.")
    recs = [session.label_record(case_id, s) for s in added]
    contoured = [r.slice_index for r in recs if r.lesion_pixels]
    empty = [r.slice_index for r in recs if not r.lesion_pixels]
    erased = [s for s in empty if before.get(s)]
    b = session.budget()["total"]
    if args.json:
        print(json.dumps({"case_id": case_id, "contoured": contoured, "lesion_free": empty, "budget": b,
                          "note": on_base.note, "replaced_contours": erased, "axis": case.geometry.axis}, indent=2))
        return 0
    if on_base.note:
        print(on_base.note)
    if erased:
        print(f"warning: slice(s) {erased} of {case_id} had a contour; they are now recorded as lesion-free",
              file=sys.stderr)
    print(f"{case_id}: {len(contoured)} contoured slice(s) {contoured}, {len(empty)} lesion-free {empty}")
    print(f"budget: {b['labelled']} of {b['slices']} slices ({100 * b['fraction']:.1f} %), "
          f"{b['contoured']} contoured, {b['lesion_free']} lesion-free")
    return 0
