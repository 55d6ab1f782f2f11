"""Adjudicator (state channels, design.md "State channels"): channel ids and EIP-712 state
digests agree with eth-abi / eth-account computed independently here; every revert; the life of
a dispute (register, refute, conclude) on a real anvil clock; the typed client's events; gas."""

from __future__ import annotations

import random

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from sequencer.l1 import Deployment, EventTracker, L1Error, read_deployment
from sequencer.l1.adjudicator import (
    Adjudicator,
    ChallengeRegistered,
    ChannelStatus,
    Concluded,
    Fixed,
    Position,
    State,
    deploy_adjudicator,
    from_event,
)
from tests.contracts.l1_testkit import (
    L2_CHAIN_ID,
    SECP256K1_N,
    ZERO32,
    H,
    System,
    reverts,
)

PERIOD = 3600

# ---------------------------------------------------------------------------------------------
# the spec, independently: eth-abi for the channel id, eth-account for EIP-712
# ---------------------------------------------------------------------------------------------

EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
CHANNEL_TYPES = {
    "ChannelState": [
        {"name": "channelId", "type": "bytes32"},
        {"name": "turnNum", "type": "uint64"},
        {"name": "balanceA", "type": "uint256"},
        {"name": "balanceB", "type": "uint256"},
        {"name": "positions", "type": "ChannelPosition[]"},
        {"name": "isFinal", "type": "bool"},
    ],
    "ChannelPosition": [{"name": "instrument", "type": "string"}, {"name": "amount", "type": "int256"}],
}


def spec_channel_id(l2_chain_id: int, rollup: str, f: Fixed) -> bytes:
    return H(encode(["uint256", "address", "address", "address", "address", "address", "uint64", "uint32"],
                    [l2_chain_id, rollup, f.a, f.b, f.signer_a, f.signer_b, f.nonce, f.challenge_period]))


def typed_state(chain_id: int, rollup: str, s: State) -> dict:
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN, **CHANNEL_TYPES},
        "primaryType": "ChannelState",
        "domain": {"name": "optrollup", "version": "1", "chainId": chain_id, "verifyingContract": rollup},
        "message": {
            "channelId": s.channel_id, "turnNum": s.turn_num, "balanceA": s.balance_a, "balanceB": s.balance_b,
            "positions": [{"instrument": p.instrument, "amount": p.amount} for p in s.positions],
            "isFinal": s.is_final,
        },
    }


def spec_digest(chain_id: int, rollup: str, s: State) -> bytes:
    m = encode_typed_data(full_message=typed_state(chain_id, rollup, s))
    return H(b"\x19" + m.version + m.header + m.body)


