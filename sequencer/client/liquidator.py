"""`optrollup liquidator --keystore K --sequencer URL`: a reference liquidator (docs/liquidation.md).

It polls `GET /v1/liquidations` and bids (`POST /v1/liquidations`) when the discount pays for
the risk it takes on. The rule, per auction, at its current quote (integers, base units):

- skip it while its equity is unknown (stale oracle) or <= 0 (the insurance fund takes those);
- the edge of a full take is `equity − price` (the discount, ≈ d·equity); the risk is the
  account's maintenance margin (the venue's own measure of what its positions can lose in a bad
  move); bid when `edge · 10^6 >= risk_share_ppm · MM` and `discount >= min_discount_ppm`;
- take `max_fraction_ppm` (default all of it) and halve it while the node refuses the bid for
  this liquidator's margin or collateral, down to `min_fraction_ppm`;
- `maxPrice` = the quoted price of that fraction plus `slippage_ppm` of it (at least one base
  unit): if the marks move against the liquidator before the bid lands, it is refused
  (`price_above_max`) and retried at the next poll.

The positions taken are left in the liquidator's account (hedging them is the operator's job).
Every bid (and every refusal) is printed, one line each (`--json`: JSON lines).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from optrollup_client._client import Client
from optrollup_client._errors import ApiError, TransportError
from optrollup_client._liquidation import Auction, LiquidationTake

__all__ = ["Liquidator", "Policy", "register", "wants"]

PPM = 10**6
RETRY_CODES = ("insufficient_margin", "insufficient_collateral")


@dataclass(frozen=True)
class Policy:
    """When and how much to bid (ppm throughout)."""

    risk_share_ppm: int = 100_000      # the edge must cover this share of the account's MM
    min_discount_ppm: int = 50_000     # never bid below this discount
    max_fraction_ppm: int = PPM        # the first fraction tried
    min_fraction_ppm: int = 10_000     # give up below this fraction
    slippage_ppm: int = 1_000          # maxPrice above the quoted price of the fraction


def wants(a: Auction, policy: Policy) -> bool:
    """Does the discount of auction `a` pay for its risk (see the module docstring)?"""
    if a.equity is None or a.price is None or a.maintenance_margin is None or a.equity <= 0:
        return False
    edge = a.equity - a.price
    return (a.discount_ppm >= policy.min_discount_ppm
            and edge * PPM >= policy.risk_share_ppm * a.maintenance_margin)


def max_price(a: Auction, fraction_ppm: int, policy: Policy) -> int:
    """The price limit of a take of `fraction_ppm` of `a`: its quote plus the slippage."""
    quoted = a.price_of(fraction_ppm) or 0
    return quoted + max(1, abs(quoted) * policy.slippage_ppm // PPM)


@dataclass
class Outcome:
    """What one bid did: `take` if it was accepted, else the refusal's `code`."""

    account: str
    fraction_ppm: int
    take: LiquidationTake | None = None
    code: str | None = None


class Liquidator:
    """Polls and bids through `client` (whose key is the liquidator's) with `policy`."""

    def __init__(self, client: Client, policy: Policy = Policy(),
                 log: Callable[[Outcome], None] | None = None) -> None:
        self.client, self.policy, self.log = client, policy, log or (lambda _o: None)

    def run_once(self) -> list[Outcome]:
        """One poll: bid in every auction that pays; the outcomes of the bids made."""
        out = []
        for a in self.client.liquidations().auctions:
            if wants(a, self.policy):
                out.extend(self._bid(a))
        return out

    def _bid(self, a: Auction) -> list[Outcome]:
        tried, f = [], self.policy.max_fraction_ppm
        while f >= self.policy.min_fraction_ppm:
            o = Outcome(a.account, f)
            try:
                o.take = self.client.liquidate(a.account, f, max_price(a, f, self.policy))
            except ApiError as exc:
                o.code = exc.code
            tried.append(o)
            self.log(o)
            if o.code not in RETRY_CODES:
                break
            f //= 2
        return tried

    def run(self, interval: float, stop: Callable[[], bool] = lambda: False) -> None:
        """Poll every `interval` seconds until `stop()`; a node that cannot be reached is
        retried at the next poll."""
        while not stop():
            try:
                self.run_once()
            except TransportError as exc:
                print(f"liquidator: {exc.message}; retrying", file=sys.stderr)
            time.sleep(interval)


def _print(o: Outcome, as_json: bool) -> None:
    t = o.take
    if as_json:
        print(json.dumps({"account": o.account, "fractionPpm": o.fraction_ppm,
                          "status": "taken" if t else "refused", "code": o.code,
                          "price": None if t is None else str(t.price),
                          "value": None if t is None else str(t.value),
                          "auctionEnded": None if t is None else t.auction_ended}), flush=True)
    elif t is not None:
        print(f"took {o.fraction_ppm / 1e4:g}% of {o.account}: paid {t.price} for {t.value} "
              f"(discount {t.discount_ppm / 1e4:g}%){', auction over' if t.auction_ended else ''}",
              flush=True)
    else:
        print(f"bid for {o.fraction_ppm / 1e4:g}% of {o.account} refused: {o.code}", flush=True)


def _run(args: argparse.Namespace) -> int:
    from sequencer.client import cli  # the CLI's clock (tests replace it)
    from sequencer.keys import load_key
    key = load_key(args.keystore, password_file=args.password_file,
                   password_env=args.password_env, prompt="Keystore password: ")
    policy = Policy(args.risk_share_ppm, args.min_discount_ppm, args.max_fraction_ppm,
                    args.min_fraction_ppm, args.slippage_ppm)
    with Client(args.sequencer, key=key, account=args.account,
                clock=lambda: cli.CLOCK(), timeout=args.timeout) as c:
        bot = Liquidator(c, policy, log=lambda o: _print(o, args.json))
        if args.once:
            bot.run_once()
        else:
            bot.run(args.interval)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `liquidator` to the `optrollup` parser."""
    from sequencer.client.cli import _password_args
    from sequencer.keys import refuse_raw_key_option
    p = sub.add_parser("liquidator", help="a reference liquidator: bid in liquidation auctions "
                                          "when the discount pays for the risk")
    p.add_argument("--sequencer", required=True, metavar="URL",
                   help="the node's HTTP API, e.g. http://127.0.0.1:8080")
    p.add_argument("--keystore", required=True, metavar="KEY",
                   help="the liquidator's key: an encrypted JSON keystore or a pkcs11: URI")
    refuse_raw_key_option(p)
    _password_args(p)
    p.add_argument("--account", help="bid for this account with a registered session key")
    d = Policy()
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    p.add_argument("--risk-share-ppm", type=int, default=d.risk_share_ppm,
                   help="bid when the discount covers this share of the account's maintenance "
                        "margin (ppm)")
    p.add_argument("--min-discount-ppm", type=int, default=d.min_discount_ppm)
    p.add_argument("--max-fraction-ppm", type=int, default=d.max_fraction_ppm)
    p.add_argument("--min-fraction-ppm", type=int, default=d.min_fraction_ppm)
    p.add_argument("--slippage-ppm", type=int, default=d.slippage_ppm)
    p.add_argument("--once", action="store_true", help="poll once, bid, and exit")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=_run)
