"""The SDK against a real uvicorn over a real node on LevelDB: the server accepts the client's
signatures (made from /v1/info only), results are typed, errors carry the server's codes."""

from __future__ import annotations

import ast
import asyncio
import json
import time
from pathlib import Path

import pytest
from eth_account import Account as EthAccount

from cext import to_checksum
from optrollup_client import (Account, ApiError, AsyncClient, BadRequestError, Block, Book, Client,
                              ClientError, ConflictError, NewOrder, NotFoundError, OrderAck,
                              RateLimitedError, RejectedError, TimeInForce, TransportError,
                              UnauthorizedError)
from sequencer.errors import NotFound, OptrollupError, RateLimited
from sequencer.node import Limits
from tests.sequencer.client.live import U, live_node
from tests.sequencer.node.kit import CALL, PUT, USERS

A, B, C, D, E = USERS[:5]
P = 100 * U          # 100 USDC per contract
Q = 10_000           # 0.01 contract


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    with live_node(tmp_path_factory.mktemp("client"),
                   Limits(orders_per_second=50, burst=60)) as lv:
        yield lv


def client(live, key, **kw) -> Client:
    return Client(live.url, private_key=key.hex, clock=live.clock, **kw)


def test_the_sdk_imports_nothing_of_the_node() -> None:
    """The light SDK (client/optrollup_client) is its own distribution: httpx, eth-account and
    (optional) websockets only; tests/client/test_light_install.py checks it in an empty venv."""
    root = Path(__file__).parents[2] / "client" / "optrollup_client"
    ours = ("sequencer", "cext", "prover", "channels", "plyvel", "fastapi", "coincurve", "py_ecc")
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not [n for n in names if n.split(".")[0] in ours], (path, names)


def test_info_and_instruments_are_typed(live) -> None:
    with client(live, A) as c:
        info = c.info()
        assert info.chain_id == live.kit.cfg.chain_id
        assert set(info.types) >= {"Order", "Cancel", "CancelAll", "Withdraw", "SessionKey"}
        ins = {i.name: i for i in c.instruments()}
        assert set(ins) >= {CALL, PUT}
        call = c.instrument(CALL)
        assert call.type == "call" and call.tick_size == 100_000 and isinstance(call.mark, int)
        assert call.strike == ins[CALL].strike


def test_place_trade_and_read_back(live) -> None:
    with client(live, A) as a, client(live, B) as b:
        maker = a.place_order(CALL, "sell", P, 2 * Q)
        assert isinstance(maker, OrderAck) and maker.status == "open" and maker.filled_amount == 0
        book = a.book(CALL)
        assert isinstance(book, Book) and (P, 2 * Q) in book.asks and book.sequence > 0
        taker = b.place_order(CALL, "buy", P, Q, time_in_force="ioc")
        assert taker.status == "filled" and taker.filled_amount == Q
        assert taker.fills[0].maker_order == maker.order_hash and taker.fills[0].price == P
        st = a.order(maker.order_hash)
        assert st.status == "partially_filled" and st.filled_amount == Q
        assert st.order.price == P and st.order.time_in_force is TimeInForce.GTC and not st.order.is_buy
        assert [o.order_hash for o in a.open_orders()] == [maker.order_hash]
        assert a.open_orders()[0].remaining == Q
        t = a.trades(CALL, limit=5)[0]
        assert (t.taker_order, t.price, t.amount, t.taker_side) == (taker.order_hash, P, Q, "buy")
        acct = b.account()
        assert isinstance(acct, Account) and acct.account == to_checksum(B.address)
        assert [(p.instrument, p.amount) for p in acct.positions] == [(CALL, Q)]
        assert a.cancel(maker.order_hash).remaining == Q


def test_typed_errors_carry_server_codes(live) -> None:
    with client(live, C) as c:
        with pytest.raises(NotFoundError) as e:
            c.place_order("ETH-27DEC26-5000-C", "buy", P, Q)
        assert (e.value.status, e.value.code) == (404, "unknown_instrument") and e.value.message
        assert isinstance(e.value, NotFound) and isinstance(e.value, OptrollupError)
        with pytest.raises(BadRequestError) as e2:
            c.place_order(CALL, "buy", P + 1, Q)
        assert e2.value.code == "price_not_on_tick" and e2.value.status == 400
        with pytest.raises(RejectedError) as e3:
            c.place_order(CALL, "sell", P, 10**12)
        assert e3.value.code == "insufficient_margin" and e3.value.status == 422
        c.place_order(CALL, "buy", U, Q, nonce=424242)
        with pytest.raises(ConflictError) as e4:
            c.place_order(CALL, "buy", U, Q, nonce=424242, expiry=int(live.clock()) + 3600)
        # the same nonce with a different expiry is a new digest; the same digest is a replay:
        assert e4.value.code in ("duplicate_order", "nonce_used")
        with pytest.raises(BadRequestError) as e5:
            c.account(to_checksum(A.address))
        assert e5.value.code == "auth_account_mismatch"
        with pytest.raises(NotFoundError):
            c.block(10**6)
        with pytest.raises(ClientError):
            c.place_order(CALL, "buy", 1.5, Q)  # type: ignore[arg-type]  # no floats
        c.cancel_all()


