"""``longitudinal-al`` command line: a thin dispatcher over ``commands/``.

Each subcommand lives in its own module under ``LongitudinalALLib.commands``
exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; modules
are imported only when their command runs, so ``--help`` stays fast.
User errors (:class:`LongitudinalALError`) and I/O errors a user can cause (disk full,
read-only folder, see :mod:`os_errors`) print one clear line, not a traceback; a closed
output pipe (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from LongitudinalALLib.core.errors import LongitudinalALError

#: subcommand name -> module under LongitudinalALLib.commands
COMMANDS: dict[str, str] = {
    "prepare": "prepare",
    "make-cohort": "make_cohort",
    "import-cohort": "import_cohort",
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
        return importlib.import_module(f"{__package__}.{module_name}")
    except ModuleNotFoundError as err:
        if err.name == f"{__package__}.{module_name}":
            return None  # command not built yet
        raise


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args._module.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except LongitudinalALError as err:
        return _fail(args.command, err)
    except BrokenPipeError:  # e.g. `longitudinal-al suggest ... | head -2`: the reader has what it wanted
        _discard_stdout()
        return 0
    except KeyboardInterrupt:
        print(f"longitudinal-al {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # disk full, read-only folder, a file in the way: one line, not a traceback
        from LongitudinalALLib.core.os_errors import user_os_error

        mapped = user_os_error(err)
        if mapped is None:
            raise
        return _fail(args.command, mapped)


def _fail(command: str, err: Exception) -> int:
    try:
        print(f"longitudinal-al {command}: error: {err}", file=sys.stderr)
    except BrokenPipeError:
        pass
    return 2


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (e.g. captured in tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
