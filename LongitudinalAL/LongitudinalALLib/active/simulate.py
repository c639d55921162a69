"""The active-learning loop with an oracle, on a simulated cohort with ground truth.

Pool = the cohort's train and val pairs (their labels are hidden in the
oracle and revealed one slice at a time, when the strategy asks); evaluation
= the test pairs, scored per subject on the baseline grid with the metrics of
:mod:`metrics`. Every round is: suggest -> the oracle labels -> train (warm
start from the previous round) -> evaluate. Each round is the product's own
:class:`ActiveLoop` round on a session folder; the oracle only answers its
suggestions. Rounds are recorded in ``simulation.json`` so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from LongitudinalALLib.active import pool_store
from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.policy import DEFAULT_STRATEGY, training_seed
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.core.json_file import read_json
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, check_cancel, report
from LongitudinalALLib.model.lesion_mask import DEFAULT, lesion_mask_from_slices, threshold_mask_from_slices
from LongitudinalALLib.model.metrics import CohortMetrics, subject_metrics, summarize
from LongitudinalALLib.model.training import TrainConfig


@dataclass
class SimulationConfig:
    strategy: str = DEFAULT_STRATEGY
    rounds: int = 3
    per_round: int = 10
    initial: int | None = None           # labels in round 1 (None: per_round)
    schedule: list[int] | None = None    # labels after each round (cumulative, e.g. [6, 12, 24]); overrides the two above
    initial_strategy: str = "fg_random"  # same first set for every strategy of one seed
    seed: int = 0
    size: int = 128
    spacing_mm: float = 2.0
    axis: str = "axial"
    model: dict | None = None            # ModelConfig fields (None: default network)
    init_weights: str = "scratch"
    train: TrainConfig = field(default_factory=TrainConfig)
    threshold: float = 0.5
    # "raw": the model's own p >= threshold (MSSEG-2-style, comparable with every earlier curve); "product": the
    # lesion-mask step the user sees, tuned for the bundled model (it drops true lesions of less confident
    # from-scratch models: full supervision on sim:1234, same config, scored 0.36 with it
    # (results/learning_curve_cpu_idle_timing.json) against 0.71 raw (results/learning_curve_cpu.json))
    lesion_mask: str = "raw"
    strategy_kwargs: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)  # SelectionOptions fields for rounds >= 2
    seconds_per_label: float | None = None  # round budget = her time on the batch, in steps (time_budget)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d


@dataclass
class OracleCase:
    """A pool or test case with its ground truth: slices (N,H,W) and the (K,J,I) volume."""

    slices: Any            # CaseSlices (labels = ground-truth slices)
    truth_volume: np.ndarray


# ---------------------------------------------------------------- cohort -> slices
def _cache_key(pair_id: str, manifest_path: str, opts: dict) -> str:
    h = hashlib.sha256(json.dumps([manifest_path, pair_id, opts], sort_keys=True).encode()).hexdigest()[:12]
    return f"{pair_id}_{h}"


def load_cohort_cases(cohort: str | Path, splits: tuple[str, ...], *, size: int = 128, spacing_mm: float = 2.0,
                      axis: str = "axial", seed: int = 0, cache_dir: str | Path | None = None,
                      progress: ProgressCallback | None = None, cancel: CancelToken | None = None
                      ) -> list[OracleCase]:
    """Prepare (register + pair) every pair of ``splits``; cached under ``cache_dir`` when given."""
    import SimpleITK as sitk

    from LongitudinalALLib.cohort.manifest import load_manifest, pair_files, pairs_in_split
    from LongitudinalALLib.imaging.io import read_image
    from LongitudinalALLib.imaging.prepare import PrepareOptions, prepare_pair

    manifest = load_manifest(cohort)
    pairs = [p for s in splits for p in pairs_in_split(manifest, s)]
    if not pairs:
        raise InputError(f"Cohort {cohort} has no pairs in splits {splits}.", "Generate a larger cohort (--n).")
    opts = {"size": size, "spacing_mm": spacing_mm, "axis": axis, "seed": seed}
    out = []
    for i, pair in enumerate(pairs):
        check_cancel(cancel, "Preparing the cohort")
        report(progress, "Preparing", i / len(pairs), pair["pair_id"])
        files = pair_files(manifest, pair)
        key = _cache_key(pair["pair_id"], manifest["_path"], opts)
        cdir = Path(cache_dir) / key if cache_dir else None
        if cdir is not None and (cdir / "truth.npz").is_file():
            case = pool_store.load_case(cdir, pair["pair_id"])
            case.labels, truth = _cached_truth(cdir / "truth.npz", case)
        else:
            truth = sitk.GetArrayFromImage(read_image(files["new_lesions"])).astype(np.uint8)
            prepared = prepare_pair(str(files["baseline"]), str(files["followup"]),
                                    PrepareOptions(size=size, spacing_mm=spacing_mm, axis=axis, seed=seed),
                                    case_id=pair["pair_id"], labels=str(files["new_lesions"]))
            case = prepared.slices
            if case.labels is None:
                case.labels = (case.geometry.to_slices(truth.astype(np.float32), order=0) > 0.5).astype(np.uint8)
            if cdir is not None:
                pool_store.save_case(cdir, case)
                atomic.write_npz(cdir / "truth.npz", labels=case.labels.astype(np.uint8), volume=truth)
        out.append(OracleCase(case, truth))
    report(progress, "Preparing", 1.0, f"{len(pairs)} pairs")
    return out


def _cached_truth(path: Path, case) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,H,W), volume (K,J,I)) of a cached case, their declared shapes checked before loading."""
    from LongitudinalALLib.core.errors import SessionError
    from LongitudinalALLib.core.npz_header import load_checked

    try:
        arrays = load_checked(path, {"labels": case.images[:, 0].shape, "volume": case.geometry.shape})
        return arrays["labels"], arrays["volume"]
    except (OSError, ValueError) as err:
        raise SessionError(f"Cached ground truth {path} is damaged ({err}).",
                           f"Delete the folder {path.parent} (a cache) and run again.") from None


