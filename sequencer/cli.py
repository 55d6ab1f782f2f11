"""`optrollup` command line. Each subcommand lives in its own module; this file only wires."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import cext


def _info(args: argparse.Namespace) -> int:
    print(f"optrollup 0.1.0; cext {'accelerated' if cext.ACCELERATED else 'pure-Python twin'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optrollup", description="optrollup L2 node and tools")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="version and which cext twin is active")
    info.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
