"""``longitudinal-al train``: one training round of a session (warm start)."""

from __future__ import annotations

import argparse
import json

from .session_args import add_wait_option, open_for_writing

HELP = "Train one round on every labelled slice of a session, starting from its latest model."


def add_train_options(p: argparse.ArgumentParser, epochs: int = 40) -> None:
    """Training options shared by ``train`` and ``simulate``."""
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs, help=f"maximum epochs (default {epochs})")
    g.add_argument("--batch-size", type=int, default=8, help="slices per step (default 8)")
    g.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the labels")
    g.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default 1e-3)")
    g.add_argument("--crop", type=int, default=128, help="training crop in pixels, 0 = whole slices (default 128)")
    g.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs (default 8)")
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    g.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: torch's choice; 1 is often fastest on a busy machine)")


def train_config(args: argparse.Namespace, seed: int):
    from ..errors import InputError
    from ..training import TrainConfig

    if getattr(args, "threads", 0):
        import torch
        torch.set_num_threads(max(1, args.threads))
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} is {getattr(args, name)}.", "Give a positive number.")
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
                       lr=args.lr, crop_size=args.crop or None, patience=args.patience, device=args.device,
                       seed=seed)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_wait_option(p)
    p.add_argument("--session", required=True, help="session directory (made by `suggest`)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: the session's seed + round)")
    p.add_argument("--json", action="store_true", help="print the round summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_train_options(p)


def run(args: argparse.Namespace) -> int:
    from ..progress import TqdmProgress

    session = open_for_writing(args)
    seed = args.seed if args.seed is not None else session.state["seed"] * 1000 + len(session.history) + 1
    bar = TqdmProgress(disable=args.quiet or args.json)
    try:
        result = session.train_round(train_config(args, seed), progress=bar)
    finally:
        bar.close()
    row = session.history[-1]
    if args.json:
        print(json.dumps({"round": row["round"], "checkpoint": str(session.root / row["checkpoint"]),
                          "budget": row["budget"], "train": row["train"]}, indent=2))
        return 0
    b = row["budget"]
    print(f"round {row['round']}: {row['n_train']} training + {row['n_val']} validation slices "
          f"({b['contoured']} contoured, {b['lesion_free']} lesion-free)")
    val = "n/a (too few labels)" if row["n_val"] == 0 else f"{result.best_val_dice:.3f}"
    print(f"best epoch {result.best_epoch}/{len(result.history)}, validation Dice {val}, "
          f"{result.seconds:.1f} s -> {session.root / row['checkpoint']}")
    return 0
