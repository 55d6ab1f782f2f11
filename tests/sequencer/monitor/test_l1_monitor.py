"""The L1 monitor on a real anvil: guardian actions, Adjudicator challenges, calls from
unexpected senders, reverted calls, the solvency invariant (held exactly by honest batches,
breached once the Bridge holds less than it owes), a replay mismatch, and the CLI."""

from __future__ import annotations

import argparse
import json

from cext import keccak256
from sequencer.l1 import send_pause, send_unpause
from prover.monitor import register, replay_ledger
from sequencer.monitor import AlertStore, L1Monitor
from tests.contracts.test_adjudicator import Channel
from tests.prover.conftest import World
from tests.prover.test_verifier import OTHER, submit

GUARD = 3  # tests.contracts.l1_testkit.THRESHOLD


def monitor(world: World, **kw) -> L1Monitor:
    d = world.system.deployment
    return L1Monitor(world.client, d.rollup, adjudicator=d.adjudicator, store=AlertStore(), **kw)


def fired(alerts, kind: str) -> list:
    return [a for a in alerts if a.kind == kind]


def test_guardian_pause_and_unpause(world: World) -> None:
    s = world.system
    mon = monitor(world)
    assert mon.poll() == []  # deployment, deposits: nothing to say
    send_pause(s.rollup, s.guardians[:GUARD], sender=s.guardians[0])
    got = mon.poll()
    assert [(a.kind, a.subject, a.severity) for a in got] == [("guardian_action", "pause", "critical")]
    assert "RollupPaused" in got[0].detail and s.guardians[0].address in got[0].detail
    send_unpause(s.rollup, s.guardians[:GUARD], sender=s.guardians[1])
    got = mon.poll()
    assert [(a.kind, a.subject, a.severity) for a in got] == [("guardian_action", "unpause", "warning")]
    assert mon.poll() == []  # nothing new


def test_a_pause_relayed_by_an_outsider_is_also_an_unexpected_sender(world: World) -> None:
    s = world.system
    mon = monitor(world)
    mon.poll()
    send_pause(s.rollup, s.guardians[:GUARD], sender=s.outsider)
    kinds = sorted((a.kind, a.subject) for a in mon.poll())
    assert kinds == [("guardian_action", "pause"), ("unexpected_sender", s.outsider.address)]
    allowed = monitor(world, allow=[s.outsider.address])  # a known relayer
    assert [a.kind for a in allowed.poll()] == ["guardian_action"]


def test_adjudicator_challenge_and_conclusion(world: World) -> None:
    s = world.system
    mon = monitor(world)
    mon.poll()
    ch = Channel(s, s.deployment.adjudicator_contract(s.client))
    ch.challenge(ch.state(5))
    got = mon.poll()
    cid = "0x" + ch.id.hex()
    assert [(a.kind, a.subject, a.severity) for a in got] == [("channel_challenge", cid, "warning")]
    assert "turn 5" in got[0].detail
    ch.challenge(ch.state(7))  # a refutation: the same alert, counted
    assert [a.count for a in mon.poll()] == [2]
    ch.challenge(ch.state(9, final=True))  # a final state concludes at once
    got = mon.poll()
    assert [(a.kind, a.subject, a.severity) for a in got] == [("channel_concluded", cid, "info")]


def test_unexpected_poster_and_reverted_calls(world: World) -> None:
    s, ch = world.system, world.chain
    mon = monitor(world)
    mon.poll()
    submit(world, 1, 2)  # the poster: fine
    assert mon.poll() == []
    # an outsider's batch: it reverts on L1 (gas given, so it is sent and mined anyway)
    tip = s.rollup.call("tip")[1]
    args = (3, tip, (3, b"\0" * 32, 0, b"\0" * 32, b"\0" * 32, b"\0" * 32, 0), [b"\0" * 32],
            b"\0" * 32, b"\x01")
    data = s.rollup.encode("submitBatch", *args)
    _send_reverting(world, s.outsider, s.rollup.address, data)
    got = mon.poll()
    assert sorted((a.kind, a.severity) for a in got) == [("l1_call_reverted", "warning"),
                                                        ("unexpected_poster", "critical")]
    assert fired(got, "unexpected_poster")[0].subject == s.outsider.address
    assert fired(got, "l1_call_reverted")[0].subject == "Rollup.submitBatch"
    # a user's reverted Bridge call is only a reverted call, and an unknown selector is flagged
    _send_reverting(world, s.users[1], s.bridge.address, b"\xde\xad\xbe\xef")
    got = mon.poll()
    assert sorted((a.kind, a.subject) for a in got) == [
        ("l1_call_reverted", "Bridge.selector 0xdeadbeef"), ("unexpected_call", "Bridge.selector 0xdeadbeef")]
    assert ch.head() >= 2


