"""The transaction manager on an in-memory JSON-RPC node (httpx.MockTransport, a fake clock):
confirmations, fee bumps, "replacement underpriced", nonce gaps, receipts that a reorg takes
away, nonces taken by strangers, crash and restart, funds, reverts. The same manager against a
real anvil: tests/prover/test_poster.py and tests/contracts."""

from __future__ import annotations

import httpx
import pytest
from eth_account import Account

from sequencer.l1 import (
    ContractRevert,
    InsufficientFunds,
    L1Client,
    L1Unavailable,
    NonceTaken,
    ReceiptTimeout,
    TxConfig,
    TxManager,
    bump,
)
from tests.sequencer.l1.fake_l1 import GWEI, URL, FakeClock, FakeL1

KEY = Account.from_key(b"\x01" * 32)
TO = "0x" + "22" * 20


class Rig:
    """A fake node, a client on it, a fake clock and a manager for KEY."""

    def __init__(self, **config) -> None:
        self.node = FakeL1()
        self.client = L1Client(URL, transport=self.node.transport(), retries=0)
        self.clock = FakeClock()
        self.logs: list[str] = []
        config.setdefault("poll", 1.0)
        config.setdefault("resubmit_after", 5.0)
        config.setdefault("timeout", 60.0)
        self.config = TxConfig(**config)
        self.txm = self.manager()

    def manager(self) -> TxManager:
        return TxManager(self.client, KEY, self.config, log=self.logs.append, clock=self.clock,
                         sleep=self.clock.sleep)

    def mine_on_sleep(self) -> None:
        self.clock.on_sleep = lambda _now: self.node.mine()

    def mined_nonce(self) -> int:
        return self.node.nonce(KEY.address.lower())


def sign(nonce: int, data: bytes, max_fee: int, tip: int) -> str:
    s = KEY.sign_transaction({"type": 2, "chainId": FakeL1.chain_id, "nonce": nonce, "to": TO, "value": 0,
                              "data": data, "gas": 60_000, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip})
    return "0x" + bytes(s.raw_transaction).hex()


def test_sends_and_waits_for_its_confirmations() -> None:
    rig = Rig(confirmations=3)
    rig.mine_on_sleep()
    res = rig.txm.send(TO, b"\x01", context="t")
    r = res.receipt
    assert r.ok and res.nonce == 0 and len(res.attempts) == 1 and res.reorgs == 0
    assert rig.node.head.number - r.block_number + 1 >= 3
    assert rig.node.receipt_of(r.tx_hash)[1].data == b"\x01"
    # the next send counts locally: nonce 1, no need to ask for the pending count
    assert rig.txm.send(TO, b"\x02").nonce == 1
    assert rig.node.count("eth_getTransactionCount") <= 4


def test_stuck_transaction_is_replaced_with_bumped_fees() -> None:
    rig = Rig()
    spike = {"done": False}

    def on_sleep(_now: float) -> None:
        if not spike["done"]:  # once our transaction is in the pool, the base fee jumps
            rig.node.next_base_fee = 100 * GWEI
            spike["done"] = True
        rig.node.mine()

    rig.clock.on_sleep = on_sleep
    res = rig.txm.send(TO, b"\x01")
    first, last = res.attempts[0], res.attempts[-1]
    assert len(res.attempts) == 2 and res.receipt.tx_hash == last.tx_hash != first.tx_hash
    assert last.max_fee >= bump(first.max_fee) and last.max_fee >= 200 * GWEI  # market after the spike
    assert last.tip >= bump(first.tip)
    assert rig.mined_nonce() == 1  # one transaction mined, not two
    assert any("bumping fees" in m for m in rig.logs)


def test_fee_cap_stops_the_bumps() -> None:
    rig = Rig(max_fee_cap=4 * GWEI, timeout=20.0)
    rig.node.next_base_fee = 100 * GWEI  # never includable under the cap
    rig.mine_on_sleep()
    with pytest.raises(ReceiptTimeout):
        rig.txm.send(TO, b"\x01")
    assert all(a.max_fee <= 4 * GWEI for a in rig.txm.current)


