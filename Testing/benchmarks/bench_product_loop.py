#!/usr/bin/env python
"""The product's own loop as a learning curve: bundled start, default round recipe and strategy (issue 24).

Exactly the Slicer panel's path: the session starts from the bundled weights
(``init_weights="bundled"``), slices are 256 px at 1 mm, every round (the first
included) is suggested by the default strategy, an oracle labels the suggestions,
the round trains with the default TrainConfig (no wall-time cap: on a shared machine
it would make the curve depend on the load) and the test pairs are scored with the
product's lesion-mask step. Round 0 is the shipped model. Families:

- ``real``: open_ms_data (Lesjak et al., Neuroinformatics 2016, CC-BY), leave one
  patient out both ways (pool = one patient, test = the other; ``open_ms_cohort.py``
  keeps the new-or-enlarging change components as truth). Read from
  ``../shared/data/open_ms_data``; skipped with one line when absent.
- ``heldout:N``: the model issue's frozen held-out family (``lc_heldout_cohort.py``).
- ``sim:SEED``: a simulator family (make-cohort, 1 mm).

    python Testing/benchmarks/bench_product_loop.py --families real --seeds 0,1,2,3,4 --tag before
    python Testing/benchmarks/bench_product_loop.py --families real --set lr=3e-4 --tag lr3e-4

Per family: test Dice, lesion F1, precision, recall and false lesions per pair after
0/6/12/24 labels, mean over seeds, and the "never worse" check (each round against
round 0, per seed). Writes results/product_loop_<tag>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_common import describe_machine, write_results  # noqa: E402

METRICS = ("dice", "lesion_f1", "lesion_precision", "lesion_recall", "fp_lesions_per_pair")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="real", help="comma-separated: real, real:patient03 (one fold: the test "
                   "patient), heldout:N, sim:SEED")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--schedule", default="6,12,24", help="labels after each round (cumulative)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one TrainConfig field of every round, e.g. --set lr=3e-4")
    p.add_argument("--tag", default="default")
    p.add_argument("--work", default="/tmp/longitudinal_al_product_loop")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--score-candidates", action="store_true",
                   help="guard study: also score the previous and the retrained model of every round on the test "
                   "pairs, whichever the guard kept (twice the evaluation time)")
    return p.parse_args(argv)


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def overrides(pairs: list[str]) -> dict:
    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: write KEY=VALUE, e.g. lr=3e-4")
        out[key.strip()] = _value(value.strip())
    return out


def family_cases(spec: str, work: Path) -> list[tuple[str, list, list]]:
    """[(name, pool cases, test cases)] of one family spec; [] (with one line) when its data are absent."""
    from LongitudinalALLib.active.simulate import load_cohort_cases

    kw = dict(size=256, spacing_mm=1.0)
    kind, _, value = spec.partition(":")
    if kind == "real":
        import open_ms_cohort

        if open_ms_cohort.data_dir() is None:
            print(f"real: skipped, {open_ms_cohort.DATA} is absent")
            return []
        folder = work / "real"
        manifest = folder / "cohort" / "manifest.json"
        if not manifest.is_file():
            open_ms_cohort.build(folder)
        cases = {oc.slices.case_id: oc for oc in load_cohort_cases(manifest, ("train", "test"),
                                                                    cache_dir=folder / "prepared", **kw)}
        folds = [value] if value else list(open_ms_cohort.PATIENTS)
        return [(f"real_test_{t}", [oc for c, oc in cases.items() if c != t], [cases[t]]) for t in folds]
    sys.path.insert(0, str(HERE / "learning_curve"))  # the families' builders moved there (issue 23)
    from bench_learning_curve import prepare_families

    c = {"n_pairs": 12, "spacing": 1.0, "split": (0.45, 0.1, 0.45), "p_no_new": 0.5}
    name, cohort = next(iter(prepare_families([spec], c, work).items()))
    cache = work / name / "prepared"
    return [(name, load_cohort_cases(cohort, ("train", "val"), cache_dir=cache, **kw),
             load_cohort_cases(cohort, ("test",), cache_dir=cache, **kw))]


def simulation_config(seed: int, schedule: list[int], train: dict):
    """The panel's round: default strategy from the first query, bundled start, default TrainConfig + ``train``."""
    from LongitudinalALLib.active.policy import DEFAULT_STRATEGY
    from LongitudinalALLib.active.simulate import SimulationConfig
    from LongitudinalALLib.model.training import TrainConfig

    return SimulationConfig(strategy=DEFAULT_STRATEGY, initial_strategy=DEFAULT_STRATEGY, rounds=len(schedule),
                            schedule=schedule, seed=seed, size=256, spacing_mm=1.0, model=None,
                            init_weights="bundled", lesion_mask="product",
                            train=TrainConfig.from_dict({"max_seconds": None, "device": "cpu", **train}))


