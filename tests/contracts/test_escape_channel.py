"""The escape hatch for state channels: `Bridge.escapeChannel` pays out, once, the funds of a
channel still open in the last final state by the state the Adjudicator concluded it with (A:
balanceA + the value of A's positions at the final marks, clamped to [0, depositA + depositB];
B: the rest), and refuses everything else with a named error. Also: the Rollup creates its one
Adjudicator. Every expected figure is computed by hand (comments) and by the test kit's twin."""

from __future__ import annotations

import pytest
import rlp
from eth_utils import to_checksum_address

from sequencer.l1 import read_deployment
from sequencer.l1.adjudicator import Adjudicator, State
from tests.contracts.l1_testkit import (
    CHALLENGE_WINDOW,
    CHANNEL_CLOSED,
    CHANNEL_CONCLUDED,
    ESCAPE_DELAY,
    L2_CHAIN_ID,
    USDC,
    ZERO32,
    H,
    Marks,
    SparseTree,
    System,
    account_leaf,
    channel_claim,
    channel_leaf,
    escape_claim,
    make_batch,
    position_value,
    reverts,
    sign_channel_escape_to,
    sign_escape_to,
)
from tests.contracts.test_adjudicator import SIGNER_A, SIGNER_B, Channel

ZERO_ADDRESS = "0x" + "00" * 20

X = "ETH-27DEC26-3000-C"
Y = "BTC-27DEC26-90000-P"
Q = "ETH-26JUN26-2500-C"  # settled before the final state: not in the marks tree
MARKS = {X: (40_123_456, 40_500_000), Y: (16_900_000, 17_000_001)}

# the final state: accounts A (users[0]), B (users[1]), C (users[2]) after A and B opened the
# channel CH (600 + 400 USDC); a channel CL closed on L2 (its funds are back in A and B) and CC
# concluded on L2; D (outsider) only for the cap test (its leaf is not backed by deposits)
DEPOSITS = (2_000 * USDC, 1_500 * USDC, 500 * USDC)
A_COLL, B_COLL, C_COLL = 1_400 * USDC, 1_100 * USDC, 500 * USDC
DEP_A, DEP_B = 600 * USDC, 400 * USDC
TOTAL = DEP_A + DEP_B
D_COLL = sum(DEPOSITS) - 700 * USDC
IDX = {"A": 0, "B": 1, "C": 2, "CH": 3, "CL": 4, "CC": 5, "D": 6}

# the concluded state of CH: balances 550 / 450, A long 2 X, short 1.5 Y, long 3 Q
BAL = (550 * USDC, 450 * USDC)
POS = {X: 2_000_000, Y: -1_500_000, Q: 3_000_000}
# by hand: X long 2 @ lo 40.123456 -> +80,246,912; Y short 1.5 @ hi 17.000001 -> -25,500,001.5
#          -> floor -25,500,002; Q not in the marks tree -> 0
VALUE_A = 550_000_000 + 80_246_912 - 25_500_002  # 604,746,910
VALUE_B = TOTAL - VALUE_A  # 395,253,090


def share_a(balance_a: int, positions: dict[str, int], marks: Marks, total: int) -> int:
    """The twin: clamp(balanceA + Σ value(q) over listed instruments, 0, total)."""
    v = sum(position_value(q, *marks.marks[n]) for n, q in positions.items() if n in marks.marks)
    return min(max(balance_a + v, 0), total)


def test_hand_computed_shares_match_the_twin():
    m = Marks(MARKS)
    assert VALUE_A == 604_746_910 == share_a(BAL[0], POS, m, TOTAL)
    assert VALUE_B == 395_253_090
    assert share_a(990 * USDC, {X: 50_000_000}, m, TOTAL) == TOTAL  # 990 + 2,006.17 -> clamped
    assert share_a(5 * USDC, {Y: -100_000_000}, m, TOTAL) == 0  # 5 - 1,700.0001 -> clamped


