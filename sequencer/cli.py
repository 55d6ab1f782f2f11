"""`optrollup` command line. This module only wires: each subcommand lives with its package.

Packages that sequencer may not import (prover, channels) add their subcommands through the
entry-point group `optrollup.commands` (pyproject.toml): each entry is a callable taking the
argparse subparsers object and adding its commands, each with `func` set.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

import cext
from sequencer.errors import OptrollupError

PLUGIN_GROUP = "optrollup.commands"


def _info(args: argparse.Namespace) -> int:
    print(f"optrollup 0.1.0; cext {'accelerated' if cext.ACCELERATED else 'pure-Python twin'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optrollup", description="optrollup L2 node and tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="version and which cext twin is active")
    info.set_defaults(func=_info)
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def honour_ctrl_c() -> None:
    """Ctrl-C (SIGINT) stops every command, even when it was started with SIGINT ignored (a
    background job of a non-interactive shell inherits SIG_IGN, and Python then keeps it): found
    when `verify --watch` and the devnet could not be stopped in a backgrounded CI run."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    honour_ctrl_c()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OptrollupError as exc:
        print(f"optrollup {args.command}: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
