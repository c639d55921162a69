"""The clinician's waits, replayed (issue 25, item 3): an annotator labels each suggestion in a fixed time.

Through the panel's own path (``logic.jobs``: Run, then ``accept`` for every label, the Widget's
200 ms timer replaced by ``poll`` between the annotator's steps) with real worker processes, on the
bundled sample. Per ``--seconds-per-label`` (default 15 and 30): the annotator spends that long on
each shown suggestion (painting a disk), then presses Accept. Reported, median and p95:

  accept_wait        how long Accept held the panel (label stored, a round started if none ran)
  next_batch_wait    per batch shown after the first: from the Accept that left no pending suggestion
                     until the batch was shown, 0 when it came before she ran out
                     (``next_batch_wait_when_ran_out``: only the batches she did wait for)
  rounds             per round: optimiser steps, training seconds, labels trained on, wall time
                     from its start to its batch shown
  timer_step, batch_apply  GUI-thread seconds of the panel timer's steps (not clicks, but a click
                     arriving meanwhile waits): plain steps, and those that put a batch into the scene

``--launch kept,per-job`` runs each setting with the session's kept worker and again with a new
worker process per job (the previous runner), the peer in the same run.

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


class Clinician:
    """The annotator and the panel's 200 ms timer: polls the job runner, notes when each round's batch lands."""

    def __init__(self, logic) -> None:
        self.logic, self.jobs = logic, logic.jobs
        self.ran_out_at: float | None = None  # when her last Accept left no pending suggestion
        self.batch_waits: list[float] = []    # per batch shown after the first: 0 if it came before she ran out
        self.ran_out_waits: list[float] = []  # only the batches she did wait for
        self.rounds: list[dict[str, Any]] = []
        self.ticks: list[float] = []    # GUI-thread seconds of each timer step (an Accept's repack and round start)
        self.applies: list[float] = []  # ... of each step that put a round's batch into the scene
        self._round_started: float | None = None

    def tick(self) -> None:
        started = self.jobs.busy
        before = time.monotonic()
        outcome = self.jobs.poll()
        now = time.monotonic()
        (self.ticks if outcome is None else self.applies).append(now - before)
        if started and self._round_started is None:
            self._round_started = now
        if outcome is None:
            return
        if outcome.status != "done":
            raise RuntimeError(f"a round ended {outcome.status}: {outcome.message}\n{self.jobs.log_text()}")
        wait = 0.0 if self.ran_out_at is None else now - self.ran_out_at
        self.batch_waits.append(wait)
        if self.ran_out_at is not None:
            self.ran_out_waits.append(wait)
        self.ran_out_at = None
        self.rounds.append({"round": int(self.logic.round_news.get("round", -1)),
                            "wall_s": round(now - (self._round_started or now), 2)})
        self._round_started = now if self.jobs.busy else None  # the next round starts inside poll

    def idle(self, seconds: float, tick_s: float = 0.2) -> None:
        """``seconds`` of the annotator's time, with the panel's timer polling meanwhile."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.tick()
            time.sleep(min(tick_s, left))

    def accept(self) -> float:
        start = time.monotonic()
        self.jobs.accept()
        done = time.monotonic()
        if self._round_started is None and self.jobs.busy:
            self._round_started = done
        if not pending(self.logic):
            self.ran_out_at = done
        return done - start


def replay(seconds_per_label: float, n_labels: int, options, tmp: Path, launch: str) -> dict[str, Any]:
    hs, base, follow, logic = sample_scene(tmp)
    jobs = logic.jobs
    if launch == "per-job":  # the previous runner: a new worker process (and torch import) for every job
        from LongitudinalALLib.jobs.worker import WorkerProcess

        jobs.launch = lambda job, spec: WorkerProcess(job, spec, log_dir=jobs.log_dir).start()
    started = time.monotonic()
    jobs.start_run(base, follow, options)
    if jobs.wait().status != "done":
        raise RuntimeError(jobs.log_text())
    run_s = time.monotonic() - started
    she = Clinician(logic)
    accept_waits, load = [], [load1()]
    for _ in range(n_labels):
        while not pending(logic):  # the batch is done: she waits for the round that brings the next one
            if not jobs.busy and not jobs.keep_training():
                raise RuntimeError("no round is running and no label is left to train on")
            she.tick()
            time.sleep(0.05)
        todo = pending(logic)
        if logic.current_index not in todo:
            logic.show_suggestion(todo[0])
        she.idle(seconds_per_label)
        _draw_on_slice(logic, logic.suggestions[logic.current_index])
        accept_waits.append(she.accept())
        load.append(load1())
    finished = len(she.rounds)
    while jobs.busy and len(she.rounds) == finished:  # the round running at her last Accept ends; no further one
        she.tick()
        time.sleep(0.05)
    session = logic._session()
    records = {r.round: r for r in session.rounds}
    for row in she.rounds:
        record = records.get(row["round"])
        train = (record.train or {}) if record else {}
        row.update(steps=train.get("steps"), planned_steps=train.get("planned_steps"), train_s=train.get("seconds"),
                   max_seconds=(record.config or {}).get("max_seconds") if record else None,
                   trained_on=len(record.trained_on or {}) if record else None)
    worker = getattr(jobs, "worker", None)
    out = {"seconds_per_label": seconds_per_label, "launch": launch, "labels": len(session.labels()),
           "run_s": round(run_s, 2), "accept_wait": summary(accept_waits),
           "next_batch_wait": summary(she.batch_waits), "timer_step": summary(she.ticks),
           "batch_apply": summary(she.applies), "next_batch_wait_when_ran_out": summary(she.ran_out_waits),
           "accept_waits_s": accept_waits, "next_batch_waits_s": she.batch_waits,
           "ran_out_waits_s": she.ran_out_waits, "rounds": she.rounds,
           "worker_processes_started": worker.starts if launch == "kept" and worker else None, "load1": load}
    jobs.shutdown()
    hs.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import bench_common as bc

    from LongitudinalALLib.scene.logic import RunOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--seconds-per-label", default="15,30")
    parser.add_argument("--labels", type=int, default=30, help="labels the annotator gives per setting")
    parser.add_argument("--launch", default="kept", help="kept (one worker for the session), per-job (a new "
                        "process per job, the previous runner), or both comma-separated: the peer in the same run")
    parser.add_argument("--name", help="results name (default replay or replay_tiny)")
    args = parser.parse_args(argv)
    bc.apply_threads(1)
    options = RunOptions(**TINY_OPTIONS) if args.tiny else RunOptions()
    scale = 0.1 if args.tiny else 1.0
    payload: dict[str, Any] = {"tiny": args.tiny, "machine": bc.describe_machine(), "argv": argv or sys.argv[1:],
                               "settings": []}
    name = args.name or "replay" + ("_tiny" if args.tiny else "")
    for launch in args.launch.split(","):
        for value in (float(v) for v in args.seconds_per_label.split(",")):
            with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
                row = replay(value * scale, args.labels, options, Path(tmp), launch)
            payload["settings"].append(row)
            print(f"{launch} worker, {row['seconds_per_label']:.1f} s/label: accept {row['accept_wait']}, "
                  f"next batch {row['next_batch_wait']} (when she ran out: {row['next_batch_wait_when_ran_out']}), "
                  f"rounds {row['rounds']}", flush=True)
            bc.write_results(name, payload)
    print(f"wrote {bc.results_path(name)}")
    return payload


if __name__ == "__main__":
    main()
