"""State channels over HTTP against a real node (POST /v1/channels, POST .../close, GET): the
answers, each refusal as a 4xx with its code, and the channel surviving a restart (its log
record replayed) with the same state root."""

from __future__ import annotations

from pathlib import Path

import httpx

from cext import to_checksum
from sequencer.core.state import state_bytes
from sequencer.core.channelmsg import (ChannelOpen, ChannelPosition, ChannelState, open_digest,
                                       open_to_json, state_digest, state_to_json)
from tests.sequencer.client.live import U, live_node
from tests.sequencer.core.core_world import Key
from tests.sequencer.node.kit import CALL, USERS

A, B = USERS[0], USERS[1]
SA, SB = Key(911), Key(912)


def sig(key: Key, d: bytes) -> str:
    return "0x" + key.sign(d).hex()


def open_body(dom: bytes, msg: ChannelOpen, ka: Key = A, kb: Key = B) -> dict:
    d = open_digest(dom, msg)
    return {"channelOpen": open_to_json(msg), "signatures": [sig(ka, d), sig(kb, d)]}


def close_body(dom: bytes, s: ChannelState, ka: Key = SA, kb: Key = SB) -> dict:
    d = state_digest(dom, s)
    return {"channelState": state_to_json(s), "signatures": [sig(ka, d), sig(kb, d)]}


def test_open_read_close_and_refusals(tmp_path: Path) -> None:
    with live_node(tmp_path) as lv:
        dom = lv.kit.cfg.genesis.config.domain
        ins = httpx.get(f"{lv.url}/v1/instruments/{CALL}").json()  # what channel margin uses
        assert (ins["shortInitialMargin"], ins["shortMaintenanceMargin"]) == (str(450 * U), str(225 * U))
        msg = ChannelOpen(A.address, B.address, SA.address, SB.address, 1_000 * U, 2_000 * U, 1, 600)
        r = httpx.post(f"{lv.url}/v1/channels", json=open_body(dom, msg))
        assert r.status_code == 200, r.text
        ch = r.json()
        cid = ch["channelId"]
        assert ch["status"] == "open" and ch["a"] == to_checksum(A.address)
        assert ch["depositA"] == str(1_000 * U) and ch["closedTurnNum"] is None
        assert httpx.get(f"{lv.url}/v1/channels/{cid}").json() == ch
        # refusals
        r = httpx.post(f"{lv.url}/v1/channels", json=open_body(dom, msg))
        assert r.status_code == 409 and r.json()["error"]["code"] == "channel_exists"
        r = httpx.post(f"{lv.url}/v1/channels", json=open_body(dom, msg._replace(nonce=2), kb=A))
        assert r.status_code == 401 and r.json()["error"]["code"] == "signer_mismatch"
        r = httpx.post(f"{lv.url}/v1/channels", json={"channelOpen": open_to_json(msg)})
        assert r.status_code == 400 and r.json()["error"]["code"] == "missing_field"
        r = httpx.get(f"{lv.url}/v1/channels/0x" + "11" * 32)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_channel"
        r = httpx.get(f"{lv.url}/v1/channels/0x12")
        assert r.status_code == 400
        s = ChannelState(bytes.fromhex(cid[2:]), 9, 1_500 * U, 1_500 * U,
                         (ChannelPosition(CALL, U),), True)
        r = httpx.post(f"{lv.url}/v1/channels/0x{'22' * 32}/close", json=close_body(dom, s))
        assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_channel"
        r = httpx.post(f"{lv.url}/v1/channels/{cid}/close", json=close_body(dom, s, kb=A))
        assert r.status_code == 401 and r.json()["error"]["code"] == "signer_mismatch"
        r = httpx.post(f"{lv.url}/v1/channels/{cid}/close", json=close_body(dom, s))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "closed" and r.json()["closedTurnNum"] == "9"
        r = httpx.post(f"{lv.url}/v1/channels/{cid}/close", json=close_body(dom, s))
        assert r.status_code == 409 and r.json()["error"]["code"] == "channel_closed"
        state = lv.kit.node.core.engine.state
        assert state.accounts[A.address].positions == {CALL: U}
        assert state.accounts[B.address].positions == {CALL: -U}
        before = state_bytes(state)
    # restart: the channel comes back from the log, closed, the same state to the byte
    node = lv.kit.reopen()
    try:
        st = node.core.engine.state
        c = st.channels[bytes.fromhex(cid[2:])]
        assert c.status == 1 and c.closed_turn == 9
        assert state_bytes(st) == before
    finally:
        node.close()