def test_replacement_underpriced_is_outbid() -> None:
    """A crashed run left a transaction at our nonce paying more than the market: the manager
    raises its fees until the node accepts the replacement."""
    rig = Rig()
    rig.client.rpc("eth_sendRawTransaction", [sign(0, b"old", 10 * GWEI, 2 * GWEI)])
    rig.mine_on_sleep()
    res = rig.txm.send(TO, b"new")
    assert res.nonce == 0
    a = res.attempts[0]
    assert a.max_fee * 10 >= 10 * GWEI * 11 and a.tip * 10 >= 2 * GWEI * 11
    assert rig.node.count("eth_sendRawTransaction") > 3  # refused, bumped, refused, ...
    assert rig.node.receipt_of(res.receipt.tx_hash)[1].data == b"new"
    assert rig.mined_nonce() == 1


def test_nonce_gap_is_closed() -> None:
    """A transaction the manager counted was dropped by the node: the next one takes its nonce
    instead of waiting forever behind a gap."""
    rig = Rig(timeout=3.0)
    rig.mine_on_sleep()
    assert rig.txm.send(TO, b"a").nonce == 0
    rig.clock.on_sleep = lambda _now: None  # nothing mined: b stays pending
    with pytest.raises(ReceiptTimeout):
        rig.txm.send(TO, b"b")
    b = rig.txm.current[0]
    rig.node.evict(b.tx_hash)  # a node restart drops it
    rig.mine_on_sleep()
    res = rig.txm.send(TO, b"c")
    assert res.nonce == 1 and res.receipt.ok
    assert any("nonce gap" in m for m in rig.logs)
    assert rig.mined_nonce() == 2


@pytest.mark.parametrize("requeue, include", [(False, False), (True, False), (True, True)],
                         ids=["tx-dropped", "tx-back-in-pool", "tx-in-the-new-block"])
def test_receipt_after_a_reorg(requeue: bool, include: bool) -> None:
    """Mined, then the block is reorged away: the manager broadcasts again and waits for its
    confirmations on the new chain."""
    rig = Rig(confirmations=3)
    steps: list[str] = []

    def on_sleep(_now: float) -> None:
        if len(steps) == 1:  # our transaction is in the head block: reorg it away
            rig.node.reorg(1, requeue=requeue, include=include)
            steps.append("reorg")
            return
        rig.node.mine()
        steps.append("mine")

    rig.clock.on_sleep = on_sleep
    rig.node.mine()  # a block to reorg onto
    res = rig.txm.send(TO, b"\x01")
    assert res.reorgs == 1 and steps[1] == "reorg"
    r = res.receipt
    block, tx = rig.node.receipt_of(r.tx_hash)
    assert block.hash == r.block_hash and tx.data == b"\x01"
    assert rig.node.head.number - r.block_number + 1 >= 3
    assert rig.mined_nonce() == 1
    assert any("reorg" in m for m in rig.logs)


def test_nonce_taken_by_another_transaction() -> None:
    rig = Rig()
    rig.node.next_base_fee = 50 * GWEI
    sleeps = {"n": 0}

    def stranger_takes(nonce: int):
        def on_sleep(_now: float) -> None:
            sleeps["n"] += 1
            if sleeps["n"] == 1:  # another process with the key replaces ours and gets mined
                rig.client.rpc("eth_sendRawTransaction", [sign(nonce, b"theirs", 500 * GWEI, 100 * GWEI)])
            if sleeps["n"] == 1 or sleeps["n"] > 2:
                rig.node.mine()
        return on_sleep

    rig.clock.on_sleep = stranger_takes(0)
    with pytest.raises(NonceTaken):
        rig.txm.send(TO, b"ours")
    assert rig.mined_nonce() == 1
    # `transact` is for self-contained transactions: it sends again with the next nonce
    sleeps["n"] = 0
    rig.clock.on_sleep = stranger_takes(1)
    r = rig.txm.transact(TO, b"ours")
    assert rig.node.receipt_of(r.tx_hash)[1].nonce == 2
    assert any("sending it again" in m for m in rig.logs)


