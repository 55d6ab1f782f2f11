"""Liquidation over HTTP (sequencer.core.liquidation; docs/liquidation.md):

- `GET /v1/liquidations` answers `{"timestamp": <block time>, "auctions": [<auction>, ...],
  "insuranceFund": <fund>}`, the open auctions oldest first, priced at the open block's time
  and marks;
- `POST /v1/liquidations` `{"liquidate": {liquidator, account, fractionPpm, maxPrice, nonce},
  "signature"}` takes part of an account in liquidation (signed by the liquidator or a live
  session key of it) and answers `{"status": "taken", "liquidator", "account", "fractionPpm",
  "discountPpm", "value", "price", "collateral", "positions": [{instrument, amount}],
  "auctionEnded", "nonce"}` (`collateral` and `positions` moved to the liquidator, which paid
  `price` for what was worth `value` at the marks).

An auction is `{"account", "startedAt", "elapsed", "discountPpm", "collateral", "equity",
"initialMargin", "maintenanceMargin", "price", "insolvent", "positions": [{instrument,
amount}]}`: `price` is what a full take (fractionPpm 10^6) pays the account now, a take of f
about f·price; equity, margins and price are null while a position has no valid oracle price.
The fund is `{"address", "balance", "shortfall", "feeSharePpm", "enabled"}`. Money is decimal
strings (base units; `price` may be negative), times unix seconds.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from cext import to_checksum
from sequencer.api import schemas, views, wire
from sequencer.core.eip712 import FIELDS, Liquidate
from sequencer.core.liquidation import END_DISCOUNT, RAMP_SECONDS, START_DISCOUNT, Quote, Take
from sequencer.errors import InvalidRequest
from sequencer.node.reads import InsuranceView

MAX_PRICE_RANGE = (-(2**63), 2**64)
"""What a Liquidate's maxPrice may be: int256 in EIP-712, a msgpack int in block tx bytes."""


def _opt(x: int | None) -> str | None:
    return None if x is None else views.money(x)


def auction_json(q: Quote) -> dict[str, Any]:
    return {"account": to_checksum(q.account), "startedAt": q.started,
            "elapsed": max(0, q.now - q.started), "discountPpm": q.discount,
            "collateral": views.money(q.collateral), "equity": _opt(q.equity),
            "initialMargin": _opt(q.im), "maintenanceMargin": _opt(q.mm), "price": _opt(q.price),
            "insolvent": q.insolvent,
            "positions": [{"instrument": n, "amount": views.money(a)} for n, a in q.positions]}


def insurance_json(v: InsuranceView) -> dict[str, Any]:
    """`insuranceFund` of GET /v1/info and GET /v1/liquidations."""
    return {"address": to_checksum(v.address), "balance": views.money(v.balance),
            "shortfall": views.money(v.shortfall), "feeSharePpm": v.fee_share,
            "enabled": v.enabled}


def auction_rules_json() -> dict[str, Any]:
    """`liquidation` of GET /v1/info: the discount curve d(t)."""
    return {"startDiscountPpm": START_DISCOUNT, "endDiscountPpm": END_DISCOUNT,
            "rampSeconds": RAMP_SECONDS}


def take_json(t: Take) -> dict[str, Any]:
    return {"status": "taken", "liquidator": to_checksum(t.liquidator),
            "account": to_checksum(t.account), "fractionPpm": t.fraction,
            "discountPpm": t.discount, "value": views.money(t.value),
            "price": views.money(t.price), "collateral": views.money(t.collateral),
            "positions": [{"instrument": n, "amount": views.money(a)} for n, a in t.positions],
            "auctionEnded": t.ended, "nonce": str(t.nonce)}


def add_liquidation_routes(app: FastAPI, api: Any) -> None:
    """Mount the liquidation routes on `app` (`api` is sequencer.api.app.Api)."""
    node = api.node

    @app.get("/v1/liquidations")
    async def get_liquidations(request: Request) -> Any:
        """Open liquidation auctions with their current price, and the insurance fund."""
        return {"timestamp": node.block_time,
                "auctions": [auction_json(q) for q in node.liquidations()],
                "insuranceFund": insurance_json(node.insurance())}

    @app.post("/v1/liquidations", openapi_extra=schemas.body("Liquidate"))
    async def post_liquidation(request: Request) -> Any:
        """Take `fractionPpm` / 10^6 of every position and of the collateral of an account in
        liquidation, paying at most `maxPrice` (base units; negative: be paid)."""
        msg_json, sig = wire.signed(await api.body(request), "liquidate")
        msg = wire.message(msg_json, "liquidate", FIELDS["Liquidate"], Liquidate)
        lo, hi = MAX_PRICE_RANGE
        if not lo <= msg.maxPrice < hi:
            raise InvalidRequest(f"liquidate.maxPrice must be in [-2^63, 2^64), got {msg.maxPrice}",
                                 code="invalid_number")
        return take_json(await api.submit_one(msg, sig))
