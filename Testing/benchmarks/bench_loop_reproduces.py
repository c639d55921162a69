#!/usr/bin/env python
"""Does a refactor change the learning curve? The same simulation from two code trees, compared field by field.

Issue 10 asks that moving the active-learning round into one loop object
changes no number. This runs ``longitudinal-al simulate`` (one strategy, one
seed, real training) with the code of ``--before`` and of ``--after`` (source
trees, e.g. ``git worktree add /tmp/old <commit>``) on one cohort, each in its own
process with one torch thread, and compares the rounds (labels, training
summary, metrics), the labelled slices and the suggestions with their scores.

Two runs of the *same* code differ unless two things are pinned: the wall-time
cap of training re-plans the schedule from the clock (``--max-minutes 0`` is
passed), and ITK's multi-threaded registration rounds differently run to run
(prepared slices differed by up to 2.4e-7, which training then amplifies), so
every thread pool is set to one thread.

    .venv/bin/python Testing/benchmarks/bench_loop_reproduces.py --before /tmp/old --after . --tag issue10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_common import describe_machine, write_results  # noqa: E402

SIMULATE = ["--strategy", "clasp_pe", "--rounds", "3", "--per-round", "8", "--seed", "0", "--threads", "1",
            "--max-minutes", "0", "--device", "cpu", "--json"]
ENTRY = ("import sys\ntry:\n    from LongitudinalALLib.commands.cli import main\n"
         "except ImportError:  # the layout before issue 10\n    from LongitudinalALLib.cli import main\n"
         "sys.exit(main(sys.argv[1:]))")


ONE_THREAD = {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def simulate(tree: Path, cohort: Path, out: Path) -> dict:
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(tree / "LongitudinalAL")}
    run = subprocess.run([sys.executable, "-c", ENTRY, "simulate", "--cohort", str(cohort), "--out", str(out),
                          *SIMULATE], env=env, capture_output=True, text=True, check=True)
    return json.loads(run.stdout[run.stdout.index("{"):])


def comparable(obj):
    """The record without wall-clock fields (they differ between any two runs)."""
    if isinstance(obj, dict):
        return {k: comparable(v) for k, v in obj.items() if "second" not in k and k not in ("time", "updated", "created")}
    if isinstance(obj, list):
        return [comparable(v) for v in obj]
    return "nan" if isinstance(obj, float) and math.isnan(obj) else obj


def session_facts(folder: Path) -> dict:
    state = json.loads((folder / "state.json").read_text())
    return {"labels": sorted(state["labels"]),
            "suggestions": [[(s["case_id"], s["slice_index"], s["score"]) for s in b["slices"]]
                            for b in state["suggestions"]]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="source tree of the code before the change")
    p.add_argument("--after", default=str(HERE.parents[1]), help="source tree after (default: this one)")
    p.add_argument("--work", default=None)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="lal-repro-"))
    cohort = work / "cohort"
    env = {**os.environ, "PYTHONPATH": str(Path(args.after) / "LongitudinalAL")}
    subprocess.run([sys.executable, "-c", ENTRY, "make-cohort", "--n", "6", "--spacing", "2", "--anatomies", "mni",
                    "--seed", "5", "--min-new-lesions", "2", "--out", str(cohort), "--quiet"], env=env, check=True)
    trees = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    with ThreadPoolExecutor(2) as pool:
        records = dict(zip(trees, pool.map(lambda k: simulate(trees[k], cohort, work / k), trees)))
    facts = {k: session_facts(work / k) for k in trees}
    same = {"rounds": comparable(records["before"]["rounds"]) == comparable(records["after"]["rounds"]),
            "labels": facts["before"]["labels"] == facts["after"]["labels"],
            "suggestions_and_scores": facts["before"]["suggestions"] == facts["after"]["suggestions"]}
    curve = {k: [{"round": r["round"], "labels": r["labels"], "dice": r["metrics"]["dice"],
                  "lesion_f1": r["metrics"]["lesion_f1"], "final_train_loss": r["train"].get("final_train_loss")}
                 for r in records[k]["rounds"]] for k in trees}
    for k in trees:
        print(k, trees[k], [(c["labels"], round(c["dice"], 4), round(c["lesion_f1"], 4)) for c in curve[k]])
    print("identical:", same)
    write_results(f"loop_reproduces{'_' + args.tag if args.tag else ''}",
                  {"benchmark": "loop_reproduces", "command": "python Testing/benchmarks/bench_loop_reproduces.py "
                   + " ".join(sys.argv[1:] if argv is None else argv), "trees": {k: str(v) for k, v in trees.items()},
                   "simulate": SIMULATE, "identical": same, "curve": curve, "machine": describe_machine()})
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