class World:
    """A frozen rollup whose last final state holds the accounts and channels above."""

    def __init__(self, s: System, marks: Marks | None = None, *, freeze: bool = True) -> None:
        marks = Marks(MARKS) if marks is None else marks
        self.s, self.marks = s, marks
        self.adj: Adjudicator = s.deployment.adjudicator_contract(s.client)
        u0, u1, u2 = s.users
        for u, amount in zip(s.users, DEPOSITS, strict=True):
            s.bridge.transact("deposit", amount, u.address, sender=u)
        self.ch = Channel(s, self.adj, nonce=1)
        self.cl = Channel(s, self.adj, nonce=2)
        self.cc = Channel(s, self.adj, nonce=3)
        self.tree = tree = SparseTree()
        self.accounts = {"A": (u0.address, A_COLL), "B": (u1.address, B_COLL), "C": (u2.address, C_COLL),
                         "D": (s.outsider.address, D_COLL)}
        for k, (a, c) in self.accounts.items():
            tree.set(IDX[k], account_leaf(a, c))
        a, b = u0.address, u1.address
        self.closed_hash, self.concluded_hash = H(b"CL's final state"), H(b"CC's concluded state")
        tree.set(IDX["CH"], channel_leaf(self.ch.id, a, b, DEP_A, DEP_B))
        tree.set(IDX["CL"], channel_leaf(self.cl.id, a, b, 50 * USDC, 50 * USDC, CHANNEL_CLOSED, 5, self.closed_hash))
        tree.set(IDX["CC"], channel_leaf(self.cc.id, a, b, 70 * USDC, 0, CHANNEL_CONCLUDED, 6, self.concluded_hash))
        stale = Marks({n: (lo + 1, hi + 1) for n, (lo, hi) in marks.marks.items()} or {"OLD": (1, 1)})
        self.b0 = make_batch(s.genesis, [[]], state_root=tree.root(), message_cursor=3, marks_root=stale.root())
        s.rollup.transact("submitBatch", *self.b0.submit_args(), sender=s.poster)
        self.b1 = make_batch(self.b0.last_header, [[]], state_root=tree.root(), message_cursor=3,
                             marks_root=marks.root())
        s.rollup.transact("submitBatch", *self.b1.submit_args(), sender=s.poster)
        s.advance(CHALLENGE_WINDOW + ESCAPE_DELAY + 1)
        if freeze:
            s.rollup.transact("freeze", sender=s.outsider)
            assert s.rollup.call("lastFinalState") == (2, self.b1.last_header_hash, tree.root(), marks.root())

    @property
    def header(self) -> dict:
        return self.b1.last_header.as_dict()

    def claim(self, key: str = "CH", **over) -> dict:
        a, b = self.s.users[0].address, self.s.users[1].address
        c = {"CH": channel_claim(self.ch.id, a, b, DEP_A, DEP_B, IDX["CH"], self.tree),
             "CL": channel_claim(self.cl.id, a, b, 50 * USDC, 50 * USDC, IDX["CL"], self.tree, CHANNEL_CLOSED, 5,
                                 self.closed_hash),
             "CC": channel_claim(self.cc.id, a, b, 70 * USDC, 0, IDX["CC"], self.tree, CHANNEL_CONCLUDED, 6,
                                 self.concluded_hash)}[key]
        return {**c, **over}

    def state(self, turn: int = 9, positions: dict[str, int] | None = None, balances: tuple[int, int] = BAL,
              *, final: bool = True, ch: Channel | None = None) -> State:
        return (ch or self.ch).state(turn, POS if positions is None else positions, final=final, balances=balances)

    def conclude(self, st: State, ch: Channel | None = None) -> None:
        """`st` concludes its channel at once (isFinal), or registered and concluded after the window."""
        ch = ch or self.ch
        ch.challenge(st)
        if not st.is_final:
            self.s.advance(ch.fixed.challenge_period)
            ch.conclude()
        assert ch.status().concluded

    def marks_for(self, st: State) -> list[dict]:
        return [self.marks.mark(p.instrument) for p in st.positions]

    def escape(self, st: State, claim: dict | None = None, marks: list[dict] | None = None, *,
               header: dict | None = None, payees: dict | None = None):
        p = payees or {"recipientA": ZERO_ADDRESS, "signatureA": b"", "recipientB": ZERO_ADDRESS, "signatureB": b""}
        return self.s.bridge.transact("escapeChannel", header or self.header, claim or self.claim(), st.to_abi(),
                                      self.marks_for(st) if marks is None else marks, p, sender=self.s.outsider)

    def bal(self, who: str) -> int:
        return self.s.token.call("balanceOf", who)


