"""The two kinds of L1 message (docs/encoding.md): `Deposited` and `WithdrawalRequested` of the
Bridge, one nonce space, read by the RollupTracker and on the in-memory JSON-RPC node (the node's
follower merging them: tests/sequencer/node/test_l1follower.py). `WithdrawalRequested` is found by its topic even with a
Bridge artifact that predates it. """

from __future__ import annotations

import eth_abi
import pytest

from cext import keccak256
from sequencer.l1 import Contract, L1Client, L1Error, RollupTracker
from sequencer.l1.abi import ContractAbi
from sequencer.l1.rolluptracker import WITHDRAWAL_REQUESTED_TOPIC, with_message_events
from tests.sequencer.l1.fake_l1 import URL, FakeL1

ROLLUP = "0x" + "aa" * 20
BRIDGE = "0x" + "bb" * 20
ALICE, BOB, CAROL = b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20
DEPOSITED = keccak256(b"Deposited(uint256,address,address,uint256)")


def word(x: int | bytes) -> bytes:
    return eth_abi.encode(["address" if isinstance(x, bytes) else "uint256"],
                          ["0x" + x.hex() if isinstance(x, bytes) else x])


def deposited(node: FakeL1, nonce: int, depositor: bytes, account: bytes, amount: int) -> None:
    node.schedule_log(BRIDGE, [DEPOSITED, word(nonce), word(depositor), word(account)], word(amount))


def requested(node: FakeL1, nonce: int, account: bytes, recipient: bytes, amount: int) -> None:
    """A WithdrawalRequested log written by hand from its topic (not from any ABI)."""
    node.schedule_log(BRIDGE, [WITHDRAWAL_REQUESTED_TOPIC, word(nonce), word(account),
                               word(recipient)], word(amount))


def old_bridge(client: L1Client) -> Contract:
    """The Bridge as an artifact without WithdrawalRequested would have it."""
    full = Contract.at(client, "Bridge", BRIDGE)
    items = [i for i in full.abi.items if i.get("name") != "WithdrawalRequested"]
    return Contract(client, ContractAbi.from_abi(items), BRIDGE, "Bridge")


def test_the_topic_is_the_documented_signature() -> None:
    assert WITHDRAWAL_REQUESTED_TOPIC == keccak256(
        b"WithdrawalRequested(uint256,address,address,uint256)")


@pytest.mark.parametrize("artifact", ["current", "predates the event"])
def test_the_tracker_reads_both_kinds(artifact: str) -> None:
    node = FakeL1()
    client = L1Client(URL, transport=node.transport(), retries=0)
    bridge = old_bridge(client) if artifact != "current" else Contract.at(client, "Bridge", BRIDGE)
    t = RollupTracker(client, ROLLUP, bridge, start_block=1)
    node.mine()
    deposited(node, 0, ALICE, BOB, 5)
    requested(node, 1, BOB, CAROL, 3)
    node.mine()
    requested(node, 3, ALICE, ALICE, 2**64 - 1)
    deposited(node, 2, CAROL, CAROL, 9)
    node.mine()
    up = t.poll()
    assert [(d.nonce, d.account, d.amount, d.l1_block) for d in up.deposits] == [
        (0, BOB, 5, 2), (2, CAROL, 9, 3)]
    assert [(r.nonce, r.account, r.recipient, r.amount, r.l1_block) for r in up.withdrawal_requests] == [
        (1, BOB, CAROL, 3, 2), (3, ALICE, ALICE, 2**64 - 1, 3)]
    assert t.poll().withdrawal_requests == []


def test_an_artifact_with_another_signature_is_refused() -> None:
    client = L1Client(URL, transport=FakeL1().transport(), retries=0)
    bad = {"type": "event", "name": "WithdrawalRequested", "anonymous": False,
           "inputs": [{"name": "nonce", "type": "uint256", "indexed": True},
                      {"name": "account", "type": "address", "indexed": True},
                      {"name": "amount", "type": "uint256", "indexed": False}]}
    items = [*old_bridge(client).abi.items, bad]
    with pytest.raises(L1Error, match="WithdrawalRequested"):
        with_message_events(Contract(client, ContractAbi.from_abi(items), BRIDGE, "Bridge"))
    b = old_bridge(client)
    assert "WithdrawalRequested" not in b.abi.events
    assert with_message_events(b).abi.event("WithdrawalRequested").topic0 == WITHDRAWAL_REQUESTED_TOPIC
