"""Registration benchmark: ours vs ANTsPy 'Affine' on 1 mm MNI pairs with known transforms.

Each pair is the MNI ICBM152 T1 (1 mm) and a follow-up made from it through a
random known affine (rotation <= 10 deg, translation <= 15 mm, scaling <= 5 %)
with noise, a bias field and a gain change. Both methods get the same
normalised images and masks (as NIfTI files); error is the mean displacement
inside the brain between the estimated and the true transform. ANTs runs in
.venv-bench (see setup_bench_env.sh) through ants_worker.py.

    .venv/bin/python Testing/benchmarks/bench_registration.py [--pairs 4] [--resolution 1]
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Testing" / "tests"))

from anatomy_fixtures import (brain_center, make_followup, mean_displacement_error, mni_brain_mask,  # noqa: E402
                              mni_t1, random_affine)
from LongitudinalALLib import atomic  # noqa: E402
from LongitudinalALLib.preprocess import foreground_mask, normalize_intensity  # noqa: E402
from LongitudinalALLib.registration import register  # noqa: E402

BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
WORKER = Path(__file__).with_name("ants_worker.py")


def run_ants(fixed: Path, moving: Path, out: Path, threads: int) -> dict | None:
    if not BENCH_PYTHON.exists():
        return None
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads))
    proc = subprocess.run([str(BENCH_PYTHON), str(WORKER), str(fixed), str(moving), str(out)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "Testing" / "benchmarks" / "results" / "registration.json"))
    args = parser.parse_args()
    tmp = ROOT / "Testing" / "benchmarks" / "results" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()

    base_raw, brain = mni_t1(args.resolution), mni_brain_mask(args.resolution)
    base = normalize_intensity(base_raw, brain)
    fixed_path = tmp / "fixed.nii.gz"
    sitk.WriteImage(base, str(fixed_path))
    rows = []
    for seed in range(args.pairs):
        truth = random_affine(seed, brain_center(base_raw))
        follow_raw = make_followup(base_raw, truth, seed=seed)
        fmask = foreground_mask(follow_raw)
        follow = normalize_intensity(follow_raw, fmask)
        moving_path = tmp / f"moving_{seed}.nii.gz"
        sitk.WriteImage(follow, str(moving_path))

        start = time.perf_counter()
        ours = register(base, follow, baseline_mask=brain, followup_mask=fmask)
        ours_s = time.perf_counter() - start
        ours_err = mean_displacement_error(ours.transform, truth.GetInverse(), brain)

        ants_out = tmp / f"ants_{seed}.mat"
        ants = run_ants(fixed_path, moving_path, ants_out, threads)
        row = {"seed": seed, "ours_seconds": ours_s, "ours_error_mm": ours_err, "ours_failed": ours.qc.failed,
               "ours_iterations": ours.qc.iterations}
        if ants is not None:
            ants_err = mean_displacement_error(sitk.ReadTransform(str(ants_out)), truth.GetInverse(), brain)
            row.update(ants_seconds=ants["seconds"], ants_error_mm=ants_err, ants_version=ants["ants_version"],
                       speedup=ants["seconds"] / ours_s)
        rows.append(row)
        print(f"pair {seed}: ours {ours_s:5.2f} s {ours_err:.3f} mm"
              + (f" | ANTs {row['ants_seconds']:5.2f} s {row['ants_error_mm']:.3f} mm | ANTs/ours time "
                 f"{row['speedup']:.1f}x" if ants else " | ANTs unavailable (run setup_bench_env.sh)"), flush=True)

    def stat(key: str) -> dict | None:
        vals = [r[key] for r in rows if key in r]
        return {"mean": float(np.mean(vals)), "max": float(np.max(vals))} if vals else None

    summary = {k: stat(k) for k in ("ours_seconds", "ours_error_mm", "ants_seconds", "ants_error_mm", "speedup")}
    result = {
        "benchmark": "registration", "resolution_mm": args.resolution, "image_size": list(base.GetSize()),
        "pairs": rows, "summary": summary,
        "targets": {"error_mm": 0.5, "seconds": 5.0},
        "machine": {"cpu_count": os.cpu_count(), "itk_threads": threads, "platform": platform.platform(),
                    "processor": platform.processor(), "load_average": list(os.getloadavg()),
                    "device": "cpu"},
        "simpleitk": sitk.Version_VersionString(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic.write_json(args.out, result)
    print("\n| method | mean time (s) | max time (s) | mean error (mm) | max error (mm) |")
    print("|---|---|---|---|---|")
    for name in ("ours", "ants"):
        t, e = summary[f"{name}_seconds"], summary[f"{name}_error_mm"]
        if t:
            print(f"| {name} | {t['mean']:.2f} | {t['max']:.2f} | {e['mean']:.3f} | {e['max']:.3f} |")
    if summary["speedup"]:
        print(f"ANTs time / our time: {summary['speedup']['mean']:.1f}x (mean)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
