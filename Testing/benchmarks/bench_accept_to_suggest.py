#!/usr/bin/env python
"""Accept -> next suggestions: the wait after a clinician's labels, with the product defaults.

On the bundled sample pair (1 mm, 256 x 256 slices, bundled weights): the first
``--labels`` suggestions of ``entropy_mean`` are labelled from the pair's ground
truth, then one training round with the default TrainConfig (warm start from
the bundled model) and the next ``--k`` suggestions are timed, as the Slicer
train job followed by the suggest job do. Works on the code before and after
issue 16 (it only uses the default TrainConfig), so both can be compared.

    .venv/bin/python Testing/benchmarks/bench_accept_to_suggest.py --threads 1 --tag after
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=int, default=10)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--spacing", type=float, default=1.0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    import torch

    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.active.store import SessionStore
    from LongitudinalALLib.core.resources import sample_data_dir
    from LongitudinalALLib.imaging.prepare import PrepareOptions, prepare_pair
    from LongitudinalALLib.model.training import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    data = sample_data_dir()
    t0 = time.perf_counter()
    pair = prepare_pair(str(data / "baseline.nii.gz"), str(data / "followup.nii.gz"),
                        PrepareOptions(spacing_mm=args.spacing, size=args.size), case_id="sample",
                        labels=str(data / "new_lesions.nii.gz"))
    truth = pair.slices.labels
    work = Path(tempfile.mkdtemp(prefix="lal-bench-accept-"))
    session = SessionStore.create(work / "session", [pair.slices], init_weights="bundled")
    for s in ActiveLoop(session).suggest(args.labels, "entropy_mean").suggestions:
        session.add_label(s.case_id, s.slice_index, truth[session.position(s.case_id, s.slice_index)])
    prep = time.perf_counter() - t0
    cfg = TrainConfig(seed=0, device=args.device)
    t1, c1 = time.perf_counter(), time.process_time()
    result = ActiveLoop(session).train(cfg)
    t_train, c_train = time.perf_counter() - t1, time.process_time() - c1
    t2, c2 = time.perf_counter(), time.process_time()
    ActiveLoop(session).suggest(args.k, "entropy_mean").suggestions
    t_suggest, c_suggest = time.perf_counter() - t2, time.process_time() - c2
    summary = result.summary()
    budget = session.budget()["total"]
    out = {
        "benchmark": "accept_to_suggest", "tag": args.tag, "args": vars(args),
        "labels": budget["labelled"], "contoured": budget["contoured"],
        "train_s": round(t_train, 2), "suggest_s": round(t_suggest, 2), "accept_to_suggest_s": round(t_train + t_suggest, 2),
        "cpu_s": {"train": round(c_train, 2), "suggest": round(c_suggest, 2)},  # load-independent with 1 thread
        "setup_s": round(prep, 2), "train": summary, "config": cfg.to_dict(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, load "
                   f"{open('/proc/loadavg').read().split()[:3]}, python {platform.python_version()}",
    }
    print(f"{budget['labelled']} labels ({budget['contoured']} contoured): train {t_train:.1f} s "
          f"({summary.get('steps', len(result.history))} steps/epochs), suggest {t_suggest:.1f} s, "
          f"Accept -> suggestions {t_train + t_suggest:.1f} s wall, {c_train + c_suggest:.1f} s CPU")
    name = "accept_to_suggest" + (f"_{args.tag}" if args.tag else "")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{name}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
