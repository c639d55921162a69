"""Registration benchmark on clinical grids: ``prepare_pair`` vs ANTsPy 'Affine', same pairs, same run.

Pairs come from Testing/tests/clinical_grids.py (frozen before tuning): real
anatomies (MNI, Colin27, pycortex S1) acquired on clinical grids (thick axial,
oblique 3.3 mm, 2x2x3 mm, 2D FLAIR 0.94x0.94x5 and 0.5x0.5x6 mm, 3D sagittal
1 mm vs axial, 1 mm) as int16 with Rician noise, bias and a different tissue
contrast per visit, through a known head motion (<= 12 deg, <= 15 mm, <= 3 %).
Reported seeds start at clinical_grids.REPORT_SEED_START; tuning used seeds below.
Error: mean |estimated(p) - true(p)| over head points inside both fields of view.
Ours runs the product path (load int16 files, N4, masks, normalise, register, QC);
ANTs (``.venv-bench`` or --ants-python, see setup_bench_env.sh) gets the same
int16 files through ants_worker.py, on the first --ants-per-type pairs per type.

    .venv/bin/python Testing/benchmarks/registration/bench_registration.py [--per-type 5] [--ants-per-type 2]
Writes Testing/benchmarks/results/registration.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "Testing" / "tests"))

from clinical_grids import GRID_TYPES, REPORT_SEED_START, available_anatomies, displacement_error, make_clinical_pair  # noqa: E402

from LongitudinalALLib.core import atomic  # noqa: E402
from LongitudinalALLib.imaging.prepare import PrepareOptions, prepare_pair  # noqa: E402

WORKER = Path(__file__).with_name("ants_worker.py")
SILENT_MM = 2.0  # a pair worse than this must be flagged by QC


def run_ants(python: Path, fixed: Path, moving: Path, out: Path, threads: int) -> dict | None:
    if not python.exists():
        return None
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads))
    proc = subprocess.run([str(python), str(WORKER), str(fixed), str(moving), str(out)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one_pair(grid: str, seed: int, tmp: Path, ants_python: Path | None, threads: int) -> dict:
    pair = make_clinical_pair(grid, seed)
    fixed, moving = tmp / f"{grid}_{seed}_baseline.nii.gz", tmp / f"{grid}_{seed}_followup.nii.gz"
    sitk.WriteImage(pair.baseline, str(fixed))
    sitk.WriteImage(pair.followup, str(moving))
    start = time.perf_counter()
    prepared = prepare_pair(str(fixed), str(moving), PrepareOptions(size=64, spacing_mm=4.0, seed=0))
    total = time.perf_counter() - start
    qc = prepared.qc
    row = {"grid_type": grid, "seed": seed, "anatomy": pair.anatomy, "baseline_size": list(pair.baseline.GetSize()),
           "ours_error_mm": displacement_error(prepared.transform, pair), "ours_registration_s": qc.seconds,
           "ours_registration_cpu_s": qc.cpu_seconds,
           "ours_prepare_s": total, "ours_flagged": qc.failed, "ours_problems": qc.problems,
           "qc": {k: qc.to_dict()[k] for k in ("edge_after", "edge_gain", "dice", "inverse_consistency_mm",
                                                "ncc_after", "mirror_edge", "scales", "determinant")}}
    if ants_python is not None:
        out = tmp / f"{grid}_{seed}_ants.mat"
        ants = run_ants(ants_python, fixed, moving, out, threads)
        if ants is not None:
            row.update(ants_error_mm=displacement_error(sitk.ReadTransform(str(out)), pair),
                       ants_seconds=ants["seconds"], ants_version=ants["ants_version"])
    return row


def summarise(rows: list[dict]) -> dict:
    def stats(values):
        v = np.asarray(values, float)
        return None if v.size == 0 else {"n": int(v.size), "mean": float(v.mean()),
                                         "p95": float(np.percentile(v, 95)), "max": float(v.max())}

    out = {}
    for grid in list(dict.fromkeys(r["grid_type"] for r in rows)) + ["all"]:
        rs = [r for r in rows if grid in ("all", r["grid_type"])]
        errors = [r["ours_error_mm"] for r in rs]
        out[grid] = {
            "ours_error_mm": stats(errors), "ours_registration_s": stats([r["ours_registration_s"] for r in rs]),
            "ours_registration_cpu_s": stats([r["ours_registration_cpu_s"] for r in rs
                                              if "ours_registration_cpu_s" in r]),
            "ours_flagged": sum(r["ours_flagged"] for r in rs),
            "ours_silent_failures": sum(r["ours_error_mm"] > SILENT_MM and not r["ours_flagged"] for r in rs),
            "ours_within_1mm": sum(e <= 1.0 for e in errors),
            "ours_passed_over_1_5mm": sum(r["ours_error_mm"] > 1.5 and not r["ours_flagged"] for r in rs),
            "ants_error_mm": stats([r["ants_error_mm"] for r in rs if "ants_error_mm" in r]),
            "ants_seconds": stats([r["ants_seconds"] for r in rs if "ants_seconds" in r]),
        }
    return out


def print_table(summary: dict) -> None:
    print("\n| grid type | n | ours mean / p95 / max error (mm) | ours registration s (mean / max) | QC flagged "
          "| silent failures (> 2 mm, passed) | ANTs n | ANTs mean / p95 error (mm) | ANTs s (mean) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for grid, s in summary.items():
        e, t, ae, at = s["ours_error_mm"], s["ours_registration_s"], s["ants_error_mm"], s["ants_seconds"]
        ants = (f"{ae['n']} | {ae['mean']:.2f} / {ae['p95']:.2f} | {at['mean']:.1f}" if ae else "0 | - | -")
        print(f"| {grid} | {e['n']} | {e['mean']:.2f} / {e['p95']:.2f} / {e['max']:.2f} | {t['mean']:.1f} / "
              f"{t['max']:.1f} | {s['ours_flagged']} | {s['ours_silent_failures']} | {ants} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=5, help="pairs per grid type (default 5: 30 pairs)")
    parser.add_argument("--first-seed", type=int, default=REPORT_SEED_START)
    parser.add_argument("--grid-types", default=",".join(GRID_TYPES))
    parser.add_argument("--ants-per-type", type=int, default=2, help="ANTs on the first N pairs of each type")
    parser.add_argument("--ants-python", default=os.environ.get("LONGITUDINAL_AL_BENCH_PYTHON",
                                                                str(ROOT / ".venv-bench" / "bin" / "python")))
    parser.add_argument("--out", default=str(ROOT / "Testing" / "benchmarks" / "results" / "registration.json"))
    args = parser.parse_args()
    tmp = ROOT / "Testing" / "benchmarks" / "results" / "tmp" / "registration"
    tmp.mkdir(parents=True, exist_ok=True)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    rows = []
    for g, grid in enumerate(args.grid_types.split(",")):
        for i in range(args.per_type):
            seed = args.first_seed + 100 * g + i
            ants = Path(args.ants_python) if i < args.ants_per_type else None
            row = one_pair(grid, seed, tmp, ants, threads)
            rows.append(row)
            print(f"{grid:22s} seed {seed} {row['anatomy']:11s} ours {row['ours_error_mm']:6.2f} mm "
                  f"{row['ours_registration_s']:5.1f} s {'FLAGGED' if row['ours_flagged'] else 'passed '}"
                  + (f" | ANTs {row['ants_error_mm']:6.2f} mm {row['ants_seconds']:6.1f} s" if "ants_error_mm" in row
                     else ""), flush=True)
    summary = summarise(rows)
    result = {"benchmark": "registration_clinical_grids", "pairs": rows, "summary": summary,
              "anatomies": available_anatomies(), "seeds": f"{args.first_seed} + 100 * type index + i",
              "targets": {"mean_error_mm": 1.0, "share_within": 0.95, "passed_max_mm": 1.5,
                          "silent_failure_mm": SILENT_MM, "seconds_1mm": 10.0},
              "machine": {"cpu_count": os.cpu_count(), "itk_threads": threads, "platform": platform.platform(),
                          "load_average": list(os.getloadavg())},
              "simpleitk": sitk.Version_VersionString(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic.write_json(args.out, result)
    print_table(summary)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
