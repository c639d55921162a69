"""Does the registration QC flag every bad transform, and pass good ones? (clinical-grid pairs)

For one pair per grid type (reported seeds), QC judges transforms of known error,
given through ``initial_transform`` exactly as ``prepare --initial-transform``
does: the true one, the true one shifted 1 / 2.5 / 5 mm or turned 3 degrees
(about the head centre, random axis), and the true one composed with a
left-right mirror. Pass/flag is recorded against the mean error.

    .venv/bin/python Testing/benchmarks/registration/bench_registration_qc.py [--per-type 1]
Writes Testing/benchmarks/results/registration_qc.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "Testing" / "tests"))

from clinical_grids import GRID_TYPES, REPORT_SEED_START, displacement_error, make_clinical_pair  # noqa: E402

from LongitudinalALLib.core import atomic  # noqa: E402
from LongitudinalALLib.imaging.preprocess import foreground_mask, n4_correct, normalize_intensity  # noqa: E402
from LongitudinalALLib.imaging.registration.pipeline import register  # noqa: E402


def probes(truth: sitk.Transform, centre: np.ndarray, rng: np.random.Generator) -> dict[str, sitk.Transform]:
    """Named transforms of known error: baseline point -> follow-up point."""
    out: dict[str, sitk.Transform] = {"truth": truth}
    for mm in (1.0, 2.5, 5.0):
        d = rng.normal(size=3)
        shift = sitk.TranslationTransform(3, tuple(d / np.linalg.norm(d) * mm))
        out[f"shift_{mm:g}mm"] = sitk.CompositeTransform([truth, shift])
    turn = sitk.VersorRigid3DTransform()
    turn.SetCenter(tuple(centre))
    axis = rng.normal(size=3)
    turn.SetRotation(tuple(axis / np.linalg.norm(axis)), np.radians(3.0))
    out["turn_3deg"] = sitk.CompositeTransform([truth, turn])
    mirror = sitk.AffineTransform(3)
    mirror.SetCenter(tuple(centre))
    mirror.SetMatrix((-1.0, 0, 0, 0, 1, 0, 0, 0, 1))
    out["lr_mirror"] = sitk.CompositeTransform([truth, mirror])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "Testing" / "benchmarks" / "results" / "registration_qc.json"))
    args = parser.parse_args()
    rows = []
    for g, grid in enumerate(GRID_TYPES):
        for i in range(args.per_type):
            seed = REPORT_SEED_START + 100 * g + i
            pair = make_clinical_pair(grid, seed)
            images = []
            for image in (pair.baseline, pair.followup):
                image = n4_correct(sitk.Cast(image, sitk.sitkFloat32))
                mask = foreground_mask(image)
                images.append((normalize_intensity(image, mask), mask))
            rng = np.random.default_rng(seed)
            for name, transform in probes(pair.expected, pair.points.mean(axis=0), rng).items():
                qc = register(images[0][0], images[1][0], baseline_mask=images[0][1], followup_mask=images[1][1],
                              initial_transform=transform).qc
                error = displacement_error(transform, pair)
                rows.append({"grid_type": grid, "seed": seed, "anatomy": pair.anatomy, "probe": name,
                             "error_mm": error, "flagged": qc.failed, "problems": qc.problems})
                print(f"{grid:22s} {seed} {pair.anatomy:11s} {name:12s} {error:6.2f} mm "
                      f"{'FLAGGED' if qc.failed else 'passed '} {qc.problems}", flush=True)
    silent = [r for r in rows if r["error_mm"] > 2.0 and not r["flagged"]]
    false_alarms = [r for r in rows if r["probe"] == "truth" and r["flagged"]]
    summary = {"probes": len(rows), "silent_over_2mm": len(silent), "false_alarms_on_truth": len(false_alarms),
               "flagged_by_probe": {p: sum(r["flagged"] for r in rows if r["probe"] == p)
                                    for p in dict.fromkeys(r["probe"] for r in rows)},
               "pairs": len({(r["grid_type"], r["seed"]) for r in rows})}
    atomic.write_json(args.out, {"benchmark": "registration_qc", "rows": rows, "summary": summary,
                                 "load_average": list(os.getloadavg()),
                                 "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
