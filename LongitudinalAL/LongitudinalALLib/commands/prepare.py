"""``longitudinal-al prepare``: register a follow-up to its baseline and build slice pairs."""

from __future__ import annotations

import argparse

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
    parser.add_argument("--case-id", help="case name (default: baseline file name)")
    parser.add_argument("--seed", type=int, default=0, help="registration sampling seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..prepare import PrepareOptions, prepare_pair, write_prepared
    from ..progress import TqdmProgress

    options = PrepareOptions(modality=args.modality, n4=False if args.no_n4 else None, mask=args.mask,
                             deformable=args.deformable, axis=args.axis, size=args.size,
                             spacing_mm=args.spacing, seed=args.seed)
    bar = TqdmProgress(disable=args.quiet)
    try:
        pair = prepare_pair(args.baseline, args.followup, options, case_id=args.case_id, progress=bar)
    finally:
        bar.close()
    paths = write_prepared(pair, args.out)
    qc = pair.qc
    status = "FAILED" if qc.failed else "ok"
    print(f"case {pair.case_id}: registration {status} in {qc.seconds:.1f} s "
          f"(NCC {qc.ncc_before:.3f} -> {qc.ncc_after:.3f}, Mattes {qc.mattes_before:.3f} -> {qc.mattes_after:.3f})")
    print(f"{pair.slices.images.shape[0]} {options.axis} slice pairs of {options.size}x{options.size}; "
          f"total {sum(pair.seconds.values()):.1f} s")
    if qc.failed:
        print(qc.message)
    print(f"outputs in {paths['qc'].parent}")
    return 1 if qc.failed else 0
