"""The escape hatch for state channels end to end on anvil: a chain whose last final state holds
an open channel is frozen; `optrollup escape --channel` says what to do until the Rollup's
Adjudicator has concluded the channel (it works while the rollup is frozen), concludes it once
the window has passed, and has `Bridge.escapeChannel` pay both parties by the concluded state,
from L1 data alone; the accounts' own escapes still work and the Bridge pays nothing twice."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from cext import to_checksum
from prover.escape import (
    ChannelNotConcluded,
    channel_escape_claim,
    escape_claim,
    send_escape,
    send_escape_channel,
    sign_channel_escape_to,
)
from sequencer.core.chain import mark_table
from sequencer.core.channelmsg import (
    ChannelPosition,
    ChannelState,
    state_digest,
    state_to_json,
)
from sequencer.core.txs import ChannelCloseTx
from sequencer.errors import Conflict, InvalidRequest
from sequencer.l1 import ContractRevert, TxManager
from sequencer.l1.adjudicator import Adjudicator, Fixed
from tests.contracts.l1_testkit import CHALLENGE_WINDOW, ESCAPE_DELAY
from tests.prover.conftest import World, new_world, rolled_back
from tests.prover.test_verifier import run_cli, submit
from tests.prover.test_verifier_channels import SA, SB, A, B, opened
from tests.sequencer.core.core_world import CALL

pytestmark = pytest.mark.anvil

U = 10**6
NEVER_LISTED = "ETH-1JAN30-9999-C"  # a position in an instrument the final marks do not have


@pytest.fixture
def world(client, accounts):
    with rolled_back(client):
        yield new_world(client, accounts)


def frozen_with_open_channel(world: World):
    """A and B deposit 10,000 USDC each and open a 1,000 + 1,000 channel (challenge period
    60 s); the batch is final, then the operator disappears and the Rollup is frozen."""
    ch, sys_ = world.chain, world.system
    msg, cid = opened(world)
    submit(world, 1, ch.head())
    sys_.advance(CHALLENGE_WINDOW + 1)
    sys_.advance(ESCAPE_DELAY + 1)
    sys_.rollup.transact("freeze", sender=sys_.outsider)
    assert ch.engine.state.channels[cid].status == 0
    return msg, cid


def fixed(msg) -> Fixed:
    return Fixed(msg.a, msg.b, msg.signerA, msg.signerB, msg.nonce, msg.challengePeriod)


def keystore(tmp_path, name: str, priv: bytes | str) -> str:
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(Account.encrypt(priv, "pw", kdf="pbkdf2", iterations=2)))
    return str(p)


def bal(world: World, who: bytes | str) -> int:
    return world.system.token.call("balanceOf", who if isinstance(who, str) else to_checksum(who))


def test_open_channel_escapes_by_the_concluded_state(world: World, tmp_path, monkeypatch, capsys) -> None:
    ch, sys_ = world.chain, world.system
    adj = Adjudicator.at(world.client, sys_.deployment.adjudicator)
    msg, cid = frozen_with_open_channel(world)
    rollup = sys_.deployment.rollup
    bridge_before = bal(world, sys_.bridge.address)
    assert bridge_before == 20_000 * U  # A's and B's deposits: 9,000 each in the accounts, 2,000 in the channel
    cli = ("escape", "--l1-rpc", world.client.url, "--rollup", rollup, "--channel", "0x" + cid.hex())

    # nothing registered on the Adjudicator: the command says so and how
    with pytest.raises(ChannelNotConcluded) as e:
        run_cli(*cli)
    assert "nothing is registered" in e.value.message and "works while the rollup is frozen" in e.value.message
    assert f"challengePeriod={msg.challengePeriod}" in e.value.message

    # B registers the latest co-signed state (not final): A long 2 calls, and a position in an
    # instrument the rollup never listed (the L2 would drop it; the escape proves it has no mark)
    st = ChannelState(cid, 7, 700 * U, 1_300 * U,
                      tuple(sorted((ChannelPosition(CALL, 2 * U), ChannelPosition(NEVER_LISTED, -3 * U)),
                                   key=lambda p: p.instrument.encode())), False)
    d = state_digest(ch.config.domain, st)
    adj.challenge(fixed(msg), st, SA.sign(d), SB.sign(d), sender=sys_.outsider)
    with pytest.raises(ChannelNotConcluded) as e:
        run_cli(*cli)
    assert "turn 7 is registered and its challenge window closes at" in e.value.message

    # after the window: with a keystore the command concludes the channel, then escapes it;
    # B signs to have its share paid to another address (and pays the gas)
    sys_.advance(msg.challengePeriod + 1)
    b_addr = to_checksum(B.address)
    world.client.rpc("anvil_setBalance", [b_addr, hex(10**18)])
    monkeypatch.setenv("B_PW", "pw")
    elsewhere = sys_.outsider.address
    before = {a: bal(world, a) for a in (to_checksum(A.address), b_addr, elsewhere)}
    assert run_cli(*cli, "--keystore", keystore(tmp_path, "b", B.hex), "--password-env", "B_PW",
                   "--recipient", elsewhere) == 0
    out = capsys.readouterr().out
    assert "channel concluded on the Adjudicator in L1 tx" in out and "channel escape paid in L1 tx" in out
    assert adj.status(cid).concluded and adj.status(cid).state_hash == d

    # the expected split, independently: A long 2 calls at the final markLo; NEVER_LISTED counts 0
    state = ch.engine.state
    marks = {n: (lo, hi) for n, lo, hi in mark_table(state, ch.header(ch.head()).timestamp)}
    assert NEVER_LISTED not in marks and marks[CALL][0] > 0
    value_a = min(max(700 * U + 2 * U * marks[CALL][0] // U, 0), 2_000 * U)
    value_b = 2_000 * U - value_a
    printed = json.loads(out[out.index("{"):out.rindex("}") + 1])
    assert (printed["valueA"], printed["valueB"]) == (str(value_a), str(value_b))
    assert printed["recipientB"] == elsewhere and printed["stateHash"] == "0x" + d.hex()
    assert [(p["instrument"], p["listed"]) for p in printed["positions"]] == [(NEVER_LISTED, False), (CALL, True)]
    assert bal(world, A.address) == before[to_checksum(A.address)] + value_a
    assert bal(world, elsewhere) == before[elsewhere] + value_b and bal(world, b_addr) == before[b_addr]
    assert bal(world, sys_.bridge.address) == bridge_before - 2_000 * U

    # built again from L1 alone (the state read from the challenge calldata), it is refused now
    claim = channel_escape_claim(world.client, rollup, cid)
    assert claim.state == st and claim.value_a() == value_a and claim.total == 2_000 * U
    payer = TxManager(world.client, sys_.users[0])
    with pytest.raises(ContractRevert) as info:
        send_escape_channel(sys_.bridge, claim, payer)
    assert info.value.error == "ChannelAlreadyEscaped"

    # the accounts' own escapes still work: 9,000 each (their channel deposits are not in them)
    for k in (A, B):
        c = escape_claim(world.client, rollup, k.address)
        assert c.collateral == state.accounts[k.address].collateral == 9_000 * U
        b0 = bal(world, k.address)
        send_escape(sys_.bridge, c, payer)
        assert bal(world, k.address) == b0 + c.value()
    # every deposit went out exactly once
    assert bal(world, sys_.bridge.address) == 0
    assert bal(world, A.address) + bal(world, b_addr) + bal(world, elsewhere) - sum(before.values()) == bridge_before


def test_channel_state_given_and_checked(world: World, tmp_path, monkeypatch, capsys) -> None:
    """`--state FILE` (a state L1 calldata cannot give) must be the concluded one; A redirects
    its share through the Python API with its ChannelEscapeTo signature."""
    ch, sys_ = world.chain, world.system
    adj = Adjudicator.at(world.client, sys_.deployment.adjudicator)
    msg, cid = frozen_with_open_channel(world)
    rollup = sys_.deployment.rollup
    st = ChannelState(cid, 3, 1_500 * U, 500 * U, (), True)  # isFinal: concludes at once
    d = state_digest(ch.config.domain, st)
    adj.challenge(fixed(msg), st, SA.sign(d), SB.sign(d), sender=sys_.outsider)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"channelState": state_to_json(st._replace(balanceA=1_600 * U))}))
    with pytest.raises(InvalidRequest) as e:
        run_cli("escape", "--l1-rpc", world.client.url, "--rollup", rollup, "--channel", "0x" + cid.hex(),
                "--state", str(wrong))
    assert e.value.code == "not_the_concluded_state"
    right = tmp_path / "right.json"
    right.write_text(json.dumps(state_to_json(st)))
    assert run_cli("escape", "--l1-rpc", world.client.url, "--rollup", rollup, "--channel", "0x" + cid.hex(),
                   "--state", str(right)) == 0  # no keystore: prints the call, sends nothing
    assert '"valueA": "1500000000"' in capsys.readouterr().out
    assert not sys_.bridge.call("channelEscaped", cid)

    claim = channel_escape_claim(world.client, rollup, cid, state=st)
    a_key = Account.from_key(A.hex)
    to = sys_.outsider.address
    sig = sign_channel_escape_to(a_key, world.client.chain_id, sys_.bridge.address, cid, to)
    b0, t0 = bal(world, B.address), bal(world, to)
    r = send_escape_channel(sys_.bridge, claim, TxManager(world.client, sys_.users[1]), recipient_a=to,
                            signature_a=sig)
    ev = sys_.bridge.decode_logs(r, "ChannelEscaped")[0]
    assert (ev["recipientA"], ev["valueA"], ev["valueB"]) == (to, 1_500 * U, 500 * U)
    assert bal(world, to) == t0 + 1_500 * U and bal(world, B.address) == b0 + 500 * U


def test_a_channel_closed_on_l2_is_not_escaped(world: World) -> None:
    """Closed cooperatively in a final batch: its funds are in the accounts' leaves, so the
    channel escape refuses it and the accounts escape with them."""
    ch, sys_ = world.chain, world.system
    _msg, cid = opened(world)
    st = ChannelState(cid, 9, 400 * U, 1_600 * U, (), True)
    d = state_digest(ch.config.domain, st)
    ch.engine.channel_close(ChannelCloseTx(st, SA.sign(d), SB.sign(d)))
    ch.seal()
    submit(world, 1, ch.head())
    sys_.advance(CHALLENGE_WINDOW + ESCAPE_DELAY + 2)
    sys_.rollup.transact("freeze", sender=sys_.outsider)
    with pytest.raises(Conflict) as e:
        channel_escape_claim(world.client, sys_.deployment.rollup, cid)
    assert e.value.code == "channel_not_open" and "escape the accounts" in e.value.message
    c = escape_claim(world.client, sys_.deployment.rollup, A.address)
    assert c.collateral == 9_400 * U
