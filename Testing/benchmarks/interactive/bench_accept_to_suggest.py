#!/usr/bin/env python
"""Accept -> next suggestions: the wait after a clinician's labels, per training recipe, in one run.

On the bundled sample pair (1 mm, 256 x 256 slices, bundled weights): the first
``--labels`` suggestions of ``entropy_mean`` are labelled from the pair's ground
truth, then one training round (warm start from the bundled model) and the next
``--k`` suggestions are timed, as the Slicer train job followed by the suggest
job do. Each recipe of ``--recipes`` runs on its own fresh session with the same
labels, one after the other in this process, so their CPU seconds and their ratio
are comparable under the same load: ``crop_128`` is the TrainConfig before issue 14
(every round at least 200 steps on 128 px crops), ``default`` today's (96 px crops, the
same 200 steps; the learning-curve check is ``lc_compare.py``, results/learning_curve_compare_crop96.json),
``warm_100`` the warm budget (a warm start trains ``warm_min_total_steps=100``; off by
default, see the README). ``--profile`` adds where one training step spends its CPU time
(train_step_profile.py) for the default step and the cheaper candidates (crop 128, batch 4,
no augmentation, channels_last).

    .venv/bin/python Testing/benchmarks/interactive/bench_accept_to_suggest.py --threads 2 --tag crop96
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)
from bench_common import RESULTS_DIR, describe_machine  # noqa: E402

RECIPES = {"crop_128": {"crop_size": 128}, "default": {}, "warm_100": {"warm_min_total_steps": 100}}
CANDIDATES = {"default": ({}, False), "crop_128": ({"crop_size": 128}, False), "batch_4": ({"batch_size": 4}, False),
              "no_augment": ({"augment": None}, False), "channels_last": ({}, True)}


def labelled_session(pair, work: Path, n: int):
    """A fresh session on the bundled weights with the first ``n`` entropy_mean suggestions labelled."""
    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.active.store import SessionStore

    session = SessionStore.create(work, [pair.slices], init_weights="bundled")
    for s in ActiveLoop(session).suggest(n, "entropy_mean").suggestions:
        session.add_label(s.case_id, s.slice_index, pair.slices.labels[session.position(s.case_id, s.slice_index)])
    return session


def one_round(session, cfg, k: int) -> dict:
    """Train one round, then suggest ``k``: wall and CPU seconds of each."""
    from LongitudinalALLib.active.loop import ActiveLoop

    t1, c1 = time.perf_counter(), time.process_time()
    result = ActiveLoop(session).train(cfg)
    t_train, c_train = time.perf_counter() - t1, time.process_time() - c1
    t2, c2 = time.perf_counter(), time.process_time()
    ActiveLoop(session).suggest(k, "entropy_mean").suggestions
    t_suggest, c_suggest = time.perf_counter() - t2, time.process_time() - c2
    budget = session.budget()["total"]
    return {"labels": budget["labelled"], "contoured": budget["contoured"],
            "train_s": round(t_train, 2), "suggest_s": round(t_suggest, 2),
            "accept_to_suggest_s": round(t_train + t_suggest, 2),
            "cpu_s": {"train": round(c_train, 2), "suggest": round(c_suggest, 2),
                      "accept_to_suggest": round(c_train + c_suggest, 2)},
            "load_1min_after": os.getloadavg()[0], "train": result.summary(), "config": cfg.to_dict()}


def profile(session, cfg, steps: int) -> dict:
    from train_step_profile import profile_steps

    from LongitudinalALLib.active.loop import ActiveLoop

    loop = ActiveLoop(session)
    a, model = loop.training_arrays(), loop.current_model()
    return {name: profile_steps(model, a["train_images"], a["train_labels"], a["train_fg"],
                                replace(cfg, **kw), steps=steps, warmup=2, channels_last=cl)
            for name, (kw, cl) in CANDIDATES.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=int, default=10)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--spacing", type=float, default=1.0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--recipes", default="crop_128,default", help=f"comma-separated, of {sorted(RECIPES)}")
    p.add_argument("--profile", action="store_true", help="time the parts of one training step (CPU)")
    p.add_argument("--profile-steps", type=int, default=8)
    p.add_argument("--no-cap", action="store_true",
                   help="no wall-time cap (on a loaded machine the 180 s cap would cut the crop_128 round)")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    import torch

    from LongitudinalALLib.core.resources import sample_data_dir
    from LongitudinalALLib.imaging.prepare import PrepareOptions, prepare_pair
    from LongitudinalALLib.model.training import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    machine = describe_machine(torch.device(args.device))
    data = sample_data_dir()
    t0 = time.perf_counter()
    pair = prepare_pair(str(data / "baseline.nii.gz"), str(data / "followup.nii.gz"),
                        PrepareOptions(spacing_mm=args.spacing, size=args.size), case_id="sample",
                        labels=str(data / "new_lesions.nii.gz"))
    work = Path(tempfile.mkdtemp(prefix="lal-bench-accept-"))
    out = {"benchmark": "accept_to_suggest", "tag": args.tag, "args": vars(args), "machine": machine,
           "setup_s": round(time.perf_counter() - t0, 2), "recipes": {}}
    for name in args.recipes.split(","):
        session = labelled_session(pair, work / name, args.labels)
        cap = {"max_seconds": None} if args.no_cap else {}
        cfg = TrainConfig(seed=0, device=args.device, **RECIPES[name], **cap)
        r = out["recipes"][name] = one_round(session, cfg, args.k)
        print(f"{name}: {r['labels']} labels ({r['contoured']} contoured), {r['train']['steps']} steps "
              f"({r['train']['budget_rule']}, start Dice {r['train']['start_dice']}): train {r['train_s']:.1f} s, "
              f"suggest {r['suggest_s']:.1f} s, Accept -> suggestions {r['accept_to_suggest_s']:.1f} s wall, "
              f"{r['cpu_s']['accept_to_suggest']:.1f} s CPU (load {r['load_1min_after']:.1f})", flush=True)
    if {"crop_128", "default"} <= set(out["recipes"]):
        b, a = out["recipes"]["crop_128"], out["recipes"]["default"]
        out["default_over_crop_128"] = {"wall": round(a["accept_to_suggest_s"] / b["accept_to_suggest_s"], 3),
                                    "cpu": round(a["cpu_s"]["accept_to_suggest"] / b["cpu_s"]["accept_to_suggest"], 3)}
        ratio = out["default_over_crop_128"]
        print(f"default / crop_128: wall {ratio['wall']}, CPU {ratio['cpu']}")
    if args.profile:
        session = labelled_session(pair, work / "profile", args.labels)
        out["step_profile"] = profile(session, TrainConfig(seed=0, device=args.device), args.profile_steps)
        for name, r in out["step_profile"].items():
            print(f"step {name}: {r['cpu_s_per_step_total']:.3f} CPU s ({r['wall_s_per_step_total']:.3f} s wall): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in r["cpu_s_per_step"].items()), flush=True)
    out["load_average_end"] = list(os.getloadavg())
    name = "accept_to_suggest" + (f"_{args.tag}" if args.tag else "")
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