def _read_record(path: Path) -> dict[str, Any] | None:
    """The simulation record of a session (None when absent); one line naming the file when damaged."""
    if not path.is_file():
        return None
    def damaged(why: str) -> InputError:
        return InputError(f"Simulation record {path} is damaged ({why}).",
                          "Use a new --out directory (the session beside it is kept).")

    record = read_json(path, damaged)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict) \
            or not isinstance(record.get("rounds"), list):
        raise damaged("it is not an object with config and rounds")
    return record


# ---------------------------------------------------------------- evaluation
def evaluate(model, cases: list[OracleCase], threshold: float = 0.5,
             cancel: CancelToken | None = None, lesion_mask: str = "raw") -> CohortMetrics:
    """Per-subject metrics on the baseline grid: predict slices, map back, compare with the truth."""
    from LongitudinalALLib.model import Predictor

    predictor = Predictor(model)
    subjects = []
    for oc in cases:
        check_cancel(cancel, "Evaluation")
        c = oc.slices
        if lesion_mask == "raw":
            vol = threshold_mask_from_slices(predictor.predict(c.images), c.foreground, c.geometry, threshold)
        else:  # what the user sees: components with a confident peak and a real size
            vol = lesion_mask_from_slices(predictor.predict(c.images), c.foreground, c.geometry,
                                          config=DEFAULT.at_threshold(threshold))
        subjects.append(subject_metrics(c.case_id, vol, oc.truth_volume))
    return summarize(subjects)


def _metrics_row(m: CohortMetrics) -> dict[str, Any]:
    d = m.to_dict()
    d.pop("subjects")
    return d


