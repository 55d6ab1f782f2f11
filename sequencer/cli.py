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

# The plugin that adds each command, so that `optrollup COMMAND` loads that plugin alone: a
# plugin module imports its package (the node's pulls in FastAPI and uvicorn), and a cron-run
# poster paid ~1 s of CPU per run for commands it never uses. A command missing here still
# works (every plugin is loaded); tests/sequencer/test_cli.py checks this table against what
# the plugins register.
OWNERS = {
    "channels": "channels", "monitor": "monitor",
    **dict.fromkeys(("escape", "post-batches", "verify", "withdraw"), "prover"),
    **dict.fromkeys(("account", "audit", "book", "deposit", "devnet", "faucet", "feed", "gateway",
                     "guardians", "keys", "liquidator", "mmp", "order", "serve", "session-key",
                     "trades"), "sequencer"),
}


def _info(args: argparse.Namespace) -> int:
    print(f"optrollup 0.1.0; cext {'accelerated' if cext.ACCELERATED else 'pure-Python twin'}")
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `optrollup` parser with every plugin's commands, or, given a `command` that OWNERS
    knows, with the commands of its plugin alone."""
    parser = argparse.ArgumentParser(prog="optrollup", description="optrollup L2 node and tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="version and which cext twin is active")
    info.set_defaults(func=_info)
    owner = OWNERS.get(command or "")
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        if owner is None or ep.name == owner:
            ep.load()(sub)
    if owner is not None and command not in sub.choices:  # the table is stale: load them all
        return build_parser()
    return parser


def honour_ctrl_c() -> None:
    """Ctrl-C (SIGINT) stops every command, even when it was started with SIGINT ignored (a
    background job of a non-interactive shell inherits SIG_IGN, and Python then keeps it): found
    when `verify --watch` and the devnet could not be stopped in a backgrounded CI run."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    honour_ctrl_c()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OptrollupError as exc:
        print(f"optrollup {args.command}: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
