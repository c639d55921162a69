"""How long `make-cohort` takes: a 40-pair cohort at 2 mm (and 1 mm), on this machine's cores.

Runs the generator in this process from a cold anatomy cache (the anatomy load
is part of the figure), once per spacing, and reports wall time, CPU time, time
per pair, disk size and the lesion counts of the cohort (new lesions per size
class 3-5 / 5-10 / 10-15 mm). Writes results/cohort_<spacing>mm.json.

    .venv/bin/python Testing/benchmarks/bench_cohort.py --n 40 --spacing 2 1
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import describe_machine, write_results  # noqa: E402


def run_once(n: int, spacing: float, seed: int, out: Path) -> dict:
    from LongitudinalALLib.cohort.anatomy import load_anatomy
    from LongitudinalALLib.cohort.generator import CohortOptions, generate_cohort
    from LongitudinalALLib.cohort.manifest import load_manifest

    load_anatomy.cache_clear()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    generate_cohort(out, CohortOptions(n_pairs=n, seed=seed, spacing_mm=spacing), overwrite=True)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    m = load_manifest(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    equivalent = {"3-5": 0, "5-10": 0, "10-15": 0}
    for p in m["pairs"]:
        for s in p["lesions"]:
            if s["kind"] == "new" and s["n_new_voxels"] > 0:
                d = s["equivalent_diameter_mm"]
                equivalent["3-5" if d < 5 else "5-10" if d < 10 else "10-15"] += 1
    return {"n_pairs": n, "spacing_mm": spacing, "seed": seed, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "wall_s_per_pair": round(wall / n, 3), "disk_mb": round(size / 1e6, 1),
            "anatomies": sorted({p["anatomy"] for p in m["pairs"]}), "summary": m["summary"],
            "new_lesions_by_realised_equivalent_diameter_mm": equivalent,
            "shape_kji": m["pairs"][0]["shape_kji"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spacing", type=float, nargs="+", default=[2.0, 1.0])
    ap.add_argument("--out-dir", default=None, help="JSON folder (default Testing/benchmarks/results)")
    args = ap.parse_args(argv)
    machine = describe_machine()
    for spacing in args.spacing:
        tmp = Path(tempfile.mkdtemp(prefix="bench_cohort_"))
        try:
            r = run_once(args.n, spacing, args.seed, tmp / "cohort")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        s = r["summary"]
        print(f"{r['n_pairs']} pairs at {spacing:g} mm: {r['wall_s']:.1f} s wall ({r['wall_s_per_pair']:.2f} s/pair), "
              f"{r['cpu_s']:.1f} s CPU, {r['disk_mb']} MB; splits {s['pairs_per_split']}; "
              f"no new lesion: {s['pairs_without_new_lesions']} pairs; new lesions by nominal size "
              f"{s['new_lesions_by_size_mm']}, by realised size {r['new_lesions_by_realised_equivalent_diameter_mm']}; "
              f"enlarging {s['enlarging_lesions']}")
        path = write_results(f"cohort_{spacing:g}mm", {"machine": machine, "result": r}, args.out_dir)
        print(f"  -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
