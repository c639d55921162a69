"""Interactive waits of issue 14: prepare, first suggestion per strategy, Accept -> suggestions.

One run on the 1 mm MNI pair of ``bench_first_suggestion`` (182 axial slices of
256x256, bundled model), everything side by side so the shared machine's load
hits before and after alike (the 1-min load average is stored next to every
timing):

  prepare        ``prepare.prepare_pair`` as on this branch (before: the committed
                 ``results/first_suggestion.json``, load noted there)
  first          per strategy, a fresh QueryContext: score + select k slices.
                 MC strategies run twice: ``after`` = the default MC shortlist,
                 ``before`` = ``mc_shortlist=None`` (every slice with tissue, the
                 old path). Ratio = time / mean time of the deterministic strategies
                 of the same run. For BALD the overlap of the two top-k picks.
  accept         the k suggested slices get labels, the model trains on them from
                 its current weights (warm start) with each TrainConfig budget
                 below, then the suggestions are recomputed (fresh context).
                 Labels: |difference| above its 99.5th percentile on tissue (a
                 stand-in for contours: it sets the amount of work, not quality).

Run:  .venv/bin/python Testing/benchmarks/interactive/bench_interactive.py [--tiny] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)
import bench_common as bc  # noqa: E402
from bench_first_suggestion import load_model, make_pair, prepare_product  # noqa: E402

DETERMINISTIC = ("entropy_mean", "margin", "diff_weighted_entropy", "coreset", "badge")
MC = ("mc_entropy", "bald", "powerbald", "lmi_hybrid")
# Accept budgets (TrainConfig options of issue 16): the CLI default (40 passes over the labels,
# floor of 200 steps, 180 s cap), fewer steps (epochs x 4 steps on 10 labels), a 20 s wall-time cap
BUDGETS = {"cli_default": {}, "steps_100": {"epochs": 25, "min_total_steps": 100},
           "steps_60": {"epochs": 15, "min_total_steps": 60}, "cap_20s": {"max_seconds": 20.0}}


def load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def first_suggestion(slices: Any, predictor: Any, name: str, k: int, shortlist: Any,
                     labelled: np.ndarray | None = None) -> dict[str, Any]:
    """Seconds for score + select on a fresh context (no cached model outputs)."""
    from LongitudinalALLib.active.strategies import QueryContext, get_strategy

    n = len(slices.images)
    lab = np.zeros(n, bool) if labelled is None else labelled
    kw = {"passes": 10} if name in MC else {}
    ctx = QueryContext(slices.images, slices.foreground, lab, predictor, mc_shortlist=shortlist)
    strategy = get_strategy(name, **kw)
    load = load1()
    t0 = time.perf_counter()
    strategy.score(ctx)
    picks = strategy.select(ctx, k).indices
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "load1": load, "picks": picks.tolist()}


def stand_in_labels(slices: Any, picks: np.ndarray) -> np.ndarray:
    """(k, H, W) uint8: |difference| above its 99.5th percentile on tissue, on the picked slices."""
    diff = np.abs(slices.images[:, 2])
    cut = float(np.percentile(diff[slices.foreground], 99.5))
    return ((diff[picks] > cut) & slices.foreground[picks]).astype(np.uint8)


def accept_round(slices: Any, model: Any, device: torch.device, picks: np.ndarray, k: int,
                 overrides: dict[str, Any], tiny: bool) -> dict[str, Any]:
    """Train a copy of ``model`` on the picks (warm start), then re-suggest with entropy_mean."""
    from LongitudinalALLib.model import Predictor
    from LongitudinalALLib.model.training import TrainConfig, train_model

    net = copy.deepcopy(model)
    base = {"crop_size": 16, "min_total_steps": 4} if tiny else {}
    cfg = TrainConfig(device=device.type, **{**base, **overrides})
    labelled = np.zeros(len(slices.images), bool)
    labelled[picks] = True
    load = load1()
    t0 = time.perf_counter()
    result = train_model(net, slices.images[picks], stand_in_labels(slices, picks), config=cfg,
                         train_foreground=slices.foreground[picks])
    train_s = time.perf_counter() - t0
    again = first_suggestion(slices, Predictor(net.eval(), device), "entropy_mean", k, "auto", labelled)
    return {"train_s": train_s, "resuggest_s": again["seconds"], "total_s": train_s + again["seconds"],
            "steps": result.steps, "stop_reason": result.stop_reason, "load1": load, "config": overrides}


def committed_before() -> dict[str, Any]:
    """The figures of the committed first_suggestion.json (before this branch), with their load."""
    path = bc.RESULTS_DIR / "first_suggestion.json"
    if not path.is_file():
        return {}
    d = json.loads(path.read_text())
    cpu = d.get("devices", {}).get("cpu", {})
    return {"prepare_s": sum(d.get("preparation", {}).get("seconds", {}).values()),
            "first_suggestion_s": cpu.get("total_s"), "strategy": cpu.get("strategy"),
            "load_average_1_5_15": d.get("machine", {}).get("load_average_1_5_15"),
            "issue_14_figures": {"prepare_s": 14, "first_s": 26, "mc_strategy_s": [164, 205],
                                 "accept_train_s": 62, "accept_resuggest_s": 11}}


def summarise(out: dict[str, Any]) -> None:
    """Ratios to the mean of the deterministic strategies of the same run; BALD before/after overlap."""
    det = [r["after"]["seconds"] for n, r in out["first"].items() if n in DETERMINISTIC]
    if not det:
        return
    out["deterministic_mean_s"] = float(np.mean(det))
    for rows in out["first"].values():
        for row in (r for r in rows.values() if isinstance(r, dict)):
            row["ratio_to_deterministic"] = row["seconds"] / out["deterministic_mean_s"]
        if "before" in rows:
            a, b = set(rows["after"]["picks"]), set(rows["before"]["picks"])
            rows["top_k_overlap_with_before"] = len(a & b) / max(1, len(b))


def run_device(slices: Any, device: torch.device, args: argparse.Namespace, save: Any) -> dict[str, Any]:
    """First suggestions, then Accept rounds; ``save()`` writes the JSON after every figure."""
    from LongitudinalALLib.model import Predictor

    model, note = load_model(args.tiny)
    predictor = Predictor(model, device)
    out: dict[str, Any] = {"model": note, "first": {}, "accept": {}}
    jobs = [(n, "after", "auto") for n in args.strategies] + [(n, "before", None) for n in args.before]
    for name, path, shortlist in jobs:
        out["first"].setdefault(name, {})[path] = first_suggestion(slices, predictor, name, args.k, shortlist)
        summarise(out)
        print(name, path, round(out["first"][name][path]["seconds"], 2), flush=True)
        save(out)
    picks = first_suggestion(slices, predictor, "entropy_mean", args.k, "auto")["picks"] if args.budgets else []
    for label in args.budgets:
        out["accept"][label] = accept_round(slices, model, device, np.asarray(picks), args.k, BUDGETS[label],
                                            args.tiny)
        print("accept", label, {k: v for k, v in out["accept"][label].items() if k != "config"}, flush=True)
        save(out)
    return out


def print_tables(res: dict[str, Any]) -> None:
    bc.print_table([[n, v, f"{r['seconds']:.2f}", f"{r.get('ratio_to_deterministic', float('nan')):.2f}",
                     r["load1"]] for n, rows in res["first"].items() for v, r in rows.items() if isinstance(r, dict)],
                   ["strategy", "path", "seconds", "x deterministic", "load1"])
    bc.print_table([[b, f"{r['train_s']:.1f}", r["steps"], f"{r['resuggest_s']:.1f}", f"{r['total_s']:.1f}",
                     r["load1"]] for b, r in res["accept"].items()],
                   ["budget", "train s", "steps", "re-suggest s", "Accept->suggestions s", "load1"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = bc.common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--strategies", default=",".join(DETERMINISTIC + MC), help="timed on the product path")
    parser.add_argument("--before", default="bald,lmi_hybrid", help="MC strategies also timed on the old path")
    parser.add_argument("--budgets", default=",".join(BUDGETS), help=f"Accept budgets to time, of {list(BUDGETS)}")
    parser.add_argument("--no-prepare", action="store_true", help="time nothing in prepare (it still runs)")
    parser.add_argument("--name", default="interactive", help="results/<name>.json")
    args = parser.parse_args(argv)
    args.strategies, args.before, args.budgets = ([x for x in v.split(",") if x]
                                                  for v in (args.strategies, args.before, args.budgets))
    bc.apply_threads(args.threads)
    devices = bc.devices_to_run(args.device)
    spacing = 4.0 if args.tiny else 1.0
    name = args.name + ("_tiny" if args.tiny else "")
    payload: dict[str, Any] = {"tiny": args.tiny, "machine": bc.describe_machine(devices[-1]), "argv": argv or
                               sys.argv[1:], "before_committed": committed_before(), "devices": {}}
    with tempfile.TemporaryDirectory(prefix="bench_interactive_") as tmp:
        baseline, followup = make_pair(Path(tmp), spacing)
        load = load1()
        t0 = time.perf_counter()
        stages, slices, info = prepare_product(baseline, followup, 32 if args.tiny else 256, spacing)
        if not args.no_prepare:
            payload["prepare"] = {"seconds": time.perf_counter() - t0, "stages_s": stages, "load1": load,
                                  "path": info["path"], "note": "prepare/registration as on main (issue 12 not merged)"}
            print(f"prepare {payload['prepare']['seconds']:.2f} s (load {load})", flush=True)
    for dev in devices:
        def save(res: dict[str, Any], key: str = dev.type) -> None:
            payload["devices"][key] = {**res, "load1_end": load1()}
            bc.write_results(name, payload, args.out_dir)

        print_tables(run_device(slices, dev, args, save))
    path = bc.write_results(name, payload, args.out_dir)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
