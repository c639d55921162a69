"""``longitudinal-al prepare``: register a follow-up to its baseline and build slice pairs."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from LongitudinalALLib.imaging.io import case_id_from_path

HELP = ("Register FOLLOWUP to BASELINE (N4, mask, normalise, rigid+affine), write the registered "
        "follow-up, difference, mask, transform (.tfm) and qc.json to --out.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", help="baseline scan (NIfTI, NRRD, MHA/MHD or DICOM folder)")
    parser.add_argument("followup", help="follow-up scan of the same patient")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--no-n4", action="store_true", help="skip N4 bias-field correction")
    parser.add_argument("--modality", choices=("mri", "ct"), default="mri", help="default: mri")
    parser.add_argument("--mask", help="baseline foreground mask on the baseline grid (default: automatic)")
    parser.add_argument("--deformable", action="store_true", help="add a B-spline stage after the affine one")
    parser.add_argument("--axis", choices=("axial", "coronal", "sagittal"), default="axial")
    parser.add_argument("--size", type=int, default=256, help="slice size in pixels (default 256)")
    parser.add_argument("--spacing", type=float, default=1.0, help="in-plane pixel spacing in mm (default 1.0)")
    parser.add_argument("--series", action="append", metavar="UID",
                        help="DICOM series UID to use when a scan folder holds several (repeat for each scan)")
    parser.add_argument("--case-id", help="case name (default: baseline file name)")
    parser.add_argument("--seed", type=int, default=0, help="registration sampling seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--initial-transform", metavar="T.tfm",
                        help="use this follow-up-to-baseline transform (e.g. prepare's .tfm corrected in Slicer's "
                             "Transforms module) as it is, without registering")
    parser.add_argument("--accept-qc-failure", action="store_true",
                        help="exit 0 even when the registration QC flags the pair (outputs are written either way)")


#: largest --size: a pool holds slices x 3 x size^2 float32 (2048: ~12 GiB for 256 slices)
MAX_SIZE = 2048
#: the bundled network halves the slice four times, so its side must be a multiple of 16
SIZE_STEP = 16


def check_size(size: int) -> int:
    """Refuse slice sizes that cannot be allocated or that the model cannot take, before any work is done."""
    from LongitudinalALLib.core.errors import InputError

    if not SIZE_STEP <= size <= MAX_SIZE or size % SIZE_STEP:
        raise InputError(f"--size {size} cannot be used: the model takes a multiple of {SIZE_STEP} pixels "
                         f"from {SIZE_STEP} to {MAX_SIZE}.", "Use e.g. --size 256; --spacing sets the pixel size in mm.")
    return size


def run(args: argparse.Namespace) -> int:
    from LongitudinalALLib.commands.suggest import load_scans
    from LongitudinalALLib.core.errors import RegistrationError
    from LongitudinalALLib.core.progress import TqdmProgress
    from LongitudinalALLib.imaging.io import check_output_dir
    from LongitudinalALLib.imaging.prepare import PrepareOptions, prepare_pair, write_prepared

    check_size(args.size)
    check_output_dir(args.out)
    base, foll = load_scans(args.baseline, args.followup, args.series)
    case_id = args.case_id or case_id_from_path(args.baseline)
    options = PrepareOptions(modality=args.modality, n4=False if args.no_n4 else None, mask=args.mask,
                             deformable=args.deformable, axis=args.axis, size=args.size,
                             spacing_mm=args.spacing, seed=args.seed,
                             initial_transform=getattr(args, "initial_transform", None))
    bar = TqdmProgress(disable=args.quiet)
    try:
        pair = prepare_pair(base, foll, options, case_id=case_id, progress=bar)
    finally:
        bar.close()
    created = not Path(args.out).exists()
    try:
        paths = write_prepared(pair, args.out)
    except OSError:  # e.g. disk full half-way: leave no incomplete output folder behind
        if created:
            shutil.rmtree(args.out, ignore_errors=True)
        raise
    qc = pair.qc
    status = "FAILED QC" if qc.failed else "ok"
    how = "from the given transform" if options.initial_transform is not None else f"in {qc.seconds:.1f} s"
    print(f"case {pair.case_id}: registration {status} {how} (NCC {qc.ncc_before:.3f} -> {qc.ncc_after:.3f}, "
          f"edge alignment {qc.edge_before:.2f} -> {qc.edge_after:.2f}, mask Dice {qc.dice:.3f})")
    print(f"{pair.slices.images.shape[0]} {options.axis} slice pairs of {options.size}x{options.size}; "
          f"total {sum(pair.seconds.values()):.1f} s")
    for warning in qc.warnings:
        print(f"warning: {warning}")
    print(f"outputs in {paths['qc'].parent}")
    if qc.failed and not getattr(args, "accept_qc_failure", False):
        raise RegistrationError(
            f"case {pair.case_id}: registration failed QC: {'; '.join(qc.problems)}.",
            f"Open {paths['transform']} in Slicer (Transforms module), correct it, save it, and run again with "
            f"--initial-transform {paths['transform']}; or keep this result with --accept-qc-failure.")
    if qc.failed:
        print(qc.message)
    return 0
