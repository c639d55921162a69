"""A resumable active-learning session kept in one directory.

Layout::

    state.json                      written last, after every change (the commit point)
    .lock                           the writer lock (session_lock); names the holder
    pool/<case>.npz|json            slice pairs, provenance, geometry (pool_store)
    labels/<case>_<slice>.npz       one answer per slice; all zero = "no new lesion"
    checkpoints/round_<r>_<id>.safetensors (+ .json sidecar, model/weights)
    scores/round_<r>_<n>.npz        strategy scores behind each suggestion
    damaged/                        files recovery could not read (kept for inspection)

Every file is written atomically and before the ``state.json`` that refers to
it, so a crash at any moment leaves either the old state or the new one plus
orphan files. One process writes at a time: :meth:`ALSession.open` takes the
folder's lock and then runs crash recovery (:mod:`session_recovery`);
``open(..., readonly=True)`` takes no lock and never changes a file.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from LongitudinalALLib.active import pool_store
from LongitudinalALLib.active.policy import DEFAULT_STRATEGY
from LongitudinalALLib.active.session_lock import SessionLock
from LongitudinalALLib.active.session_recovery import read_label_file, reconcile
from LongitudinalALLib.active.session_state import STATE_VERSION, validate_state
from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import CancelledError, InputError, SessionError
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, report


@dataclass(frozen=True)
class Suggestion:
    case_id: str
    slice_index: int
    score: float
    rank: int                       # 1 = most worth labelling
    center_ras: tuple[float, float, float]


def _hash01(*parts: Any) -> float:
    """A stable pseudo-random number in [0, 1) from ``parts`` (split assignment)."""
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _binary(mask: Any, what: str) -> np.ndarray:
    """``mask`` as an array of 0/1; any other value (NaN, -1, 255, intensities) would become a wrong label."""
    arr = np.asarray(mask)
    if arr.dtype != bool and arr.size and (not np.isfinite(arr).all() or not np.isin(arr, (0, 1)).all()):
        raise InputError(f"{what} holds values other than 0 and 1 (e.g. {arr[~np.isin(arr, (0, 1))].flat[0]}).",
                         "Give a lesion mask of 0 (background) and 1 (lesion), e.g. via label_masks.")
    return arr


def _read_state(root: Path) -> dict[str, Any]:
    path = root / "state.json"
    if not path.is_file():
        raise SessionError(f"{root} is not an active-learning session (no state.json).",
                           "Create one with `longitudinal-al suggest` or ALSession.create().")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise SessionError(f"{path} cannot be read ({err}).", "Restore it from a backup or re-create the session.") from err
    return validate_state(state, root)


class ALSession:
    """Pool + labels + rounds of one active-learning run (see module docstring)."""

    def __init__(self, root: Path, state: dict[str, Any], lock: SessionLock | None = None) -> None:
        self.root = root
        self.state = state
        self.recovered: list[str] = []  # what open() had to repair
        self._cases: dict[str, Any] = {}
        self._lock = lock

    # ------------------------------------------------------------ create / open
    @classmethod
    def create(cls, directory: str | Path, cases: list, *, strategy: str = DEFAULT_STRATEGY, seed: int = 0,
               model_config: dict | None = None, init_weights: str = "bundled",
               val_fraction: float = 0.2, overwrite: bool = False, wait: float = 0.0) -> "ALSession":
        """Start a session on ``cases`` (list of CaseSlices); ``init_weights``: "bundled", "scratch" or a path."""
        root = Path(directory)
        if (root / "state.json").exists() and not overwrite:
            raise SessionError(f"{root} already holds a session.",
                               "Open it to continue, or choose another directory (or pass overwrite).")
        if not cases:
            raise InputError("No cases were given for the session pool.", "Prepare at least one pair first.")
        ids = [pool_store.check_case_id(c.case_id) for c in cases]
        if len(set(ids)) != len(ids):
            raise InputError(f"Case ids repeat in the pool: {ids}.", "Give every pair its own case id.")
        sizes = {tuple(np.shape(c.images)[2:]) for c in cases}
        if len(sizes) != 1:
            raise InputError(f"Cases have different slice sizes {sorted(sizes)}.", "Prepare all pairs with one --size.")
        lock = SessionLock(root, wait)
        try:
            if (root / "state.json").exists():
                (root / "state.json").unlink()
            for sub in ("pool", "labels", "checkpoints", "scores"):
                for f in (root / sub).glob("*") if (root / sub).exists() else []:
                    f.unlink()
            for c in cases:
                pool_store.save_case(root / "pool", c)
        except BaseException:
            lock.release()
            raise
        state = {
            "version": STATE_VERSION, "created": time.time(), "strategy": strategy, "seed": int(seed),
            "init_weights": str(init_weights), "model_config": model_config, "val_fraction": float(val_fraction),
            "cases": {c.case_id: {"n_slices": int(len(c.images)),
                                  "slice_indices": [int(p.slice_index) for p in c.provenance]} for c in cases},
            "labels": {}, "rounds": [], "suggestions": [], "generation": 0,
        }
        session = cls(root, state, lock)
        session._cases = {c.case_id: c for c in cases}
        session._commit()
        return session

    @classmethod
    def open(cls, directory: str | Path, *, readonly: bool = False, wait: float = 0.0) -> "ALSession":
        """Open for writing (takes the lock, then recovers from any crash) or ``readonly`` (no lock, no change).

        ``wait``: seconds to queue behind another writer before giving up with a SessionError.
        """
        root = Path(directory)
        if readonly:
            return cls(root, _read_state(root))
        if not (root / "state.json").is_file():
            _read_state(root)  # the clear "not a session" error, before a lock file is made
        lock = SessionLock(root, wait)
        try:
            session = cls(root, _read_state(root), lock)
            if reconcile(session):
                session._commit()
        except BaseException:
            lock.release()
            raise
        return session

    def close(self) -> None:
        """Release the writer lock (also released when the process ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "ALSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def writable(self) -> bool:
        return self._lock is not None

    def _commit(self) -> None:
        """Write state.json; refuses a read-only session and a state another writer changed since."""
        if self._lock is None:
            raise SessionError(f"Session {self.root} was opened read-only or closed.", "Open it for writing.")
        path = self.root / "state.json"
        loaded = self.state.get("generation", 0)
        if path.is_file():
            try:
                on_disk = json.loads(path.read_text(encoding="utf-8")).get("generation", 0)
            except (OSError, ValueError, AttributeError):
                on_disk = loaded
            if on_disk != loaded:
                raise SessionError(f"Session {self.root} was changed by another writer since it was opened.",
                                   "Open it again and repeat the step.")
        self.state["generation"] = loaded + 1
        self.state["updated"] = time.time()
        try:
            atomic.write_json(path, self.state)
        except BaseException:
            self.state["generation"] = loaded
            raise

    # ------------------------------------------------------------ pool access
    @property
    def case_ids(self) -> list[str]:
        return list(self.state["cases"])

    def case(self, case_id: str):
        """The CaseSlices of ``case_id`` (loaded from disk once)."""
        if case_id not in self.state["cases"]:
            raise InputError(f"Case {case_id!r} is not in this session.", f"Use one of {self.case_ids}.")
        if case_id not in self._cases:
            self._cases[case_id] = pool_store.load_case(self.root / "pool", case_id)
        return self._cases[case_id]

    def position(self, case_id: str, slice_index: int) -> int:
        """Row of ``slice_index`` in the case's (N,...) arrays."""
        idx = self.state["cases"].get(case_id, {}).get("slice_indices")
        if idx is None:
            self.case(case_id)
        try:
            return idx.index(int(slice_index))
        except ValueError:
            raise InputError(f"Slice {slice_index} does not exist in case {case_id} "
                             f"(slices {idx[0]}..{idx[-1]}).", "Pick a slice index inside that range.") from None

    # ------------------------------------------------------------ labels
    def _record_label(self, case_id: str, slice_index: int, mask: np.ndarray, rel: str) -> None:
        self.position(case_id, slice_index)
        split = "val" if _hash01(self.state["seed"], case_id, slice_index) < self.state["val_fraction"] else "train"
        self.state["labels"][f"{case_id}:{int(slice_index)}"] = {
            "case_id": case_id, "slice_index": int(slice_index), "file": rel,
            "lesion_pixels": int(np.count_nonzero(mask)), "round": len(self.state["rounds"]), "split": split,
        }

    def _write_label(self, case_id: str, slice_index: int, mask: np.ndarray) -> str:
        case = self.case(case_id)
        mask = _binary(mask, f"The label for {case_id}:{slice_index}")
        if mask.shape != case.images.shape[2:]:
            raise InputError(f"Label for {case_id}:{slice_index} is {mask.shape}; the model grid is "
                             f"{case.images.shape[2:]}.", "Pass a mask on the model grid or a volume mask.")
        mask = mask.astype(np.uint8)
        rel = f"labels/{case_id}_{int(slice_index)}.npz"
        atomic.write_npz(self.root / rel, mask=mask, case_id=np.array(case_id), slice_index=np.array(int(slice_index)))
        self._record_label(case_id, slice_index, mask, rel)
        return rel

    def add_label(self, case_id: str, slice_index: int, mask: np.ndarray) -> None:
        """Store the answer for one slice: mask (H, W) on the model grid; all zero = no new lesion."""
        self.position(case_id, slice_index)
        self._write_label(case_id, slice_index, mask)
        self._commit()

    def add_labels_from_volume(self, case_id: str, volume: np.ndarray,
                               slice_indices: list[int] | None = None) -> list[int]:
        """Import labels from a (K, J, I) 0/1 mask on the baseline grid.

        ``slice_indices`` None: every slice where the mask is 1. Listed slices that
        are empty in the mask are recorded as "no new lesion". Any value other than
        0/1 (NaN, -1, 255, intensities) is refused: it would become a wrong label.
        """
        case = self.case(case_id)
        vol = _binary(volume, f"The mask for {case_id}")
        try:
            slices = case.geometry.to_slices(vol.astype(np.uint8), order=0) > 0
        except (ValueError, IndexError) as err:
            raise InputError(f"Mask of shape {vol.shape} does not fit the baseline grid of {case_id} ({err}).",
                             "Give a mask saved on the baseline image's grid.") from err
        all_idx = self.state["cases"][case_id]["slice_indices"]
        if slice_indices is None:
            slice_indices = [all_idx[i] for i in np.flatnonzero(slices.reshape(len(slices), -1).any(1))]
        for s in slice_indices:
            self.position(case_id, s)
        for s in slice_indices:
            self._write_label(case_id, s, slices[self.position(case_id, s)])
        self._commit()
        return [int(s) for s in slice_indices]

    def label(self, case_id: str, slice_index: int) -> np.ndarray:
        rec = self.state["labels"].get(f"{case_id}:{int(slice_index)}")
        if rec is None:
            raise InputError(f"Slice {case_id}:{slice_index} has no label.", "Label it first.")
        try:
            return read_label_file(self.root / rec["file"])[2].astype(np.uint8)
        except ValueError as err:
            raise SessionError(f"The label of {case_id}:{slice_index} is damaged: {err}.",
                               "Open the session again (it moves the file aside), then label that slice again.") from err

    def labelled_mask(self, case_id: str) -> np.ndarray:
        """(N,) bool: which slices of the case already have an answer."""
        out = np.zeros(self.state["cases"][case_id]["n_slices"], dtype=bool)
        for rec in self.state["labels"].values():
            if rec["case_id"] == case_id:
                out[self.position(case_id, rec["slice_index"])] = True
        return out

    def budget(self) -> dict[str, Any]:
        """Labels spent, per subject and in total; lesion-free confirmations counted apart."""
        per = {cid: {"slices": c["n_slices"], "labelled": 0, "contoured": 0, "lesion_free": 0}
               for cid, c in self.state["cases"].items()}
        for rec in self.state["labels"].values():
            p = per[rec["case_id"]]
            p["labelled"] += 1
            p["contoured" if rec["lesion_pixels"] else "lesion_free"] += 1
        for p in per.values():
            p["fraction"] = p["labelled"] / p["slices"] if p["slices"] else 0.0
        tot = {k: sum(p[k] for p in per.values()) for k in ("slices", "labelled", "contoured", "lesion_free")}
        tot["fraction"] = tot["labelled"] / tot["slices"] if tot["slices"] else 0.0
        return {"per_case": per, "total": tot}

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.state["rounds"])

    # ------------------------------------------------------------ model
    def model_config(self):
        from LongitudinalALLib.model import ModelConfig
        d = self.state.get("model_config")
        return ModelConfig.from_dict(d) if d else ModelConfig()

    def current_model(self):
        """Latest round's checkpoint, else the starting weights (bundled, a file, or fresh by seed)."""
        import torch

        from LongitudinalALLib.model import build_model, load_weights
        from LongitudinalALLib.model.weights import bundled_weights_path
        if self.state["rounds"]:
            last = self.state["rounds"][-1]
            try:
                return load_weights(self.root / last["checkpoint"])
            except InputError as err:
                back = f"round {last['round'] - 1}" if last["round"] > 1 else "the starting model"
                raise SessionError(f"The model of round {last['round']} cannot be loaded: {err.problem}",
                                   f"Return to {back} with `longitudinal-al rollback --session {self.root}`, "
                                   "then train again (your labels are kept).") from err
        init = self.state["init_weights"]
        if init == "bundled" and bundled_weights_path().is_file() and not self.state.get("model_config"):
            return load_weights(bundled_weights_path())
        if init not in ("bundled", "scratch"):
            return load_weights(init)
        torch.manual_seed(self.state["seed"])
        return build_model(self.model_config())

    def rollback(self, to_round: int | None = None) -> int:
        """Drop the rounds after ``to_round`` (default: the newest round whose checkpoint loads); labels stay.

        Returns the round now current (0 = the starting model). The dropped
        rounds' checkpoints are deleted after the commit.
        """
        from LongitudinalALLib.model.weights import read_weights_info

        rounds = self.state["rounds"]
        if to_round is None:
            to_round = 0
            for r in reversed(rounds):
                try:
                    read_weights_info(self.root / r["checkpoint"])
                    to_round = r["round"]
                    break
                except InputError:
                    continue
        if not 0 <= to_round <= len(rounds):
            raise InputError(f"Round {to_round} does not exist (rounds 0..{len(rounds)}).",
                             "Pick a round from `longitudinal-al train` output, or 0 for the starting model.")
        dropped = rounds[to_round:]
        self.state["rounds"] = rounds[:to_round]
        self._commit()
        for r in dropped:
            for f in self.root.joinpath("checkpoints").glob(Path(r["checkpoint"]).stem + ".*"):
                f.unlink()
        return to_round

    # ------------------------------------------------------------ rounds
    def pool_arrays(self) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]:
        """All cases stacked: images (M,3,H,W), foreground (M,H,W), (case_id, slice_index) per row."""
        cases = [self.case(c) for c in self.case_ids]
        keys = [(c.case_id, int(p.slice_index)) for c in cases for p in c.provenance]
        return (np.concatenate([c.images for c in cases]).astype(np.float32, copy=False),
                np.concatenate([c.foreground for c in cases]), keys)

    def suggest(self, k: int, strategy: str | None = None, *, progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None, predictor=None, outputs=None, selection=None,
                **strategy_kwargs: Any) -> list[Suggestion]:
        """Rank the unlabelled slices of the whole pool and return the ``k`` best (scores saved).

        ``predictor`` (a :class:`Predictor` over the current model) chooses the device, e.g. the
        user's "use CPU"; by default one is built on the best device. ``outputs`` (the
        ``PoolOutputs`` of ``predictor.predict_all`` over :meth:`pool_arrays`) saves that pass
        when the caller needs the probabilities too. ``selection``: cold-start mix, per-subject cap,
        round robin (``strategies.selection.SelectionOptions`` fields).
        """
        from LongitudinalALLib.active.strategies import QueryContext, get_strategy
        from LongitudinalALLib.active.strategies.selection import select_batch
        from LongitudinalALLib.model import Predictor

        if k < 1:
            raise InputError(f"Asked for {k} suggestions.", "Ask for at least one slice.")
        name = strategy or self.state["strategy"]
        images, fg, keys = self.pool_arrays()
        labelled = np.concatenate([self.labelled_mask(c) for c in self.case_ids])
        if labelled.all():
            raise SessionError("Every slice of the pool is labelled already.", "Train a round or add cases.")
        r = len(self.state["rounds"])
        rng = np.random.default_rng([self.state["seed"], r, len(self.state["suggestions"])])
        report(progress, "Suggesting", 0.0, f"strategy {name}")
        strat = get_strategy(name, **strategy_kwargs)
        if not strat.needs_model:
            predictor = None
        elif predictor is None:
            predictor = Predictor(self.current_model())
        ctx = QueryContext(images=images, foreground=fg, labelled=labelled, predictor=predictor, rng=rng,
                           mc_seed=int(self.state["seed"]) + r, round_index=r, outputs=outputs, progress=progress,
                           cancel=cancel)
        k = min(k, int((~labelled).sum()))
        chosen, scores = select_batch(strat, ctx, k, [c for c, _ in keys],
                                      any(x["lesion_pixels"] for x in self.state["labels"].values()), selection)
        report(progress, "Suggesting", 1.0, f"{len(chosen)} slices")
        out = []
        for rank, i in enumerate(chosen, 1):
            cid, s = keys[i]
            prov = self.case(cid).provenance[self.position(cid, s)]
            out.append(Suggestion(cid, s, float(scores[i]), rank, tuple(float(v) for v in prov.center_ras)))
        rel = f"scores/round_{r}_{len(self.state['suggestions'])}.npz"
        atomic.write_npz(self.root / rel, scores=scores, chosen=chosen)
        self.state["suggestions"].append({"round": r, "strategy": name, "scores": rel,
                                          "slices": [asdict(x) for x in out]})
        self._commit()
        return out

    def training_arrays(self) -> dict[str, np.ndarray]:
        """Labelled slices split into train/val: images, labels, foreground per split.

        The hashed validation split is kept only when ``train_plan.selection_rule`` (default
        thresholds) trusts it; otherwise every label is trained on.
        """
        from LongitudinalALLib.model.train_plan import selection_rule
        from LongitudinalALLib.model.training import TrainConfig

        out: dict[str, list] = {f"{s}_{a}": [] for s in ("train", "val") for a in ("images", "labels", "fg")}
        recs = sorted(self.state["labels"].values(), key=lambda r: (r["case_id"], r["slice_index"]))
        val = {id(r) for r in recs if r["split"] == "val"}
        n_val_les = sum(1 for r in recs if r["lesion_pixels"] and id(r) in val)
        n_train_les = sum(1 for r in recs if r["lesion_pixels"]) - n_val_les
        if selection_rule(len(val), n_val_les, n_train_les, TrainConfig()).name != "validation_dice":
            val = set()  # a split that cannot measure anything: train on every label
        for rec in recs:
            case = self.case(rec["case_id"])
            i = self.position(rec["case_id"], rec["slice_index"])
            split = "val" if id(rec) in val else "train"
            out[f"{split}_images"].append(case.images[i])
            out[f"{split}_labels"].append(self.label(rec["case_id"], rec["slice_index"]))
            out[f"{split}_fg"].append(case.foreground[i])
        return {k: np.stack(v) if v else np.empty((0,)) for k, v in out.items()}

    def train_round(self, config=None, *, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None):
        """Train from the last checkpoint (warm start) on every label; commit it as a new round.

        The round record says how much was trained, which rule chose the kept weights
        and whether a collapse to "no lesion" was found and how it was handled
        (``train.collapse``, ``train.warnings``). On cancel nothing is committed (the
        previous round stays current) and CancelledError is raised.
        """
        from LongitudinalALLib.model import save_weights
        from LongitudinalALLib.model.training import TrainConfig, train_model

        if not self.state["labels"]:
            raise SessionError("No slice is labelled yet.", "Label some suggested slices, then train.")
        cfg = config or TrainConfig(seed=self.state["seed"])
        arrays = self.training_arrays()
        model = self.current_model()
        start = self.state["rounds"][-1]["checkpoint"] if self.state["rounds"] else self.state["init_weights"]
        has_val = len(arrays["val_images"]) > 0
        result = train_model(model, arrays["train_images"], arrays["train_labels"],
                             arrays["val_images"] if has_val else None, arrays["val_labels"] if has_val else None,
                             cfg, train_foreground=arrays["train_fg"],
                             val_foreground=arrays["val_fg"] if has_val else None, progress=progress, cancel=cancel)
        if result.cancelled:
            raise CancelledError("Training")
        r = len(self.state["rounds"]) + 1
        rel = f"checkpoints/round_{r}_{secrets.token_hex(4)}.safetensors"  # unique: never overwrite a file
        budget = self.budget()["total"]
        save_weights(model, self.root / rel, {"session_round": r, "labels": budget["labelled"],
                                              "best_val_dice": result.best_val_dice})
        self.state["rounds"].append({
            "round": r, "checkpoint": rel, "time": time.time(), "budget": budget,
            "n_train": result.n_train, "n_val": result.n_val, "warm_start": start,
            "train": result.summary(), "history": result.history, "config": cfg.to_dict(),
        })
        self._commit()
        return result