# ---------------------------------------------------------------- the loop
def run_simulation(session_dir: str | Path, pool: list[OracleCase], test: list[OracleCase],
                   cfg: SimulationConfig, *, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None, log=None) -> dict[str, Any]:
    """Run (or resume) ``cfg.rounds`` rounds; returns and writes ``simulation.json``."""
    session_dir = Path(session_dir)
    record_path = session_dir / "simulation.json"
    if SessionStore.exists(session_dir):
        store = SessionStore.open_recovered(session_dir)[0]
        record = _read_record(record_path)
        same = {**json.loads(json.dumps(cfg.to_dict())), "rounds": None}
        if record is None or {"seconds_per_label": None, **record["config"], "rounds": None} != same:  # older records
            raise InputError(f"{session_dir} holds a different simulation.", "Use a new --out directory.")
        record["config"]["rounds"] = cfg.rounds
    else:
        store = SessionStore.create(session_dir, [oc.slices for oc in pool], strategy=cfg.strategy, seed=cfg.seed,
                                    model_config=cfg.model, init_weights=cfg.init_weights)
        record = {"config": cfg.to_dict(), "rounds": []}
        atomic.write_json(record_path, record)
    truth = {oc.slices.case_id: oc.slices.labels for oc in pool}
    loop = ActiveLoop(store)
    if "start" not in record and store.round_number == 0:  # round 0: the starting model (e.g. the shipped one)
        metrics = evaluate(loop.current_model(), test, cfg.threshold, cancel, cfg.lesion_mask)
        record["start"] = {"round": 0, "labels": 0, "fraction": 0.0, "contoured": 0, "lesion_free": 0,
                           "metrics": _metrics_row(metrics), "subjects": metrics.subjects}
        atomic.write_json(record_path, record)
        if log is not None:
            log(record["start"])
    if cfg.seconds_per_label and "time_budget" not in record:  # measured once, kept for a resumed run
        from LongitudinalALLib.active.time_budget import measure_steps_per_second

        record["time_budget"] = {"seconds_per_label": cfg.seconds_per_label,
                                 **measure_steps_per_second(loop.current_model(), pool, cfg.train)}
        atomic.write_json(record_path, record)
    for r in range(len(record["rounds"]) + 1, cfg.rounds + 1):
        check_cancel(cancel, "Simulation")
        if store.round_number < r:  # a round committed before a crash is evaluated, never trained twice
            missing = labels_after_round(cfg, r) - store.budget()["total"]["labelled"]
            if missing > 0:
                _oracle_labels(loop, r, missing, truth, cfg, cancel)
            loop.train(loop.train_config(**_round_train(cfg, record, r)), cancel=cancel)
        metrics = evaluate(loop.current_model(), test, cfg.threshold, cancel, cfg.lesion_mask)
        done = store.rounds[r - 1]
        row = {"round": r, **_budget_row(done.budget), "train": done.train,
               "metrics": _metrics_row(metrics), "subjects": metrics.subjects}
        record["rounds"].append(row)
        atomic.write_json(record_path, record)
        report(progress, "Simulation", r / cfg.rounds, f"round {r}: Dice {metrics.dice:.3f}")
        if log is not None:
            log(row)
    return record


def _round_train(cfg: SimulationConfig, record: dict[str, Any], r: int) -> dict[str, Any]:
    """TrainConfig fields of round ``r``: the recipe, its seed, and with ``seconds_per_label`` the steps her
    time on the round's new labels buys at the measured rate (:mod:`time_budget`)."""
    train = {**cfg.train.to_dict(), "seed": training_seed(cfg.seed, r)}
    if not cfg.seconds_per_label:
        return train
    from LongitudinalALLib.active.time_budget import budgeted, steps_for

    added = labels_after_round(cfg, r) - (labels_after_round(cfg, r - 1) if r > 1 else 0)
    return budgeted(train, steps_for(added, cfg.seconds_per_label, record["time_budget"]["steps_per_second"]))


