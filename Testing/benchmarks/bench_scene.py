"""Timings of the Slicer module's scene layer on the bundled sample pair (headless MRML).

Prints one line per step and writes Testing/benchmarks/results/scene.json.
Figures depend on the machine and its load; they are a record, never a test.

    .venv/bin/python Testing/benchmarks/bench_scene.py [--spacing 3] [--size 64] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "Testing" / "benchmarks" / "results" / "scene.json")
    args = parser.parse_args(argv)

    from LongitudinalALLib.core.resources import sample_data_dir
    from LongitudinalALLib.scene import headless, labels, outputs, volumes
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic, RunOptions

    figures: dict[str, float] = {}

    def timed(name, fn, repeat=1):
        t0 = time.perf_counter()
        for _ in range(repeat):
            value = fn()
        figures[name] = (time.perf_counter() - t0) / repeat
        print(f"{name:<28} {figures[name]:8.3f} s")
        return value

    tmp = Path(tempfile.mkdtemp(prefix="lal-bench-scene-"))
    hs = timed("headless_scene", lambda: headless.create_headless_slicer(str(tmp / "cache")))
    data = sample_data_dir()
    base = timed("load_baseline", lambda: volumes.load_volume(data / "baseline.nii.gz", hs.scene, "baseline"))
    follow = volumes.load_volume(data / "followup.nii.gz", hs.scene, "follow-up")
    options = RunOptions(prepare={"spacing_mm": args.spacing, "size": args.size}, k=args.k,
                         model_config={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
                         init_weights="scratch", device="cpu",
                         train={"epochs": args.epochs, "batch_size": 4, "crop_size": None, "min_epochs": 1})
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=tmp / "work")
    timed("run_prepare_and_suggest", lambda: logic.run(base, follow, options))
    timed("show_suggestion", lambda: logic.show_suggestion(1), repeat=5)
    reference = logic.reference_volume()
    timed("export_segment", lambda: labels.export_segment(logic.node("segmentation"), outputs.LESION_SEGMENT,
                                                           reference), repeat=5)
    logic.show_suggestion(0)
    timed("accept_current", logic.accept_current)
    timed("retrain_round", logic.retrain)
    mrb = tmp / "bench.mrb"
    timed("save_bundle", lambda: logic.save_bundle(mrb))
    figures["bundle_mb"] = mrb.stat().st_size / 2**20
    print(f"{'bundle_mb':<28} {figures['bundle_mb']:8.2f} MB")
    fresh = headless.create_headless_slicer(str(tmp / "cache2"))
    again = LongitudinalALSceneLogic(fresh.scene, fresh.app, work_root=tmp / "work2")
    timed("load_bundle", lambda: again.load_bundle(mrb))
    record = {"figures": {k: round(float(v), 4) for k, v in figures.items()}, "args": {k: str(v) for k, v in vars(args).items()},
              "python": sys.version.split()[0], "machine": platform.machine(), "cpus": __import__("os").cpu_count(),
              "sample": str(data), "numpy": np.__version__, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