@pytest.fixture
def world(system: System) -> World:
    return World(system)


# ---------------------------------------------------------------------------------------------
# the Rollup's one Adjudicator
# ---------------------------------------------------------------------------------------------


def test_the_rollup_creates_its_adjudicator(system: System):
    d, r, b = system.deployment, system.rollup, system.bridge
    adj = Adjudicator.at(system.client, r.call("adjudicator"))
    assert d.adjudicator == adj.address == b.call("adjudicator") != ZERO_ADDRESS
    assert adj.rollup() == d.rollup and adj.l2_chain_id() == L2_CHAIN_ID
    assert system.client.get_code(adj.address)
    # created by the Rollup's constructor, in the same transaction as the Bridge: the Rollup's
    # first two CREATEs (nonce 1 = the Adjudicator, nonce 2 = the Bridge; a contract starts at 1)
    def created(nonce: int) -> str:
        return to_checksum_address(H(rlp.encode([bytes.fromhex(d.rollup[2:]), nonce]))[12:])

    assert (created(1), created(2)) == (adj.address, d.bridge)
    assert read_deployment(system.client, d.rollup).adjudicator == adj.address
    assert system.bridge.call("CHANNEL_ESCAPE_TO_TYPEHASH") == H(
        b"ChannelEscapeTo(bytes32 channelId,address account,address recipient)")


# ---------------------------------------------------------------------------------------------
# payouts
# ---------------------------------------------------------------------------------------------


def test_escape_channel_pays_both_parties_once_and_the_accounts_still_escape(world: World, gas):
    s = world.s
    u0, u1, u2 = s.users
    st = world.state()
    assert [p.instrument for p in st.positions] == [Y, Q, X]  # bytewise order
    world.conclude(st)
    before = {u.address: world.bal(u.address) for u in s.users}
    held = world.bal(s.bridge.address)
    assert held == sum(DEPOSITS) == A_COLL + B_COLL + C_COLL + TOTAL
    r = world.escape(st)
    gas.record("Bridge.escapeChannel (after freeze, depth-32 proof, 2 positions at marks + 1 absent)", r.gas_used)
    assert world.bal(u0.address) == before[u0.address] + VALUE_A
    assert world.bal(u1.address) == before[u1.address] + VALUE_B
    assert world.bal(s.bridge.address) == held - TOTAL
    assert s.bridge.decode_logs(r, "ChannelEscaped")[0].args == {
        "channelId": world.ch.id, "recipientA": u0.address, "recipientB": u1.address, "valueA": VALUE_A,
        "valueB": VALUE_B, "paidA": VALUE_A, "paidB": VALUE_B, "stateHash": world.ch.digest(st)}
    assert s.bridge.call("channelEscaped", world.ch.id)
    # never twice
    e = reverts("ChannelAlreadyEscaped", world.escape, st)
    assert e.error_args == {"channelId": world.ch.id}
    # the accounts' own escapes are independent of the channel's
    for key, who in (("A", u0), ("B", u1), ("C", u2)):
        a, coll = world.accounts[key]
        b = world.bal(who.address)
        s.bridge.transact("escape", world.header, escape_claim(a, coll, IDX[key], world.tree), ZERO_ADDRESS, b"",
                          sender=s.outsider)
        assert world.bal(who.address) == b + coll
    # everything the Bridge held went out, nothing twice: A's and B's accounts and the channel
    assert world.bal(s.bridge.address) == 0
    assert world.bal(u0.address) + world.bal(u1.address) + world.bal(u2.address) == sum(before.values()) + held
    reverts("ChannelAlreadyEscaped", world.escape, st)


