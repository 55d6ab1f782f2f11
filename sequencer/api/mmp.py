"""Market-maker protection over HTTP (sequencer.core.mmp; docs/mmp.md):

- `POST /v1/mmp/config` `{"mmpConfig": {...}, "signature"}` sets the config of one (account,
  underlying) and answers `{"status": "accepted", "account", <pair>}`;
- `POST /v1/mmp/reset` `{"mmpReset": {...}, "signature"}` lifts its freeze: `{"status": "reset",
  "account", "lifted": <freeze>|null, <pair>}`;
- `GET /v1/accounts/{address}/mmp` (auth headers, like the account view) answers `{"account",
  "timeMs": <block time, unix ms>, "underlyings": [<pair>, ...]}`.

A pair is `{"underlying", "enabled", "config": {intervalMs, frozenMs, amountLimit, deltaLimit,
vegaLimit, nonce} | null, "window": {amount, delta, vega}, "frozen", "freeze": <freeze> | null}`
and a freeze `{"measure": "amount"|"delta"|"vega", "value", "limit", "atMs", "untilMs"}`
(`untilMs` null: until an MmpReset). Limits, window totals and values are decimal strings in
the limits' units (amount contracts × 10^6, delta contracts × 10^6 of underlying, vega base units
per vol point; greek totals rounded away from zero, for display); times are unix ms integers.
The private channel `orders.<account>` of the stream carries `mmp_event_json` messages.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from cext import to_checksum
from sequencer.api import schemas, views, wire
from sequencer.core.eip712 import FIELDS, MmpConfig, MmpReset
from sequencer.core.mmp import Freeze, MmpEvent, MmpView, check_config, in_limit_units


def freeze_json(f: Freeze | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"measure": f.measure, "value": views.money(in_limit_units(f.measure, f.value)),
            "limit": views.money(f.limit), "atMs": f.at_ms, "untilMs": f.until_ms}


def pair_json(v: MmpView) -> dict[str, Any]:
    """One (account, underlying) pair as every MMP answer renders it."""
    c = v.config
    return {"underlying": v.underlying, "enabled": v.active,
            "config": None if c is None else {
                "intervalMs": c.intervalMs, "frozenMs": c.frozenMs,
                "amountLimit": views.money(c.amountLimit), "deltaLimit": views.money(c.deltaLimit),
                "vegaLimit": views.money(c.vegaLimit), "nonce": str(c.nonce)},
            "window": {"amount": views.money(v.amount),
                       "delta": views.money(in_limit_units("delta", v.delta)),
                       "vega": views.money(in_limit_units("vega", v.vega))},
            "frozen": v.freeze is not None, "freeze": freeze_json(v.freeze)}


def mmp_event_json(ev: MmpEvent) -> dict[str, Any]:
    """A message of the private channel: `event` triggered (orders `cancelled`) | reset |
    expired, at block time `timeMs`, with the freeze that started or ended."""
    return {"type": "mmp", "event": ev.kind, "account": to_checksum(ev.account),
            "underlying": ev.underlying, "timeMs": ev.at_ms, "freeze": freeze_json(ev.freeze),
            "cancelled": [views.h(d) for d in ev.cancelled]}


def add_mmp_routes(app: FastAPI, api: Any) -> None:
    """Mount the MMP routes on `app` (`api` is sequencer.api.app.Api)."""
    node = api.node

    @app.post("/v1/mmp/config", openapi_extra=schemas.body("MmpConfig"))
    async def post_mmp_config(request: Request) -> Any:
        """Set market-maker protection of (account, underlying); signed by the account or a
        live session key. A limit of 0 is no limit; intervalMs 0 (or all limits 0) turns it off."""
        msg_json, sig = wire.signed(await api.body(request), "mmpConfig")
        msg = wire.message(msg_json, "mmpConfig", FIELDS["MmpConfig"], MmpConfig)
        check_config(msg, node.cfg.genesis.config.underlyings)  # before the log: limits < 2^64
        view = await api.submit_one(msg, sig)
        return {"status": "accepted", "account": to_checksum(msg.account), **pair_json(view)}

    @app.post("/v1/mmp/reset", openapi_extra=schemas.body("MmpReset"))
    async def post_mmp_reset(request: Request) -> Any:
        """Lift the MMP freeze of (account, underlying) and empty its window."""
        msg_json, sig = wire.signed(await api.body(request), "mmpReset")
        msg = wire.message(msg_json, "mmpReset", FIELDS["MmpReset"], MmpReset)
        res = await api.submit_one(msg, sig)
        return {"status": "reset", "account": to_checksum(msg.account),
                "lifted": freeze_json(res.lifted), **pair_json(res.view)}

    @app.get("/v1/accounts/{address}/mmp")
    async def get_mmp(address: str, request: Request) -> Any:
        """The account's MMP configs, window totals and freezes (auth headers)."""
        a = api.authed_as(request, address)
        now_ms, pairs = node.mmp(a)
        return {"account": to_checksum(a), "timeMs": now_ms,
                "underlyings": [pair_json(v) for v in pairs]}