@pytest.mark.parametrize("mined_known", [True, False])
def test_a_lost_answer_and_a_late_receipt_never_send_twice(mined_known: bool) -> None:
    """A node under load: the first copy of the transaction is taken and mined but its answer
    is lost, so the client sends the same bytes again ("already known", or "nonce too low" as
    geth answers for mined ones), and the nonce counts before the receipt is served. That is
    our own transaction: `transact` must not take it for a stranger's and send it again (a
    bridge deposit would be paid twice; seen on anvil in benchmarks/test_mm_flow.py's funding)."""
    rig = Rig()
    rig.client = L1Client(URL, transport=rig.node.transport(), retries=1, retry_pause=0.0)
    rig.txm = rig.manager()
    rig.node.mined_known = mined_known
    rig.node.receipt_lag = 3
    rig.node.lost_answers = 1
    r = rig.txm.transact(TO, b"deposit")
    sent = [t for b in rig.node.blocks for t in b.txs]
    assert [t.data for t in sent] == [b"deposit"] and r.tx_hash == sent[0].hash
    assert rig.mined_nonce() == 1 and not any("sending it again" in m for m in rig.logs)


def test_a_receipt_later_than_the_nonce_is_still_ours() -> None:
    """The nonce is used and the receipt comes a few polls later: the wait takes it (no
    NonceTaken); past `receipt_grace` with no receipt of ours, it is a stranger's."""
    rig = Rig(receipt_grace=5.0)
    rig.node.receipt_lag = 4  # polls of 1 s: inside the grace
    rig.mine_on_sleep()
    res = rig.txm.send(TO, b"\x01")
    assert res.receipt.ok and rig.mined_nonce() == 1
    rig = Rig(receipt_grace=2.0)
    rig.node.receipt_lag = 10  # longer than the grace: indistinguishable from a stranger
    rig.mine_on_sleep()
    with pytest.raises(NonceTaken):
        rig.txm.send(TO, b"\x01")


def test_restart_takes_over_its_pending_transaction() -> None:
    """A crash between send and receipt: a fresh manager (new process) starts from the mined
    nonce, so the identical transaction is "already known" instead of a second one."""
    rig = Rig(timeout=2.0)
    with pytest.raises(ReceiptTimeout):
        rig.txm.send(TO, b"\x01", gas=60_000)
    lost = rig.txm.current[0]
    restarted = rig.manager()
    rig.mine_on_sleep()
    res = restarted.send(TO, b"\x01", gas=60_000)
    assert res.receipt.tx_hash == lost.tx_hash and rig.mined_nonce() == 1


def test_insufficient_funds_names_the_key() -> None:
    rig = Rig(label="poster")
    rig.node.balances[KEY.address.lower()] = 10**9
    with pytest.raises(InsufficientFunds, match="fund the poster account"):
        rig.txm.send(TO, b"\x01")
    # without the early check, the node's refusal says the same
    txm = TxManager(rig.client, KEY, TxConfig(check_balance=False, label="poster"))
    with pytest.raises(InsufficientFunds, match="fund the poster account"):
        txm.send(TO, b"\x01")
    assert rig.node.pool == {}


def test_reverts_before_and_after_mining() -> None:
    rig = Rig()
    rig.mine_on_sleep()
    rig.node.revert_to.add(TO)
    with pytest.raises(ContractRevert) as info:  # the estimate reverts: nothing is sent
        rig.txm.send(TO, b"\x01")
    assert info.value.receipt is None and rig.node.count("eth_sendRawTransaction") == 0
    with pytest.raises(ContractRevert) as info:  # a fixed gas limit: mined with status 0
        rig.txm.send(TO, b"\x01", gas=60_000)
    assert info.value.receipt is not None and info.value.tx_hash == info.value.receipt.tx_hash


def test_client_transport_seam_and_unreachable_node() -> None:
    node = FakeL1()
    with L1Client(URL, transport=node.transport()) as c:
        assert c.chain_id == FakeL1.chain_id and c.block_number() == 0

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with L1Client(URL, transport=httpx.MockTransport(down), retries=1, retry_pause=0) as c:
        with pytest.raises(L1Unavailable):
            c.block_number()
