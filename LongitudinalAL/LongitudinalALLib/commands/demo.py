"""``longitudinal-al demo``: the whole first round on a pair, ending in a Slicer scene.

Loads the pair into a real (headless) MRML scene, registers, pairs, scores with
the bundled model, ranks slices, and writes ``<out>/longitudinal_al.mrb`` (open it
in Slicer: suggestions table, points, difference, uncertainty, "New lesions"),
``suggestions.json`` and ``top_suggestions.png``. Without arguments it runs on the
bundled sample pair.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from LongitudinalALLib.active.policy import DEFAULT_STRATEGY
from LongitudinalALLib.imaging.io import case_id_from_path

HELP = "Run the first active-learning round on a pair (default: the bundled sample) and write a Slicer .mrb."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", help="baseline scan (default: bundled sample)")
    parser.add_argument("--followup", help="follow-up scan (default: bundled sample)")
    parser.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    parser.add_argument("--strategy", default=DEFAULT_STRATEGY,
                        help=f"query strategy for the first round (default: {DEFAULT_STRATEGY})")
    parser.add_argument("--k", type=int, default=10, help="number of suggestions (default: 10)")
    parser.add_argument("--spacing", type=float, default=1.0, help="in-plane model pixel size in mm (default: 1.0)")
    parser.add_argument("--size", type=int, default=256, help="model slice size in pixels (default: 256)")
    parser.add_argument("--no-n4", action="store_true", help="skip N4 bias-field correction")
    parser.add_argument("--cpu", action="store_true", help="use the CPU even when a GPU is present")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from LongitudinalALLib.core.errors import InputError
    from LongitudinalALLib.core.progress import TqdmProgress
    from LongitudinalALLib.core.resources import sample_data_dir
    from LongitudinalALLib.scene import headless, volumes
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic, RunOptions

    baseline = Path(args.baseline) if args.baseline else sample_data_dir() / "baseline.nii.gz"
    followup = Path(args.followup) if args.followup else sample_data_dir() / "followup.nii.gz"
    if bool(args.baseline) != bool(args.followup):
        raise InputError("Give both --baseline and --followup, or neither.", "Without them the bundled sample runs.")
    if args.k < 1:
        raise InputError(f"--k must be at least 1 (got {args.k}).", "Ask for 1 or more suggestions.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    slicer_session = headless.create_headless_slicer()
    scene = slicer_session.scene
    baseline_node = volumes.load_volume(baseline, scene, "Baseline")
    followup_node = volumes.load_volume(followup, scene, "Follow-up")
    logic = LongitudinalALSceneLogic(scene, slicer_session.app, work_root=out / "work")
    options = RunOptions(spacing_mm=args.spacing, size=args.size, prepare={"n4": False if args.no_n4 else None},
                         strategy=args.strategy, k=args.k, seed=args.seed, device="cpu" if args.cpu else "",
                         case_id=case_id_from_path(baseline) if args.baseline else "sample")
    bar = TqdmProgress()
    try:
        suggestions = logic.run(baseline_node, followup_node, options, progress=bar)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started

    bundle = logic.save_bundle(out / "longitudinal_al.mrb")
    sheet = _write_sheet(logic, suggestions, out / "top_suggestions.png", args.strategy)
    from LongitudinalALLib.core import atomic

    atomic.write_json(out / "suggestions.json", {"strategy": args.strategy, "seconds": round(elapsed, 2),
                                                  "suggestions": [s.to_dict() for s in suggestions]})
    print(f"{'rank':>4} {'slice':>5} {'score':>9}   candidate RAS (mm)            why (rule score)")
    for s in suggestions:
        print(f"{s.rank:>4} {s.slice_index:>5} {s.score:>9.4f}   ({s.ras[0]:7.1f}, {s.ras[1]:7.1f}, {s.ras[2]:7.1f})  "
              f"{s.why()}")
    print(f"first suggestions in {elapsed:.1f} s on {logic.status().get('device') or 'cpu'}")
    print(f"scene: {bundle}\ncontact sheet: {sheet}\nsuggestions: {out / 'suggestions.json'}")
    print(json.dumps({"mrb": str(bundle), "png": str(sheet)}))
    return 0


def _write_sheet(logic, suggestions, path: Path, strategy: str) -> Path:
    """Top suggestions (up to 6) of the case as a PNG, from the session's pool and latest probabilities."""
    import SimpleITK as sitk

    from LongitudinalALLib.commands.suggestion_sheet import suggestion_title, write_suggestion_sheet

    session = logic._session()
    top = suggestions[:6]
    case = session.case(top[0].case_id)
    probability_volume = sitk.GetArrayFromImage(sitk.ReadImage(str(logic.work_dir / "maps" / "probability.nrrd")))
    probability = case.geometry.to_slices(probability_volume.astype("float32"))
    rows = [session.position(s.case_id, s.slice_index) for s in top]
    titles = [suggestion_title(s) for s in top]
    return write_suggestion_sheet(path, case.images, probability, rows, titles,
                                  header=f"Top suggestions ({strategy})")