def test_wrong_signer_is_unauthorized(live) -> None:
    # A session-key client for an account that never registered the key: 401 signer_mismatch.
    with Client(live.url, private_key=D.hex, account=to_checksum(C.address), clock=live.clock) as c:
        with pytest.raises(UnauthorizedError) as e:
            c.place_order(CALL, "buy", U, Q)
        assert e.value.code == "signer_mismatch" and e.value.status == 401
        with pytest.raises(UnauthorizedError):
            c.account()


def test_replay_of_same_digest_is_conflict(live) -> None:
    with client(live, C) as c:
        exp = int(live.clock()) + 1800
        c.place_order(PUT, "buy", U, Q, nonce=7, expiry=exp)
        with pytest.raises(ConflictError) as e:
            c.place_order(PUT, "buy", U, Q, nonce=7, expiry=exp)
        assert e.value.code == "duplicate_order" and e.value.status == 409
        assert c.cancel_all(PUT) == 1


def test_batch_has_per_item_results(live) -> None:
    with client(live, C) as c:
        res = c.place_orders([NewOrder(PUT, "buy", U, Q), NewOrder(PUT, "buy", U + 1, Q),
                              NewOrder("NOPE-1JAN27-1-C", "sell", U, Q)])
        assert isinstance(res[0], OrderAck) and res[0].status == "open"
        assert isinstance(res[1], ApiError) and res[1].code == "price_not_on_tick"
        assert isinstance(res[2], ApiError) and res[2].code == "unknown_instrument"
        assert c.cancel_all() == 1
        assert c.cancel_all() == 0           # a second cancel-all right away is a new timestamp


def test_rate_limit_exposes_retry_after(live) -> None:
    with client(live, E) as c:
        res = c.place_orders([NewOrder(PUT, "buy", U, Q, time_in_force="ioc")] * 70)
        limited = [r for r in res if isinstance(r, ApiError)]
        assert limited and all(isinstance(r, RateLimitedError) and r.code == "rate_limited" for r in limited)
        with pytest.raises(RateLimitedError) as e:
            c.place_order(PUT, "buy", U, Q, time_in_force="ioc")
        assert e.value.status == 429 and e.value.retry_after >= 1 and isinstance(e.value, RateLimited)


def test_withdraw_uses_withdrawal_nonce(live) -> None:
    with client(live, D) as c:
        w1 = c.withdraw(5 * U)
        w2 = c.withdraw(3 * U, recipient=to_checksum(A.address))
        assert w1.status == w2.status == "pending" and w1.withdrawal_hash != w2.withdrawal_hash
        assert c.account().withdrawal_nonce == 2
        got = c.withdrawal(w2.withdrawal_hash)
        assert got.status == "pending"
        live.clock.t += 2
        deadline = time.monotonic() + 10
        while c.withdrawal(w2.withdrawal_hash).block is None:
            assert time.monotonic() < deadline, "no block sealed"
            time.sleep(0.05)
        got = c.withdrawal(w2.withdrawal_hash)
        assert got.amount == 3 * U and got.recipient == to_checksum(A.address) and got.nonce == 1
        blk = c.block("latest")
        assert isinstance(blk, Block) and blk.header.number == got.block and blk.txs
        assert c.block(got.block) == blk


def test_session_key_signs_for_account(live) -> None:
    sk = EthAccount.create()
    with client(live, A) as owner:
        owner.register_session_key(sk.address, int(live.clock()) + 3600)
    with Client(live.url, private_key=sk.key, account=to_checksum(A.address), clock=live.clock) as s:
        ack = s.place_order(PUT, "buy", U, Q)
        assert ack.status == "open"
        st = s.order(ack.order_hash)                      # auth headers signed by the session key
        assert st.order.account == to_checksum(A.address)
        assert s.cancel(ack.order_hash).status == "cancelled"


