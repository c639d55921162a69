"""``longitudinal-al make-cohort``: a simulated longitudinal MS cohort on real anatomy."""

from __future__ import annotations

import argparse
import sys
import time
import warnings

HELP = ("Simulate baseline/follow-up FLAIR-like pairs with exact new-lesion masks on real "
        "anatomy (MNI ICBM152, Colin27), with a manifest and a subject-wise split.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=40, help="number of pairs (default 40)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    p.add_argument("--out", required=True, help="output folder (manifest.json + one folder per pair)")
    p.add_argument("--spacing", type=float, default=1.0, help="isotropic voxel size in mm (default 1; 2 is fast)")
    p.add_argument("--anatomies", default="mni,colin27",
                   help="comma-separated anatomies (default mni,colin27; missing ones are skipped with a hint)")
    p.add_argument("--pairs-per-subject", type=int, default=2,
                   help="pairs drawn from one deformed anatomy (kept in one split; default 2)")
    p.add_argument("--min-new-lesions", type=int, default=0,
                   help="at least this many new lesions per pair (0 allows pairs without new lesions)")
    p.add_argument("--min-existing-lesions", type=int, default=0, help="at least this many baseline lesions")
    p.add_argument("--contact-sheet", type=int, nargs="?", const=1_000_000, default=0, metavar="K",
                   help="write contact_sheet.png for the first K pairs (all pairs when K is omitted)")
    for name in ("misalign", "bias", "noise", "drift", "atrophy"):
        p.add_argument(f"--no-{name}", action="store_true", help=f"switch simulated {name} off")
    p.add_argument("--flat", action="store_true", help="write a single pair (--n 1) straight into --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cohort in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from LongitudinalALLib.cohort.anatomy import AnatomyUnavailableWarning
    from LongitudinalALLib.cohort.contact_sheet import pair_contact_sheet
    from LongitudinalALLib.cohort.generator import CohortOptions, generate_cohort
    from LongitudinalALLib.cohort.manifest import load_manifest
    from LongitudinalALLib.cohort.pair import SimulationOptions
    from LongitudinalALLib.core.progress import TqdmProgress

    sim = SimulationOptions(misalign=not args.no_misalign, bias=not args.no_bias, noise=not args.no_noise,
                            drift=not args.no_drift, atrophy=not args.no_atrophy,
                            min_new_lesions=args.min_new_lesions, min_existing_lesions=args.min_existing_lesions)
    options = CohortOptions(n_pairs=args.n, seed=args.seed, spacing_mm=args.spacing,
                            anatomies=tuple(a.strip() for a in args.anatomies.split(",") if a.strip()),
                            pairs_per_subject=max(1, args.pairs_per_subject), simulation=sim, flat=args.flat)
    bar = TqdmProgress(disable=args.quiet)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnatomyUnavailableWarning)
        try:
            path = generate_cohort(args.out, options, overwrite=args.overwrite, progress=bar)
        finally:
            bar.close()
    for w in caught:
        if issubclass(w.category, AnatomyUnavailableWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    manifest = load_manifest(path)
    for pair in manifest["pairs"][: args.contact_sheet]:
        pair_contact_sheet(manifest, pair)
    s = manifest["summary"]
    print(f"{s['pairs']} pairs in {elapsed:.1f} s -> {path}")
    print(f"split {s['pairs_per_split']}; without new lesions: {s['pairs_without_new_lesions']}; "
          f"new lesions by size (mm) {s['new_lesions_by_size_mm']}; enlarging {s['enlarging_lesions']}")
    return 0
