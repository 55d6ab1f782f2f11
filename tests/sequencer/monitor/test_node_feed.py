"""The node side fed from a real node (LevelDB, input log, events): what the worker reads from
the log and the events reaches the detectors; near misses stay quiet. The worker's round is
run by hand (`step`), with the node's settable clock."""

from __future__ import annotations

from pathlib import Path

from cext import to_checksum
from sequencer.core import Feed
from sequencer.core.eip712 import Cancel, SessionKey, Withdraw, order_digest
from sequencer.monitor import (MonitorSettings, NodeMonitor, OracleSettings, SpoofSettings,
                               WashSettings, WithdrawalSettings)
from tests.sequencer.core.core_world import EXPIRY, ORACLES
from tests.sequencer.node.kit import CALL, SPOT, USERS, Kit, order

U = 10**6
A, B, C, K, DEP = USERS[0], USERS[1], USERS[2], USERS[9], USERS[10]

SETTINGS = MonitorSettings(
    wash_trading=WashSettings(window_seconds=3600, min_fills=1, max_linked_accounts=3),
    spoofing=SpoofSettings(window_seconds=60, min_cancels=5, max_cancels_per_fill=2),
    oracle=OracleSettings(max_deviation_ppm=20_000, min_feeds=3, fresh_seconds=60, stale_seconds=120),
    withdrawals=WithdrawalSettings(window_seconds=3600, max_total=1000 * U))


def kit(tmp_path: Path) -> Kit:
    k = Kit(tmp_path, monitor=SETTINGS)
    return k


def alerts(mon: NodeMonitor, kind: str) -> list:
    return [a for a in mon.store.list() if a.kind == kind]


def trade(k: Kit, maker, taker, nonce: int) -> None:
    r = k.place(maker, is_buy=False, price=100 * U, amount=U, nonce=nonce)
    assert not isinstance(r, Exception), r
    r = k.place(taker, is_buy=True, price=100 * U, amount=U, nonce=nonce)
    assert not isinstance(r, Exception) and r.fills, r


def session_key(k: Kit, who, key, expiry: int) -> None:
    m = SessionKey(who.address, key.address, expiry)
    [r] = k.run([(m, k.sign(who, m))])
    assert not isinstance(r, Exception), r


def test_wash_trade_between_accounts_sharing_a_session_key(tmp_path: Path) -> None:
    k = kit(tmp_path)
    for u in (A, B, C):
        k.fund(u, 50_000 * U)
    k.feeds()
    mon = NodeMonitor(k.node)
    mon.start(thread=False)
    t = k.clock()
    session_key(k, A, K, int(t) + 3600)
    trade(k, A, C, 1)  # C shares nothing with A: a near miss
    mon.step()
    assert alerts(mon, "wash_trade") == []
    session_key(k, B, K, int(t) + 3600)  # now A and B are both traded by K
    trade(k, B, A, 2)
    mon.step()
    [a] = alerts(mon, "wash_trade")
    pair = sorted((A.address, B.address))
    assert a.subject == f"{to_checksum(pair[0])}|{to_checksum(pair[1])}"
    assert "key:" + to_checksum(K.address) in a.detail and a.severity == "warning"
    text = k.node.metrics.registry.get_sample_value(
        "optrollup_alerts_total", {"kind": "wash_trade", "severity": "warning"})
    assert text == 1.0
    mon.stop()


def test_wash_trade_between_accounts_funded_by_one_depositor_seeded_at_start(tmp_path: Path) -> None:
    """Deposits processed before the monitor started link accounts too (read back from the
    node's L1 message index), and so do deposits seen while it runs."""
    k = kit(tmp_path)
    k.node.credit_deposit(A.address, 50_000 * U, 0, 1, depositor=DEP.address).result(10)
    k.node.credit_deposit(B.address, 50_000 * U, 1, 1, depositor=DEP.address).result(10)
    k.node.credit_deposit(C.address, 50_000 * U, 2, 1, depositor=C.address).result(10)
    k.deposits = 3
    k.feeds()
    k.node.seal().result(10)
    mon = NodeMonitor(k.node)
    mon.start(thread=False)
    trade(k, A, C, 1)  # C deposited for itself: not linked
    mon.step()
    assert alerts(mon, "wash_trade") == []
    trade(k, A, B, 2)
    mon.step()
    [a] = alerts(mon, "wash_trade")
    assert "depositor:" + to_checksum(DEP.address) in a.detail
    # a deposit seen live: DEP now funds C as well
    k.node.credit_deposit(C.address, 1_000 * U, 3, 2, depositor=DEP.address).result(10)
    trade(k, C, B, 3)
    mon.step()
    assert len(alerts(mon, "wash_trade")) == 2


