"""The channel service (channels/service.py, channels/_app.py) between two parties' services and a
live sequencer node: open -> quotes -> 200 trades in both directions -> state -> cooperative
close, the rollup accounts ending with the last state's balances and positions; every refusal
with its status and code (owner auth, outside the quote, margin, a state that does not follow,
a replayed turn, a stranger's signature, a closed channel, ...); a proposal that the proposer
lacks recovered from the peer; both owners trading at once; and `kill -9` of a service process
in the middle of a stream of trades (as proposer and as responder): every state it answered is in
its store after a restart, it refuses to sign anything else for a turn it signed, and trading
goes on."""

from __future__ import annotations

import json

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from channels import ChannelStore, QuoteLine, Trade, apply_trade, initial_state
from channels._auth import AuthHeaders, request_binding
from channels._sign import KeySigner
from channels.client import ChannelClient, CoState
from optrollup_client import Client as SeqClient
from optrollup_client._errors import ApiError, TransportError
from sequencer.core.channelmsg import state_digest
from tests.channels.service_kit import (
    free_port,
    proposal,
    service_proc,
    service_thread,
    write_keystore,
)
from tests.sequencer.client.live import U, live_node
from tests.sequencer.core.core_world import Key
from tests.sequencer.node.kit import CALL, PUT, T0, USERS

A, B = USERS[0], USERS[1]
SB = Key(4242)            # B's service key: a session key of B
STRANGER = Key(777)
C = 10**6                 # one contract
STEP = 10_000             # 0.01 contract
DEPOSIT = 5_000 * U

B_QUOTE = [QuoteLine(CALL, 90 * U, 1_000 * C, 110 * U, 1_000 * C),
           QuoteLine(PUT, 40 * U, 1_000 * C, 60 * U, 1_000 * C)]
A_QUOTE = [QuoteLine(CALL, 95 * U, 1_000 * C, 105 * U, 1_000 * C),
           QuoteLine(PUT, 45 * U, 1_000 * C, 55 * U, 1_000 * C)]


@contextmanager
def refused(status: int, code: str) -> Iterator[None]:
    """The block raises an ApiError with this HTTP status and code."""
    with pytest.raises(ApiError) as info:
        yield
    assert (info.value.status, info.value.code) == (status, code), repr(info.value)


def post(url: str, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url + path, json=body, headers=headers or {}, timeout=30)


def quote_price(q: list[QuoteLine], instrument: str, buy: bool) -> int:
    line = next(x for x in q if x.instrument == instrument)
    return line.ask if buy else line.bid


def rollup(lv: Any) -> Any:
    return lv.kit.node.core.engine.state


def register_session_key(url: str, account: Key, key: Key) -> None:
    with SeqClient(url, private_key=account.hex) as c:
        c.register_session_key("0x" + key.address.hex(), T0 + 30 * 86_400)


# =============================================================================================
# the whole life of a channel, and every refusal
# =============================================================================================


