"""Forced withdrawals through L1 (issue 11, item 1), on anvil with the real contracts and a real
L2 chain: a censoring operator gets frozen and the user escapes with their value; an honest
operator includes the request and the user is paid through the usual proof."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account

from cext import to_checksum
from prover.escape import escape_claim
from prover.forced import ForcedWithdrawalError, Observation, Step, decide, request_withdrawal, run_forced
from prover.poster import Poster
from prover.verifier import Verifier
from sequencer.core.transition import FORCED_NONCE_BASE
from sequencer.l1 import TxConfig, TxManager
from tests.prover.conftest import World, build_world
from tests.prover.test_poster import sender as poster_sender
from tests.prover.test_verifier import run_cli
from tests.sequencer.core.core_world import USERS

USDC = 10**6
TAKER = USERS[4 + 1]  # a taker of market_flow: collateral and open positions


@pytest.fixture
def fresh(client, accounts) -> Iterator[World]:  # noqa: ANN001
    """A world of its own (these tests add blocks and L1 messages to its chain)."""
    snap = client.snapshot()
    try:
        yield build_world(client, accounts, trades=30, per_block=10)
    finally:
        client.rpc("evm_setAutomine", [True])
        client.revert_to(snap)


def user_tx(world: World) -> TxManager:
    """The L2 account's own key on L1, with some ETH for gas."""
    acct = Account.from_key(TAKER.hex)
    world.client.rpc("anvil_setBalance", [acct.address, hex(10**20)])
    return TxManager(world.client, acct, TxConfig(poll=0.02, label="user"))


def post_all(world: World) -> None:
    Poster(world.client, world.system.deployment.rollup, world.chain, poster_sender(world)).post_missing()


def balance(world: World, who: bytes) -> int:
    return world.system.token.call("balanceOf", to_checksum(who))


def test_decide_covers_every_state() -> None:
    base = Observation(processed=False, leaf_batch=None, leaf_final=False, paid=False, frozen=False,
                       freeze_reason=0, seconds_left=100, escaped=False)
    r = base.__class__
    assert decide(base) is Step.WAIT_INCLUSION
    assert decide(r(**{**base.__dict__, "freeze_reason": 2})) is Step.FREEZE
    assert decide(r(**{**base.__dict__, "processed": True, "leaf_batch": 3})) is Step.WAIT_FINAL
    assert decide(r(**{**base.__dict__, "processed": True, "leaf_batch": 3, "leaf_final": True})) is Step.FINALIZE
    assert decide(r(**{**base.__dict__, "processed": True})) is Step.REFUSED
    assert decide(r(**{**base.__dict__, "paid": True})) is Step.DONE
    assert decide(r(**{**base.__dict__, "frozen": True})) is Step.ESCAPE
    assert decide(r(**{**base.__dict__, "frozen": True, "escaped": True})) is Step.DONE
    # frozen with the leaf in a final batch: the withdrawal is still paid, not escaped
    assert decide(r(**{**base.__dict__, "frozen": True, "leaf_batch": 1, "leaf_final": True})) is Step.FINALIZE


