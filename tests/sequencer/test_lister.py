"""The devnet lister (sequencer/lister.py): the pure decision of what to list, and the devnet's
genesis, lister and oracle feed against a real node (LevelDB, HTTP app) on a controlled clock."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

from eth_account import Account
from fastapi.testclient import TestClient

from sequencer.core import make_instrument
from sequencer.devnet import L2_CHAIN_ID, SPOT_USD, STRIKES, default_genesis, dev_key
from sequencer.feeder import Feeder, vol_curve
from sequencer.lister import Lister, expiries, instrument_name, listing_body, listings_due
from sequencer.node import NodeConfig
from sequencer.node.node import Node
from tests.e2e.serverkit import sign_orders
from tests.sequencer.core.core_world import Key, order
from tests.sequencer.node.kit import Clock

DAY = 86400
U = 10**6


def utc(y: int, m: int, d: int, h: int = 8) -> int:
    return calendar.timegm((y, m, d, h, 0, 0))


def names_of(exps: list[int]) -> set[str]:
    return {instrument_name(e, k, c) for e in exps for k in STRIKES for c in (True, False)}


def test_nothing_due_at_genesis_and_everything_on_an_empty_node() -> None:
    now = utc(2026, 1, 19, 12)  # a Monday
    genesis = [i.name for i in default_genesis(now).instruments]
    assert listings_due(now, genesis, STRIKES) == []
    due = listings_due(now, [], STRIKES)
    assert [m.instrument for m in due] == [i.name for i in default_genesis(now).instruments]
    ins = make_instrument(due[0].instrument)  # the genesis steps
    assert tuple(due[0]) == (ins.name, ins.tick_size, ins.amount_step, ins.min_amount)


def test_month_boundary_lists_the_new_friday_only() -> None:
    """Genesis on Mon 19 Jan 2026: 23 Jan, 30 Jan, 6 Feb, monthly 27 Mar. After 23 Jan expired
    (Mon 26 Jan) the next Friday across the month boundary, 13 Feb, is the one missing."""
    g = utc(2026, 1, 19, 12)
    assert expiries(g) == [utc(2026, 1, 23), utc(2026, 1, 30), utc(2026, 2, 6), utc(2026, 3, 27)]
    listed = names_of(expiries(g)) - names_of([utc(2026, 1, 23)])  # 23 Jan settled and delisted
    due = listings_due(utc(2026, 1, 26, 9), listed, STRIKES)
    assert {m.instrument for m in due} == names_of([utc(2026, 2, 13)])
    assert due[0].instrument == "ETH-13FEB26-2600-C" and due[1].instrument == "ETH-13FEB26-2600-P"
    # two weeks on, the monthly moves into April (the March one stays listed until it expires)
    listed |= names_of([utc(2026, 2, 13)])
    due = listings_due(utc(2026, 2, 9, 9), listed, STRIKES)
    assert {m.instrument for m in due} == names_of([utc(2026, 2, 20), utc(2026, 2, 27), utc(2026, 4, 24)])


def test_a_devnet_resumed_months_after_genesis_catches_up() -> None:
    """Stopped for months, its listed set holds only long-expired instruments (settled or not):
    every instrument of today's set is due, none expiring within a day."""
    g = utc(2026, 1, 19, 12)
    now = utc(2026, 6, 3, 15)  # a Wednesday
    due = listings_due(now, names_of(expiries(g)), STRIKES)
    assert {m.instrument for m in due} == names_of(expiries(now))
    assert len(due) == 4 * len(STRIKES) * 2
    assert all(make_instrument(m.instrument).expiry > now + DAY for m in due)
    # a round that listed only some of them: the rest are due, nothing twice
    done = {m.instrument for m in due[:7]}
    assert {m.instrument for m in listings_due(now, done, STRIKES)} == names_of(expiries(now)) - done


