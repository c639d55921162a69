"""``longitudinal-al`` command line: a thin dispatcher over ``commands/``.

Each subcommand lives in its own module under ``LongitudinalALLib.commands``
exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; modules
are imported only when their command runs, so ``--help`` stays fast.
User errors (:class:`LongitudinalALError`) print one clear line, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import LongitudinalALError

#: subcommand name -> module under LongitudinalALLib.commands
COMMANDS: dict[str, str] = {
    "prepare": "prepare",
    "make-cohort": "make_cohort",
    "suggest": "suggest",
    "label": "label",
    "train": "train",
    "rollback": "rollback",
    "simulate": "simulate",
    "triage": "triage",
    "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="longitudinal-al",
        description="Active learning for new-lesion segmentation on longitudinal scans.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = _load(module_name)
        if module is None:
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _load(module_name: str):
    try:
        return importlib.import_module(f"{__package__}.commands.{module_name}")
    except ModuleNotFoundError as err:
        if err.name == f"{__package__}.commands.{module_name}":
            return None  # command not built yet
        raise


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except LongitudinalALError as err:
        print(f"longitudinal-al {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"longitudinal-al {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
