"""`python -m channels._watch_main --data-dir D --keystore K --l1-rpc URL --adjudicator ADDR`:
the `optrollup channels watch` command without the `optrollup` entry point (the tests run the
watcher as a separate process this way). Exit codes as `optrollup`: 2 for an OptrollupError."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from channels.watcher import WATCH_DESCRIPTION, add_watch_arguments, watch_command
from sequencer.errors import OptrollupError


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="optrollup channels watch", description=WATCH_DESCRIPTION)
    add_watch_arguments(p)
    args = p.parse_args(argv)
    try:
        return watch_command(args)
    except OptrollupError as exc:
        print(f"optrollup channels watch: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
