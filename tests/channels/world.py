"""Shared builders and hypothesis strategies of the channel tests."""

from __future__ import annotations

from eth_account import Account
from eth_utils import keccak
from hypothesis import strategies as st

from channels import Channel, InsufficientBalance, Trade, apply_trade, initial_state, make_channel
from sequencer.core.channelmsg import ChannelOpen, ChannelState
from sequencer.core.instruments import UNIT
from sequencer.core.margin import RiskRow

CHAIN, ROLLUP = 31337, b"\x42" * 20
KEY_A, KEY_B, KEY_X = (Account.from_key(keccak(b"channel test key %s" % n)) for n in (b"A", b"B", b"X"))


def addr(acct: Account) -> bytes:
    return bytes.fromhex(acct.address[2:])


# Byte order and numeric order of strikes differ ("10000" < "3000"), and BTC < ETH.
INSTRUMENTS = ("ETH-27DEC26-3000-C", "ETH-27DEC26-3000-P", "ETH-27DEC26-10000-C",
               "ETH-5JAN27-2500-P", "BTC-27DEC26-60000-C", "BTC-27DEC26-60000-P")
TICK, STEP = 100_000, 10_000


def channel(deposit_a: int = 10_000 * UNIT, deposit_b: int = 10_000 * UNIT, nonce: int = 1) -> Channel:
    return make_channel(CHAIN, ROLLUP, ChannelOpen(b"\xaa" * 20, b"\xbb" * 20, addr(KEY_A),
                                                   addr(KEY_B), deposit_a, deposit_b, nonce, 3600))


instruments = st.sampled_from(INSTRUMENTS)
trades = st.builds(Trade, instruments, st.booleans(),
                   st.integers(0, 5_000).map(lambda t: t * TICK),      # 0 .. 500 USDC
                   st.integers(1, 1_000).map(lambda s: s * STEP))      # 0.01 .. 10 contracts
steps = st.lists(st.tuples(trades, st.booleans()), max_size=25)
deposits = st.integers(0, 20_000).map(lambda d: d * UNIT)


def run(ch: Channel, seq: list[tuple[Trade, bool]]) -> list[tuple[ChannelState, Trade | None, bool]]:
    """States after each applicable step (skipping trades the buyer cannot pay), starting with
    (initial state, None, True)."""
    s = initial_state(ch)
    out: list[tuple[ChannelState, Trade | None, bool]] = [(s, None, True)]
    for trade, proposer_is_a in seq:
        try:
            s = apply_trade(s, trade, proposer_is_a)
        except InsufficientBalance:
            continue
        out.append((s, trade, proposer_is_a))
    return out


@st.composite
def risk_rows(draw: st.DrawFn) -> RiskRow:
    lo = draw(st.integers(0, 3_000 * UNIT))
    hi = lo + draw(st.integers(0, 50 * UNIT))
    im = draw(st.integers(0, 1_000 * UNIT))
    return RiskRow(lo, hi, im, im * 8 // 10)


marks = st.fixed_dictionaries({n: risk_rows() for n in INSTRUMENTS})
