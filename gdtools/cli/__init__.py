"""The ``gdtools`` command line: parse, call the library, print.

Each subcommand lives in its own module of this package and exposes ``add_parser(subparsers)``,
which registers an ``argparse`` sub-parser whose ``func(args) -> int`` does the work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from gdtools._version import __version__
from gdtools.cli.interrupt import Terminated, terminate_as_interrupt
from gdtools.errors import InputError

SUBCOMMANDS = ("tune", "plot", "dream", "layers")


class UsageError(InputError):
    """A command-line argument that cannot be used."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (argparse prints the whole usage block first:
    11 lines for `gdtools dream`, the error last), and exit code 2 as before."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gdtools",
        description="Gradient descent for JAX programs, black boxes, real program tuning and DeepDream.",
    )
    parser.add_argument("--version", action="version", version=f"gdtools {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"gdtools.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gdtools.cli.{name}":
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with terminate_as_interrupt():
            return int(args.func(args) or 0)
    except InputError as exc:
        print(f"gdtools {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        hint = ""
        if args.command == "tune" and getattr(args, "history", None) and os.path.exists(args.history):
            hint = f"; what was measured is in {args.history}: the same command with --resume continues the run"
        if isinstance(exc, Terminated):
            print(f"gdtools {args.command}: terminated ({exc}){hint}", file=sys.stderr)
            return 128 + exc.signum
        print(f"gdtools {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