def _send_reverting(world: World, sender, to: str, data: bytes) -> None:
    from sequencer.l1 import ContractRevert, TransactionFailed

    try:
        world.client.transact(sender, to, data, gas=500_000)
    except (ContractRevert, TransactionFailed):
        pass
    else:
        raise AssertionError("expected the call to revert")


def _bridge_balance_slot(bridge: str) -> str:
    """MockUSDC's `balanceOf` is its second storage slot (after totalSupply)."""
    key = bytes(12) + bytes.fromhex(bridge[2:])
    return "0x" + keccak256(key + (1).to_bytes(32, "big")).hex()


def test_solvency_holds_exactly_then_a_breach_fires(world: World) -> None:
    s, ch = world.system, world.chain
    d = s.deployment
    ledger = replay_ledger(world.client, d.rollup, adjudicator=d.adjudicator)
    mon = monitor(world, ledger=ledger)
    assert fired(mon.poll(), "solvency") == []
    # before any batch: everything deposited is owed as deposits not yet credited
    sv = mon.solvency
    assert sv["batches"] == 0 and sv["pendingDeposits"] == sv["balance"] == sv["owed"] > 0
    head = ch.head()
    submit(world, 1, head // 2)
    assert fired(mon.poll(), "solvency") == []
    sv = mon.solvency
    assert sv["batches"] == 1 and sv["balance"] == sv["owed"] and sv["collateral"] > 0
    submit(world, head // 2 + 1, head)
    assert fired(mon.poll(), "solvency") == []
    sv = mon.solvency
    assert sv["batches"] == 2 and sv["pendingDeposits"] == 0 and sv["balance"] == sv["owed"]
    assert sv["unpaidWithdrawals"] == 1_000 * 10**6  # the world's one withdrawal, not paid yet
    # Take one base unit from the Bridge. No honest path makes the Bridge hold less than it
    # owes (MockUSDC has no burn, the Bridge pays only proven withdrawals), so the token
    # balance is written directly into MockUSDC's storage (anvil_setStorageAt).
    slot = _bridge_balance_slot(s.bridge.address)
    raw = int(world.client.rpc("eth_getStorageAt", [s.token.address, slot, "latest"]), 16)
    assert raw == sv["balance"]  # it is the right slot
    world.client.rpc("anvil_setStorageAt", [s.token.address, slot, "0x" + (raw - 1).to_bytes(32, "big").hex()])
    world.client.mine()
    got = fired(mon.poll(), "solvency")
    assert len(got) == 1 and got[0].severity == "critical" and got[0].subject == s.bridge.address
    assert "missing 0.000001 USDC" in got[0].detail
    assert mon.solvency["owed"] - mon.solvency["balance"] == 1


def test_replay_mismatch_is_critical(world: World) -> None:
    d = world.system.deployment
    mon = monitor(world, ledger=replay_ledger(world.client, d.rollup, adjudicator=d.adjudicator))
    mon.poll()
    submit(world, 1, 3, header={"state_root": OTHER})
    got = fired(mon.poll(), "replay_mismatch")
    assert len(got) == 1 and got[0].subject == "batch 0" and got[0].severity == "critical"


def test_cli_prints_json_lines_and_exits_1_on_critical(world: World, capsys) -> None:
    s = world.system
    d = s.deployment
    send_pause(s.rollup, s.guardians[:GUARD], sender=s.guardians[0])
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["monitor", "--l1-rpc", world.client.url, "--rollup", d.rollup,
                              "--adjudicator", d.adjudicator, "--once"])
    assert args.func(args) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["source"], x["alert"]["kind"], x["alert"]["subject"]) for x in lines] == [
        ("l1-monitor", "guardian_action", "pause")]
    assert set(lines[0]["alert"]) == {"id", "kind", "severity", "subject", "detail", "firstSeen",
                                      "lastSeen", "count"}


def test_sequencer_cross_check(world: World) -> None:
    d = world.system.deployment
    answers = [{"l1": {"rollup": d.rollup}, "insuranceFund": {"shortfall": "0"}},
               {"l1": {"rollup": "0x" + "11" * 20}, "insuranceFund": {"shortfall": "2500000"}}]

    def info() -> dict:
        if not answers:
            raise ConnectionError("refused")
        return answers.pop(0)

    mon = monitor(world, sequencer_info=info)
    assert mon.poll() == []  # serves this Rollup, no shortfall
    got = sorted((a.kind, a.severity) for a in mon.poll())
    assert got == [("sequencer_mismatch", "critical"), ("shortfall", "critical")]
    assert [a.kind for a in mon.poll()] == ["sequencer_unreachable"]
    assert mon.poll() == []  # said once per repeat period