def test_a_state_registered_and_concluded_after_its_window(world: World, gas):
    """A non-final state (a dispute that nobody refuted) concludes after the window: the
    Adjudicator works while the Rollup is frozen. No positions: A gets exactly balanceA."""
    st = world.state(4, {}, (123 * USDC, 877 * USDC), final=False)
    world.conclude(st)
    u0, u1 = world.s.users[:2]
    a0, b0 = world.bal(u0.address), world.bal(u1.address)
    r = world.escape(st)
    gas.record("Bridge.escapeChannel (after freeze, depth-32 proof, no positions)", r.gas_used)
    assert (world.bal(u0.address) - a0, world.bal(u1.address) - b0) == (123 * USDC, 877 * USDC)


@pytest.mark.parametrize(("balances", "positions", "expect_a"), [
    # 990 + 50 X long @ 40.123456 = 990 + 2,006.1728 -> above the deposits: A gets all
    ((990 * USDC, 10 * USDC), {X: 50_000_000}, TOTAL),
    # 5 - 100 Y short @ 17.000001 = 5 - 1,700.0001 -> below zero: B gets all
    ((5 * USDC, 995 * USDC), {Y: -100_000_000}, 0),
    # just over the top: 999 + 1 X long @ 40.123456 -> 1,039.123456 -> clamped
    ((999 * USDC, 1 * USDC), {X: 1_000_000}, TOTAL),
    # just under: 959 + 40.123456 = 999.123456
    ((959 * USDC, 41 * USDC), {X: 1_000_000}, 999_123_456),
    # balances that do not add up to the deposits (the L2 would refuse the state): only balanceA counts
    ((2_000 * USDC, 0), {}, TOTAL),
    ((0, 2_000 * USDC), {}, 0),
    ((300 * USDC, 0), {Y: 1}, 300 * USDC + 16),  # long 1e-6 Y @ lo 16.9 -> 16.9 base units -> floor 16
    ((300 * USDC, 0), {Y: -1}, 300 * USDC - 18),  # short 1e-6 Y @ hi 17.000001 -> -17.000001 -> floor -18
])
def test_payout_clamped_to_the_deposits(world: World, balances, positions, expect_a):
    assert share_a(balances[0], positions, world.marks, TOTAL) == expect_a
    st = world.state(3, positions, balances)
    world.conclude(st)
    r = world.escape(st)
    ev = world.s.bridge.decode_logs(r, "ChannelEscaped")[0]
    assert (ev["valueA"], ev["valueB"]) == (expect_a, TOTAL - expect_a)
    assert (ev["paidA"], ev["paidB"]) == (expect_a, TOTAL - expect_a)


def test_absurd_amounts_saturate_instead_of_locking_the_channel(world: World):
    """Amounts no L2 state holds (only a state both signers signed): no overflow, the channel
    still pays out its deposits, the sign deciding who gets them."""
    for k, (q, expect_a) in enumerate(((2**255 - 1, TOTAL), (-(2**255), 0), (2**130, TOTAL))):
        st = world.state(20 + k, {X: q} if q > 0 else {Y: q}, (500 * USDC, 500 * USDC))
        snap = world.s.client.snapshot()
        world.conclude(st)
        ev = world.s.bridge.decode_logs(world.escape(st), "ChannelEscaped")[0]
        assert (ev["valueA"], ev["valueB"]) == (expect_a, TOTAL - expect_a)
        world.s.client.revert_to(snap)
    # a balance near 2^256 does not overflow either
    st = world.state(30, {Y: -100_000_000}, (2**256 - 1, 0))
    world.conclude(st)
    assert world.s.bridge.decode_logs(world.escape(st), "ChannelEscaped")[0]["valueA"] == TOTAL


def test_first_escape_freezes_and_the_balance_caps_the_payout(system: System):
    w = World(system, freeze=False)
    s = system
    st = w.state()
    w.conclude(st)
    # D's leaf (not backed) drains the Bridge down to 700 USDC
    r = s.bridge.transact("escape", w.header, escape_claim(s.outsider.address, D_COLL, IDX["D"], w.tree),
                          ZERO_ADDRESS, b"", sender=s.outsider)
    assert s.rollup.call("frozen") and s.bridge.decode_logs(r, "Escaped")[0]["paid"] == D_COLL
    assert w.bal(s.bridge.address) == 700 * USDC
    r = w.escape(st)
    ev = s.bridge.decode_logs(r, "ChannelEscaped")[0]
    # A first, then B with what is left: first come, first served
    assert (ev["valueA"], ev["valueB"], ev["paidA"], ev["paidB"]) == (VALUE_A, VALUE_B, VALUE_A,
                                                                      700 * USDC - VALUE_A)
    assert w.bal(s.bridge.address) == 0


