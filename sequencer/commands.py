"""sequencer's subcommands of `optrollup` (serve, devnet, keys, order)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Add the node's subcommands to the `optrollup` parser."""