def rsv(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def sign_digest(key: LocalAccount, digest: bytes, *, high_s: bool = False) -> bytes:
    """65-byte r ‖ s ‖ v over `digest`: low s (the rule), or its high-s twin (same signer)."""
    sig = Account.unsafe_sign_hash(digest, key.key)
    r, s, v = sig.r, sig.s, sig.v
    if (s > SECP256K1_N // 2) != high_s:
        s, v = SECP256K1_N - s, 55 - v
    return rsv(r, s, v)


# ---------------------------------------------------------------------------------------------
# a channel
# ---------------------------------------------------------------------------------------------

SIGNER_A = Account.from_key(H(b"optrollup test channel signer A"))
SIGNER_B = Account.from_key(H(b"optrollup test channel signer B"))
MALLORY = Account.from_key(H(b"optrollup test mallory"))
NAMES = ["ETH-27DEC26-3000-C", "ETH-27DEC26-3000-P", "ETH-27DEC26-3500-C"]


class Channel:
    """One channel of the session's system: its Fixed, id, and co-signing of states."""

    def __init__(self, s: System, adj: Adjudicator, nonce: int = 1, period: int = PERIOD) -> None:
        self.s, self.adj = s, adj
        self.fixed = Fixed(s.users[0].address, s.users[1].address, SIGNER_A.address, SIGNER_B.address, nonce,
                           period)
        self.id = spec_channel_id(L2_CHAIN_ID, s.rollup.address, self.fixed)

    def state(self, turn: int, positions: dict[str, int] | None = None, *, final: bool = False,
              balances: tuple[int, int] = (600_000_000, 400_000_000)) -> State:
        ps = State.sorted_positions(positions if positions is not None else {NAMES[0]: 2_000_000,
                                                                             NAMES[1]: -1_500_000})
        return State(self.id, turn, balances[0], balances[1], ps, final)

    def digest(self, st: State) -> bytes:
        return spec_digest(L2_CHAIN_ID, self.s.rollup.address, st)

    def sigs(self, st: State, key_a: LocalAccount = SIGNER_A, key_b: LocalAccount = SIGNER_B) -> tuple[bytes, bytes]:
        d = self.digest(st)
        return sign_digest(key_a, d), sign_digest(key_b, d)

    def challenge(self, st: State, sigs: tuple[bytes, bytes] | None = None, fixed: Fixed | None = None):
        a, b = sigs or self.sigs(st)
        return self.adj.challenge(fixed or self.fixed, st, a, b, sender=self.s.outsider)

    def conclude(self):
        return self.adj.conclude(self.fixed, sender=self.s.outsider)

    def status(self) -> ChannelStatus:
        return self.adj.status(self.id)


@pytest.fixture
def adj(system: System) -> Adjudicator:
    return system.deployment.adjudicator_contract(system.client)


@pytest.fixture
def ch(system: System, adj: Adjudicator) -> Channel:
    return Channel(system, adj)


def block_time(s: System, receipt) -> int:
    return s.client.get_block_timestamp(receipt.block_number)


# ---------------------------------------------------------------------------------------------
# deployment
# ---------------------------------------------------------------------------------------------


def test_deployed_with_the_system_for_its_rollup_and_l2_chain(system: System, adj: Adjudicator, tmp_path):
    d = system.deployment
    # created by the Rollup's constructor (no transaction of its own), known to the Rollup and the Bridge
    assert d.adjudicator == adj.address == system.rollup.call("adjudicator") == system.bridge.call("adjudicator")
    assert "Adjudicator" not in d.tx_hashes
    assert adj.l2_chain_id() == L2_CHAIN_ID != system.chain_id  # the L2 chain id, not L1's
    assert adj.rollup() == d.rollup
    dom = H(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                   [H(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                    H(b"optrollup"), H(b"1"), L2_CHAIN_ID, d.rollup]))
    assert adj.domain_separator() == dom
    c = adj.contract
    assert c.call("POSITION_TYPEHASH") == H(b"ChannelPosition(string instrument,int256 amount)")
    assert c.call("STATE_TYPEHASH") == H(b"ChannelState(bytes32 channelId,uint64 turnNum,uint256 balanceA,"
                                         b"uint256 balanceB,ChannelPosition[] positions,bool isFinal)"
                                         b"ChannelPosition(string instrument,int256 amount)")
    # the record: saved and loaded with its Adjudicator; discovered from the Rollup alone
    p = tmp_path / "deployment.json"
    d.save(p)
    assert Deployment.load(p).adjudicator == adj.address and Deployment.load(p).to_json() == d.to_json()
    assert read_deployment(system.client, d.rollup).adjudicator == adj.address
    assert read_deployment(system.client, d.rollup, adjudicator=adj.address.lower()).adjudicator == adj.address


def test_read_deployment_refuses_a_foreign_adjudicator(system: System):
    # another Adjudicator for the same (L2 chain, Rollup) certifies the same states, but it is
    # not the Rollup's: the record names only the canonical one
    for chain_id in (L2_CHAIN_ID, L2_CHAIN_ID + 1):
        other, _ = deploy_adjudicator(system.client, system.deployer, chain_id, system.rollup.address)
        with pytest.raises(L1Error, match="is not the Rollup's"):
            read_deployment(system.client, system.rollup.address, adjudicator=other.address)
    legacy = Deployment.from_json({k: v for k, v in system.deployment.to_json().items() if k != "adjudicator"})
    assert legacy != system.deployment and legacy.adjudicator is None
    assert legacy == Deployment(**{**system.deployment.__dict__, "adjudicator": None})
    with pytest.raises(L1Error, match="no Adjudicator"):
        legacy.adjudicator_contract(system.client)


def test_constructor_refuses_zero_rollup(system: System):
    reverts("ZeroAddress", deploy_adjudicator, system.client, system.deployer, L2_CHAIN_ID, "0x" + "00" * 20)


# ---------------------------------------------------------------------------------------------
# agreement with the spec (eth-abi / eth-account) over random channels and states
# ---------------------------------------------------------------------------------------------

UNICODE_NAMES = ["ETH-27DEC26-3000-C", "ETH-27DEC26-3000-P", "ETH", "ETH-", "BTC-1JAN27-100000-C", "Ωμέγα-1",
                 "ЭФИР-27DEC26-3000-C", "以太坊-看涨", "😀-MOON-C", "é", "e\u0301", "Z" * 33, "Z" * 32 + "Y",
                 "Z" * 64 + "\u00ff", "a\x00b", "a", "ETH-27DEC26-3000-C-with-a-very-long-suffix-beyond-32-bytes"]


def random_state(rng: random.Random, cid: bytes) -> State:
    names = rng.sample(UNICODE_NAMES, rng.randrange(0, 6))
    amounts = []
    for _ in names:
        k = rng.randrange(6)
        amounts.append([-(2**255), 2**255 - 1, -1, 1][k] if k < 4 else rng.choice([-1, 1]) * rng.randrange(1, 10**15))
    ps = State.sorted_positions(dict(zip(names, amounts, strict=True)))
    return State(cid, rng.choice([0, 1, rng.randrange(2**64)]), rng.randrange(2**256), rng.randrange(2**64), ps,
                 rng.random() < 0.5)


def test_channel_id_and_state_digest_agree_with_eth_abi_and_eth_account(system: System, adj: Adjudicator):
    rng = random.Random(712)
    rollup = system.rollup.address
    for i in range(40):
        keys = [Account.from_key(H(f"key {i} {k}".encode())).address for k in range(4)]
        f = Fixed(*keys, rng.randrange(2**64), rng.choice([0, 1, PERIOD, 2**32 - 1]))
        cid = adj.channel_id(f)
        assert cid == spec_channel_id(L2_CHAIN_ID, rollup, f), f
        s = random_state(rng, cid if i % 2 else rng.randbytes(32))
        assert adj.state_digest(s) == spec_digest(L2_CHAIN_ID, rollup, s), s
    # sanity: the positions really are part of the digest, in order and amount
    s = State(ZERO32, 1, 2, 3, (Position("A", 1), Position("B", -1)), False)
    assert adj.state_digest(s) != adj.state_digest(s._replace(positions=(Position("A", 1), Position("B", 1))))
    assert adj.state_digest(s) != adj.state_digest(s._replace(positions=(Position("A", 1),)))
    assert adj.state_digest(s._replace(positions=())) == spec_digest(L2_CHAIN_ID, rollup, s._replace(positions=()))


def test_bytewise_order_of_instruments(adj: Adjudicator):
    """Strictly ascending UTF-8 bytes: a proper prefix first, no duplicates, 32-byte words and
    lengths both count."""
    def digest(*names: str) -> bytes:
        return adj.state_digest(State(ZERO32, 0, 0, 0, tuple(Position(n, 1) for n in names), False))

    ok = [("ETH", "ETH-"), ("", "a"), ("a", "a\x00"), ("Z" * 32, "Z" * 32 + "\x00"), ("Z" * 32 + "Y", "Z" * 33),
          ("Y" + "Z" * 40, "Z"), ("e\u0301", "é"), ("é", "😀"), ("ETH-27DEC26-3000-C", "ETH-27DEC26-3000-P")]
    for lo, hi in ok:
        assert lo.encode() < hi.encode()
        digest(lo, hi)
        reverts("PositionsNotSorted", digest, hi, lo)
    for n in ("", "ETH", "Z" * 70):
        e = reverts("PositionsNotSorted", digest, n, n)
        assert e.error_args == {"index": 1}
    e = reverts("PositionsNotSorted", digest, "A", "B", "D", "C")
    assert e.error_args == {"index": 3}


def test_zero_amount_refused(adj: Adjudicator):
    s = State(ZERO32, 0, 0, 0, (Position("A", 1), Position("B", 0)), False)
    e = reverts("ZeroPositionAmount", adj.state_digest, s)
    assert e.error_args == {"index": 1}


# ---------------------------------------------------------------------------------------------
# the life of a dispute
# ---------------------------------------------------------------------------------------------


def test_challenge_refute_conclude(system: System, ch: Channel):
    s, adj = system, ch.adj
    start = s.client.block_number() + 1
    assert ch.status() == ChannelStatus(0, 0, ZERO32, False) and not ch.status().registered
    reverts("NoChallenge", ch.conclude)

    st5 = ch.state(5)
    r = ch.challenge(st5)
    t0 = block_time(s, r)
    fin = t0 + PERIOD
    assert adj.decode_receipt(r) == [ChallengeRegistered(ch.id, 5, fin, r.block_number, r.tx_hash, 0)]
    assert ch.status() == ChannelStatus(5, fin, ch.digest(st5), False)
    assert ch.status().window_open(t0) and not ch.status().concludable(t0)
    reverts("ChallengeWindowOpen", ch.conclude)

    # a refutation by a higher turn replaces the state, not the window
    s.next_at(t0 + PERIOD // 2)
    st7 = ch.state(7, {NAMES[2]: -3})
    r = ch.challenge(st7)
    assert adj.decode_receipt(r) == [ChallengeRegistered(ch.id, 7, fin, r.block_number, r.tx_hash, 0)]
    assert ch.status() == ChannelStatus(7, fin, ch.digest(st7), False)

    # the last second of the window still refutes; at finalizesAt the window is closed
    s.next_at(fin - 1)
    ch.challenge(ch.state(8))
    s.mine_at(fin)
    e = reverts("ChallengeWindowClosed", ch.challenge, ch.state(9))
    assert e.error_args == {"channelId": ch.id, "finalizesAt": fin}
    st8 = ch.state(8)
    assert ch.status().concludable(fin)

    s.next_at(fin + 5)
    r = ch.conclude()
    assert adj.decode_receipt(r) == [Concluded(ch.id, 8, ch.digest(st8), r.block_number, r.tx_hash, 0)]
    assert ch.status() == ChannelStatus(8, fin, ch.digest(st8), True)

    # concluded for good
    reverts("ChannelAlreadyConcluded", ch.conclude)
    e = reverts("ChannelAlreadyConcluded", ch.challenge, ch.state(100))
    assert e.error_args == {"channelId": ch.id}
    reverts("ChannelAlreadyConcluded", ch.challenge, ch.state(101, final=True))

    # the client's log reading: decoded, in chain order, filtered by channel
    evs = adj.events(start, "latest")
    assert [type(e).__name__ for e in evs] == ["ChallengeRegistered"] * 3 + ["Concluded"]
    assert [e.turn_num for e in evs] == [5, 7, 8, 8]
    assert all(e.channel_id == ch.id for e in evs)
    assert [e.turn_num for e in adj.challenges(start)] == [5, 7, 8]
    assert adj.conclusions(start, channel_id=ch.id) == [evs[-1]]
    assert adj.events(start, channel_id=H(b"another channel")) == []
    assert adj.events(evs[-1].block_number, evs[-1].block_number) == [evs[-1]]
    # the same through the chunked, reorg-aware tracker
    tracker = EventTracker(s.client, [adj.subscription()], start_block=start, chunk=2)
    assert [from_event(e) for e in tracker.poll().events] == evs


def test_refutation_does_not_extend_the_window(system: System, ch: Channel):
    r = ch.challenge(ch.state(1))
    fin = block_time(system, r) + PERIOD
    for k, at in enumerate((fin - PERIOD + 10, fin - 100, fin - 1)):
        system.next_at(at)
        r = ch.challenge(ch.state(2 + k))
        assert ch.adj.decode_receipt(r)[0].finalizes_at == fin
    assert ch.status().finalizes_at == fin
    system.mine_at(fin)
    ch.conclude()
    assert ch.status().concluded and ch.status().turn_num == 4


def test_is_final_concludes_at_once(system: System, ch: Channel):
    st = ch.state(3, {}, final=True)
    r = ch.challenge(st)
    now = block_time(system, r)
    assert ch.adj.decode_receipt(r) == [Concluded(ch.id, 3, ch.digest(st), r.block_number, r.tx_hash, 0)]
    assert ch.status() == ChannelStatus(3, now, ch.digest(st), True)
    reverts("ChannelAlreadyConcluded", ch.conclude)
    reverts("ChannelAlreadyConcluded", ch.challenge, ch.state(4, final=True))
    reverts("ChannelAlreadyConcluded", ch.challenge, ch.state(4))


def test_is_final_refutes_and_concludes_during_a_dispute(system: System, ch: Channel):
    ch.challenge(ch.state(10))
    reverts("TurnNotHigher", ch.challenge, ch.state(9, final=True))  # an older final state loses
    st = ch.state(11, final=True)
    r = ch.challenge(st)
    assert ch.adj.decode_receipt(r) == [Concluded(ch.id, 11, ch.digest(st), r.block_number, r.tx_hash, 0)]
    assert ch.status().concluded and ch.status().state_hash == ch.digest(st)


def test_stale_or_equal_turn_reverts(system: System, ch: Channel):
    ch.challenge(ch.state(5))
    for turn in (5, 4, 0):
        e = reverts("TurnNotHigher", ch.challenge, ch.state(turn, {NAMES[1]: 7}))
        assert e.error_args == {"channelId": ch.id, "registeredTurnNum": 5, "turnNum": turn}
    assert ch.status().turn_num == 5


def test_turn_zero_may_open_a_dispute_and_period_zero_concludes_next(system: System, adj: Adjudicator):
    c = Channel(system, adj, nonce=2, period=0)
    r = c.challenge(c.state(0))
    assert c.status().finalizes_at == block_time(system, r)
    reverts("ChallengeWindowClosed", c.challenge, c.state(1))
    c.conclude()
    assert c.status().concluded


def test_channels_are_independent(system: System, adj: Adjudicator):
    c1, c2 = Channel(system, adj, nonce=1), Channel(system, adj, nonce=2)
    assert c1.id != c2.id
    c1.challenge(c1.state(3, final=True))
    c2.challenge(c2.state(1))
    assert c1.status().concluded and not c2.status().concluded and c2.status().turn_num == 1
    # a state of one channel cannot be registered for the other
    e = reverts("ChannelIdMismatch", c2.challenge, c1.state(9), None, c2.fixed)
    assert e.error_args == {"expected": c2.id, "given": c1.id}


# ---------------------------------------------------------------------------------------------
# signatures and channel ids
# ---------------------------------------------------------------------------------------------


def test_wrong_key_reverts(system: System, ch: Channel):
    st = ch.state(1)
    e = reverts("WrongSigner", ch.challenge, st, ch.sigs(st, key_a=MALLORY))
    assert e.error_args == {"expected": SIGNER_A.address, "recovered": MALLORY.address}
    e = reverts("WrongSigner", ch.challenge, st, ch.sigs(st, key_b=MALLORY))
    assert e.error_args == {"expected": SIGNER_B.address, "recovered": MALLORY.address}
    a, b = ch.sigs(st)
    e = reverts("WrongSigner", ch.challenge, st, (b, a))  # swapped
    assert e.error_args == {"expected": SIGNER_A.address, "recovered": SIGNER_B.address}
    reverts("WrongSigner", ch.challenge, st, (a, a))
    # the accounts themselves are not the signers fixed at open
    reverts("WrongSigner", ch.challenge, st, ch.sigs(st, key_a=system.users[0], key_b=system.users[1]))
    # a signature over another state (a different turn) recovers someone else
    reverts("WrongSigner", ch.challenge, st, ch.sigs(ch.state(2)))
    assert not ch.status().registered


def test_signature_in_another_domain_reverts(system: System, ch: Channel):
    """Signed with the L1 chain id (or another verifying contract) instead of the L2 domain."""
    st = ch.state(1)
    for chain_id, contract in ((system.chain_id, system.rollup.address), (L2_CHAIN_ID, ch.adj.address)):
        d = spec_digest(chain_id, contract, st)
        reverts("WrongSigner", ch.challenge, st, (sign_digest(SIGNER_A, d), sign_digest(SIGNER_B, d)))


def test_malformed_and_high_s_signatures_revert(system: System, ch: Channel):
    st = ch.state(1)
    d = ch.digest(st)
    good_a, good_b = ch.sigs(st)
    high_a = sign_digest(SIGNER_A, d, high_s=True)
    assert Account._recover_hash(d, signature=high_a) == SIGNER_A.address  # a valid ECDSA signature ...
    e = reverts("InvalidSignature", ch.challenge, st, (high_a, good_b))  # ... refused: malleable
    assert e.error_args == {"expectedSigner": SIGNER_A.address}
    e = reverts("InvalidSignature", ch.challenge, st, (good_a, sign_digest(SIGNER_B, d, high_s=True)))
    assert e.error_args == {"expectedSigner": SIGNER_B.address}
    bad_v = good_a[:64] + bytes([29])
    for sig in (good_a[:64], good_a + b"\0", b"", bad_v, bytes(65)):
        reverts("InvalidSignature", ch.challenge, st, (sig, good_b))
    # v in {0, 1} is the same signature (Signatures.sol's one rule)
    ch.challenge(st, (good_a[:64] + bytes([good_a[64] - 27]), good_b))
    assert ch.status().turn_num == 1


def test_wrong_channel_id_reverts(system: System, ch: Channel):
    other = ch.fixed._replace(nonce=ch.fixed.nonce + 1)
    st = ch.state(1)
    e = reverts("ChannelIdMismatch", ch.challenge, st, None, other)
    assert e.error_args == {"expected": spec_channel_id(L2_CHAIN_ID, system.rollup.address, other), "given": ch.id}
    for f in (ch.fixed._replace(challenge_period=1), ch.fixed._replace(a=system.users[2].address),
              ch.fixed._replace(signer_a=MALLORY.address)):
        reverts("ChannelIdMismatch", ch.challenge, st, None, f)
    reverts("ChannelIdMismatch", ch.challenge, st._replace(channel_id=H(b"x")))


def test_unsorted_or_zero_positions_revert_in_challenge(system: System, ch: Channel):
    bad = ch.state(1)._replace(positions=(Position(NAMES[1], 1), Position(NAMES[0], 1)))
    reverts("PositionsNotSorted", ch.challenge, bad, (b"\0" * 65, b"\0" * 65))
    bad = ch.state(1)._replace(positions=(Position(NAMES[0], 0),))
    reverts("ZeroPositionAmount", ch.challenge, bad, (b"\0" * 65, b"\0" * 65))


def test_conclude_of_an_unknown_channel_reverts(system: System, ch: Channel):
    e = reverts("NoChallenge", ch.adj.conclude, ch.fixed._replace(nonce=99), sender=system.outsider)
    assert e.error_args["channelId"] == spec_channel_id(L2_CHAIN_ID, system.rollup.address, ch.fixed._replace(nonce=99))


def test_client_accepts_plain_sequences(system: System, ch: Channel):
    """Any sequence in field order, addresses as 0x hex or 20 raw bytes (the channel code's
    NamedTuples), works as a Fixed or a State."""
    st = ch.state(2)
    a, b = ch.sigs(st)
    plain = (st.channel_id, st.turn_num, st.balance_a, st.balance_b, [tuple(p) for p in st.positions], st.is_final)
    raw_fixed = tuple(bytes.fromhex(x[2:]) if isinstance(x, str) else x for x in ch.fixed)
    assert ch.adj.state_digest(plain) == ch.digest(st)
    assert ch.adj.channel_id(raw_fixed) == ch.adj.channel_id(tuple(ch.fixed)) == ch.id
    assert ch.adj.encode_challenge(ch.fixed, st, a, b) == ch.adj.contract.encode(
        "challenge", ch.fixed.to_abi(), st.to_abi(), a, b)
    ch.adj.challenge(raw_fixed, plain, a, b, sender=system.outsider)
    assert ch.status().turn_num == 2
    assert ch.adj.status("0x" + ch.id.hex()) == ch.status()


# ---------------------------------------------------------------------------------------------
# gas (contracts/GAS.md)
# ---------------------------------------------------------------------------------------------


def test_gas(system: System, adj: Adjudicator, gas):
    def keep(label, receipt, bound):
        gas.record(label, receipt.gas_used)
        assert receipt.gas_used <= bound, f"{label}: {receipt.gas_used} > {bound}"

    ch = Channel(system, adj, nonce=7)
    two = {NAMES[0]: 2_000_000, NAMES[1]: -1_500_000}
    keep("Adjudicator.challenge (register, 2 positions)", ch.challenge(ch.state(5, two)), 110_000)
    keep("Adjudicator.challenge (refutation, 2 positions)", ch.challenge(ch.state(6, two)), 70_000)
    system.advance(PERIOD)
    keep("Adjudicator.conclude", ch.conclude(), 45_000)
    coop = Channel(system, adj, nonce=8)
    keep("Adjudicator.challenge (isFinal: cooperative exit, 2 positions)",
         coop.challenge(coop.state(9, two, final=True)), 110_000)
    five = {f"ETH-27DEC26-{k}-C": (-1) ** k * 10_000 * (k + 1) for k in range(2000, 4500, 500)}
    big = Channel(system, adj, nonce=9)
    keep("Adjudicator.challenge (register, 5 positions)", big.challenge(big.state(1, five)), 130_000)
    none = Channel(system, adj, nonce=10)
    keep("Adjudicator.challenge (register, no positions)", none.challenge(none.state(1, {})), 100_000)
    # the most a channel state may hold (sequencer.core.channelmsg.MAX_POSITIONS = 256)
    many = {f"ETH-{d:02d}DEC26-{k}-{cp}": 10_000 * (k - 2000) * (1 if cp == "C" else -1)
            for d in range(1, 17) for k in range(2100, 2900, 100) for cp in "CP"}
    assert len(many) == 256
    big = Channel(system, adj, nonce=11)
    keep("Adjudicator.challenge (register, 256 positions)", big.challenge(big.state(1, many)), 1_500_000)