def labels_after_round(cfg: SimulationConfig, r: int) -> int:
    """Cumulative labels once round ``r`` (1-based) is labelled: the schedule, else initial + (r - 1) * per_round."""
    if cfg.schedule:
        return int(cfg.schedule[min(r, len(cfg.schedule)) - 1])
    return (cfg.initial if cfg.initial is not None else cfg.per_round) + (r - 1) * cfg.per_round


def _budget_row(budget: dict[str, Any]) -> dict[str, Any]:
    return {"labels": budget["labelled"], "fraction": budget["fraction"], "contoured": budget["contoured"],
            "lesion_free": budget["lesion_free"]}


def _oracle_labels(loop: ActiveLoop, r: int, missing: int, truth: dict, cfg: SimulationConfig,
                   cancel: CancelToken | None) -> None:
    """Label ``missing`` slices for round ``r`` with the ground truth.

    A suggestion already made for this round (a run stopped while labelling)
    is finished rather than replaced, so a resumed run labels exactly the
    slices an uninterrupted one would.
    """
    store = loop.store
    batches = store.suggestion_batches()
    if batches and batches[-1].round == store.round_number:
        picked = [s for s in batches[-1].slices if store.label_record(s.case_id, s.slice_index) is None][:missing]
    else:
        strategy = cfg.initial_strategy if r == 1 else cfg.strategy
        kwargs = {} if r == 1 else {**cfg.strategy_kwargs, "selection": cfg.selection or None}
        picked = loop.suggest(missing, strategy, cancel=cancel, **kwargs).suggestions
    store.add_labels((s.case_id, s.slice_index, truth[s.case_id][store.position(s.case_id, s.slice_index)])
                     for s in picked)  # the oracle's answers


def train_full_supervision(session_dir: str | Path, pool: list[OracleCase], test: list[OracleCase],
                           cfg: SimulationConfig, cancel: CancelToken | None = None) -> dict[str, Any]:
    """Upper bound: every pool slice labelled, same recipe, same split rule, one round."""
    store = SessionStore.create(session_dir, [oc.slices for oc in pool], strategy="random", seed=cfg.seed,
                                model_config=cfg.model, init_weights=cfg.init_weights, overwrite=True)
    store.add_labels((oc.slices.case_id, p.slice_index, lab)
                     for oc in pool for p, lab in zip(oc.slices.provenance, oc.slices.labels))
    loop = ActiveLoop(store)
    result = loop.train(loop.train_config(**{**cfg.train.to_dict(), "seed": training_seed(cfg.seed, 0)}),
                        cancel=cancel)
    metrics = evaluate(loop.current_model(), test, cfg.threshold, cancel, cfg.lesion_mask)
    budget = store.budget()["total"]
    return {"labels": budget["labelled"], "fraction": 1.0, "train": result.summary(),
            "metrics": _metrics_row(metrics), "subjects": metrics.subjects}


def fork_simulation(src: str | Path, dst: str | Path, cfg: SimulationConfig) -> None:
    """Copy a finished simulation (e.g. the shared round 1) into ``dst`` to continue with ``cfg``.

    Lets every strategy of one seed start from the very same labelled set and
    model without training that first round again.
    """
    import shutil

    src, dst = Path(src), Path(dst)
    if dst.exists():  # only an earlier, unfinished copy of ``src`` is replaced: never anyone's files
        extra = [p for p in dst.rglob("*") if not p.is_dir() and not (src / p.relative_to(dst)).is_file()]
        if extra or dst.is_symlink() or not dst.is_dir():
            raise InputError(f"{dst} is not empty ({(extra or [dst])[0]} is not part of the simulation to copy).",
                             "Choose a new folder for the forked simulation.")
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    record = json.loads((dst / "simulation.json").read_text())
    record["config"] = cfg.to_dict()
    record["forked_from"] = str(src)
    with SessionStore.open(dst, write=True) as store:
        store.set_strategy(cfg.strategy)
    atomic.write_json(dst / "simulation.json", record)