def test_open_quote_trade_close_and_refusals(tmp_path: Path) -> None:
    with live_node(tmp_path / "node") as lv:
        register_session_key(lv.url, B, SB)
        with service_thread(tmp_path / "a", A.priv.secret, lv.url) as sa, \
                service_thread(tmp_path / "b", SB.priv.secret, lv.url, account=B.address,
                               max_deposit=20_000 * U) as sb:
            ca = ChannelClient(sa.url, key=A.priv.secret)
            cb = ChannelClient(sb.url, key=B.priv.secret, account="0x" + B.address.hex())
            ident = cb.identity()
            assert ident.account.lower() == "0x" + B.address.hex()
            assert ident.signer.lower() == "0x" + SB.address.hex() and ident.chain_id == 31337

            # -- open (refusals first) --
            with refused(422, "deposit_too_large"):
                ca.open(sb.url, DEPOSIT, 30_000 * U, 600)
            with refused(503, "peer_unavailable"):
                ca.open(f"http://127.0.0.1:{free_port()}", DEPOSIT, DEPOSIT, 600)
            with refused(400, "bad_challenge_period"):
                ca.open(sb.url, DEPOSIT, DEPOSIT, 5)
            sb.service.cfg.allowed_peers = frozenset({B.address})
            with refused(422, "peer_not_allowed"):
                ca.open(sb.url, DEPOSIT, DEPOSIT, 600)
            sb.service.cfg.allowed_peers = frozenset({A.address})
            before_a = rollup(lv).accounts[A.address].collateral
            before_b = rollup(lv).accounts[B.address].collateral
            opened = ca.open(sb.url, DEPOSIT, DEPOSIT, 600)
            cid = opened.channel_id
            assert opened.channel["status"] == "open" and opened.state.turn == 0
            assert opened.channel["signerB"].lower() == "0x" + SB.address.hex()
            assert rollup(lv).accounts[A.address].collateral == before_a - DEPOSIT
            assert rollup(lv).accounts[B.address].collateral == before_b - DEPOSIT
            assert cb.state(cid) == ca.state(cid) == opened.state
            assert [i.side for i in ca.channels()] == ["a"] and cb.channel(cid).side == "b"
            ch = sa.service.chans[bytes.fromhex(cid[2:])].ch

            # -- quotes --
            assert cb.set_quotes(cid, B_QUOTE) == tuple(B_QUOTE)
            assert ca.set_quotes(cid, A_QUOTE) == tuple(A_QUOTE)
            with refused(400, "crossed_quote"):
                ca.set_quotes(cid, [QuoteLine(CALL, 120 * U, C, 110 * U, C)])

            # -- 200 trades, both directions --
            expected = initial_state(ch)
            answered: list[CoState] = []
            for i in range(200):
                by_a = i % 2 == 0
                instrument = CALL if i % 3 else PUT
                buy = (i // 2) % 3 != 1
                amount = STEP * (1 + i % 5)
                price = quote_price(B_QUOTE if by_a else A_QUOTE, instrument, buy)
                co = (ca if by_a else cb).trade(cid, instrument, buy, price, amount)
                expected = apply_trade(expected, Trade(instrument, buy, price, amount), by_a)
                assert co.state == expected, i
                answered.append(co)
            assert expected.turnNum == 200
            la, lb = ca.state(cid), cb.state(cid)
            assert la == lb == answered[-1]
            assert state_digest(ch.domain, la.state) == la.digest
            assert expected.positions  # both sides hold something now
            # the quotes shrank by what the peer traded against them
            left = {q.instrument: q for q in cb.quotes(cid)}
            bought_from_b = sum(STEP * (1 + i % 5) for i in range(0, 200, 2)
                                if (CALL if i % 3 else PUT) == CALL and (i // 2) % 3 != 1)
            assert left[CALL].askAmount == 1_000 * C - bought_from_b

            # -- owner authentication --
            r = post(sa.url, f"/v1/channels/{cid}/trade",
                     {"instrument": CALL, "isBuy": True, "price": "110000000", "amount": "10000"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "auth_required"
            with refused(401, "not_owner"):
                ChannelClient(sa.url, key=STRANGER.priv.secret, account="0x" + A.address.hex()).state(cid)
            with refused(401, "not_owner"):  # B's owner at A's service
                ChannelClient(sa.url, key=B.priv.secret).state(cid)
            # B's owner may sign with the service's own key (a session key of B) as well
            assert ChannelClient(sb.url, key=SB.priv.secret).state(cid) == la
            stale = AuthHeaders(KeySigner(A.priv.secret), clock=lambda: time.time() - 120)()
            r = httpx.get(f"{sa.url}/v1/channels/{cid}/state", headers=stale)
            assert r.status_code == 401 and r.json()["error"]["code"] == "auth_expired"
            # the peer may read the latest state (its own headers), a stranger may not
            r = httpx.get(f"{sa.url}/v1/channels/{cid}/state",
                          headers=AuthHeaders(KeySigner(SB.priv.secret), B.address)())
            assert r.status_code == 200 and r.json()["channelState"]["turnNum"] == "200"
            r = httpx.get(f"{sa.url}/v1/channels/{cid}/state",
                          headers=AuthHeaders(KeySigner(STRANGER.priv.secret))())
            assert r.status_code == 401 and r.json()["error"]["code"] == "not_a_party"

            # -- owner writes are bound to the request: a header seen on the wire cannot be
            #    replayed with another body or on another route --
            owner_a = AuthHeaders(KeySigner(A.priv.secret))
            h = owner_a()
            path = f"/v1/channels/{cid}/trade"

            def bound(raw: bytes, on: str = path) -> dict[str, str]:
                return {**owner_a(request_binding("POST", on, raw)), "Content-Type": "application/json"}

            good = json.dumps({"instrument": CALL, "isBuy": True, "price": "110000000",
                               "amount": str(STEP)}).encode()
            r = httpx.post(sa.url + path, content=good, headers=h)  # unbound: refused
            assert r.status_code == 401 and r.json()["error"]["code"] == "auth_required"
            other = good.replace(b'"isBuy": true', b'"isBuy": false')
            r = httpx.post(sa.url + path, content=other, headers=bound(good))  # another body
            assert r.status_code == 401
            r = httpx.post(f"{sa.url}/v1/channels/{cid}/close", content=good, headers=bound(good))
            assert r.status_code == 401  # another route
            # -- malformed owner input: 4xx naming the field --
            raw = json.dumps({"instrument": CALL, "isBuy": True, "price": "1"}).encode()
            r = httpx.post(sa.url + path, content=raw, headers=bound(raw))
            assert r.status_code == 400 and r.json()["error"]["code"] == "missing_field"
            assert "body.amount" in r.json()["error"]["message"]
            raw = json.dumps({"instrument": CALL, "isBuy": "yes", "price": "1", "amount": "1"}).encode()
            r = httpx.post(sa.url + path, content=raw, headers=bound(raw))
            assert r.status_code == 400 and "body.isBuy" in r.json()["error"]["message"]
            r = httpx.post(sa.url + path, content=b"{nope", headers=bound(b"{nope"))
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
            with refused(404, "unknown_channel"):
                ca.trade("0x" + "ab" * 32, CALL, True, 110 * U, STEP)
            r = httpx.get(f"{sa.url}/v1/channels/0x1234/state", headers=h)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_length"
            with refused(400, "price_not_on_tick"):
                ca.trade(cid, CALL, True, 110 * U + 1, STEP)
            with refused(400, "amount_not_on_step"):
                ca.trade(cid, CALL, True, 110 * U, STEP + 1)
            with refused(404, "unknown_instrument"):
                ca.trade(cid, "ETH-27DEC26-9000-C", True, 110 * U, STEP)

            # -- refused by the peer: outside its quote (the turn is burned, trading goes on) --
            turn = ca.state(cid).turn
            with refused(422, "price_outside_quote"):
                ca.trade(cid, CALL, True, 109 * U, STEP)  # below B's ask
            with refused(422, "price_outside_quote"):
                ca.trade(cid, CALL, False, 91 * U, STEP)  # above B's bid
            cb.set_quotes(cid, [B_QUOTE[0]._replace(askAmount=2 * STEP)])
            with refused(422, "amount_exceeds_quote"):
                ca.trade(cid, CALL, True, 110 * U, 3 * STEP)
            with refused(422, "not_quoted"):
                ca.trade(cid, PUT, True, 60 * U, STEP)
            co = ca.trade(cid, CALL, True, 110 * U, 2 * STEP)
            assert co.turn == turn + 5  # four refused proposals burned turns turn+1..turn+4
            with refused(422, "not_quoted"):  # the ask is used up
                ca.trade(cid, CALL, True, 110 * U, STEP)
            cb.set_quotes(cid, B_QUOTE)

            # -- margin: refused by the proposer before it signs, and by the peer --
            turn = ca.state(cid).turn
            with refused(422, "insufficient_margin"):  # A would be short 40 calls
                ca.trade(cid, CALL, False, 90 * U, 40 * C)
            with refused(422, "insufficient_balance"):  # A cannot pay 100 calls at 110
                ca.trade(cid, CALL, True, 110 * U, 100 * C)
            latest = ca.state(cid).state
            big = Trade(CALL, True, 110 * U, 40 * C)  # A buys 40 calls: B short 40 x 450 USDC IM
            s = apply_trade(latest, big, True)
            r = post(sb.url, f"/v1/channels/{cid}/states", proposal(ch.domain, s, A.sign, big))
            assert r.status_code == 422 and r.json()["error"]["code"] == "insufficient_margin", r.text
            assert ca.state(cid).turn == turn == cb.state(cid).turn

            # -- proposals a peer must refuse --
            t1 = Trade(CALL, True, 110 * U, STEP)
            good = apply_trade(latest, t1, True)
            off = good._replace(balanceA=good.balanceA + 1, balanceB=good.balanceB - 1)
            r = post(sb.url, f"/v1/channels/{cid}/states", proposal(ch.domain, off, A.sign, t1))
            assert r.status_code == 422 and r.json()["error"]["code"] == "balances_mismatch"
            r = post(sb.url, f"/v1/channels/{cid}/states",
                     proposal(ch.domain, good._replace(positions=()), A.sign, t1))
            assert r.status_code == 422 and r.json()["error"]["code"] == "positions_mismatch"
            r = post(sb.url, f"/v1/channels/{cid}/states", proposal(ch.domain, good, STRANGER.sign, t1))
            assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature_a"
            r = post(sb.url, f"/v1/channels/{cid}/states", proposal(ch.domain, good, SB.sign, t1))
            assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature_a"
            r = post(sb.url, f"/v1/channels/{cid}/states",
                     proposal(ch.domain, good._replace(channelId=b"\x01" * 32), A.sign, t1))
            assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_channel"
            r = post(sb.url, f"/v1/channels/{cid}/states",
                     proposal(ch.domain, good._replace(turnNum=latest.turnNum + 5000), A.sign, t1))
            assert r.status_code == 422 and r.json()["error"]["code"] == "turn_not_next"
            r = post(sb.url, f"/v1/channels/{cid}/states", proposal(ch.domain, good, A.sign, None))
            assert r.status_code == 400 and r.json()["error"]["code"] == "missing_field"
            body = proposal(ch.domain, good, A.sign, t1)
            del body["signature"]
            r = post(sb.url, f"/v1/channels/{cid}/states", body)
            assert r.status_code == 400 and "body.signature" in r.json()["error"]["message"]
            # a replayed turn: an old co-signed state with A's real signature
            old = answered[10]
            r = post(sb.url, f"/v1/channels/{cid}/states",
                     proposal(ch.domain, old.state, A.sign, Trade(CALL, True, 110 * U, STEP)))
            assert r.status_code == 409 and r.json()["error"]["code"] == "stale_turn"
            # the latest again, exactly: the same countersignature (an answer lost in transit)
            la = ca.state(cid)
            last_trade = Trade(CALL, True, 110 * U, 2 * STEP)
            r = post(sb.url, f"/v1/channels/{cid}/states", proposal(ch.domain, la.state, A.sign, last_trade))
            assert r.status_code == 200 and r.json()["signature"] == "0x" + la.sig_b.hex()
            assert cb.state(cid) == la  # nothing changed

            # -- a state A's service lacks: co-signed behind its back, recovered from the peer --
            r = post(sb.url, f"/v1/channels/{cid}/states", proposal(ch.domain, good, A.sign, t1))
            assert r.status_code == 200, r.text
            # ... and nothing else is signed for that turn
            other = apply_trade(latest, Trade(PUT, True, 60 * U, STEP), True)
            r = post(sb.url, f"/v1/channels/{cid}/states",
                     proposal(ch.domain, other, A.sign, Trade(PUT, True, 60 * U, STEP)))
            assert r.status_code == 409 and r.json()["error"]["code"] == "stale_turn"
            assert ca.state(cid).turn == latest.turnNum  # A does not know yet
            co = ca.trade(cid, PUT, False, 40 * U, STEP)  # refused (does not follow), pulls, retries
            assert co.turn > good.turnNum
            assert co.state == apply_trade(good, Trade(PUT, False, 40 * U, STEP), True)._replace(
                turnNum=co.turn)
            assert ca.state(cid) == cb.state(cid) == co

            # -- stale marks: nothing is signed without current marks (oracle_stale) --
            for svc, who in ((sa.service, "proposer"), (sb.service, "peer")):
                marks, fetch = svc.marks, svc.marks._fetch

                async def down() -> Any:
                    raise OSError("the sequencer is down")

                marks._fetch = down
                # a refresh already under way with the real fetch would land after the
                # backdating and make the marks fresh again (seen once in CI): let it finish
                deadline = time.monotonic() + 10
                while marks._inflight is not None and not marks._inflight.done():
                    assert time.monotonic() < deadline, "a marks refresh never finished"
                    time.sleep(0.01)
                marks.fetched_at = (marks.fetched_at or 0) - 60
                try:
                    with refused(422, "oracle_stale"):
                        ca.trade(cid, CALL, True, 110 * U, STEP)
                finally:
                    marks._fetch = fetch
            ca.trade(cid, CALL, True, 110 * U, STEP)  # fresh again at the next use
            assert ca.set_peer(cid, sb.url).peer == sb.url

            # -- several trades in one state: a proposal may carry `trades` --
            base = ca.state(cid).state
            two = [Trade(CALL, True, 110 * U, STEP), Trade(PUT, True, 59 * U, STEP)]  # PUT ask is 60
            s2 = apply_trade(apply_trade(base, two[0], True), two[1], True)._replace(turnNum=base.turnNum + 1)
            body = proposal(ch.domain, s2, A.sign, None)
            body["trades"] = [{"instrument": t.instrument, "isBuy": t.isBuy, "price": str(t.price),
                               "amount": str(t.amount)} for t in two]
            del body["trade"]
            r = post(sb.url, f"/v1/channels/{cid}/states", body)
            assert r.status_code == 422 and r.json()["error"]["code"] == "price_outside_quote"
            assert r.json()["error"]["message"].startswith("trades[1]: ")
            # trades that queue up at A's service go together; one the peer refuses fails alone
            before = ca.state(cid).state
            jobs = [(CALL, True, 110 * U)] * 12 + [(PUT, False, 40 * U)] * 12 + [(CALL, True, 100 * U)]
            out: list[Any] = [None] * len(jobs)

            def one(k: int) -> None:
                ins, buy, price = jobs[k]
                try:
                    out[k] = ca.trade(cid, ins, buy, price, STEP)
                except ApiError as exc:
                    out[k] = exc

            ts = [threading.Thread(target=one, args=(k,)) for k in range(len(jobs))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(120)
            assert isinstance(out[-1], ApiError) and out[-1].code == "price_outside_quote"
            good_ones = out[:-1]
            assert all(isinstance(x, CoState) for x in good_ones), good_ones
            want = before
            for ins, buy, price in jobs[:-1]:
                want = apply_trade(want, Trade(ins, buy, price, STEP), True)
            now = ca.state(cid).state
            assert (now.balanceA, now.balanceB, now.positions) == (want.balanceA, want.balanceB,
                                                                   want.positions)
            assert cb.state(cid).state == now
            for x in good_ones:  # each answer holds its trade and is a state both recorded
                assert x.turn > before.turnNum and x.state.channelId == before.channelId

            # -- both owners at once: collisions are retried, nothing is lost --
            results: dict[str, list[Any]] = {"a": [], "b": []}

            def burst(who: str, client: ChannelClient, q: list[QuoteLine]) -> None:
                for k in range(15):
                    buy = k % 2 == 0
                    try:
                        results[who].append(client.trade(cid, CALL, buy, quote_price(q, CALL, buy), STEP))
                    except ApiError as exc:  # pragma: no cover - reported by the assert below
                        results[who].append(exc)

            ts = [threading.Thread(target=burst, args=("a", ca, B_QUOTE)),
                  threading.Thread(target=burst, args=("b", cb, A_QUOTE))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(120)
            errors = [x for v in results.values() for x in v if isinstance(x, Exception)]
            assert not errors, errors
            turns = sorted(co.turn for v in results.values() for co in v)
            assert len(set(turns)) == 30
            assert ca.state(cid) == cb.state(cid)
            assert ca.state(cid).turn == turns[-1]

            # -- cooperative close; the rollup accounts take the last state --
            last = ca.state(cid).state
            # a final state must be exactly the latest, made final
            bad_final = last._replace(turnNum=last.turnNum + 1, isFinal=True, balanceA=last.balanceA - 1,
                                      balanceB=last.balanceB + 1)
            r = post(sb.url, f"/v1/channels/{cid}/states", proposal(ch.domain, bad_final, A.sign, None))
            assert r.status_code == 422 and r.json()["error"]["code"] == "balances_mismatch"
            coll_a = rollup(lv).accounts[A.address].collateral
            coll_b = rollup(lv).accounts[B.address].collateral
            closed = ca.close(cid)
            final = closed.state.state
            assert final.isFinal and final.turnNum == last.turnNum + 1
            assert (final.balanceA, final.balanceB, final.positions) == (last.balanceA, last.balanceB,
                                                                         last.positions)
            assert closed.channel["status"] == "closed"
            assert closed.channel["closedTurnNum"] == str(final.turnNum)
            assert cb.state(cid) == closed.state
            st = rollup(lv)
            assert st.channels[bytes.fromhex(cid[2:])].status == 1
            assert st.accounts[A.address].collateral == coll_a + final.balanceA
            assert st.accounts[B.address].collateral == coll_b + final.balanceB
            assert st.accounts[A.address].positions == {p.instrument: p.amount for p in final.positions}
            assert st.accounts[B.address].positions == {p.instrument: -p.amount for p in final.positions}
            assert final.balanceA + final.balanceB == 2 * DEPOSIT
            # closed is closed
            with refused(409, "channel_closed"):
                ca.close(cid)
            with refused(409, "channel_closed"):
                cb.close(cid)
            with refused(409, "channel_closed"):
                ca.trade(cid, CALL, True, 110 * U, STEP)
            with refused(409, "channel_closed"):  # B learnt it from its own close attempt
                cb.trade(cid, CALL, True, 105 * U, STEP)
            assert [i.rollup_status for i in ca.channels()] == ["closed"]


# =============================================================================================
# kill -9 in the middle of a stream of trades
# =============================================================================================


def _stream(client: ChannelClient, cid: str, answered: list[CoState], stop: threading.Event,
            errors: list[Exception]) -> None:
    k = 0
    while not stop.is_set():
        buy = k % 2 == 0
        try:
            answered.append(client.trade(cid, CALL, buy, 110 * U if buy else 90 * U, STEP))
        except (ApiError, TransportError) as exc:
            errors.append(exc)
            time.sleep(0.05)
        k += 1


@pytest.mark.parametrize("victim", ["proposer", "responder"])
def test_kill_9_mid_stream(tmp_path: Path, victim: str) -> None:
    """The process of one service (A, whose owner sends the trades, or B, which countersigns
    them) is killed with SIGKILL while trades are in flight, then restarted on its data dir."""
    with live_node(tmp_path / "node") as lv:
        port = free_port()
        secret = A.priv.secret if victim == "proposer" else B.priv.secret
        ks = write_keystore(tmp_path / "key.json", secret)
        data = tmp_path / "victim"
        proc = service_proc(data, ks, lv.url, port, tmp_path / "victim.log")
        proc.start()
        other_secret = B.priv.secret if victim == "proposer" else A.priv.secret
        try:
            with service_thread(tmp_path / "other", other_secret, lv.url) as other:
                a_url, b_url = (proc.url, other.url) if victim == "proposer" else (other.url, proc.url)
                ca = ChannelClient(a_url, key=A.priv.secret)
                cb = ChannelClient(b_url, key=B.priv.secret)
                cid = ca.open(b_url, DEPOSIT, DEPOSIT, 600).channel_id
                cb.set_quotes(cid, B_QUOTE)
                ch_domain = other.service.chans[bytes.fromhex(cid[2:])].ch.domain
                answered: list[CoState] = []
                errors: list[Exception] = []
                stop = threading.Event()
                threads = [threading.Thread(target=_stream, args=(ca, cid, answered, stop, errors))
                           for _ in range(3)]
                for t in threads:
                    t.start()
                deadline = time.monotonic() + 60
                while len(answered) < 150 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert len(answered) >= 150, errors[:3]
                proc.kill()  # SIGKILL, trades in flight
                time.sleep(0.3)
                stop.set()
                for t in threads:
                    t.join(60)
                n_before = len(answered)
                assert errors, "the kill interrupted nothing"

                proc.start()  # the same data dir and port
                if victim == "proposer":  # the owner's view: the latest is at least what it got
                    assert ca.state(cid).turn >= max(co.turn for co in answered)
                cb.set_quotes(cid, B_QUOTE)  # quotes live in memory only: after a restart, post again
                # it refuses to sign a different state for a turn it already signed
                latest = ca.state(cid) if victim == "proposer" else cb.state(cid)
                s = latest.state
                forged = apply_trade(s._replace(turnNum=s.turnNum - 1), Trade(PUT, True, 60 * U, STEP),
                                     victim == "responder")
                signer = B if victim == "proposer" else A
                r = post(proc.url, f"/v1/channels/{cid}/states",
                         proposal(ch_domain, forged, signer.sign, Trade(PUT, True, 60 * U, STEP)))
                assert r.status_code == 409, r.text
                assert r.json()["error"]["code"] in ("stale_turn", "turn_already_signed")
                # trading goes on (a state the killed side never recorded is recovered first)
                for k in range(20):
                    buy = k % 2 == 0
                    answered.append(ca.trade(cid, CALL, buy, 110 * U if buy else 90 * U, STEP))
                assert ca.state(cid) == cb.state(cid) == answered[-1]
                by_turn: dict[int, CoState] = {}
                for co in answered:  # trades that queued up together share one state
                    assert by_turn.setdefault(co.turn, co) == co, co.turn
                assert answered[n_before].turn > max(co.turn for co in answered[:n_before])
        finally:
            proc.stop()
        # every state the victim answered (A: to its owner; B: its countersignature, which A's
        # owner got) is in its store after the restart
        with ChannelStore(data / "db") as store:
            cidb = bytes.fromhex(cid[2:])
            for co in answered:
                got = store.cosigned(cidb, co.turn)
                assert got is not None and got.state == co.state, co.turn
                assert (got.sigA, got.sigB) == (co.sig_a, co.sig_b)
                mine = store.signed(cidb, co.turn)
                assert mine is not None and mine.state == co.state