def test_escape_channel_freezes_the_rollup_itself(system: System, gas):
    w = World(system, freeze=False)
    st = w.state()
    w.conclude(st)
    assert not system.rollup.call("frozen") and system.rollup.call("canFreeze")
    r = w.escape(st)
    gas.record("Bridge.escapeChannel (first: freezes the Rollup, 2 positions + 1 absent)", r.gas_used)
    assert system.rollup.call("frozen")
    assert system.rollup.decode_logs(r, "RollupFrozen")[0]["reason"] == 1


def test_not_frozen_and_not_freezable(system: System):
    s = system  # a live rollup: one batch, final, nothing overdue
    tree = SparseTree()
    adj = s.deployment.adjudicator_contract(s.client)
    ch = Channel(s, adj, nonce=1)
    tree.set(0, channel_leaf(ch.id, s.users[0].address, s.users[1].address, DEP_A, DEP_B))
    b = make_batch(s.genesis, [[]], state_root=tree.root(), marks_root=Marks(MARKS).root())
    s.rollup.transact("submitBatch", *b.submit_args(), sender=s.poster)
    s.advance(CHALLENGE_WINDOW)
    st = ch.state(1, {}, final=True, balances=BAL)
    ch.challenge(st)
    claim = channel_claim(ch.id, s.users[0].address, s.users[1].address, DEP_A, DEP_B, 0, tree)
    p = {"recipientA": ZERO_ADDRESS, "signatureA": b"", "recipientB": ZERO_ADDRESS, "signatureB": b""}
    reverts("FreezeNotAllowed", s.bridge.transact, "escapeChannel", b.last_header.as_dict(), claim, st.to_abi(), [],
            p, sender=s.outsider)


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------


def test_channel_leaf_must_be_proven_and_open(world: World):
    st = world.state()
    world.conclude(st)
    good = world.claim()
    # the proof has exactly 32 siblings
    for proof in (good["channelProof"][:31], good["channelProof"] + [ZERO32]):
        e = reverts("BadChannelProofLength", world.escape, st, {**good, "channelProof": proof})
        assert e.error_args == {"length": len(proof), "expected": 32}
    # any field of the leaf changed, another index or another leaf's proof
    for over in ({"depositA": DEP_A + 1}, {"depositB": DEP_B - 1}, {"a": world.s.users[1].address,
                                                                      "b": world.s.users[0].address},
                 {"status": CHANNEL_CLOSED}, {"closedTurnNum": 1}, {"closedStateHash": H(b"x")},
                 {"channelIndex": IDX["CL"]}, {"channelProof": world.tree.proof(IDX["CL"])},
                 {"channelIndex": IDX["CH"] + 2**32}):
        reverts("InvalidChannelProof", world.escape, st, {**good, **over})
    # an account leaf is not a channel leaf
    reverts("InvalidChannelProof", world.escape, st, {**good, "channelIndex": IDX["A"],
                                                       "channelProof": world.tree.proof(IDX["A"])})
    # the header of another final batch, or a forged one
    e = reverts("HeaderMismatch", world.escape, st, header=world.b0.last_header.as_dict())
    assert e.error_args == {"lastFinalHeaderHash": world.b1.last_header_hash,
                            "givenHeaderHash": world.b0.last_header_hash}
    forged = SparseTree()
    forged.set(IDX["CH"], channel_leaf(world.ch.id, world.s.users[0].address, world.s.users[1].address,
                                       DEP_A * 10, DEP_B))
    reverts("HeaderMismatch", world.escape, st, {**good, "depositA": DEP_A * 10,
                                                 "channelProof": forged.proof(IDX["CH"])},
            header={**world.header, "stateRoot": forged.root()})
    world.escape(st)


