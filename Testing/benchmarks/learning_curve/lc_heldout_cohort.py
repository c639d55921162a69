#!/usr/bin/env python
"""Write the model issue's frozen held-out pair family (cohort/heldout.py) as a cohort folder.

Why: the learning-curve benchmark reads cohorts through their manifest
(``dir:<folder>`` family); the held-out family is rendered in memory by
``heldout.make_pair``. Pairs alternate the ``iso1`` and ``axial3`` grids (odd
indices are lesion-free, as the family defines); the split is by pair index
(the family has one anatomy, Colin27, so no subject split exists).

    PYTHONPATH=<checkout with cohort/heldout.py>/LongitudinalAL \\
        .venv/bin/python Testing/benchmarks/learning_curve/lc_heldout_cohort.py --n 12 --test 6 --out /tmp/heldout_cohort
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def write_family(out: Path, n: int, n_test: int, n_val: int = 1) -> Path:
    import SimpleITK as sitk

    from LongitudinalALLib.cohort import heldout
    from LongitudinalALLib.cohort.manifest import FORMAT

    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        grid = ("iso1", "axial3")[(i // 2) % 2]  # both grids among lesion-bearing and lesion-free pairs
        pair = heldout.make_pair(i, grid)
        folder = out / pair.pair_id
        folder.mkdir(exist_ok=True)
        files = {}
        for name, img in (("baseline", pair.baseline), ("followup", pair.followup), ("new_lesions", pair.truth)):
            sitk.WriteImage(img, str(folder / f"{name}.nii.gz"), True)
            files[name] = f"{pair.pair_id}/{name}.nii.gz"
        split = "test" if i >= n - n_test else ("val" if i >= n - n_test - n_val else "train")
        pairs.append({"pair_id": pair.pair_id, "split": split, "grid_type": grid, "has_new": pair.has_new,
                      "files": files})
        print(f"{pair.pair_id} {grid} {split} new={pair.has_new}", flush=True)
    manifest = {"format": FORMAT, "family": heldout.FAMILY_VERSION, "pairs": pairs,
                "split_rule": "by pair index: the last n_test pairs are the test split, the one before is val"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--test", type=int, default=6)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    write_family(Path(a.out), a.n, a.test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
