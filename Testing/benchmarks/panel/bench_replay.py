"""The clinician's waits, replayed (issue 25, item 3): an annotator labels each suggestion in a fixed time.

Through the panel's own path (``logic.jobs``: Run, then ``accept`` for every label, the Widget's
200 ms timer replaced by ``poll`` between the annotator's steps) with real worker processes, on the
bundled sample. Per ``--seconds-per-label`` (default 15 and 30): the annotator spends that long on
each shown suggestion (painting a disk), then presses Accept. Reported, median and p95:

  accept_wait_s      how long Accept held the panel (label stored, a round started if none ran)
  next_batch_wait_s  from the Accept that left no pending suggestion until a new batch was shown
  steps              optimiser steps each round got (from its record), and what each round trained on

``--tiny``: 3 mm, 64 px, a tiny network, 2-step rounds and seconds-per-label scaled by 1/10, to
show the mechanics in minutes (its figures are not the product's).

    PYTHONPATH=$PWD/LongitudinalAL python Testing/benchmarks/panel/bench_replay.py [--tiny] [--labels 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)
sys.path.insert(0, str(HERE.parents[1] / "tests"))
from bench_clicks import _draw_on_slice, load1, sample_scene, summary  # noqa: E402

TINY_OPTIONS = {"prepare": {"spacing_mm": 3.0, "size": 64, "n4": False}, "strategy": "entropy_mean", "k": 4,
                "model_config": {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
                "init_weights": "scratch", "device": "cpu",
                "train": {"epochs": 1, "batch_size": 2, "steps_per_epoch": 2, "crop_size": None,
                          "augment": None, "min_epochs": 1}}


def pending(logic) -> list[int]:
    return [i for i, s in enumerate(logic.suggestions) if s.status == "pending"]


def idle(jobs, seconds: float, tick: float = 0.2) -> None:
    """``seconds`` of the annotator's time, with the panel's timer polling the job meanwhile."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        jobs.poll()
        time.sleep(min(tick, left))


def replay(seconds_per_label: float, n_labels: int, options, tmp: Path) -> dict[str, Any]:
    hs, base, follow, logic = sample_scene(tmp)
    jobs = logic.jobs
    jobs.start_run(base, follow, options)
    if jobs.wait().status != "done":
        raise RuntimeError(jobs.log_text())
    accept_waits, batch_waits, load = [], [], [load1()]
    for _ in range(n_labels):
        todo = pending(logic)
        if not todo:  # the batch is done: she waits for the round that brings the next one
            start = time.monotonic()
            while not pending(logic):
                if not jobs.busy and not jobs.keep_training():
                    raise RuntimeError("no round is running and no label is left to train on")
                jobs.poll()
                time.sleep(0.05)
            batch_waits.append(time.monotonic() - start)
            todo = pending(logic)
        if logic.current_index not in todo:
            logic.show_suggestion(todo[0])
        idle(jobs, seconds_per_label)
        _draw_on_slice(logic, logic.suggestions[logic.current_index])
        start = time.monotonic()
        jobs.accept()
        accept_waits.append(time.monotonic() - start)
        load.append(load1())
    while jobs.busy:
        jobs.poll()
        time.sleep(0.05)
    session = logic._session()
    rounds = [{"round": r.round, "steps": (r.train or {}).get("steps"), "trained_on": len(r.trained_on or {})}
              for r in session.rounds]
    hs.close()
    return {"seconds_per_label": seconds_per_label, "labels": len(session.labels()),
            "accept_wait": summary(accept_waits), "next_batch_wait": summary(batch_waits),
            "accept_waits_s": accept_waits, "next_batch_waits_s": batch_waits, "rounds": rounds, "load1": load}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import bench_common as bc

    from LongitudinalALLib.scene.logic import RunOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--seconds-per-label", default="15,30")
    parser.add_argument("--labels", type=int, default=30, help="labels the annotator gives per setting")
    args = parser.parse_args(argv)
    bc.apply_threads(1)
    options = RunOptions(**TINY_OPTIONS) if args.tiny else RunOptions()
    scale = 0.1 if args.tiny else 1.0
    payload: dict[str, Any] = {"tiny": args.tiny, "machine": bc.describe_machine(), "argv": argv or sys.argv[1:],
                               "settings": []}
    name = "replay" + ("_tiny" if args.tiny else "")
    for value in (float(v) for v in args.seconds_per_label.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
            row = replay(value * scale, args.labels, options, Path(tmp))
        payload["settings"].append(row)
        print(f"{row['seconds_per_label']:.1f} s/label: accept {row['accept_wait']}, next batch "
              f"{row['next_batch_wait']}, rounds {row['rounds']}", flush=True)
        bc.write_results(name, payload)
    print(f"wrote {bc.results_path(name)}")
    return payload


if __name__ == "__main__":
    main()