def test_a_channel_closed_or_concluded_on_l2_is_refused(world: World):
    """Its funds are already in the two account leaves: only the accounts escape."""
    for key, ch, status in (("CL", world.cl, CHANNEL_CLOSED), ("CC", world.cc, CHANNEL_CONCLUDED)):
        st = world.state(11, {}, (50 * USDC, 50 * USDC), ch=ch)
        world.conclude(st, ch)  # even if the Adjudicator concluded it too
        e = reverts("ChannelNotOpen", world.escape, st, world.claim(key))
        assert e.error_args == {"channelId": ch.id, "status": status}


def test_only_the_concluded_state_pays(world: World):
    s = world.s
    st = world.state(9)
    # nothing registered on the Adjudicator
    e = reverts("ChannelNotConcluded", world.escape, st)
    assert e.error_args == {"channelId": world.ch.id}
    # registered, window open; then passed but nobody concluded
    world.ch.challenge(world.state(8, final=False))
    reverts("ChannelNotConcluded", world.escape, world.state(8, final=False))
    s.advance(world.ch.fixed.challenge_period)
    reverts("ChannelNotConcluded", world.escape, world.state(8, final=False))
    world.ch.conclude()
    concluded = world.state(8, final=False)
    # any other state: a later turn (signed by both, never registered), other balances,
    # positions, the final flag
    for other in (st, world.state(8, balances=(BAL[1], BAL[0]), final=False),
                  world.state(8, {X: 2_000_000}, final=False), world.state(8, final=True)):
        e = reverts("NotConcludedState", world.escape, other)
        assert e.error_args == {"channelId": world.ch.id, "concludedStateHash": world.ch.digest(concluded),
                                "givenStateHash": world.ch.digest(other)}
    # a state of another channel
    e = reverts("StateChannelMismatch", world.escape, world.state(8, ch=world.cl, final=False))
    assert e.error_args == {"channelId": world.ch.id, "stateChannelId": world.cl.id}
    # unsorted positions: the Adjudicator's own check
    bad = concluded._replace(positions=tuple(reversed(concluded.positions)))
    reverts("PositionsNotSorted", world.escape, bad, marks=[world.marks.mark(p.instrument) for p in bad.positions])
    zero = concluded._replace(positions=(*concluded.positions[:1], concluded.positions[1]._replace(amount=0)))
    e = reverts("ZeroPositionAmount", world.escape, zero, marks=world.marks_for(zero))
    assert e.error_args == {"index": 1}
    world.escape(concluded)


def test_marks_must_be_the_final_ones(world: World):
    st = world.state()
    world.conclude(st)
    good = world.marks_for(st)
    assert [m["listed"] for m in good] == [True, False, True]  # Y, Q, X
    # one mark per position
    e = reverts("MarksLengthMismatch", world.escape, st, marks=good[:2])
    assert e.error_args == {"positions": 3, "marks": 2}
    reverts("MarksLengthMismatch", world.escape, st, marks=[*good, good[0]])
    # a better mark for A (X long at markHi), another index or proof, the stale batch's marks
    for i, over in ((2, {"markLo": MARKS[X][1]}), (0, {"markHi": MARKS[Y][0]}), (2, {"markIndex": 0}),
                    (0, {"markProof": world.marks.proof(X)}), (2, {"markProof": []})):
        e = reverts("InvalidMarkProof", world.escape, st, marks=[*good[:i], {**good[i], **over}, *good[i + 1:]])
        assert e.error_args == {"position": i}
    e = reverts("ProofTooLong", world.escape, st, marks=[{**good[0], "markProof": [ZERO32] * 33}, *good[1:]])
    assert e.error_args == {"length": 33, "max": 32}
    # a listed instrument cannot be passed off as absent (worth zero): Y is slot 0, X slot 1
    slot = world.marks._slot
    for i, n, neighbours in ((0, Y, []), (0, Y, [slot(0)]), (0, Y, [slot(0), slot(1)]), (2, X, [slot(0), slot(1)]),
                             (2, X, [slot(1)]), (2, X, [slot(0)])):
        fake = {**world.marks.mark(n), "listed": False, "neighbours": neighbours}
        assert reverts("InvalidAbsenceProof", world.escape, st,
                       marks=[*good[:i], fake, *good[i + 1:]]).error_args == {"position": i}
    world.escape(st)


