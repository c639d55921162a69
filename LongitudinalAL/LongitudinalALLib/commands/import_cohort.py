"""``longitudinal-al import-cohort``: a cohort manifest from your own pairs with truth masks."""

from __future__ import annotations

import argparse

HELP = ("Build a cohort manifest (the make-cohort format) from real baseline/follow-up pairs with "
        "new-lesion truth masks, so `simulate` runs the active-learning loop on them.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("listing", help="JSON or CSV: subject_id, baseline, followup, new_lesions "
                                   "[, truth_transform, split, pair_id] per pair (paths relative to the listing)")
    p.add_argument("--out", required=True, help="output folder (manifest.json + each pair's mask on its baseline)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing manifest in --out")


def run(args: argparse.Namespace) -> int:
    from LongitudinalALLib.cohort.import_pairs import import_cohort
    from LongitudinalALLib.cohort.manifest import load_manifest

    path = import_cohort(args.listing, args.out, overwrite=args.overwrite)
    s = load_manifest(path)["summary"]
    print(f"{s['pairs']} pairs -> {path}; split {s['pairs_per_split']}; "
          f"without new lesions: {s['pairs_without_new_lesions']}")
    if not s["pairs_per_split"]["test"]:
        print("note: no pair has split test; `simulate` needs at least one to score the rounds")
    return 0
