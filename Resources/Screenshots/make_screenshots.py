"""Render Resources/Screenshots/suggestion.png from a headless scene (README and catalog screenshot).

    python Resources/Screenshots/make_screenshots.py [--spacing 1.5] [--size 160]

Runs the module's scene logic on the bundled sample pair with the bundled model
(in-process, CPU), shows the first suggestion as the panel does, and captures the
three slice views: registered follow-up, difference overlay, model prediction as
the label layer, a ring on the suggested point.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spacing", type=float, default=1.5)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--out", default=str(HERE / "suggestion.png"))
    args = p.parse_args(argv)
    import torch

    from LongitudinalALLib.core.resources import sample_data_dir
    from LongitudinalALLib.scene import headless, snapshot, volumes
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic, RunOptions

    torch.set_num_threads(1)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="lal-shots-"))
    hs = headless.create_headless_slicer(str(work / "cache"))
    data = sample_data_dir()
    baseline = volumes.load_volume(str(data / "baseline.nii.gz"), hs.scene, "baseline")
    followup = volumes.load_volume(str(data / "followup.nii.gz"), hs.scene, "follow-up")
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=work / "work")
    options = RunOptions(prepare={"spacing_mm": args.spacing, "size": args.size}, k=5, device="cpu")
    suggestions = logic.run(baseline, followup, options)
    views = [hs.slice_logic(name) for name in ("Red", "Yellow", "Green")]
    for view in views:  # a lighter difference overlay than the panel's, for the picture
        view.GetSliceCompositeNode().SetForegroundOpacity(0.35)
    snapshot.show_segmentation_as_label(hs.scene, logic.node("segmentation"), logic.reference_volume(), views)
    first = suggestions[0]
    panels = []
    for view in views:
        rgb = snapshot.view_rgb(view)
        snapshot.draw_ring(rgb, *snapshot.ras_to_xy(view.GetSliceNode(), first.ras))
        panels.append(rgb)
    gap = np.full((panels[0].shape[0], 4, 3), 40, np.uint8)
    picture = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    out = snapshot.write_png(picture, args.out)
    print(f"wrote {out} ({picture.shape[1]}x{picture.shape[0]}) in {time.perf_counter() - started:.0f} s; "
          f"first suggestion: slice {first.slice_index}, score {first.score:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
