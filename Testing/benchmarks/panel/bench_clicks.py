"""What each panel click costs the clinician (issue 25, item 1), headless on real MRML (slicer-core).

The bundled sample pair at the panel's defaults (1 mm slices of 256 px, ``clasp_pe``, k=10, the
bundled model): one real Run in this process, then 10 rounds built on disk the way the loop leaves
them (each round: 10 accepted labels, a checkpoint of the bundled model's size, a new batch of
suggestions), the labels painted into "New lesions" and the archive packed. Then, on the 11th
batch, every click the panel wires, timed on the Logic call the Widget makes:

  show      a table click (``show_suggestion(row)``, the Widget's ``onShow``)
  next      ``step(1)``;  previous: ``step(-1)``
  accept    a disk painted on the shown slice (not timed, ``test_scene_logic._draw_on_slice``), then
            ``jobs.accept()`` (the Widget's onAccept; the round it starts is a stand-in, see bench_replay)
  timer_step_after_accept  not a click: the panel timer's next step (``jobs.poll()``), which now
            repacks the archive and starts the round the Accept asked for
  save      ``save_bundle`` (WriteToMRB with the session inside; not a click, reported for scale)
  run_export  ``run_spec`` on a 512x512x300 int16 pair (the inputs written for the worker)
  cancel    ``jobs.cancel()`` on a running worker, and the time until ``poll`` reports it

``--compare DIR`` runs the same script on the library in DIR (e.g. a worktree of d9e08f4) and on
this one, alternately in one run, so the machine's load hits both; each side's 1-min load average
is stored. Median and p95 per click go to ``results/clicks.json``.

    PYTHONPATH=$PWD/LongitudinalAL python Testing/benchmarks/panel/bench_clicks.py --compare /tmp/lal-before
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)
sys.path.insert(0, str(HERE.parents[1] / "tests"))
from test_scene_logic import _draw_on_slice  # noqa: E402 - a disk on the suggestion's slice, as in the tests

ROUNDS, K = 10, 10


def load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def summary(times: list[float]) -> dict[str, Any]:
    """Median, p95 and max seconds of ``times`` (p95 by the nearest-rank rule)."""
    if not times:
        return {"n": 0}
    ordered = sorted(times)
    p95 = ordered[max(0, int(np.ceil(0.95 * len(ordered))) - 1)]
    return {"n": len(times), "median_s": statistics.median(times), "p95_s": p95, "max_s": ordered[-1]}


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fake_rounds(logic, rounds: int, rng: np.random.Generator) -> None:
    """``rounds`` rounds as the loop leaves them: labels, a checkpoint, a new batch (no training: clicks only)."""
    from LongitudinalALLib.active.suggestions import Suggestion
    from LongitudinalALLib.core.resources import weights_dir
    from LongitudinalALLib.scene import session_scene

    bundled = weights_dir() / "change_unet.safetensors"
    work = logic.work_dir
    result = {"maps": {n: str(work / "maps" / f"{n}.nrrd") for n in ("uncertainty", "lesion_mask")},
              "device": "cpu"}
    for r in range(1, rounds + 1):
        with logic._session(write=True) as session:
            case_id = session.case_ids[0]
            meta = json.loads((session.root / "pool" / f"{case_id}.json").read_text())
            for s in logic.suggestions:
                _draw_on_slice(logic, s)
                label = np.zeros(meta["size"], np.uint8)
                label[100:104, 100:104] = 1
                session.add_label(s.case_id, s.slice_index, label)
            session.commit_round(lambda path: shutil.copyfile(bundled, path), n_train=len(session.labels()))
            labelled = {rec.slice_index for rec in session.labels()}
            free = [row for row, p in enumerate(meta["provenance"]) if p["slice_index"] not in labelled]
            rows = sorted(rng.choice(free, min(K, len(free)), replace=False).tolist())  # the sample has ~110
            batch = [Suggestion(rank + 1, case_id, meta["provenance"][row]["slice_index"],
                                tuple(meta["provenance"][row]["center_ras"]),
                                tuple(meta["provenance"][row]["center_ras"]), 0.0, row=row)
                     for rank, row in enumerate(rows)]
            session.record_suggestions("clasp_pe", batch, np.zeros(len(meta["provenance"]), np.float32),
                                       np.asarray(rows))
        logic._apply_suggest_result({**result, "suggestions": [s.to_dict() for s in batch], "round": r})
        session_scene.store_suggestions(logic.param, batch, 0)
    logic.persist()


class NoRound:
    """A started round that runs until ``end()`` and then reports itself cancelled (nothing is committed)."""

    def __init__(self) -> None:
        self.result, self.error, self._ended = None, None, False

    def end(self) -> None:
        from LongitudinalALLib.core.errors import CancelledError

        self.error, self._ended = CancelledError(), True

    def poll(self, progress=None) -> bool:
        return self._ended

    def cancel(self) -> None:
        self.end()


def archive_bytes(logic) -> int:
    """Characters of every LongitudinalAL archive text node in the scene (what a .mrb carries)."""
    scene, total = logic.scene, 0
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLTextNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLTextNode")
        if node.GetName().startswith("LongitudinalAL session"):
            total += len(node.GetText() or "")
    return total


def run_export(logic, hs, tmp: Path) -> float:
    """Seconds of ``run_spec`` (checks + inputs written for the worker) on a 512x512x300 int16 pair."""
    import SimpleITK as sitk

    from LongitudinalALLib.scene import volumes

    rng = np.random.default_rng(1)
    array = (rng.integers(0, 64, (300, 512, 512), dtype=np.int16) + 400)
    nodes = []
    for name in ("big-baseline", "big-followup"):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.5, 0.5, 0.6))
        nodes.append(volumes.sitk_to_node(image, hs.scene, name))
    seconds = timed(lambda: logic.run_spec(*nodes))
    for node in nodes:
        hs.scene.RemoveNode(node)
    return seconds


def cancel_times(logic) -> dict[str, float]:
    """A real worker (a prepare job on the sample) is cancelled 2 s after it started."""
    from LongitudinalALLib.scene.logic import RunOptions

    jobs = logic.jobs
    jobs.start_run(logic.node("baseline"), logic.node("followup"), RunOptions())
    time.sleep(2.0)
    start = time.perf_counter()
    jobs.cancel()
    returned = time.perf_counter() - start
    while jobs.poll() is None:
        time.sleep(0.01)
    return {"cancel_returns_s": returned, "until_poll_reports_s": time.perf_counter() - start}


def sample_scene(tmp: Path):
    """(headless Slicer, baseline node, follow-up node, scene logic) on the bundled sample pair."""
    import scene_testdata

    from LongitudinalALLib.scene import headless, volumes
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic

    files = scene_testdata.sample_pair_files()
    hs = headless.create_headless_slicer(str(tmp / "cache"))
    base = volumes.load_volume(files[0], hs.scene, "baseline")
    follow = volumes.load_volume(files[1], hs.scene, "follow-up")
    return hs, base, follow, LongitudinalALSceneLogic(hs.scene, hs.app, work_root=tmp / "work")


def one_side(rounds: int, repeats: int) -> dict[str, Any]:
    """Every figure for the library on ``sys.path`` (see module docstring)."""
    from LongitudinalALLib.scene.logic import RunOptions

    tmp = Path(tempfile.mkdtemp(prefix="bench-clicks-"))
    try:
        hs, base, follow, logic = sample_scene(tmp)
        out: dict[str, Any] = {"load1_start": load1()}
        out["run_s"] = timed(lambda: logic.run(base, follow, RunOptions()))
        out["archive_chars_round0"] = archive_bytes(logic)
        fake_rounds(logic, rounds, np.random.default_rng(0))
        out["rounds"] = rounds
        out["archive_chars"] = archive_bytes(logic)
        clicks: dict[str, list[float]] = {"show": [], "next": [], "previous": [], "accept": [],
                                          "timer_step_after_accept": []}
        jobs, launch = logic.jobs, logic.jobs.launch
        for _ in range(repeats):
            for i, s in enumerate(logic.suggestions):
                clicks["show"].append(timed(lambda: logic.show_suggestion(i)))
                _draw_on_slice(logic, s)
                clicks["show"].append(timed(lambda: logic.show_suggestion(i)))
                round_ = NoRound()
                jobs.launch = lambda job, spec: round_  # the round itself is bench_replay's subject
                clicks["accept"].append(timed(jobs.accept))  # the Widget's onAccept
                clicks["timer_step_after_accept"].append(timed(jobs.poll))  # not a click: the panel's timer
                round_.end()
                jobs.poll()  # the stand-in round ends; its staged copy is discarded
                clicks["next"].append(timed(lambda: logic.step(1)))
                clicks["previous"].append(timed(lambda: logic.step(-1)))
        jobs.launch = launch
        out["clicks"] = {name: summary(t) for name, t in clicks.items()}
        out["click_times_s"] = clicks  # in order: which click was the slow one
        out["save_bundle_s"] = timed(lambda: logic.save_bundle(tmp / "scene.mrb"))
        out["mrb_bytes"] = (tmp / "scene.mrb").stat().st_size
        out["run_export_512x512x300_s"] = run_export(logic, hs, tmp)
        out["cancel"] = cancel_times(logic)
        out["load1_end"] = load1()
        hs.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def side_in_subprocess(library: Path, rounds: int, repeats: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(library), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        path = Path(fh.name)
    try:
        subprocess.run([sys.executable, __file__, "--side-json", str(path), "--rounds", str(rounds),
                        "--repeats", str(repeats)], env=env, check=True)
        return json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)


def print_table(sides: dict[str, dict[str, Any]]) -> None:
    for name, side in sides.items():
        print(f"--- {name} (load1 {side['load1_start']} -> {side['load1_end']}), archive "
              f"{side['archive_chars_round0'] / 1e6:.1f} -> {side['archive_chars'] / 1e6:.1f} M chars after "
              f"{side['rounds']} rounds, save {side['save_bundle_s']:.2f} s, run export "
              f"{side['run_export_512x512x300_s']:.2f} s, cancel {side['cancel']}")
        for click, row in side["clicks"].items():
            print(f"  {click:9s} median {row['median_s']:.3f} s  p95 {row['p95_s']:.3f} s  (n={row['n']})")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", help="checkout (folder holding LongitudinalAL/) of the 'before' side")
    parser.add_argument("--after", default=str(HERE.parents[2]), help="checkout of the 'after' side (default: this)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--repeats", type=int, default=3,
                        help="passes over the batch (3 x 10: the p95 is not the single slowest click)")
    parser.add_argument("--name", default="clicks")
    parser.add_argument("--side-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side_json:
        import torch

        torch.set_num_threads(1)
        Path(args.side_json).write_text(json.dumps(one_side(args.rounds, args.repeats)))
        return {}
    after = Path(args.after) / "LongitudinalAL"
    libraries = {"after": after} | ({"before": Path(args.compare) / "LongitudinalAL"} if args.compare else {})
    sides = {name: side_in_subprocess(lib, args.rounds, args.repeats) for name, lib in
             sorted(libraries.items(), key=lambda kv: kv[0] != "before")}
    for name, lib in libraries.items():
        sides[name]["library"] = str(lib)
    print_table(sides)
    import bench_common as bc

    payload = {"sides": sides, "argv": argv or sys.argv[1:], "cpu_cores_usable": len(os.sched_getaffinity(0)),
               "note": "sample pair, panel defaults, clicks timed on the Logic calls the Widget makes"}
    path = bc.write_results(args.name, payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