def test_spoofing_from_cancels_in_the_log(tmp_path: Path) -> None:
    k = kit(tmp_path)
    for u in (A, B):
        k.fund(u, 50_000 * U)
    k.feeds()
    mon = NodeMonitor(k.node)
    mon.start(thread=False)
    dom = k.cfg.genesis.config.domain

    def place_and_cancel(who, n: int, first: int) -> None:
        for i in range(first, first + n):
            o = order(who, is_buy=True, price=50 * U, amount=U, nonce=i)
            [r] = k.run([(o, k.sign(who, o))])
            assert not isinstance(r, Exception), r
            c = Cancel(who.address, order_digest(dom, o))
            [r] = k.run([(c, k.sign(who, c))])
            assert not isinstance(r, Exception), r

    place_and_cancel(B, 4, 100)  # 4 cancels: below min_cancels (near miss)
    mon.step()
    assert alerts(mon, "spoofing") == []
    place_and_cancel(A, 5, 1)  # 5 cancels, no fills
    mon.step()
    [a] = alerts(mon, "spoofing")
    assert a.subject == to_checksum(A.address) and "5 cancels against 0 fills" in a.detail


def test_oracle_deviation_and_staleness_from_the_log(tmp_path: Path) -> None:
    k = kit(tmp_path)
    mon = NodeMonitor(k.node)
    mon.start(thread=False)
    ts = int(k.clock())

    def feeds(spots: list[int], at: int) -> None:
        items = []
        for key, spot in zip(ORACLES, spots):
            f = Feed("ETH", spot, at, (EXPIRY - 86400 * 30, EXPIRY), (800_000, 800_000))
            items.append((f, k.sign(key, f)))
        assert all(not isinstance(r, Exception) for r in k.run(items))

    feeds([SPOT, SPOT, SPOT * 101 // 100], ts)  # 1%: within the limit
    mon.step()
    assert alerts(mon, "oracle_deviation") == []
    k.clock.t += 1
    feeds([SPOT, SPOT, SPOT * 105 // 100], ts + 1)  # 5%: accepted by the node, flagged here
    mon.step()
    [a] = alerts(mon, "oracle_deviation")
    assert a.subject == f"ETH/{to_checksum(ORACLES[2].address)}"
    k.clock.t += 100
    mon.step()
    assert alerts(mon, "oracle_stale") == []  # newest quorum is 100 s old
    k.clock.t += 30
    mon.step()
    [s] = alerts(mon, "oracle_stale")
    assert s.subject == "ETH" and s.severity == "critical"


def test_withdrawal_spike_from_the_log(tmp_path: Path) -> None:
    k = kit(tmp_path)
    for u in (A, B):
        k.fund(u, 50_000 * U)
    mon = NodeMonitor(k.node)
    mon.start(thread=False)
    for i, (who, amount) in enumerate([(A, 600 * U), (B, 400 * U)]):
        w = Withdraw(who.address, who.address, amount, 0)
        [r] = k.run([(w, k.sign(who, w))])
        assert not isinstance(r, Exception), r
    mon.step()
    assert alerts(mon, "withdrawal_spike") == []  # exactly the limit
    w = Withdraw(A.address, A.address, 1, 1)
    [r] = k.run([(w, k.sign(A, w))])
    assert not isinstance(r, Exception), r
    mon.step()
    [a] = alerts(mon, "withdrawal_spike")
    assert a.subject == "all accounts" and a.severity == "critical"


def test_shortfall_event_alerts(tmp_path: Path) -> None:
    k = kit(tmp_path)
    mon = NodeMonitor(k.node)
    mon.start(thread=False)
    mon._on_event("shortfall", (5 * U, 2 * U))  # as the node emits it (a listener call)
    mon._on_event("book", CALL)  # ignored
    mon.step()
    [a] = alerts(mon, "shortfall")
    assert a.severity == "critical" and "5.000000 USDC" in a.detail
