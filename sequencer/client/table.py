"""The one way the terminal client prints what it reads: a plain text table for people, or
JSON for scripts (`--json`). Every read command builds its rows and calls `show`; no command
formats columns by hand.

JSON follows the API's rule: money, prices, amounts and nonces are decimal strings of the
integers (base units, contracts × 10^6), never floats; text shows them in human units.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sequencer.units import format_units

__all__ = ["Column", "show", "table", "utc"]

#: a column: its title and "<" (left-aligned text) or ">" (right-aligned numbers)
Column = tuple[str, str]


def table(columns: Sequence[Column], rows: Sequence[Sequence[Any]], *, empty: str = "(none)") -> str:
    """Rows as aligned text under a header line; `empty` when there are no rows."""
    if not rows:
        return empty
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(title)] + [len(r[i]) for r in cells]) for i, (title, _) in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, (_, a), w in zip(values, columns, widths)).rstrip()

    return "\n".join([line([t for t, _ in columns]), line(["-" * w for w in widths])]
                     + [line(r) for r in cells])


def show(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    """Print `data` as one JSON document with --json, else the text `text()` makes."""
    print(json.dumps(data) if as_json else text(), flush=True)


def usd(n: int | None) -> str:
    """Base units in USDC for a table cell ("-" when unknown)."""
    return "-" if n is None else format_units(n)


def utc(ts: int) -> str:
    """Unix seconds as a UTC time for a table cell."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
