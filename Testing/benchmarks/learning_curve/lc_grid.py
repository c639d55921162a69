"""The learning-curve grid (family x seed x strategy) as independent, resumable tasks; Ray when installed.

Every task writes its result into its own folder and returns only that
folder, so a task that finds its result on disk is done, an interrupted grid
resumes where it stopped, and the summary is read from disk in one fixed
order: the JSON is the same whether the tasks ran on Ray or one after another.
Task kinds: ``full`` (full supervision of one family and seed), ``initial``
(the shared first round of one seed: every strategy of that seed forks it),
``run`` (one strategy, forked from its seed's initial round).

Ray is optional (``pip install ray``): ``address=None`` starts a local
cluster, ``address="ray://host:10001"`` or ``"auto"`` joins an existing one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path


def task_dir(ctx: dict, task: dict) -> Path:
    root = Path(ctx["work"]) / task["family"]
    name = {"full": "full", "initial": "initial"}.get(task["kind"], task.get("strategy"))
    return root / f"{name}_s{task['seed']}"


def result_path(ctx: dict, task: dict) -> Path:
    """Beside the task's folder (a fork copies the folder, never this file)."""
    out = task_dir(ctx, task)
    return out.parent / f"{out.name}.result.json"


def _cases(ctx: dict, family: str):
    from LongitudinalALLib.active.simulate import load_cohort_cases

    kw = dict(size=ctx["config"]["size"], spacing_mm=ctx["config"]["spacing"],
              cache_dir=Path(ctx["work"]) / family / "prepared")
    cohort = ctx["families"][family]
    return load_cohort_cases(cohort, ("train", "val"), **kw), load_cohort_cases(cohort, ("test",), **kw)


def session_model(folder: Path):
    """The latest round's model of a session folder (a run, a full-supervision task), or None without one."""
    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.active.store import SessionStore

    if not SessionStore.exists(folder):
        return None
    store = SessionStore.open(folder)
    return ActiveLoop(store).current_model() if store.round_number else None


def _triage(model, test) -> dict:
    from LongitudinalALLib.active.triage import auroc, triage_cases
    from LongitudinalALLib.model import Predictor

    rows = triage_cases([oc.slices for oc in test], Predictor(model, device="cpu"))
    truth = {oc.slices.case_id: bool(oc.truth_volume.any()) for oc in test}
    return {"rows": [r.to_dict() for r in rows],
            "auroc": auroc([r.probability for r in rows], [truth[r.case_id] for r in rows])}


def execute(task: dict, ctx: dict, *after) -> str:
    """Run one task unless its result is on disk; returns its folder (``after``: Ray ordering only)."""
    import torch

    from LongitudinalALLib.active.simulate import fork_simulation, run_simulation, train_full_supervision
    from LongitudinalALLib.model.training import TrainConfig

    torch.set_num_threads(int(ctx.get("threads", 1)))
    out = task_dir(ctx, task)
    done = result_path(ctx, task)
    if done.is_file():
        return str(out)
    t0 = time.perf_counter()
    pool, test = _cases(ctx, task["family"])
    cfg = replace(_base_config(ctx, task["family"]), seed=task["seed"])
    if task["kind"] == "full":  # same recipe, more epochs: ``full_train`` overrides
        cfg = replace(cfg, train=TrainConfig.from_dict({**cfg.train.to_dict(), **ctx.get("full_train", {})}))
        rec = train_full_supervision(out, pool, test, cfg)
        state = json.loads((out / "state.json").read_text())
        rec["training_curve"] = state["rounds"][0]["history"]
        rec["triage"] = _triage(session_model(out), test)
    elif task["kind"] == "initial":
        rec = run_simulation(out, pool, test, cfg)
    else:
        cfg = replace(cfg, strategy=task["strategy"], rounds=ctx["config"]["rounds"],
                      strategy_kwargs=ctx["strategy_kwargs"].get(task["strategy"], {}),
                      selection=ctx.get("selection", {}))
        if not (out / "simulation.json").is_file():
            fork_simulation(task_dir(ctx, {**task, "kind": "initial"}), out, cfg)
        rec = run_simulation(out, pool, test, cfg)
        rec["triage"] = _triage(session_model(out), test)
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    done.write_text(json.dumps(rec, default=str))
    print(f"done {task} in {rec['seconds']:.0f} s", flush=True)
    return str(out)


def _base_config(ctx: dict, family: str):
    from LongitudinalALLib.active.simulate import SimulationConfig
    from LongitudinalALLib.model.training import TrainConfig

    b = dict(ctx["base"][family])
    return SimulationConfig(**{**b, "train": TrainConfig.from_dict(b["train"])})


def run_grid(tasks: list[dict], ctx: dict, *, use_ray: bool = False, address: str | None = None) -> list[str]:
    """Run ``tasks`` (full/initial first; a run after its seed's initial round); returns their folders."""
    if not use_ray:
        return [execute(t, ctx) for t in tasks]
    import ray

    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": str(ctx.get("threads", 1))}
    ray.init(address=address, runtime_env={"env_vars": env}, ignore_reinit_error=True,
             include_dashboard=False, log_to_driver=True)
    remote = ray.remote(num_cpus=1)(execute)
    refs, initial = [], {}
    for t in tasks:
        if t["kind"] != "run":
            ref = remote.remote(t, ctx)
            refs.append(ref)
            if t["kind"] == "initial":
                initial[(t["family"], t["seed"])] = ref
    for t in tasks:
        if t["kind"] == "run":
            dep = initial.get((t["family"], t["seed"]))
            refs.append(remote.remote(t, ctx, *([dep] if dep is not None else [])))
    return ray.get(refs)
