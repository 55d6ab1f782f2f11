"""The devnet demo market: the ladder it quotes (pure) and one round against a real node."""

from __future__ import annotations

from pathlib import Path

from optrollup_client import Client, Instrument
from sequencer.demomarket import DemoMarket, ladder, needs_requote, quoted_instruments
from sequencer.node import Limits
from tests.sequencer.client.live import live_node
from tests.sequencer.node.kit import CALL, PUT, USERS

U = 10**6


def ins(name: str = CALL, mark: int | None = 100 * U, strike: int = 3000 * U, expiry: int = 2_000_000_000,
        spot: int | None = 3000 * U) -> Instrument:
    return Instrument(name, "ETH", expiry, strike, "call", 100_000, 10_000, 10_000, spot, 800_000, mark)


def test_ladder_brackets_the_mark_on_ticks() -> None:
    got = ladder(ins(mark=100_050_000))
    bids = sorted((o.price for o in got if o.side == "buy"), reverse=True)
    asks = sorted(o.price for o in got if o.side == "sell")
    assert bids == [98_000_000, 97_000_000, 96_000_000]      # mid 100.0, half 2 %, levels 1 % apart
    assert asks == [102_000_000, 103_000_000, 104_000_000]
    assert all(o.price % 100_000 == 0 and o.post_only and o.amount == 100_000 for o in got)


def test_ladder_of_a_cheap_option_keeps_prices_positive_and_apart() -> None:
    got = ladder(ins(mark=150_000))                           # 0.15 USDC: two ticks of half-spread
    assert all(o.price >= 100_000 for o in got)
    assert min(o.price for o in got if o.side == "sell") > max((o.price for o in got if o.side == "buy"), default=0)
    assert ladder(ins(mark=None)) == [] and ladder(ins(mark=0)) == []


def test_quoted_instruments_are_the_strikes_nearest_spot_of_live_expiries() -> None:
    now = 1_900_000_000
    book = [ins(f"I{k}", strike=k * U, expiry=e) for k in (2600, 2800, 3000, 3200, 3400)
            for e in (now - 1, now + 86400)]
    names = [i.name for i in quoted_instruments(book + [ins("NOMARK", mark=None, expiry=now + 9)], now)]
    assert names == ["I2800", "I3000", "I3200"]                # expired and unmarked ones left out


def test_requote_only_when_the_mark_moved_enough() -> None:
    assert needs_requote(None, 100 * U, 100_000)
    assert not needs_requote(100 * U, 100 * U + 400_000, 100_000)   # < 0.5 %
    assert needs_requote(100 * U, 100 * U + 600_000, 100_000)       # >= 0.5 % of the new mark
    assert needs_requote(1_000_000, 1_200_000, 100_000)             # two ticks on a cheap one


def test_rounds_against_a_real_node_quote_requote_and_take(tmp_path: Path) -> None:
    maker_key, taker_key = USERS[0], USERS[1]
    with live_node(tmp_path, Limits(orders_per_second=1000, burst=1000)) as lv:
        m = DemoMarket(lv.url, maker_key.hex, taker_key.hex, take_every=2, seed=1)
        with Client(lv.url, private_key=maker_key.hex, clock=lv.clock) as maker, \
                Client(lv.url, private_key=taker_key.hex, clock=lv.clock) as taker:
            now = lv.clock()
            assert m.round(maker, None, 1, now) == 12          # two instruments, 3 levels a side
            first = {o.order_hash for o in maker.open_orders()}
            assert len(first) == 12
            for name in (CALL, PUT):
                book = maker.book(name)
                assert len(book.bids) == 3 and len(book.asks) == 3
            assert m.round(maker, None, 1, now) == 0            # nothing moved: nothing sent
            m.mids = {k: v - 10 * U for k, v in m.mids.items()}  # as if the marks had moved
            assert m.round(maker, taker, 2, now) == 12          # requoted in place, and one take
            second = {o.order_hash for o in maker.open_orders()}
            assert not first & second
            trades = taker.trades()
            assert len(trades) == 1 and trades[0].amount == 10_000
            assert len(second) == 12 or len(second) == 11       # the taken level may be gone


def test_a_refused_ladder_is_quoted_again_next_round(tmp_path: Path) -> None:
    """Before its deposit is credited the maker's quotes are refused; the next round must quote
    again even though the mark did not move."""
    poor, funded = USERS[7], USERS[0]
    with live_node(tmp_path, Limits(orders_per_second=1000, burst=1000)) as lv:
        m = DemoMarket(lv.url, poor.hex, funded.hex)
        with Client(lv.url, private_key=poor.hex, clock=lv.clock) as maker:
            now = lv.clock()
            assert m.round(maker, None, 1, now) == 12           # sent, and refused (no collateral)
            assert m.mids == {} and maker.book(CALL).bids == []  # nothing rested: nothing recorded
            lv.kit.fund(poor, 50_000 * U)
            assert m.round(maker, None, 1, now) == 12
            assert len(maker.open_orders()) == 12 and set(m.mids) == {CALL, PUT}
