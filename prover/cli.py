"""prover's subcommands of `optrollup` (registered through the optrollup.commands entry point)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Add prover's subcommands (post-batches, verify) to the `optrollup` parser."""