def test_keystore_client(live, tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(EthAccount.encrypt(A.hex, "pw")))
    with Client(live.url, keystore=path, password="pw", clock=live.clock) as c:
        assert c.account().account == to_checksum(A.address)
    with pytest.raises(ClientError) as e:
        Client(live.url, keystore=path, password="wrong")
    assert e.value.code == "bad_password"  # the code of sequencer.keys, as everywhere


def test_transport_error_is_typed() -> None:
    with Client("http://127.0.0.1:9", timeout=2) as c, pytest.raises(TransportError):
        c.info()


def test_async_client(live) -> None:
    async def main() -> None:
        async with AsyncClient(live.url, private_key=B.hex, clock=live.clock) as c:
            info = await c.info()
            assert info.chain_id == live.kit.cfg.chain_id
            ack = await c.place_order(PUT, "buy", U, Q, post_only=True)
            assert ack.status == "open"
            res = await c.place_orders([NewOrder(PUT, "buy", U, Q), NewOrder(PUT, "buy", 7, Q)])
            assert isinstance(res[0], OrderAck) and isinstance(res[1], ApiError)
            assert (await c.order(ack.order_hash)).status == "open"
            assert len(await c.open_orders()) == 2
            assert (await c.book(PUT)).bids[0].price == U
            with pytest.raises(NotFoundError):
                await c.book("NOPE")
            assert await c.cancel_all(PUT) == 2
            assert (await c.block(0)).header.number == 0
    asyncio.run(main())


def test_replace_and_mass_quote(live) -> None:
    """The SDK's amend and mass quote (sync and async), against a live node."""
    F = USERS[5]
    with client(live, F) as c:
        a = c.place_order(PUT, "buy", U, Q, post_only=True)
        b = c.place_order(PUT, "buy", 2 * U, Q, post_only=True)
        r = c.replace_order(a.order_hash, NewOrder(PUT, "buy", 3 * U, Q, post_only=True))
        assert r.status == "open" and r.order_hash not in (a.order_hash, b.order_hash)
        with pytest.raises(NotFoundError) as e:
            c.replace_order(a.order_hash, NewOrder(PUT, "buy", 4 * U, Q))
        assert e.value.code == "unknown_order" and "cancel: " in str(e.value)
        res = c.mass_quote([(b.order_hash, NewOrder(PUT, "buy", 5 * U, Q)),
                            (r.order_hash, NewOrder(PUT, "buy", 7, Q))])  # off the tick: refused
        assert isinstance(res[0], OrderAck) and isinstance(res[1], ApiError)
        assert res[1].code == "price_not_on_tick"
        prices = sorted(o.order.price for o in c.open_orders())
        assert prices == [3 * U, 5 * U]  # the failed pair left r in place

        async def amend_async() -> None:
            async with AsyncClient(live.url, private_key=F.hex, clock=live.clock) as ac:
                got = await ac.replace_order(res[0].order_hash, NewOrder(PUT, "buy", 6 * U, Q))
                assert got.status == "open"
                out = await ac.mass_quote([(got.order_hash, NewOrder(PUT, "buy", 8 * U, Q))])
                assert isinstance(out[0], OrderAck)

        asyncio.run(amend_async())
        assert sorted(o.order.price for o in c.open_orders()) == [3 * U, 8 * U]
        assert c.cancel_all(PUT) == 2


def test_wait_withdrawal_sees_each_status_and_times_out_without_l1(live) -> None:
    """A node with no L1 keeps a withdrawal pending: wait_withdrawal reports it once and gives
    up with ClientError `timeout`; asked to wait for `pending`, it returns at once (sync, async)."""
    with client(live, E) as c:
        w = c.withdraw(3 * U)
        seen: list[str] = []
        got = c.wait_withdrawal(w.withdrawal_hash, ("pending",), on_status=lambda x: seen.append(x.status))
        assert got.status == "pending" and seen == ["pending"]
        with pytest.raises(ClientError) as info:
            c.wait_withdrawal(w.withdrawal_hash, timeout=0.3, poll=0.1, on_status=lambda x: seen.append(x.status))
        assert info.value.code == "timeout" and seen == ["pending", "pending"]

    async def run() -> str:
        async with AsyncClient(live.url, private_key=E.hex, clock=live.clock) as ac:
            with pytest.raises(ClientError) as info:
                await ac.wait_withdrawal(w.withdrawal_hash, timeout=0.2, poll=0.05)
            assert info.value.code == "timeout"
            return (await ac.wait_withdrawal(w.withdrawal_hash, ("pending",))).status

    assert asyncio.run(run()) == "pending"
