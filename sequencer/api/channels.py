"""State channels over HTTP (sequencer.core.channelstate; docs/channels.md):

- `POST /v1/channels` `{"channelOpen": {a, b, signerA, signerB, depositA, depositB, nonce,
  challengePeriod}, "signatures": [sigA, sigB]}` (signed by account a and account b, or their
  live session keys) opens a channel;
- `POST /v1/channels/{id}/close` `{"channelState": {channelId, turnNum, balanceA, balanceB,
  positions: [{instrument, amount}], isFinal: true}, "signatures": [sigA, sigB]}` (signed by
  the channel's signerA and signerB) closes it cooperatively;
- `POST /v1/channels/{id}/conclude` `{"channelState"}`: the state a confirmed L1 conclusion
  certifies, when the node could not read it from L1 calldata (checked against the event's
  stateHash);
- `GET /v1/channels/{id}` reads it.

All answer the channel: `{"channelId", "a", "b", "signerA", "signerB", "depositA", "depositB",
"nonce", "challengePeriod", "openedAt", "status": "open"|"closed"|"concluded",
"closedTurnNum", "closedStateHash"}` (money as decimal strings; closedTurnNum null while
open). Acknowledged once durable.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request

from cext import to_checksum
from sequencer.api import views, wire
from sequencer.core.channelmsg import open_from_json, state_digest, state_from_json
from sequencer.core.channelstate import OPEN, STATUS
from sequencer.core.state import Channel
from sequencer.core.txs import ChannelCloseTx, ChannelOpenTx
from sequencer.errors import InvalidRequest, NotFound


def channel_json(cid: bytes, c: Channel) -> dict[str, Any]:
    o = c.open
    return {"channelId": views.h(cid), "a": to_checksum(o.a), "b": to_checksum(o.b),
            "signerA": to_checksum(o.signerA), "signerB": to_checksum(o.signerB),
            "depositA": views.money(o.depositA), "depositB": views.money(o.depositB),
            "nonce": str(o.nonce), "challengePeriod": o.challengePeriod, "openedAt": c.opened_at,
            "status": STATUS[c.status],
            "closedTurnNum": None if c.status == OPEN else str(c.closed_turn),
            "closedStateHash": None if c.status == OPEN else views.h(c.closed_hash)}


def _signatures(body: Any) -> tuple[bytes, bytes]:
    sigs = body.get("signatures")
    if type(sigs) is not list or len(sigs) != 2:
        raise InvalidRequest("signatures must be a list [sigA, sigB]", code="bad_signatures")
    return wire.signature(sigs[0], "signatures[0]"), wire.signature(sigs[1], "signatures[1]")


def add_channel_routes(app: FastAPI, api: Any) -> None:
    """Mount the channel routes on `app` (`api` is sequencer.api.app.Api)."""
    node = api.node

    def get(cid: bytes) -> dict[str, Any]:
        c = node.core.engine.state.channels.get(cid)
        if c is None:
            raise NotFound(f"channel {views.h(cid)} does not exist", code="unknown_channel")
        return channel_json(cid, c)

    @app.post("/v1/channels")
    async def open_channel(request: Request) -> Any:
        """Open a channel funded from both rollup accounts."""
        body = await api.body(request)
        wire.require_object(body, "body", ("channelOpen", "signatures"))
        msg = open_from_json(body["channelOpen"])
        sig_a, sig_b = _signatures(body)
        cid = await node.submit_channel(ChannelOpenTx(msg, sig_a, sig_b))
        return get(cid)

    @app.post("/v1/channels/{channel_id}/close")
    async def close_channel(channel_id: str, request: Request) -> Any:
        """Close a channel with a final state co-signed by its two signers."""
        body = await api.body(request)
        cid = wire.hex_bytes(channel_id, "channelId", 32)
        wire.require_object(body, "body", ("channelState", "signatures"))
        state = state_from_json(body["channelState"])
        if state.channelId != cid:
            raise InvalidRequest(f"channelState.channelId {views.h(state.channelId)} is not the "
                                 f"channel of the path {views.h(cid)}", code="wrong_channel")
        sig_a, sig_b = _signatures(body)
        await node.submit_channel(ChannelCloseTx(state, sig_a, sig_b))
        return get(cid)

    @app.post("/v1/channels/{channel_id}/conclude")
    async def post_conclusion(channel_id: str, request: Request) -> Any:
        """The state an L1 conclusion certifies, for a conclusion whose state the node could not
        read from L1 calldata (registered through a contract): applied if its EIP-712 digest
        is the confirmed `Concluded` event's stateHash."""
        body = await api.body(request)
        cid = wire.hex_bytes(channel_id, "channelId", 32)
        wire.require_object(body, "body", ("channelState",))
        state = state_from_json(body["channelState"])
        follower = node.l1.conclusions if node.l1 is not None else None
        seen = None if follower is None else follower.seen(cid)
        if seen is None:
            raise NotFound(f"no confirmed L1 conclusion of channel {views.h(cid)}",
                           code="no_conclusion")
        if state.channelId != cid or state_digest(node.cfg.genesis.config.domain, state) != seen.state_hash:
            raise InvalidRequest(f"channelState is not the state channel {views.h(cid)} was "
                                 f"concluded with on L1 (stateHash {views.h(seen.state_hash)})",
                                 code="state_hash_mismatch")
        fut = node.process_conclusion(replace(seen, state=state))
        if fut is not None:
            await asyncio.wrap_future(fut)
        return get(cid)

    @app.get("/v1/channels/{channel_id}")
    async def read_channel(channel_id: str) -> Any:
        """A channel: parties, signers, deposits, status and the turn it closed at."""
        return get(wire.hex_bytes(channel_id, "channelId", 32))
