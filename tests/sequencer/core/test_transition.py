"""apply() as the replay verifier runs it: tx bytes, batch recovery, full validation, leaves."""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from tests.sequencer.core.core_world import CALL, PUT, SPOT, T0, USERS, World, make_config, order
from sequencer.core import (Account, DepositTx, FillTx, SettleTx, SignedOrder, account_leaf,
                            apply, decode_tx, encode_tx, genesis, make_instrument, prepare_block,
                            state_bytes)
from sequencer.core.eip712 import Feed, Listing, SessionKey, Withdraw
from sequencer.core.txs import ForcedWithdrawTx, ListTx, OracleTx, SessionKeyTx, WithdrawTx
from sequencer.errors import OptrollupError

A, B = USERS[0], USERS[1]
U = 10**6


def code(fn, *a) -> str:
    with pytest.raises(OptrollupError) as e:
        fn(*a)
    return e.value.code


def replay(blocks: list[tuple[int, list]]) -> bytes:
    cfg = make_config()
    st = genesis(cfg, [make_instrument(CALL), make_instrument(PUT)])
    for ts, txs in blocks:
        raw = [encode_tx(t) for t in txs]
        txs = [decode_tx(b) for b in raw]
        ctx = prepare_block(cfg.domain, ts, txs)
        for t in txs:
            apply(st, t, ctx)
    return state_bytes(st)


def test_every_tx_type_roundtrips_canonically() -> None:
    o = order(A)
    sig = b"\x01" * 65
    txs = [DepositTx(A.address, 5, 0, B.address), FillTx(SignedOrder(o, sig), b"\2" * 32, U, 100 * U),
           WithdrawTx(Withdraw(A.address, B.address, 7, 0), sig),
           OracleTx(Feed("ETH", SPOT, T0, (1, 2), (3, 4)), sig), SettleTx(CALL),
           SessionKeyTx(SessionKey(A.address, B.address, 9), sig),
           ListTx(Listing(CALL, 1, 2, 3), sig), ForcedWithdrawTx(A.address, B.address, 7, 3)]
    for t in txs:
        b = encode_tx(t)
        assert decode_tx(b) == t and encode_tx(decode_tx(b)) == b
    for bad in (b"", b"\x91\x09", encode_tx(txs[0])[:-1], b"\x93\x01\xc4\x01\x00\x05\x00",
                b"\x94\x01" + b"\xc4\x14" + A.address + b"\xcd\x00\x05\x00"):
        assert code(decode_tx, bad) == "bad_tx"


def test_engine_blocks_replay_to_identical_state(world: World) -> None:
    w = world
    blocks = [(T0, w.engine.end_block())]
    w.engine.begin_block(T0 + 5)
    w.place(A, is_buy=False, price=200 * U, amount=2 * U)
    w.place(B, price=250 * U, amount=U)
    w.place(USERS[2], price=250 * U, amount=U)
    blocks.append((T0 + 5, w.engine.end_block()))
    fills = [t for t in blocks[1][1] if isinstance(t, FillTx)]
    assert isinstance(fills[0].maker, SignedOrder) and isinstance(fills[1].maker, bytes)
    assert replay(blocks) == state_bytes(w.state)


def test_fill_validation(world: World) -> None:
    w = world
    mo, to = order(A, is_buy=False, price=200 * U, amount=U), order(B, price=250 * U, amount=U)
    ms, ts = w.sign(A, mo), w.sign(B, to)
    ctx = prepare_block(w.config.domain, T0, [FillTx(SignedOrder(mo, ms), SignedOrder(to, ts), U,
                                                     200 * U)])
    st = w.state
    good = FillTx(SignedOrder(mo, ms), SignedOrder(to, ts), U, 200 * U)
    assert code(apply, st, good._replace(price=250 * U), ctx) == "price_mismatch"
    assert code(apply, st, good._replace(amount=2 * U), ctx) == "overfill"
    assert code(apply, st, good._replace(taker=SignedOrder(to, w.sign(A, to))), ctx) == \
        "signer_mismatch"
    low = order(B, price=150 * U, amount=U, nonce=3)
    assert code(apply, st, good._replace(taker=SignedOrder(low, w.sign(B, low))), ctx) == \
        "price_not_crossing"
    assert code(apply, st, FillTx(SignedOrder(mo, ms), SignedOrder(mo, ms), U, 200 * U), ctx) \
        == "fill_mismatch"
    before = state_bytes(st)
    apply(st, good, ctx)
    assert state_bytes(st) != before
    assert code(apply, st, good, ctx) == "order_already_posted"
    d_m = ctx.digests[mo]
    again = order(B, nonce=9, price=250 * U)
    assert code(apply, st, FillTx(d_m, SignedOrder(again, w.sign(B, again)), U, 200 * U), ctx) \
        == "overfill"
    assert code(apply, st, DepositTx(A.address, 1, 0, A.address), ctx) == "bad_deposit_nonce"


def test_account_leaf_matches_hand_encoding() -> None:
    a = Account(collateral=123, positions={PUT: -5, CALL: 7})
    names = sorted([CALL, PUT])
    ph = keccak(abi_encode(["string[]", "int256[]"], [names, [7, -5]]))
    tag = keccak(b"optrollup.account.v1")
    want = keccak(b"".join([tag, A.address.rjust(32, b"\0"), (123).to_bytes(32, "big"), ph]))
    assert account_leaf(A.address, a) == want
    empty = keccak(tag + A.address.rjust(32, b"\0") + (0).to_bytes(32, "big") + b"\0" * 32)
    assert account_leaf(A.address, Account()) == empty


def test_state_root_indices_follow_first_appearance(world: World) -> None:
    assert list(world.state.index.values()) == list(range(len(world.state.index)))
    assert world.state.index[world.config.fee_account] == 0
    assert world.state.index[world.config.insurance_fund] == 1
    assert world.state.index[USERS[0].address] == 2
