"""Liquidation in the SDK: typed answers and the request plans `Client` and `AsyncClient` share
(docs/liquidation.md; the HTTP side is sequencer/api/liquidation.py).

Units: money (collateral, equity, margins, prices) in collateral base units (USDC × 10^6),
position amounts contracts × 10^6 (signed), fractions and discounts ppm, times unix seconds.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optrollup_client._errors import ClientError, ConflictError

if TYPE_CHECKING:
    from optrollup_client._signing import Signer

__all__ = ["Auction", "InsuranceFund", "LiquidationOps", "LiquidationTake", "Liquidations"]

PPM = 10**6


def _opt(x: Any) -> int | None:
    return None if x is None else int(x)


@dataclass(frozen=True)
class InsuranceFund:
    """The insurance fund: `balance` (collateral), the open `shortfall` (0: none) and the
    share of every fee it receives (`fee_share_ppm`); `enabled` iff the rules have liquidation."""

    address: str
    balance: int
    shortfall: int
    fee_share_ppm: int
    enabled: bool

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> InsuranceFund:
        return cls(d["address"], int(d["balance"]), int(d["shortfall"]), int(d["feeSharePpm"]),
                   bool(d["enabled"]))


@dataclass(frozen=True)
class Auction:
    """An open liquidation auction at the node's block time: `price` is what a full take pays
    the account now (a take of f pays about f·price; negative: the liquidator is paid);
    equity, margins and price are None while a position has no oracle price."""

    account: str
    started_at: int
    elapsed: int
    discount_ppm: int
    collateral: int
    equity: int | None
    initial_margin: int | None
    maintenance_margin: int | None
    price: int | None
    insolvent: bool
    positions: dict[str, int]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Auction:
        return cls(d["account"], int(d["startedAt"]), int(d["elapsed"]), int(d["discountPpm"]),
                   int(d["collateral"]), _opt(d["equity"]), _opt(d["initialMargin"]),
                   _opt(d["maintenanceMargin"]), _opt(d["price"]), bool(d["insolvent"]),
                   {p["instrument"]: int(p["amount"]) for p in d["positions"]})

    def price_of(self, fraction_ppm: int) -> int | None:
        """About what a take of `fraction_ppm` costs now (amount steps round it slightly)."""
        return None if self.price is None else self.price * fraction_ppm // PPM


@dataclass(frozen=True)
class Liquidations:
    """`GET /v1/liquidations`: the open auctions (oldest first) at block time `timestamp`."""

    timestamp: int
    auctions: list[Auction]
    insurance_fund: InsuranceFund

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Liquidations:
        return cls(int(d["timestamp"]), [Auction.from_json(a) for a in d["auctions"]],
                   InsuranceFund.from_json(d["insuranceFund"]))


@dataclass(frozen=True)
class LiquidationTake:
    """An accepted bid: `collateral` and `positions` moved to the liquidator, which paid
    `price` for what was worth `value` at the marks; `auction_ended` if it ended the auction."""

    liquidator: str
    account: str
    fraction_ppm: int
    discount_ppm: int
    value: int
    price: int
    collateral: int
    positions: dict[str, int]
    auction_ended: bool
    nonce: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LiquidationTake:
        return cls(d["liquidator"], d["account"], int(d["fractionPpm"]), int(d["discountPpm"]),
                   int(d["value"]), int(d["price"]), int(d["collateral"]),
                   {p["instrument"]: int(p["amount"]) for p in d["positions"]},
                   bool(d["auctionEnded"]), int(d["nonce"]))


class LiquidationOps:
    """Request plans (sans-I/O generators, see optrollup_client._client) mixed into its core."""

    if TYPE_CHECKING:  # provided by the client core (optrollup_client._client._Core)
        def _signer(self) -> Signer: ...
        def next_nonce(self) -> int: ...
        def _signed(self, primary: str,
                    message: dict[str, Any]) -> Generator[Any, Any, dict[str, Any]]: ...
        def _post(self, path: str, body: Any) -> Any: ...
        def _op_account(self, address: str | None = None) -> Generator[Any, Any, Any]: ...

    def _op_liquidations(self) -> Generator[Any, Any, Liquidations]:
        from optrollup_client._client import _Req
        return Liquidations.from_json((yield _Req("GET", "/v1/liquidations")))

    def _op_liquidate(self, account: str, fraction_ppm: int, max_price: int,
                      nonce: int | None) -> Generator[Any, Any, LiquidationTake]:
        if type(fraction_ppm) is not int or not 0 < fraction_ppm <= PPM:
            raise ClientError(f"fraction_ppm must be an int in (0, {PPM}], got {fraction_ppm!r}",
                              code="invalid_argument")
        if type(max_price) is not int or not -(2**63) <= max_price < 2**64:
            raise ClientError(f"max_price must be an int in [-2^63, 2^64) (base units), got "
                              f"{max_price!r}", code="invalid_argument")
        msg = {"liquidator": self._signer().account, "account": account,
               "fractionPpm": fraction_ppm, "maxPrice": max_price,
               "nonce": self.next_nonce() if nonce is None else nonce}
        body = yield from self._signed("Liquidate", msg)
        try:
            return LiquidationTake.from_json((yield self._post("/v1/liquidations", body)))
        except ConflictError as exc:
            if exc.code != "liquidate_nonce_used" or nonce is not None:
                raise
        # another client of this liquidator used a later nonce: go past the node's, once
        acct = yield from self._op_account(None)
        msg["nonce"] = max(self.next_nonce(), acct.liquidate_nonce)
        body = yield from self._signed("Liquidate", msg)
        return LiquidationTake.from_json((yield self._post("/v1/liquidations", body)))
