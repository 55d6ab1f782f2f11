"""`optrollup mmp set|reset|show`: market-maker protection from a terminal (docs/mmp.md).

Human units in, exact integers out, as in `optrollup order`: `--amount` in contracts, `--delta`
in contracts of underlying delta, `--vega` in USDC per vol point, each up to 6 decimals
(converted to × 10^6); 0 or absent = no limit on that measure. Times in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict

from sequencer.client.cli import _client, _conn_args
from optrollup_client._mmp import MmpFreeze, MmpPair
from sequencer.units import format_units, parse_units

__all__ = ["register"]


def _limit(text: str, what: str) -> int:
    """'0' (no limit) or a positive decimal with up to 6 places, × 10^6."""
    return 0 if re.fullmatch(r"0+(\.0+)?", text) else parse_units(text, what)


def _freeze_text(f: MmpFreeze) -> str:
    until = "until reset" if f.until_ms is None else f"until {f.until_ms} ms"
    return (f"FROZEN {until}: {f.measure} {format_units(f.value)} > limit "
            f"{format_units(f.limit)} at {f.at_ms} ms")


def _pair_text(p: MmpPair) -> str:
    c = p.config
    if c is None or not p.enabled:
        head = f"{p.underlying}: MMP off"
    else:
        limits = (("amount", c.amount_limit), ("delta", c.delta_limit), ("vega", c.vega_limit))
        lim = ", ".join(f"{n} {format_units(v) if v else 'none'}" for n, v in limits)
        freeze = "until reset" if c.frozen_ms == 0 else f"{c.frozen_ms} ms"
        head = f"{p.underlying}: MMP on, window {c.interval_ms} ms, freeze {freeze}; limits {lim}"
    window = (f"window: amount {format_units(p.amount)}, delta {format_units(p.delta)}, "
              f"vega {format_units(p.vega)}")
    return "\n  ".join([head, window] + ([_freeze_text(p.freeze)] if p.freeze else []))


def _print(pairs: list[MmpPair], as_json: bool) -> None:
    if as_json:
        print(json.dumps([asdict(p) for p in pairs]))
    elif not pairs:
        print("no market-maker protection set")
    else:
        for p in pairs:
            print(_pair_text(p))


def _set(args: argparse.Namespace) -> int:
    limits = {"amount_limit": _limit(args.amount, "--amount (contracts)"),
              "delta_limit": _limit(args.delta, "--delta (contracts of delta)"),
              "vega_limit": _limit(args.vega, "--vega (USDC per vol point)")}
    with _client(args) as c:
        pair = c.set_mmp(args.underlying, interval_ms=args.interval_ms, frozen_ms=args.frozen_ms,
                         **limits)
    _print([pair], args.json)
    return 0


def _reset(args: argparse.Namespace) -> int:
    with _client(args) as c:
        ack = c.reset_mmp(args.underlying)
    if args.json:
        print(json.dumps({"lifted": None if ack.lifted is None else asdict(ack.lifted),
                          "pair": asdict(ack.pair)}))
    else:
        done = "freeze lifted" if ack.lifted else "was not frozen; window emptied"
        print(f"{args.underlying}: {done}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with _client(args) as c:
        state = c.mmp()
    _print(state.underlyings, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Add `mmp` to the `optrollup` parser."""
    mmp = sub.add_parser("mmp", help="market-maker protection: set, reset, show")
    ms = mmp.add_subparsers(dest="mmp_command", required=True, metavar="ACTION")
    p = ms.add_parser("set", help="set the protection of one underlying")
    _conn_args(p)
    p.add_argument("--underlying", required=True, help="e.g. ETH")
    p.add_argument("--interval-ms", type=int, required=True,
                   help="window of block time over which maker fills add up (0 turns MMP off)")
    p.add_argument("--frozen-ms", type=int, required=True,
                   help="how long a breach freezes the underlying (0: until `optrollup mmp reset`)")
    p.add_argument("--amount", default="0", help="limit of Σ filled contracts (0: none)")
    p.add_argument("--delta", default="0",
                   help="limit of |Σ delta|, contracts of underlying (0: none)")
    p.add_argument("--vega", default="0", help="limit of |Σ vega|, USDC per vol point (0: none)")
    p.set_defaults(func=_set)
    r = ms.add_parser("reset", help="lift a freeze (and empty the window) in one underlying")
    _conn_args(r)
    r.add_argument("--underlying", required=True)
    r.set_defaults(func=_reset)
    s = ms.add_parser("show", help="configs, window totals and freezes of the account")
    _conn_args(s)
    s.set_defaults(func=_show)