def curve(record: dict) -> list[dict]:
    """Rows round 0..R: labels and the METRICS (false lesions per test pair from the subjects)."""
    rows = []
    for r in [record["start"], *record["rounds"]]:
        m = dict(r["metrics"])
        m["fp_lesions_per_pair"] = sum(s["fp_lesions"] for s in r["subjects"]) / max(1, len(r["subjects"]))
        row = {"round": r["round"], "labels": r["labels"], **{k: m[k] for k in METRICS}}
        guard = (r.get("train") or {}).get("guard")
        if guard:
            row["guard"] = {k: guard[k] for k in ("kept", "reason", "held_out", "held_out_lesion", "previous", "new",
                                                  "test") if k in guard}
        rows.append(row)
    return rows


def score_candidates(test: list) -> None:
    """Guard study: every guard decision also records both models' test metrics (``guard["test"]``)."""
    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.active.simulate import evaluate
    from LongitudinalALLib.model.train_loop import cpu_state

    guard = ActiveLoop._guard

    def scored(self, model, previous, arrays, cfg, result):
        candidate = cpu_state(model)
        guard(self, model, previous, arrays, cfg, result)
        kept = cpu_state(model)
        out = {}
        for name, state in (("previous", previous), ("new", candidate)):
            model.load_state_dict(state)
            m = evaluate(model, test, cfg.threshold, lesion_mask="product")
            out[name] = {"dice": m.dice, "lesion_f1": m.lesion_f1,
                         "fp_lesions_per_pair": sum(s["fp_lesions"] for s in m.subjects) / len(m.subjects)}
        model.load_state_dict(kept)
        model.eval()
        result.guard["test"] = out

    ActiveLoop._guard = scored


def _nan_mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def summarise(curves: dict[int, list[dict]]) -> dict:
    """Mean curve over seeds and the worst drop below round 0 (Dice, F1) over every seed and round."""
    seeds = sorted(curves)
    n = min(len(curves[s]) for s in seeds)
    mean = [{"labels": curves[seeds[0]][i]["labels"],
             **{k: _nan_mean([curves[s][i][k] for s in seeds]) for k in METRICS}} for i in range(n)]
    drop = {k: max(curves[s][0][k] - row[k] for s in seeds for row in curves[s][1:]) if n > 1 else 0.0
            for k in ("dice", "lesion_f1")}
    return {"mean": mean, "worst_drop_below_round0": drop,
            "never_worse_0.02": all(v <= 0.02 for v in drop.values())}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from LongitudinalALLib.active.simulate import run_simulation

    work = Path(args.work)
    schedule = [int(x) for x in args.schedule.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    train = overrides(args.set)
    tag_dir = work / "runs" / args.tag
    results, t0 = {}, time.time()
    for spec in args.families.split(","):
        for name, pool, test in family_cases(spec.strip(), work):
            if args.score_candidates:
                score_candidates(test)
            curves = {}
            for seed in seeds:
                cfg = simulation_config(seed, schedule, train)
                record = run_simulation(tag_dir / name / f"s{seed}", pool, test, cfg)
                curves[seed] = curve(record)
                print(f"{name} seed {seed}: " + "  ".join(
                    f"{r['labels']:>2}: Dice {r['dice']:.3f} F1 {r['lesion_f1']:.3f} FP/pair "
                    f"{r['fp_lesions_per_pair']:.1f}" + (" [kept previous]" if r.get("guard", {}).get("kept")
                                                          == "previous" else "") for r in curves[seed]),
                      flush=True)
            results[name] = {"pool": [oc.slices.case_id for oc in pool], "test": [oc.slices.case_id for oc in test],
                             "curves": {str(s): c for s, c in curves.items()}, "summary": summarise(curves)}
            print(f"{name} mean: " + "  ".join(f"{r['labels']}: Dice {r['dice']:.3f} F1 {r['lesion_f1']:.3f} "
                                               f"FP/pair {r['fp_lesions_per_pair']:.1f}"
                                               for r in results[name]["summary"]["mean"])
                  + f"; worst drop below round 0 {results[name]['summary']['worst_drop_below_round0']}", flush=True)
    if not results:
        return 0
    from LongitudinalALLib.model.training import TrainConfig

    payload = {"benchmark": "product_loop", "tag": args.tag, "argv": sys.argv[1:], "schedule": schedule,
               "seeds": seeds, "train_overrides": train,
               "train_config": simulation_config(0, schedule, train).train.to_dict(),
               "default_train_config": TrainConfig().to_dict(), "seconds": round(time.time() - t0, 1),
               "machine": describe_machine(), "results": results,
               "data_citation": "open_ms_data: Lesjak et al., Neuroinformatics 2016 (CC-BY)"}
    print("->", write_results(f"product_loop_{args.tag}", payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