def test_walking_ten_weeks_hourly_keeps_three_weeklies_listed() -> None:
    """Run the decision every hour for 10 weeks, listing what it says and delisting what expires:
    every expiry of the rule is always listed, no listing repeats or expires within a day."""
    t = utc(2026, 11, 23, 12)
    listed = {i.name: i.expiry for i in default_genesis(t).instruments}
    made: list[str] = []
    for _ in range(10 * 7 * 24):
        t += 3600
        listed = {n: e for n, e in listed.items() if e > t}
        for m in listings_due(t, listed, STRIKES):
            e = make_instrument(m.instrument).expiry
            assert e > t + DAY and m.instrument not in listed
            listed[m.instrument] = e
            made.append(m.instrument)
        assert names_of(expiries(t)) <= set(listed)
        assert sum(1 for e in set(listed.values()) if time.gmtime(e).tm_wday == 4) >= 3
    assert len(made) == len(set(made)) and len(made) >= 10 * len(STRIKES) * 2


def test_listing_body_is_the_operators_signature() -> None:
    from cext import recover_addresses
    from sequencer.api.wire import message, signed
    from sequencer.core.eip712 import FIELDS, Listing, digest

    g = utc(2026, 1, 19, 12)
    [m] = listings_due(g, names_of(expiries(g)) - {"ETH-23JAN26-3000-C"}, STRIKES)
    assert m.instrument == "ETH-23JAN26-3000-C"
    body = listing_body(b"\x07" * 32, m, dev_key("operator"))
    msg_json, sig = signed(body, "list")
    assert message(msg_json, "list", FIELDS["List"], Listing) == m
    [who] = recover_addresses([digest(b"\x07" * 32, m)], [sig])
    assert "0x" + who.hex() == Account.from_key(dev_key("operator")).address.lower()


def test_a_node_lists_trades_and_marks_new_expiries_after_the_first_expires(tmp_path: Path) -> None:
    """The devnet's genesis on a real node and clock; the first expiry passes (fed until then, so
    the node settles it), then one lister round lists the new Friday through POST
    /v1/admin/instruments, the feeder (following the listed instruments) gives it its own vol
    point, and an order on it rests."""
    from sequencer.api.app import create_app

    g = utc(2026, 11, 23, 12)  # Monday: Fridays 27 Nov, 4 Dec, 11 Dec, monthly 29 Jan
    genesis = default_genesis(g)
    cfg = NodeConfig(chain_id=L2_CHAIN_ID, rollup="0x" + "00" * 20, genesis=genesis)
    domain = genesis.config.domain
    clock = Clock(g + 60)
    node = Node(tmp_path / "node", cfg, clock=clock)
    trader = Key(77)
    node.credit_deposit(trader.address, 100_000 * U, 0, 1).result(timeout=10)
    oracles = [dev_key("oracle", i) for i in range(3)]
    lister = Lister("http://testserver", domain, dev_key("operator"), STRIKES, clock=clock)
    feeder = Feeder("http://testserver", domain, oracles, "ETH", float(SPOT_USD), [], sigma=0.1,
                    seed=3, follow_listed=True, clock=clock)
    first, new = utc(2026, 11, 27), utc(2026, 12, 18)
    app = create_app(node, tick_seconds=3600, monotonic=clock)
    with TestClient(app) as http:
        def at(t: int) -> None:
            clock.t = t
            node.seal().result(timeout=10)

        def listed() -> dict[str, dict]:
            return {i["name"]: i for i in http.get("/v1/instruments").json()["instruments"]}

        assert lister.sync(http) == []  # genesis already lists today's set
        assert feeder.feed_once(http).expiries == tuple(sorted(expiries(g)))
        assert feeder.posted == 3
        at(first - 120)
        feeder.feed_once(http)  # the settlement window's spot
        at(first + 3600)
        assert not names_of([first]) & set(listed())  # settled and delisted by the node
        assert new not in {i["expiry"] for i in listed().values()}

        made = lister.sync(http)
        assert set(made) == names_of([new])
        assert names_of(expiries(first + 3600)) <= set(listed())
        assert lister.sync(http) == []  # done: the next round lists nothing

        feed = feeder.feed_once(http)
        assert new in feed.expiries and feeder.posted == 9
        ins = listed()[instrument_name(new, SPOT_USD, True)]
        assert ins["iv"] == vol_curve([new], feed.timestamp)[0] and ins["mark"] is not None

        o = order(trader, instrument=ins["name"], is_buy=False, price=150 * U, amount=100_000,
                  nonce=1, expiry=first + 7200)
        [(_, body)] = sign_orders(cfg, {trader.address: trader}, [o])
        r = http.post("/v1/orders", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "open"
        assert http.get(f"/v1/book/{ins['name']}").json()["asks"]