NAMES5 = ["BTC-1", "ETH-2", "ETH-4", "SOL-6", "XRP-8"]


@pytest.mark.parametrize(("table", "absent", "shape"), [
    (NAMES5[:2], "AAA", "before the first leaf"),
    (NAMES5, "ETH-3", "between two leaves"),
    (NAMES5, "ZZZ", "after the last leaf, then padding"),
    (NAMES5[:4], "ZZZ", "after the last slot of a full tree"),
    (NAMES5[:1], "ZZZ", "a one-leaf tree, after it"),
    (NAMES5[:1], "AAA", "a one-leaf tree, before it"),
    ([], "ETH-3", "the empty tree"),
    (NAMES5, "ETH-2\x00", "a name extending a listed one"),
    (NAMES5, "ETH-", "a proper prefix of a listed name"),
])
def test_absent_instruments_count_zero(system: System, table, absent, shape):
    marks = Marks({n: (10 * USDC, 11 * USDC) for n in table})
    w = World(system, marks)
    positions = {absent: 5_000_000, **({table[0]: -1_000_000} if table else {})}
    st = w.state(9, positions)
    w.conclude(st)
    ms = w.marks_for(st)
    expect = BAL[0] + (-11 * USDC if table else 0)  # the listed short at markHi 11; the absent 0
    ev = system.bridge.decode_logs(w.escape(st, marks=ms), "ChannelEscaped")[0]
    assert ev["valueA"] == expect == share_a(BAL[0], positions, marks, TOTAL), shape


def test_forged_absence_proofs_are_refused(system: System):
    marks = Marks({n: (10 * USDC, 11 * USDC) for n in NAMES5})  # 5 leaves, depth 3, slots 5..7 padding
    w = World(system, marks)
    st = w.state(9, {"ETH-3": 5_000_000})
    w.conclude(st)
    good = marks.mark("ETH-3")
    n1, n2 = good["neighbours"]  # ETH-2 (slot 1), ETH-4 (slot 2)
    slot = marks._slot
    assert (n1["index"], n2["index"]) == (1, 2)

    def bad(neighbours, error="InvalidAbsenceProof"):
        e = reverts(error, w.escape, st, marks=[{**good, "neighbours": neighbours}])
        return e.error_args

    assert bad([]) == {"position": 0}
    bad([n1])  # only the lower neighbour: slot 1 is not the last slot
    bad([n2])  # only the upper neighbour: slot 2 is not slot 0
    bad([n1, n2, slot(3)])
    bad([slot(0), n2])  # not adjacent
    bad([n2, n1])  # wrong order
    bad([n1, slot(3)])  # not adjacent, and slot 3 is below nothing
    bad([slot(2), slot(3)])  # both above
    bad([slot(0), n1])  # both below
    bad([{**n1, "padding": True}, n2])  # padding cannot be the lower neighbour
    bad([n1, {**n2, "padding": True}])  # slot 2 is a leaf, not padding
    bad([n1, {**n2, "markLo": 1}])  # a neighbour's mark must be the committed one
    bad([n1, {**n2, "proof": n2["proof"][:2]}])  # proofs of one length
    bad([{**n1, "proof": n1["proof"][:2]}, {**n2, "proof": n2["proof"][:2]}])  # a shorter tree
    bad([slot(4), slot(5)])  # XRP-8 < ETH-3 is false: not below
    bad([slot(7)])  # padding in the last slot, alone
    assert bad([{**n1, "proof": [ZERO32] * 33}, n2], "ProofTooLong") == {"length": 33, "max": 32}
    w.escape(st, marks=[good])


def test_absence_between_the_last_leaf_and_padding(system: System):
    """A name after every instrument: the last leaf then a zero leaf; a zero leaf at an index
    holding a leaf, or after a non-last leaf, is refused."""
    marks = Marks({n: (10 * USDC, 11 * USDC) for n in NAMES5})
    w = World(system, marks)
    st = w.state(9, {"ZZZ": -5_000_000})
    w.conclude(st)
    good = marks.mark("ZZZ")
    assert [n["index"] for n in good["neighbours"]] == [4, 5] and good["neighbours"][1]["padding"]
    slot = marks._slot
    for ns in ([slot(3), {**slot(4), "padding": True}], [slot(5), slot(6)], [slot(4)]):
        reverts("InvalidAbsenceProof", w.escape, st, marks=[{**good, "neighbours": ns}])
    w.escape(st, marks=[good])


