"""``longitudinal-al train``: one training round of a session (warm start)."""

from __future__ import annotations

import argparse
import json

from LongitudinalALLib.commands.session_args import add_wait_option, open_for_writing

HELP = "Train one round on every labelled slice of a session, starting from its latest model."


def add_train_options(p: argparse.ArgumentParser, epochs: int = 40) -> None:
    """Training options shared by ``train`` and ``simulate`` (budget rules: training.TrainConfig)."""
    from LongitudinalALLib.model.training import TrainConfig

    d = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs,
                   help=f"evaluation periods and passes over the labels (default {epochs}); with few labels "
                        "the --min-steps floor sets the amount of training")
    g.add_argument("--min-steps", type=int, default=d.min_total_steps,
                   help=f"optimiser steps at least, whatever the number of labels (default {d.min_total_steps})")
    g.add_argument("--warm-min-steps", type=int, default=0,
                   help="train a warm start (the model already finds the labelled lesions) at least this many steps "
                        "instead of the --min-steps floor, e.g. 100: about twice as fast, at a small learning-curve "
                        "cost (issue 14; default 0: off)")
    g.add_argument("--max-minutes", type=float, default=d.max_seconds / 60,
                   help=f"wall-time budget of one round, 0 = none (default {d.max_seconds / 60:g})")
    g.add_argument("--batch-size", type=int, default=8, help="slices per step (default 8)")
    g.add_argument("--steps-per-epoch", type=int, default=None,
                   help="exact budget of epochs x steps-per-epoch steps, no floor (default: see --min-steps)")
    g.add_argument("--lr", type=float, default=d.lr, help=f"peak AdamW learning rate (default {d.lr:g})")
    g.add_argument("--no-guard", action="store_true",
                   help="train on every label and always use the new model (default: part of the new labels is "
                        "held out and the previous model stays in use unless the new one is better on them and does not fire "
                        "everywhere on the unlabelled slices)")
    g.add_argument("--crop", type=int, default=96, help="training crop in pixels, 0 = whole slices (default 96)")
    g.add_argument("--patience", type=int, default=8,
                   help="early-stopping patience in epochs, used only with a trustworthy validation split (default 8)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present)")
    g.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: torch's choice; 1 is often fastest on a busy machine)")


def train_config(args: argparse.Namespace, seed: int):
    """TrainConfig from the options, every value checked (one clear line, before anything is written)."""
    from LongitudinalALLib.core.errors import InputError
    from LongitudinalALLib.model.train_plan import check_config
    from LongitudinalALLib.model.training import TrainConfig

    if args.threads < 0:
        raise InputError(f"--threads is {args.threads}.", "Give a positive number, or 0 for torch's choice.")
    if args.crop < 0:
        raise InputError(f"--crop is {args.crop}.", "Give at least 8 pixels, or 0 for whole slices.")
    if args.warm_min_steps < 0:
        raise InputError(f"--warm-min-steps is {args.warm_min_steps}.", "Give a positive number of steps, or 0 for off.")
    if args.max_minutes < 0:
        raise InputError(f"--max-minutes is {args.max_minutes}.", "Give a positive time, or 0 for no limit.")
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
                      min_total_steps=args.min_steps, max_seconds=args.max_minutes * 60 or None,
                      warm_min_total_steps=args.warm_min_steps or None,
                      lr=args.lr, crop_size=args.crop or None, patience=args.patience, device=args.device,
                      guard=not args.no_guard, seed=seed)
    check_config(cfg)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    return cfg


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_wait_option(p)
    p.add_argument("--session", required=True, help="session directory (made by `suggest`)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: the session's seed + round)")
    p.add_argument("--json", action="store_true", help="print the round summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_train_options(p)


def run(args: argparse.Namespace) -> int:
    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.core.progress import TqdmProgress

    cfg = train_config(args, seed=0)  # checked before the session is opened (open may repair files)
    session = open_for_writing(args)
    loop = ActiveLoop(session)
    cfg.seed = args.seed if args.seed is not None else loop.train_config().seed
    bar = TqdmProgress(disable=args.quiet or args.json)
    try:
        result = loop.train(cfg, progress=bar)
    finally:
        bar.close()
    row = session.rounds[-1]
    if args.json:
        print(json.dumps({"round": row.round, "checkpoint": str(session.root / row.checkpoint),
                          "budget": row.budget, "train": row.train}, indent=2))
        return 0
    b = row.budget
    print(f"round {row.round}: {row.n_train} training + {row.n_val} validation slices "
          f"({b['contoured']} contoured, {b['lesion_free']} lesion-free)")
    val = f"{result.best_val_dice:.3f}" if result.selection == "validation_dice" else "n/a"
    print(f"{result.steps} steps ({result.budget_rule}, stopped: {result.stop_reason}); kept weights: "
          f"{result.selection} ({result.selection_reason}); validation Dice {val}; "
          f"{result.seconds:.1f} s -> {session.root / row.checkpoint}")
    in_use = result.guard.get("reason", "")
    for w in result.warnings:
        if w != in_use:
            print(f"warning: {w}")
    if in_use:  # which model the next suggestions use, and why (the round guard, active/round_guard.py)
        print(f"{'warning: ' if result.guard.get('kept') == 'previous' else ''}model in use: {in_use}")
    return 0
