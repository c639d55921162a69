"""One active-learning round, owned in one place: score the pool once, select, record; train.

Why one owner: the Slicer jobs, the CLI commands, ``simulate`` and the
bundled-weights script used to assemble a round each in their own way and drifted
(seed rules, default strategy, how the pool was scored). They are thin
adapters over :class:`ActiveLoop` now. The store (:mod:`store`) keeps the files;
this module adds the model: the current weights, the strategies, training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from LongitudinalALLib.active.policy import training_seed
from LongitudinalALLib.active.round_guard import compare, holdout_keys
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.active.suggestions import Suggestion
from LongitudinalALLib.core.errors import CancelledError, InputError, SessionError
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, report


@dataclass
class RoundResult:
    """A query: the suggestions (best first) and the model pass it was scored on (None: no model needed)."""

    suggestions: list[Suggestion]
    strategy: str
    round: int
    outputs: Any = None              # PoolOutputs over store.pool_arrays(): probs (M, H, W), embeddings, ...


class ActiveLoop:
    """The model side of a session: current weights, suggestions, training rounds.

    ``store``: a :class:`SessionStore`; writing steps need it open for writing.
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    # ------------------------------------------------------------ model
    def model_config(self):
        from LongitudinalALLib.model import ModelConfig

        d = self.store.settings.model_config
        return ModelConfig.from_dict(d) if d else ModelConfig()

    def current_model(self):
        """Latest round's checkpoint, else the starting weights (bundled, a file, or fresh by seed)."""
        import torch

        from LongitudinalALLib.model import build_model, load_weights
        from LongitudinalALLib.model.weights import load_bundled_model

        rounds, settings = self.store.rounds, self.store.settings
        if rounds:
            last = rounds[-1]
            try:
                return load_weights(self.store.root / last.checkpoint)
            except InputError as err:
                back = f"round {last.round - 1}" if last.round > 1 else "the starting model"
                raise SessionError(f"The model of round {last.round} cannot be loaded: {err.problem}",
                                   f"Return to {back} with `longitudinal-al rollback --session {self.store.root}`, "
                                   "then train again (your labels are kept).") from err
        init = settings.init_weights
        if init == "bundled" and not settings.model_config:
            return load_bundled_model()  # missing: one line saying so, never a random network (review 2, N7)
        if init not in ("bundled", "scratch"):
            try:
                return load_weights(init)
            except InputError as err:
                raise SessionError(f"The starting model named in {self.store.root / 'state.json'} "
                                   f"(init_weights) cannot be loaded: {err.problem}", err.fix) from err
        torch.manual_seed(settings.seed)  # "scratch", or "bundled" with the session's own architecture
        return build_model(self.model_config())

    def rollback(self, to_round: int | None = None) -> int:
        """Return to ``to_round`` (default: the newest round whose checkpoint can be read); labels stay."""
        from LongitudinalALLib.model.weights import read_weights_info

        def loads(path) -> bool:
            try:
                read_weights_info(path)
                return True
            except InputError:
                return False

        return self.store.rollback(to_round, loads=loads)

    # ------------------------------------------------------------ suggest
    def suggest(self, k: int, strategy: str | None = None, *, predictor=None, selection=None,
                progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                keep_outputs: bool = False, **strategy_kwargs: Any) -> RoundResult:
        """Rank the unlabelled slices of the whole pool and record the ``k`` best with their scores.

        The pool is scored once: one model pass serves the strategy and, with
        ``keep_outputs``, the caller (probability and uncertainty maps, triage).
        ``predictor`` chooses the device (e.g. the user's "use CPU"); ``selection``:
        cold-start mix, per-subject cap, round robin (``SelectionOptions`` fields).
        """
        from LongitudinalALLib.active.strategies import QueryContext, get_strategy
        from LongitudinalALLib.active.strategies.selection import select_batch
        from LongitudinalALLib.model import Predictor

        store = self.store
        if k < 1:
            raise InputError(f"Asked for {k} suggestions.", "Ask for at least one slice.")
        name = strategy or store.settings.strategy
        images, fg, keys = store.pool_arrays()
        labelled = np.concatenate([store.labelled_mask(c) for c in store.case_ids])
        if labelled.all():
            raise SessionError("Every slice of the pool is labelled already.", "Train a round or add cases.")
        r, seed = store.round_number, store.settings.seed
        rng = np.random.default_rng([seed, r, store.suggestion_count])
        report(progress, "Suggesting", 0.0, f"strategy {name}")
        strat = get_strategy(name, **strategy_kwargs)
        if strat.needs_model or keep_outputs:
            predictor = predictor or Predictor(self.current_model())
        context = self._lesion_context(keys, labelled) if strat.uses_lesion_context else None
        ctx = QueryContext(images=images, foreground=fg, labelled=labelled,
                           predictor=predictor if strat.needs_model else None, rng=rng, mc_seed=seed + r,
                           round_index=r, progress=progress, cancel=cancel, lesion_context=context,
                           groups=np.array([c for c, _ in keys]),
                           pixel_mm=min(store.geometry(c).spacing_mm for c in store.case_ids))
        k = min(k, int((~labelled).sum()))
        chosen, scores, why = select_batch(strat, ctx, k, [c for c, _ in keys], store.has_lesion_label(), selection)
        outputs = ctx.outputs  # the strategy's one model pass, when it made one
        if keep_outputs and outputs is None:
            outputs = predictor.predict_all(images, fg, progress=progress, cancel=cancel)
        report(progress, "Suggesting", 1.0, f"{len(chosen)} slices")
        out = []
        for rank, (i, (reason, rule_score)) in enumerate(zip(chosen, why), 1):
            cid, s = keys[i]
            row = store.position(cid, s)
            centre = tuple(float(v) for v in store.case(cid).provenance[row].center_ras)
            out.append(Suggestion(rank, cid, s, centre, centre, float(scores[i]), row=row, reason=reason,
                                  rule_score=float(rule_score) if np.isfinite(rule_score) else None))
        store.record_suggestions(name, out, scores, chosen)
        return RoundResult(out, name, r, outputs)

    def _lesion_context(self, keys: list[tuple[str, int]], labelled: np.ndarray) -> np.ndarray:
        """(M, H, W) the contoured slices' footprints on their unlabelled neighbours (label_context)."""
        from LongitudinalALLib.active.label_context import neighbour_lesion_map

        store = self.store
        contoured = {(r.case_id, r.slice_index): store.label(r.case_id, r.slice_index)
                     for r in store.labels() if r.lesion_pixels}
        return neighbour_lesion_map(contoured, keys, labelled, store.case(keys[0][0]).images.shape[2:])

    # ------------------------------------------------------------ train
    def train_config(self, **overrides: Any):
        """The TrainConfig of the next round: defaults, the one seed rule, then ``overrides``."""
        from LongitudinalALLib.model.training import TrainConfig

        seed = training_seed(self.store.settings.seed, self.store.round_number + 1)
        return TrainConfig.from_dict({"seed": seed, **overrides})

    def training_arrays(self, held_out: set[tuple[str, int]] | frozenset = frozenset(),
                        unlabelled: bool = True) -> dict[str, np.ndarray]:
        """Labelled slices split into train/val/held-out, and the unlabelled pool: images, labels, foreground.

        ``held_out`` (case_id, slice_index) keys go to ``guard_*`` (never trained on this
        round, see :mod:`round_guard`). The hashed validation split is kept only when
        ``train_plan.selection_rule`` (default thresholds) trusts it; otherwise every label is
        trained on. ``unlabelled_images`` / ``unlabelled_fg``: the pool slices without a label
        (only with ``unlabelled``: stacking the whole pool is wasted when no rehearsal uses it).
        """
        from LongitudinalALLib.model.train_plan import selection_rule
        from LongitudinalALLib.model.training import TrainConfig

        store = self.store
        out: dict[str, list] = {f"{s}_{a}": [] for s in ("train", "val", "guard") for a in ("images", "labels", "fg")}
        recs = [r for r in store.labels() if (r.case_id, r.slice_index) not in held_out]
        n_val = sum(r.split == "val" for r in recs)
        n_val_les = sum(1 for r in recs if r.lesion_pixels and r.split == "val")
        n_train_les = sum(1 for r in recs if r.lesion_pixels) - n_val_les
        # a split that cannot measure anything is trained on: every label goes to train
        keep_val = selection_rule(n_val, n_val_les, n_train_les, TrainConfig()).name == "validation_dice"
        for rec in store.labels():
            case = store.case(rec.case_id)
            i = store.position(rec.case_id, rec.slice_index)
            split = "guard" if (rec.case_id, rec.slice_index) in held_out else \
                "val" if keep_val and rec.split == "val" else "train"
            out[f"{split}_images"].append(case.images[i])
            out[f"{split}_labels"].append(store.label(rec.case_id, rec.slice_index))
            out[f"{split}_fg"].append(case.foreground[i])
        arrays = {k: np.stack(v) if v else np.empty((0,)) for k, v in out.items()}
        if not unlabelled:
            return arrays
        images, fg, _ = store.pool_arrays()
        unlabelled = ~np.concatenate([store.labelled_mask(c) for c in store.case_ids])
        arrays["unlabelled_images"], arrays["unlabelled_fg"] = images[unlabelled], fg[unlabelled]
        return arrays

    def train(self, config=None, *, progress: ProgressCallback | None = None, cancel: CancelToken | None = None):
        """Train from the current model (warm start) on the labels; commit it as a new round.

        ``config`` None: :meth:`train_config`. With ``config.guard`` part of the labels given
        since the last round is held out and the previous model stays current unless the new
        one is better on them and on the unlabelled pool (:mod:`round_guard`; ``train.guard``,
        ``train.model_in_use``).
        The round record says how much was trained, which rule chose the kept weights and
        whether a collapse to "no lesion" was found (``train.collapse``, ``train.warnings``).
        The pool's unlabelled slices go to training as rehearsal when
        ``config.distill_weight`` > 0. On cancel nothing is committed and CancelledError is
        raised. Returns the TrainResult.
        """
        from LongitudinalALLib.model import save_weights
        from LongitudinalALLib.model.train_loop import cpu_state
        from LongitudinalALLib.model.training import train_model

        store = self.store
        if not store.labels():
            raise SessionError("No slice is labelled yet.", "Label some suggested slices, then train.")
        cfg = config or self.train_config()
        # a fresh network (round 1 from scratch) is no model to keep: no anchors, nothing held out for the guard
        fine_tune = store.round_number > 0 or store.settings.init_weights != "scratch"
        held = holdout_keys(store.labels(), store.round_number, cfg.guard_fraction, store.settings.seed) \
            if cfg.guard and fine_tune else set()
        # the unlabelled pool serves the rehearsal set (train_anchor.rehearsal_set) and the guard's "fires everywhere"
        arrays = self.training_arrays(held, unlabelled=fine_tune and (cfg.distill_weight > 0 or bool(held)))
        model = self.current_model()
        previous = cpu_state(model) if held else None
        rounds = store.rounds
        start = rounds[-1].checkpoint if rounds else store.settings.init_weights
        has_val = len(arrays["val_images"]) > 0
        result = train_model(model, arrays["train_images"], arrays["train_labels"],
                             arrays["val_images"] if has_val else None, arrays["val_labels"] if has_val else None,
                             cfg, train_foreground=arrays["train_fg"],
                             val_foreground=arrays["val_fg"] if has_val else None,
                             unlabelled_images=arrays.get("unlabelled_images"),
                             unlabelled_foreground=arrays.get("unlabelled_fg"), fine_tune=fine_tune,
                             progress=progress, cancel=cancel)
        if result.cancelled:
            raise CancelledError("Training")
        if previous is not None:
            self._guard(model, previous, arrays, cfg, result)
        budget = store.budget()["total"]
        info = {"session_round": store.round_number + 1, "labels": budget["labelled"],
                "best_val_dice": result.best_val_dice}
        store.commit_round(lambda path: save_weights(model, path, info), budget=budget, n_train=result.n_train,
                           n_val=result.n_val, warm_start=start, train=result.summary(), history=result.history,
                           config=cfg.to_dict())
        return result

    def _guard(self, model, previous: dict, arrays: dict[str, np.ndarray], cfg, result) -> None:
        """Keep the previous weights in ``model`` unless the new ones are better on evidence the round did not
        train on: the held-out labels and the unlabelled pool slices with tissue (round_guard; the rehearsal
        slices among them were pulled toward the previous model's predictions, which can only hide a
        difference, never invent one)."""
        from LongitudinalALLib.model.probabilities import predict_probabilities
        from LongitudinalALLib.model.train_plan import resolve_device

        device = resolve_device(cfg.device)
        x, y, fg = arrays["guard_images"], arrays["guard_labels"], arrays["guard_fg"].astype(bool)
        pool_fg = arrays["unlabelled_fg"].astype(bool)
        tissue = pool_fg.reshape(len(pool_fg), -1).any(1)
        pool, pool_fg = arrays["unlabelled_images"][tissue], pool_fg[tissue]
        new_probs, new_pool = (predict_probabilities(model, a, device) for a in (x, pool))
        model.load_state_dict(previous)
        decision = compare(predict_probabilities(model, x, device), new_probs, y, fg, self.store.round_number + 1,
                           cfg.threshold, predict_probabilities(model, pool, device), new_pool, pool_fg)
        if decision.kept == "new":
            model.load_state_dict(result.state_dict)
        else:
            result.state_dict = previous
            result.warnings.append(decision.reason)
        model.eval()
        result.guard = decision.to_dict()
