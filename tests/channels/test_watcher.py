"""The channel watcher (channels/watcher.py): the pure policy `decide`, branch by branch and
against an independent statement of the rule over a whole grid of inputs; then, on a real anvil
with the Adjudicator deployed and states signed with real keys, the cheating drill (A registers
a stale turn, B's watcher refutes with its latest within the first half of the window, the
channel concludes in B's state), a watcher process killed with SIGKILL and restarted in the middle
of a window, fee bumping of an underpriced refutation, a late refutation, idempotence, and a
stored state L1 refuses."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import given
from hypothesis import strategies as st

from channels import ChannelStore, make_channel, verify_signatures
from channels.rules import Channel
from channels.watcher import (
    Decision,
    Held,
    Reason,
    Watcher,
    add_watch_parser,
    decide,
    decide_one,
    default_state_path,
    default_store_path,
    held_of,
)
from sequencer.core.channelmsg import (
    ChannelOpen,
    ChannelPosition,
    ChannelState,
    state_digest,
)
from sequencer.l1 import Anvil, AnvilError, L1Client, find_anvil
from sequencer.l1.adjudicator import (
    Adjudicator,
    ChallengeRegistered,
    ChannelStatus,
    Concluded,
    deploy_adjudicator,
)

REPO = Path(__file__).resolve().parents[2]
ZERO32 = b"\0" * 32
CID, CID2, CID3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
D_OURS, D_OTHER = b"\xaa" * 32, b"\xbb" * 32


# =============================================================================================
# decide: every branch
# =============================================================================================


def registered(turn: int, fin: int, digest: bytes = D_OTHER, concluded: bool = False) -> ChannelStatus:
    return ChannelStatus(turn, fin, digest, concluded)


NONE = ChannelStatus(0, 0, ZERO32, False)


def test_no_dispute():
    d = decide_one(CID, NONE, Held(5, D_OURS, 100), 1_000)
    assert d == Decision(CID, Reason.NO_DISPUTE, 5, 0, 0, None, False) and not d.refute
    assert decide_one(CID, NONE, None, 1_000).reason is Reason.NO_DISPUTE


def test_concluded_is_final_whatever_we_hold():
    st_ = registered(3, 1_100, concluded=True)
    for held in (None, Held(9, D_OURS, 100), Held(3, D_OURS, 100)):
        for now in (1_000, 1_100, 5_000):
            assert decide_one(CID, st_, held, now).reason is Reason.CONCLUDED


def test_nothing_held():
    d = decide_one(CID, registered(3, 1_100), None, 1_000)
    assert d.reason is Reason.NOTHING_HELD and d.turn is None and d.registered_turn == 3


def test_registered_newer_than_ours():
    d = decide_one(CID, registered(8, 1_100), Held(7, D_OURS, 100), 1_000)
    assert d.reason is Reason.REGISTERED_NEWER and d.turn == 7 and d.half_ends_at == 1_050


def test_registered_is_ours_then_nothing_again():
    """Once our turn is on chain the answer is REGISTERED_CURRENT: never a second refutation."""
    for now in (1_000, 1_099, 1_100, 9_999):
        d = decide_one(CID, registered(7, 1_100, D_OURS), Held(7, D_OURS, 100), now)
        assert d.reason is Reason.REGISTERED_CURRENT


def test_same_turn_other_digest_is_a_conflict():
    d = decide_one(CID, registered(7, 1_100, D_OTHER), Held(7, D_OURS, 100), 1_000)
    assert d.reason is Reason.CONFLICT and not d.refute


def test_window_closed():
    for now in (1_100, 1_101, 10**9):
        assert decide_one(CID, registered(3, 1_100), Held(7, D_OURS, 100), now).reason is Reason.WINDOW_CLOSED


def test_failed_turn_is_not_retried_but_a_newer_one_is():
    st_ = registered(3, 1_100)
    assert decide_one(CID, st_, Held(7, D_OURS, 100), 1_000, failed_turn=7).reason is Reason.FAILED
    assert decide_one(CID, st_, Held(7, D_OURS, 100), 1_000, failed_turn=9).reason is Reason.FAILED
    assert decide_one(CID, st_, Held(8, D_OURS, 100), 1_000, failed_turn=7).reason is Reason.REFUTE


def test_in_flight():
    d = decide_one(CID, registered(3, 1_100), Held(7, D_OURS, 100), 1_000, in_flight=True)
    assert d.reason is Reason.IN_FLIGHT and not d.refute


def test_refute_on_time_and_late_boundaries():
    # period 100, registered at 1_000: the first half is [1_000, 1_050); 1_050 on is late
    st_ = registered(3, 1_100)
    held = Held(7, D_OURS, 100)
    d = decide_one(CID, st_, held, 1_000)
    assert d == Decision(CID, Reason.REFUTE, 7, 3, 1_100, 1_050, False) and d.refute
    assert not decide_one(CID, st_, held, 1_049).late
    assert decide_one(CID, st_, held, 1_050).late
    assert decide_one(CID, st_, held, 1_099).late and decide_one(CID, st_, held, 1_099).refute
    # odd period 101, registered at 999: half at 1049.5, so 1049 is on time and 1050 late
    held = Held(7, D_OURS, 101)
    assert decide_one(CID, st_, held, 1_049).late is False
    assert decide_one(CID, st_, held, 1_050).late is True
    assert decide_one(CID, st_, held, 1_050).half_ends_at == 1_050
    # a refutation with an older clock still counts as on time (now < registration)
    assert decide_one(CID, st_, Held(7, D_OURS, 100), 0).late is False


def test_precedence_of_the_checks():
    # concluded beats everything; window closed beats failed and in flight
    assert decide_one(CID, registered(1, 100, concluded=True), None, 0, in_flight=True).reason is Reason.CONCLUDED
    assert decide_one(CID, registered(1, 100), Held(5, D_OURS, 100), 100, in_flight=True,
                      failed_turn=5).reason is Reason.WINDOW_CLOSED
    assert decide_one(CID, registered(1, 100), Held(5, D_OURS, 100), 50, in_flight=True,
                      failed_turn=5).reason is Reason.FAILED
    # an up-to-date channel in flight is just up to date
    assert decide_one(CID, registered(5, 100, D_OURS), Held(5, D_OURS, 100), 50,
                      in_flight=True).reason is Reason.REGISTERED_CURRENT


def test_decide_orders_refutations_by_urgency_and_keeps_the_rest():
    statuses = {CID: NONE, CID2: registered(1, 2_000), CID3: registered(1, 1_500), b"\x04" * 32: registered(1, 1_800)}
    held = {CID2: Held(2, D_OURS, 1_000), CID3: Held(2, D_OURS, 1_000), b"\x04" * 32: Held(2, D_OURS, 1_000)}
    out = decide(statuses, held, 1_000, in_flight={b"\x04" * 32})
    assert [(d.channel_id, d.reason) for d in out] == [
        (CID3, Reason.REFUTE), (CID2, Reason.REFUTE), (CID, Reason.NO_DISPUTE), (b"\x04" * 32, Reason.IN_FLIGHT)]
    assert out[0].late and not out[1].late  # 1_500 - 1_000 = 500 <= 1_000 / 2
    assert decide({}, {}, 0) == []
    assert decide({CID2: registered(1, 2_000)}, {}, 0)[0].reason is Reason.NOTHING_HELD
    assert decide({CID2: registered(1, 2_000)}, held, 0, failed={CID2: 2})[0].reason is Reason.FAILED


def test_held_of():
    ch = _channel_for(31337, b"\x42" * 20, period=77)
    assert held_of(ch, None) is None
    st_ = ChannelState(ch.id, 4, 1, 2, (), False)
    from channels.store import Cosigned
    assert held_of(ch, Cosigned(st_, D_OURS, b"a", b"b")) == Held(4, D_OURS, 77)


# the rule stated once more, independently, and checked over a grid of every combination


def reference(status: ChannelStatus, held: Held | None, now: int, busy: bool, failed: int | None) -> tuple:
    """(refute?, late?) straight from the design: refute iff a dispute is open on L1
    (registered, not concluded, now < finalizesAt), we hold a co-signed turn above the
    registered one, and we are neither sending it nor know it unusable; late iff at least half of
    the window [finalizesAt - period, finalizesAt) has passed."""
    open_ = status.finalizes_at != 0 and not status.concluded and now < status.finalizes_at
    ours_newer = held is not None and held.turn > status.turn_num
    usable = failed is None or held is None or held.turn > failed
    refute = open_ and ours_newer and usable and not busy
    if not refute:
        return (False, False)
    assert held is not None
    started = status.finalizes_at - held.challenge_period
    return (True, now - started >= held.challenge_period / 2)


def test_decide_against_the_reference_over_a_grid():
    n = 0
    statuses = [NONE] + [registered(t, f, dg, c) for t in (0, 1, 2) for f in (10, 25) for dg in (D_OURS, D_OTHER)
                         for c in (False, True)]
    helds = [None] + [Held(t, dg, p) for t in (0, 1, 2, 3) for dg in (D_OURS, D_OTHER) for p in (0, 1, 10, 15)]
    for s, h, now, busy, failed in itertools.product(statuses, helds, range(0, 28, 3), (False, True),
                                                     (None, 1, 3)):
        d = decide_one(CID, s, h, now, in_flight=busy, failed_turn=failed)
        assert (d.refute, d.late) == reference(s, h, now, busy, failed), (s, h, now, busy, failed, d)
        if h is not None and s.registered and not s.concluded and h.turn == s.turn_num:
            assert d.reason is (Reason.REGISTERED_CURRENT if h.digest == s.state_hash else Reason.CONFLICT)
        n += 1
    assert n > 20_000


@given(st.integers(0, 2**64 - 1), st.integers(1, 2**64 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.booleans())
def test_decide_against_the_reference_at_any_size(reg: int, fin: int, period: int, ours: int, now: int, conc: bool):
    s = registered(reg, fin, D_OTHER, conc)
    h = Held(ours, D_OURS, period)
    d = decide_one(CID, s, h, now)
    assert (d.refute, d.late) == reference(s, h, now, False, None)


# =============================================================================================
# on a real anvil
# =============================================================================================

L2_CHAIN_ID = 424242
ROLLUP = "0x" + "42" * 20  # the Adjudicator only uses it as its EIP-712 verifyingContract
PERIOD = 120  # seconds of L1 time; the first half (60s) is far more than the watcher needs
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SIGNER_A = Account.from_key(bytes.fromhex("a1" * 32))
SIGNER_B = Account.from_key(bytes.fromhex("b2" * 32))
MALLORY = Account.from_key(bytes.fromhex("c3" * 32))
INSTRUMENTS = ("ETH-27DEC26-3000-C", "ETH-27DEC26-3000-P")
DEPOSIT = 1_000 * 10**6


def _addr(a: str | LocalAccount) -> bytes:
    return bytes.fromhex((a if isinstance(a, str) else a.address)[2:])


def _channel_for(l2: int, rollup: bytes, *, period: int = PERIOD, nonce: int = 1) -> Channel:
    op = ChannelOpen(b"\x0a" * 20, b"\x0b" * 20, _addr(SIGNER_A), _addr(SIGNER_B), DEPOSIT, DEPOSIT, nonce, period)
    return make_channel(l2, rollup, op)


def sign(key: LocalAccount, digest: bytes) -> bytes:
    """65 bytes r ‖ s ‖ v, low s (what the Adjudicator accepts)."""
    sig = Account.unsafe_sign_hash(digest, key.key)
    r, s, v = sig.r, sig.s, sig.v
    if s > SECP256K1_N // 2:
        s, v = SECP256K1_N - s, 55 - v
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def state(ch: Channel, turn: int, *, final: bool = False) -> ChannelState:
    """Turn `turn`: A has bought `turn` x 0.01 calls and sold some puts; balances move with it."""
    moved = turn * 1_000_000
    positions = (ChannelPosition(INSTRUMENTS[0], turn * 10_000), ChannelPosition(INSTRUMENTS[1], -5_000))
    return ChannelState(ch.id, turn, DEPOSIT - moved, DEPOSIT + moved, positions if turn else (), final)


def cosign(ch: Channel, s: ChannelState, key_b: LocalAccount = SIGNER_B) -> tuple[bytes, bytes, bytes]:
    digest = state_digest(ch.domain, s)
    return digest, sign(SIGNER_A, digest), sign(key_b, digest)


@dataclass
class L1:
    node: Anvil
    client: L1Client
    adj: Adjudicator
    deployer: LocalAccount
    cheater: LocalAccount  # A's L1 account: registers the stale state
    gas: LocalAccount      # pays for B's refutations
    anyone: LocalAccount   # concludes

    def now(self) -> int:
        return self.client.get_block_timestamp()

    def automine(self, on: bool) -> None:
        self.client.rpc("evm_setAutomine", [on])

    def pending(self, address: str) -> int:
        return (self.client.get_transaction_count(address, "pending")
                - self.client.get_transaction_count(address, "latest"))


@pytest.fixture
def l1() -> Iterator[L1]:
    try:
        find_anvil()
    except AnvilError as exc:
        pytest.fail(str(exc))
    with Anvil(accounts=5) as node, node.client() as client:
        deployer, cheater, gas, anyone = node.accounts[:4]
        adj, _ = deploy_adjudicator(client, deployer, L2_CHAIN_ID, ROLLUP)
        yield L1(node, client, adj, deployer, cheater, gas, anyone)


@dataclass
class Party:
    """B: its data dir, its channel store with turns 1..top co-signed, and the channel."""

    data_dir: Path
    store: ChannelStore
    ch: Channel
    top: int

    def latest_digest(self) -> bytes:
        co = self.store.latest(self.ch.id)
        assert co is not None
        return co.digest


def make_party(tmp: Path, l1: L1, top: int, *, nonce: int = 1, period: int = PERIOD) -> Party:
    ch = _channel_for(L2_CHAIN_ID, _addr(ROLLUP), period=period, nonce=nonce)
    assert ch.domain == l1.adj.domain_separator()
    store = ChannelStore(default_store_path(tmp))
    store.put_channel(ch)
    for t in range(1, top + 1):
        s = state(ch, t)
        digest, sa, sb = cosign(ch, s)
        assert verify_signatures(ch, s, sa, sb) == digest
        store.record_cosigned(s, digest, sa, sb)
    return Party(tmp, store, ch, top)


def challenge(l1: L1, ch: Channel, turn: int, sender: LocalAccount | None = None):
    """A (or `sender`) registers its co-signed turn `turn`."""
    from sequencer.core.channelmsg import fixed_of

    s = state(ch, turn)
    _, sa, sb = cosign(ch, s)
    return l1.adj.challenge(fixed_of(ch.open), s, sa, sb, sender=sender or l1.cheater)


def conclude_after_window(l1: L1, ch: Channel) -> Concluded:
    from sequencer.core.channelmsg import fixed_of

    fin = l1.adj.status(ch.id).finalizes_at
    l1.client.set_next_block_timestamp(max(fin, l1.now() + 1))
    l1.client.mine()
    r = l1.adj.conclude(fixed_of(ch.open), sender=l1.anyone)
    (ev,) = l1.adj.decode_receipt(r)
    assert isinstance(ev, Concluded)
    return ev


def wait_for(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def block_time(l1: L1, block: int) -> int:
    return l1.client.get_block_timestamp(block)


def registrations(l1: L1, ch: Channel) -> list[int]:
    return [e.turn_num for e in l1.adj.challenges(0, channel_id=ch.id)]


# ---------------------------------------------------------------------------------------------
# the cheating drill, in process (Watcher.run in an event loop)
# ---------------------------------------------------------------------------------------------


@pytest.mark.anvil
def test_cheating_drill(tmp_path: Path, l1: L1):
    b = make_party(tmp_path, l1, top=10)
    w = Watcher(b.store, l1.adj, l1.gas, poll_seconds=0.1, state_path=default_state_path(tmp_path))
    runner = threading.Thread(target=asyncio.run, args=(w.run(),), daemon=True)
    runner.start()
    try:
        wait_for(lambda: default_state_path(tmp_path).exists(), what="the watcher's first tick")
        # A registers turn 5 while B holds turn 10 (5 turns newer)
        r = challenge(l1, b.ch, 5)
        (reg,) = l1.adj.decode_receipt(r)
        assert isinstance(reg, ChallengeRegistered) and reg.turn_num == 5
        registered_at = block_time(l1, r.block_number)
        assert reg.finalizes_at == registered_at + PERIOD
        wait_for(lambda: l1.adj.status(b.ch.id).turn_num == 10, what="the refutation")
        wait_for(lambda: w.refutations and w.refutations[0].outcome == "included", what="the watcher to see it")
    finally:
        w.stop()
        runner.join(20)
    assert not runner.is_alive()
    (ref,) = w.refutations
    assert (ref.outcome, ref.turn, ref.registered_turn, ref.late) == ("included", 10, 5, False)
    refuted_at = block_time(l1, ref.block_number)
    assert registered_at <= refuted_at < registered_at + PERIOD // 2  # within the first half
    st_ = l1.adj.status(b.ch.id)
    assert st_ == ChannelStatus(10, reg.finalizes_at, b.latest_digest(), False)  # the window kept its end
    # the state file records the cursor and the refutation
    saved = json.loads(default_state_path(tmp_path).read_text())
    assert saved["adjudicator"] == l1.adj.address and saved["cursor"]["block"] >= r.block_number
    assert saved["refutations"]["0x" + b.ch.id.hex()]["txHash"] == ref.tx_hash
    # after the window the channel concludes in B's latest state
    ev = conclude_after_window(l1, b.ch)
    assert (ev.channel_id, ev.turn_num, ev.state_hash) == (b.ch.id, 10, b.latest_digest())
    assert registrations(l1, b.ch) == [5, 10]  # refuted once


# ---------------------------------------------------------------------------------------------
# the watcher as a process, killed with SIGKILL and restarted in the middle of the window
# ---------------------------------------------------------------------------------------------


class Proc:
    """`optrollup channels watch ...` with its output in a log file."""

    def __init__(self, tmp: Path, name: str, args: list[str]) -> None:
        self.log = tmp / f"{name}.log"
        self._f = open(self.log, "wb")  # noqa: SIM115 - closed by kill9/terminate
        self.p = subprocess.Popen([sys.executable, "-m", "sequencer.cli", "channels", "watch", *args], cwd=REPO,
                                  stdout=self._f, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(10)
        self._f.close()

    def terminate(self) -> int:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGTERM)
        rc = self.p.wait(20)
        self._f.close()
        return rc


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        if p.p.poll() is None:
            p.kill9()


def keystore(tmp: Path, acct: LocalAccount) -> tuple[Path, Path]:
    ks, pw = tmp / "gas.keystore.json", tmp / "password"
    pw.write_text("watcher password\n")
    ks.write_text(json.dumps(Account.encrypt(acct.key, "watcher password", kdf="pbkdf2", iterations=2)))
    return ks, pw


@pytest.mark.anvil
def test_restart_in_the_middle_of_the_window(tmp_path: Path, l1: L1, procs: list[Proc]):
    b = make_party(tmp_path, l1, top=10)
    b.store.close()  # the process opens it (one LevelDB owner at a time)
    ks, pw = keystore(tmp_path, l1.gas)
    args = ["--data-dir", str(tmp_path), "--keystore", str(ks), "--password-file", str(pw),
            "--l1-rpc", l1.node.url, "--adjudicator", l1.adj.address, "--poll-seconds", "0.1"]
    state_file = default_state_path(tmp_path)

    def run(name: str) -> Proc:
        p = Proc(tmp_path, name, args)
        procs.append(p)
        return p

    # 1. a first run persists its cursor, then dies (SIGKILL) before anything happens
    p1 = run("run1")
    wait_for(state_file.exists, what="run 1's state file")
    cursor1 = json.loads(state_file.read_text())["cursor"]["block"]
    p1.kill9()

    # 2. while no watcher runs, A registers the stale turn 5
    r = challenge(l1, b.ch, 5)
    registered_at = block_time(l1, r.block_number)
    assert r.block_number > cursor1

    # 3. a second run finds it from the persisted cursor and sends its refutation, but the
    #    chain mines nothing (automine off), and it is killed with the refutation in the mempool
    l1.automine(False)
    p2 = run("run2")
    wait_for(lambda: l1.pending(l1.gas.address) > 0, what="run 2's refutation in the mempool")
    p2.kill9()
    assert "ChallengeRegistered turn 5" in p2.text()  # read from the cursor, not just the status
    assert "refuting with turn 10" in p2.text()
    assert l1.adj.status(b.ch.id).turn_num == 5
    # ... and that refutation is lost too (a node restart, a pool eviction)
    l1.client.rpc("anvil_dropAllTransactions")
    assert l1.pending(l1.gas.address) == 0

    # 4. a third run re-reads the status at start and refutes again; the chain mines it
    p3 = run("run3")
    wait_for(lambda: l1.pending(l1.gas.address) > 0, what="run 3's refutation in the mempool")
    l1.client.mine()
    l1.automine(True)
    wait_for(lambda: l1.adj.status(b.ch.id).turn_num == 10, what="the refutation included")
    wait_for(lambda: "included in L1 block" in p3.text(), what="run 3 seeing it included")
    assert p3.terminate() == 0  # SIGTERM stops it cleanly

    (ref,) = [e for e in l1.adj.challenges(0, channel_id=b.ch.id) if e.turn_num == 10]
    assert registered_at <= block_time(l1, ref.block_number) < registered_at + PERIOD // 2
    assert l1.client.get_transaction(ref.tx_hash)["from"].lower() == l1.gas.address.lower()
    saved = json.loads(state_file.read_text())
    assert saved["refutations"]["0x" + b.ch.id.hex()]["turn"] == 10
    ev = conclude_after_window(l1, b.ch)
    with ChannelStore(default_store_path(tmp_path)) as store:
        latest = store.latest(b.ch.id)
    assert latest is not None and (ev.turn_num, ev.state_hash) == (10, latest.digest)
    assert registrations(l1, b.ch) == [5, 10]


# ---------------------------------------------------------------------------------------------
# fee bumping: the first refutation is priced under the next block's base fee
# ---------------------------------------------------------------------------------------------


@pytest.mark.anvil
def test_underpriced_refutation_is_bumped_until_included(tmp_path: Path, l1: L1):
    b = make_party(tmp_path, l1, top=7)
    challenge(l1, b.ch, 2)
    l1.automine(False)
    w = Watcher(b.store, l1.adj, l1.gas, poll_seconds=0.1, bump_after=0.3)
    (d, *_) = w.tick()
    assert d.reason is Reason.REFUTE and (d.turn, d.registered_turn) == (7, 2)
    wait_for(lambda: l1.pending(l1.gas.address) == 1, what="the first attempt")
    first = w.txm.current[0]
    # the base fee jumps far above what the first attempt offers: a block is mined without it
    l1.client.rpc("anvil_setNextBlockBaseFeePerGas", [hex(first.max_fee * 50)])
    l1.client.mine()
    assert l1.client.get_block("latest")["transactions"] == []
    assert l1.client.get_receipt(first.tx_hash) is None and l1.adj.status(b.ch.id).turn_num == 2
    # the watcher re-signs with bumped fees; the next block includes it
    wait_for(lambda: any(a.max_fee > int(l1.client.get_block("pending")["baseFeePerGas"], 16)
                         for a in w.txm.current), what="a bumped attempt above the base fee")
    l1.client.mine()
    assert w.join(20)
    (ref,) = w.refutations
    assert ref.outcome == "included" and len(ref.attempts) >= 2
    assert ref.tx_hash != first.tx_hash and ref.attempts[0] == first.tx_hash
    tx = l1.client.get_transaction(ref.tx_hash)
    assert int(tx["maxFeePerGas"], 16) > first.max_fee and int(tx["nonce"], 16) == 0  # the same nonce
    assert l1.adj.status(b.ch.id).turn_num == 7
    # never again for that turn
    l1.automine(True)
    for _ in range(3):
        (d, *_) = w.tick()
        assert d.reason is Reason.REGISTERED_CURRENT
    assert w.join(5) and len(w.refutations) == 1
    assert l1.client.get_transaction_count(l1.gas.address, "pending") == 1


# ---------------------------------------------------------------------------------------------
# late, idempotent, unusable, new and foreign channels
# ---------------------------------------------------------------------------------------------


@pytest.mark.anvil
def test_late_refutation_is_still_sent_and_flagged(tmp_path: Path, l1: L1, caplog: pytest.LogCaptureFixture):
    b = make_party(tmp_path, l1, top=4)
    r = challenge(l1, b.ch, 1)
    registered_at = block_time(l1, r.block_number)
    l1.client.set_next_block_timestamp(registered_at + PERIOD // 2 + 5)  # the first half is over
    l1.client.mine()
    w = Watcher(b.store, l1.adj, l1.gas, poll_seconds=0.1)
    with caplog.at_level(logging.INFO, logger="optrollup.channels.watcher"):
        (d, *_) = w.tick()
        assert d.refute and d.late and d.half_ends_at == registered_at + PERIOD // 2
        assert w.join(20)
    (ref,) = w.refutations
    assert ref.outcome == "included" and ref.late
    assert l1.adj.status(b.ch.id).turn_num == 4
    assert any(rec.levelno == logging.ERROR and "LATE" in rec.getMessage() for rec in caplog.records)


@pytest.mark.anvil
def test_already_registered_latest_sends_nothing(tmp_path: Path, l1: L1):
    b = make_party(tmp_path, l1, top=6)
    challenge(l1, b.ch, 3)
    challenge(l1, b.ch, 6, sender=l1.anyone)  # someone (B's service, a friend) already refuted
    w = Watcher(b.store, l1.adj, l1.gas, poll_seconds=0.1)
    (d, *_) = w.tick()
    assert d.reason is Reason.REGISTERED_CURRENT
    assert w.join(5) and w.refutations == []
    assert l1.client.get_transaction_count(l1.gas.address) == 0


@pytest.mark.anvil
def test_refutation_mined_in_between_counts_as_done(tmp_path: Path, l1: L1):
    """The decision was taken, but before the watcher's transaction someone else's (or an earlier
    run's) refutation with the same turn was mined: nothing is sent, the outcome is "already"."""
    b = make_party(tmp_path, l1, top=6)
    challenge(l1, b.ch, 3)
    w = Watcher(b.store, l1.adj, l1.gas, poll_seconds=0.1)
    d = decide_one(b.ch.id, l1.adj.status(b.ch.id), held_of(b.ch, b.store.latest(b.ch.id)), l1.now())
    assert d.refute
    challenge(l1, b.ch, 6, sender=l1.anyone)
    co = b.store.latest(b.ch.id)
    assert co is not None
    w._start_refutation(d, b.ch, co)  # the race, staged
    assert w.join(20)
    (ref,) = w.refutations
    assert ref.outcome == "already" and "TurnNotHigher" in ref.error
    assert l1.client.get_transaction_count(l1.gas.address) == 0


@pytest.mark.anvil
def test_unusable_stored_state_is_not_retried_but_a_newer_one_is(tmp_path: Path, l1: L1):
    b = make_party(tmp_path, l1, top=3)
    bad = state(b.ch, 4)
    digest, sa, _ = cosign(b.ch, bad)
    b.store.record_cosigned(bad, digest, sa, sign(MALLORY, digest))  # the store trusts its callers
    challenge(l1, b.ch, 2)
    w = Watcher(b.store, l1.adj, l1.gas, poll_seconds=0.1)
    assert w.tick()[0].refute and w.join(20)
    (ref,) = w.refutations
    assert ref.outcome == "failed" and "WrongSigner" in ref.error
    for _ in range(2):
        assert w.tick()[0].reason is Reason.FAILED
    assert len(w.refutations) == 1
    # a newer, well-signed state is tried
    good = state(b.ch, 5)
    b.store.record_cosigned(good, *cosign(b.ch, good))
    (d, *_) = w.tick()
    assert d.refute and d.turn == 5 and w.join(20)
    assert w.refutations[-1].outcome == "included" and l1.adj.status(b.ch.id).turn_num == 5


@pytest.mark.anvil
def test_channels_added_later_are_watched_and_foreign_ones_ignored(tmp_path: Path, l1: L1):
    b = make_party(tmp_path, l1, top=2)
    w = Watcher(b.store, l1.adj, l1.client.tx_manager(l1.gas), poll_seconds=0.1)  # a ready TxManager
    assert [d.reason for d in w.tick()] == [Reason.NO_DISPUTE]
    # a channel of another rollup (another EIP-712 domain) is never watched here
    foreign = _channel_for(L2_CHAIN_ID + 1, _addr(ROLLUP), nonce=9)
    b.store.put_channel(foreign)
    # a channel opened while the watcher runs, with a dispute on it
    ch2 = _channel_for(L2_CHAIN_ID, _addr(ROLLUP), nonce=2)
    b.store.put_channel(ch2)
    for t in (1, 2, 3):
        s = state(ch2, t)
        b.store.record_cosigned(s, *cosign(ch2, s))
    challenge(l1, ch2, 1)
    decisions = w.tick()
    assert {d.channel_id: d.reason for d in decisions} == {ch2.id: Reason.REFUTE, b.ch.id: Reason.NO_DISPUTE}
    assert w.join(20) and l1.adj.status(ch2.id).turn_num == 3
    assert foreign.id not in w.statuses


@pytest.mark.anvil
def test_transient_failure_is_retried(tmp_path: Path, l1: L1):
    """No ETH for gas: the refutation is not sent, the channel waits a backoff, then it is
    tried again and goes through once the key is funded."""
    b = make_party(tmp_path, l1, top=3)
    challenge(l1, b.ch, 1)
    l1.client.set_balance(l1.gas.address, 0)
    w = Watcher(b.store, l1.adj, l1.gas, poll_seconds=0.5)
    assert w.tick()[0].refute and w.join(20)
    (ref,) = w.refutations
    assert ref.outcome == "retry" and "ETH" in ref.error
    assert w.tick()[0].reason is Reason.IN_FLIGHT  # waiting out the backoff (1s), not hammering L1
    l1.client.set_balance(l1.gas.address, 10**18)
    d = wait_for(lambda: (w.tick() or [None])[0].refute, timeout=5, what="the retry")
    assert d and w.join(20)
    assert [r.outcome for r in w.refutations] == ["retry", "included"]
    assert l1.adj.status(b.ch.id).turn_num == 3


def test_run_survives_an_unreachable_l1(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    store = ChannelStore(default_store_path(tmp_path))
    client = L1Client("http://127.0.0.1:9", retries=0, timeout=1.0)
    adj = Adjudicator.at(client, "0x" + "11" * 20)
    w = Watcher(store, adj, Account.from_key(bytes.fromhex("e5" * 32)), poll_seconds=0.02)
    runner = threading.Thread(target=asyncio.run, args=(w.run(),), daemon=True)
    with caplog.at_level(logging.WARNING, logger="optrollup.channels.watcher"):
        runner.start()
        wait_for(lambda: sum("tick failed" in r.getMessage() for r in caplog.records) >= 2, timeout=10,
                 what="two failed ticks")
        w.stop()
        runner.join(10)
    assert not runner.is_alive() and w.stopped
    store.close()
    client.close()


@pytest.mark.anvil
def test_state_file_of_another_adjudicator_is_ignored(tmp_path: Path, l1: L1):
    b = make_party(tmp_path, l1, top=2)
    path = default_state_path(tmp_path)
    path.write_text(json.dumps({"version": 1, "chainId": l1.client.chain_id, "adjudicator": "0x" + "99" * 20,
                                "startBlock": 0, "cursor": {"block": 0, "hash": ""}, "refutations": {}}))
    w = Watcher(b.store, l1.adj, l1.gas, poll_seconds=0.1, state_path=path)
    w.tick()
    saved = json.loads(path.read_text())
    assert saved["adjudicator"] == l1.adj.address and saved["startBlock"] == l1.client.block_number()
    path.write_text("not json")
    w2 = Watcher(b.store, l1.adj, l1.gas, poll_seconds=0.1, state_path=path)
    w2.tick()
    assert json.loads(path.read_text())["adjudicator"] == l1.adj.address


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------


def test_watch_parser_options():
    import argparse

    root = argparse.ArgumentParser(prog="optrollup channels")
    sub = root.add_subparsers(dest="sub", required=True)
    add_watch_parser(sub)
    args = root.parse_args(["watch", "--data-dir", "D", "--keystore", "K", "--l1-rpc", "http://x",
                            "--adjudicator", "0x" + "11" * 20, "--poll-seconds", "0.5"])
    assert (args.data_dir, args.keystore, args.poll_seconds, args.confirmations, args.bump_after) == \
        ("D", "K", 0.5, 1, 24.0) and callable(args.func)
    with pytest.raises(SystemExit):
        root.parse_args(["watch", "--data-dir", "D", "--key", "0x" + "11" * 32, "--l1-rpc", "u",
                         "--adjudicator", "a"])


def test_watch_refuses_a_store_the_service_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from sequencer.cli import main

    ks, pw = keystore(tmp_path, Account.from_key(bytes.fromhex("d4" * 32)))
    base = ["channels", "watch", "--data-dir", str(tmp_path), "--keystore", str(ks), "--password-file", str(pw),
            "--l1-rpc", "http://127.0.0.1:9", "--adjudicator", "0x" + "11" * 20]
    assert main(base) == 2
    assert "no_channel_store" in capsys.readouterr().err
    with ChannelStore(default_store_path(tmp_path)):  # "the service" holds it
        assert main(base) == 2
    err = capsys.readouterr().err
    assert "data_dir_locked" in err and "channels serve" in err