def test_censoring_operator_is_frozen_and_user_escapes(fresh: World) -> None:
    world, ch, sys_ = fresh, fresh.chain, fresh.system
    post_all(world)
    me = TAKER.address
    acct = ch.state.accounts[me]
    assert acct.collateral > 0 and any(acct.positions.values())
    txm = user_tx(world)
    req = request_withdrawal(sys_.bridge, txm, 100 * USDC, to_checksum(me))
    assert (req.nonce, req.account, req.amount) == (ch.deposits, me, 100 * USDC)
    inclusion = sys_.rollup.call("inclusionDelay")

    rounds = []

    def operator_keeps_posting(_pause: float) -> None:
        # the operator seals and posts new blocks but never processes the L1 message
        ch.seal()
        post_all(world)
        sys_.advance(inclusion // 4)
        rounds.append(sys_.rollup.call("freezeReason"))

    before = balance(world, me)
    v = Verifier(world.client, sys_.deployment.rollup)
    logs: list[str] = []
    step = run_forced(world.client, v, txm, req, poll=0, log=logs.append, sleep=operator_keeps_posting)
    assert step is Step.DONE
    assert sys_.rollup.call("frozen") and rounds[-1] == 2  # frozen for the overdue message
    assert any("overdue: freezing" in m for m in logs) and any("escaping" in m for m in logs)
    # paid: collateral + positions at the final marks, as an independent replay values them
    claim = escape_claim(world.client, sys_.deployment.rollup, me)
    assert claim.value() > 0 and balance(world, me) == before + claim.value()
    assert sys_.bridge.call("escaped", to_checksum(me))
    # the request was never processed: nothing was withdrawn on L2 and no leaf exists
    assert v.state.message_cursor == req.nonce and v.find_withdrawal(me, FORCED_NONCE_BASE + req.nonce) is None


def test_honest_operator_includes_and_user_is_paid(fresh: World) -> None:
    world, ch, sys_ = fresh, fresh.chain, fresh.system
    me = TAKER.address
    recipient = bytes.fromhex("5a" * 20)
    txm = user_tx(world)
    req = request_withdrawal(sys_.bridge, txm, 100 * USDC, to_checksum(recipient))
    coll = ch.state.accounts[me].collateral
    ch.forced_withdraw(me, recipient, 100 * USDC)  # the sequencer processes the message
    ch.seal()
    assert ch.state.accounts[me].collateral == coll - 100 * USDC

    def time_passes(_pause: float) -> None:
        post_all(world)
        sys_.advance(sys_.rollup.call("challengeWindow") // 2)

    v = Verifier(world.client, sys_.deployment.rollup)
    logs: list[str] = []
    assert run_forced(world.client, v, txm, req, poll=0, log=logs.append, sleep=time_passes) is Step.DONE
    assert balance(world, recipient) == 100 * USDC
    assert sys_.bridge.call("isWithdrawalPaid", to_checksum(me), FORCED_NONCE_BASE + req.nonce)
    assert not sys_.rollup.call("frozen")
    assert any("waiting for a batch" in m for m in logs) and any("finalizeWithdrawal" in m for m in logs)


def test_refused_request_is_reported(fresh: World) -> None:
    world, ch, sys_ = fresh, fresh.chain, fresh.system
    me = TAKER.address
    txm = user_tx(world)
    too_much = ch.state.accounts[me].collateral + 1
    req = request_withdrawal(sys_.bridge, txm, too_much, to_checksum(me))
    ch.forced_withdraw(me, me, too_much)
    ch.seal()
    post_all(world)
    v = Verifier(world.client, sys_.deployment.rollup)
    with pytest.raises(ForcedWithdrawalError, match="without paying"):
        run_forced(world.client, v, txm, req, poll=0, log=lambda _m: None, sleep=lambda _s: None)


def test_cli_queues_the_request(fresh: World, tmp_path, monkeypatch, capsys) -> None:
    import json

    world, sys_ = fresh, fresh.system
    user_tx(world)  # funds the key with ETH
    ks = tmp_path / "me.json"
    ks.write_text(json.dumps(Account.encrypt(TAKER.hex, "pw", kdf="pbkdf2", iterations=2)))
    monkeypatch.setenv("ME_PW", "pw")
    n = sys_.bridge.call("messageCount")
    assert run_cli("withdraw", "--force", "--no-wait", "--amount", "12.5", "--l1-rpc", world.client.url,
                   "--rollup", sys_.deployment.rollup, "--keystore", str(ks), "--password-env", "ME_PW") == 0
    assert f"forced withdrawal #{n} queued on L1: 12.5 USDC" in capsys.readouterr().out
    ev = sys_.bridge.events("WithdrawalRequested", from_block=0)[-1]
    assert (ev["nonce"], ev["amount"], ev["account"]) == (n, 12_500_000, to_checksum(TAKER.address))


def test_escape_to_a_recipient_the_account_signs_for(fresh: World, tmp_path, monkeypatch, capsys) -> None:
    """A holder the token refuses to pay (a blacklist) escapes to another address it signs for
    (`optrollup escape --recipient`, EIP-712 EscapeTo checked by the Bridge)."""
    import json

    world, sys_ = fresh, fresh.system
    post_all(world)
    sys_.advance(sys_.rollup.call("escapeDelay") + sys_.rollup.call("challengeWindow") + 2)
    user_tx(world)
    me = TAKER.address
    other = "0x" + "7e" * 20
    ks = tmp_path / "me.json"
    ks.write_text(json.dumps(Account.encrypt(TAKER.hex, "pw", kdf="pbkdf2", iterations=2)))
    monkeypatch.setenv("ME_PW", "pw")
    mine_before = balance(world, me)
    assert run_cli("escape", "--l1-rpc", world.client.url, "--rollup", sys_.deployment.rollup,
                   "--account", to_checksum(me), "--recipient", other, "--keystore", str(ks),
                   "--password-env", "ME_PW") == 0
    out = json.loads(capsys.readouterr().out.split("\nescape paid")[0])
    value = int(out["value"])
    assert value > 0 and out["recipient"].lower() == other
    assert balance(world, bytes.fromhex(other[2:])) == value and balance(world, me) == mine_before
    assert sys_.bridge.call("escaped", to_checksum(me))