def test_payees_redirect_only_with_the_owners_signature(world: World):
    s = world.s
    u0, u1, u2 = s.users
    st = world.state()
    world.conclude(st)
    to = s.outsider.address
    cid = world.ch.id
    good = sign_channel_escape_to(u0, s.chain_id, s.bridge.address, cid, u0.address, to)

    def payees(ra=ZERO_ADDRESS, sa=b"", rb=ZERO_ADDRESS, sb=b""):
        return {"recipientA": ra, "signatureA": sa, "recipientB": rb, "signatureB": sb}

    # signed by B for A's share, for another channel, or EscapeTo (the account escape's type)
    e = reverts("BadOwnerSignature", world.escape, st,
                payees=payees(to, sign_channel_escape_to(u1, s.chain_id, s.bridge.address, cid, u0.address, to)))
    assert e.error_args == {"expected": u0.address, "recovered": u1.address}
    other = sign_channel_escape_to(u0, s.chain_id, s.bridge.address, world.cl.id, u0.address, to)
    assert reverts("BadOwnerSignature", world.escape, st, payees=payees(to, other)).error_args["expected"] == u0.address
    plain = sign_escape_to(u0, s.chain_id, s.bridge.address, u0.address, to)
    reverts("BadOwnerSignature", world.escape, st, payees=payees(to, plain))
    # B's side is checked against B
    e = reverts("BadOwnerSignature", world.escape, st, payees=payees(to, good, to, good))
    assert e.error_args["expected"] == u1.address
    # never to the Bridge or the token
    for bad_to in (s.bridge.address, s.token.address):
        sg = sign_channel_escape_to(u1, s.chain_id, s.bridge.address, cid, u1.address, bad_to)
        assert reverts("BadRecipient", world.escape, st, payees=payees(rb=bad_to, sb=sg)).error_args == {
            "recipient": bad_to}
    # A's share to `to` (A signed), B's to B itself (no signature needed when naming the account)
    before = {a: world.bal(a) for a in (to, u0.address, u1.address)}
    r = world.escape(st, payees=payees(to, good, u1.address, b""))
    ev = s.bridge.decode_logs(r, "ChannelEscaped")[0]
    assert (ev["recipientA"], ev["recipientB"]) == (to, u1.address)
    assert world.bal(to) == before[to] + VALUE_A and world.bal(u0.address) == before[u0.address]
    assert world.bal(u1.address) == before[u1.address] + VALUE_B
    assert u2.address not in (ev["recipientA"], ev["recipientB"])


def test_channel_leaf_matches_the_node(world: World):
    """The node's channel_leaf (sequencer.core.channelstate) is the test kit's eth-abi twin, which
    the escapes above prove on chain."""
    from sequencer.core.channelmsg import ChannelOpen
    from sequencer.core.channelstate import channel_leaf as node_channel_leaf
    from sequencer.core.state import Channel as NodeChannel

    a, b = (bytes.fromhex(u.address[2:]) for u in world.s.users[:2])
    o = ChannelOpen(a, b, bytes.fromhex(SIGNER_A.address[2:]), bytes.fromhex(SIGNER_B.address[2:]), DEP_A, DEP_B, 1,
                    3600)
    assert node_channel_leaf(world.ch.id, NodeChannel(o, 0)) == channel_leaf(world.ch.id, world.s.users[0].address,
                                                                             world.s.users[1].address, DEP_A, DEP_B)
    closed = NodeChannel(o, 0, CHANNEL_CLOSED, 5, world.closed_hash)
    assert node_channel_leaf(world.cl.id, closed) == channel_leaf(world.cl.id, world.s.users[0].address,
                                                                  world.s.users[1].address, DEP_A, DEP_B,
                                                                  CHANNEL_CLOSED, 5, world.closed_hash)
