"""Each detector on its own: a scenario that must fire and a near miss that must not (pure
objects, explicit timestamps, no node)."""

from __future__ import annotations

import pytest

from cext import to_checksum
from sequencer.monitor import (AlertStore, BadSignatures, BadSignatureSettings, Firing,
                               MonitorSettings, OracleSettings, OracleWatch, Spoofing,
                               SpoofSettings, WashSettings, WashTrading, WindowSum,
                               WithdrawalSettings, WithdrawalSpike)

A, B, C, D, K = (bytes([i]) * 20 for i in (0xA1, 0xB2, 0xC3, 0xD4, 0xEE))
T = 1_800_000_000.0
U = 10**6


def kinds(fs: list[Firing]) -> list[str]:
    return [f.kind for f in fs]


# -- primitives -----------------------------------------------------------------------------------

def test_window_sum_forgets_what_left_the_window() -> None:
    w = WindowSum(60, buckets=60)
    for i in range(60):
        w.add(T + i, 10**18)  # integers stay exact
    assert w.total(T + 59) == 60 * 10**18
    assert w.total(T + 90) == 30 * 10**18
    assert w.total(T + 200) == 0


# -- bad signatures ---------------------------------------------------------------------------------

def test_bad_signature_burst_blocks_the_ip_and_alerts_on_the_account() -> None:
    s = BadSignatureSettings(window_seconds=60, per_ip=5, per_account=5, block_seconds=300)
    d = BadSignatures(s)
    out = []
    for i in range(6):
        out += d.bad(T + i, "6.6.6.6", A)
    assert kinds(out) == ["bad_signature_ip", "bad_signature_account"]  # both at the 6th
    assert out[0].subject == "6.6.6.6" and out[1].subject == to_checksum(A)
    blocked = d.check("6.6.6.6", T + 10)
    assert blocked is not None and blocked.code == "ip_blocked" and blocked.until == T + 5 + 300
    status, body, headers = blocked.parts()
    assert status == 403 and body["error"]["code"] == "ip_blocked"
    assert "until" in body["error"]["message"] and int(headers["Retry-After"]) == 295
    assert d.check("7.7.7.7", T + 10) is None  # only that IP
    assert d.check("6.6.6.6", T + 5 + 300) is None  # the cool-down ends


def test_bad_signatures_near_miss_and_spread_out() -> None:
    d = BadSignatures(BadSignatureSettings(window_seconds=60, per_ip=5, per_account=5))
    out = []
    for i in range(5):  # at the threshold, not over it
        out += d.bad(T + i, "6.6.6.6", A)
    assert out == [] and d.check("6.6.6.6", T + 5) is None
    for i in range(20):  # one a minute: never 6 in a window
        out += d.bad(T + 1000 + 61 * i, "5.5.5.5", B)
    assert out == []


def test_allowed_ip_is_never_blocked_but_the_account_is_counted() -> None:
    d = BadSignatures(BadSignatureSettings(per_ip=1, per_account=1, allow_ips=("10.0.0.1",)))
    out = d.bad(T, "10.0.0.1", A) + d.bad(T + 1, "10.0.0.1", A)
    assert kinds(out) == ["bad_signature_account"] and d.check("10.0.0.1", T + 2) is None


def test_many_claimed_accounts_from_one_ip() -> None:
    """A forger spraying different accounts: the IP is blocked, no account reaches its limit."""
    d = BadSignatures(BadSignatureSettings(per_ip=10, per_account=3))
    out = []
    for i in range(11):
        out += d.bad(T + i * 0.1, "6.6.6.6", bytes([i]) * 20)
    assert kinds(out) == ["bad_signature_ip"]


# -- wash trading --------------------------------------------------------------------------------------

def wash(**kw) -> WashTrading:
    return WashTrading(WashSettings(**{"window_seconds": 3600, "min_fills": 1,
                                       "max_linked_accounts": 3, **kw}))


def test_self_trade_fires() -> None:
    w = wash()
    out = w.fill(T, A, A, "ETH-27DEC26-3000-C", 10_000, 100 * U)
    assert kinds(out) == ["wash_trade"] and out[0].subject == to_checksum(A)
    assert "same account" in out[0].detail


def test_linked_by_a_shared_session_key_fires_unlinked_does_not() -> None:
    w = wash()
    w.links.session_key(A, K)
    assert w.fill(T, A, B, "X", 1, 1) == []  # B is not linked (near miss)
    w.links.session_key(B, K)
    out = w.fill(T + 1, B, A, "X", 1, 1)
    assert kinds(out) == ["wash_trade"] and "key:" + to_checksum(K) in out[0].detail
    assert out[0].subject == f"{to_checksum(min(A, B))}|{to_checksum(max(A, B))}"
    assert w.fill(T + 2, A, B, "X", 1, 1) == []  # one alert per pair per window
    assert kinds(w.fill(T + 3700, A, B, "X", 1, 1)) == ["wash_trade"]


def test_a_session_key_that_is_another_account_links_them() -> None:
    w = wash()
    w.links.session_key(A, C)  # C's own key trades A's account
    assert kinds(w.fill(T, A, C, "X", 1, 1)) == ["wash_trade"]


def test_linked_by_a_shared_depositor() -> None:
    w = wash()
    w.links.depositor(A, D)
    w.links.depositor(B, D)
    assert kinds(w.fill(T, A, B, "X", 1, 1)) == ["wash_trade"]
    w.links.depositor(C, C)  # a self-deposit links nothing
    assert w.fill(T, A, C, "X", 1, 1) == []


def test_a_depositor_funding_many_accounts_links_none() -> None:
    """An exchange's hot wallet funds everyone: no link through it (near miss)."""
    w = wash(max_linked_accounts=3)
    users = [bytes([0x10 + i]) * 20 for i in range(4)]
    for u in users:
        w.links.depositor(u, D)
    assert w.fill(T, users[0], users[1], "X", 1, 1) == []
    assert w.links.link(users[0], users[1]) is None


def test_min_fills_threshold() -> None:
    w = wash(min_fills=3)
    w.links.session_key(A, K)
    w.links.session_key(B, K)
    assert w.fill(T, A, B, "X", 1, 1) == [] and w.fill(T + 1, A, B, "X", 1, 1) == []
    assert kinds(w.fill(T + 2, A, B, "X", 1, 1)) == ["wash_trade"]


# -- spoofing ------------------------------------------------------------------------------------------

def test_cancel_fill_ratio_spike_fires() -> None:
    sp = Spoofing(SpoofSettings(window_seconds=60, min_cancels=100, max_cancels_per_fill=20))
    sp.fill(T, A)
    sp.fill(T, A)
    out = []
    for i in range(99):
        out += sp.cancel(T + i * 0.5, A)
    assert out == []  # ratio 49.5 > 20, but fewer than min_cancels yet
    out = sp.cancel(T + 50, A)  # the 100th
    assert kinds(out) == ["spoofing"] and out[0].subject == to_checksum(A)
    assert sp.cancel(T + 51, A) == []  # one alert per account per window


def test_cancel_fill_ratio_near_misses() -> None:
    sp = Spoofing(SpoofSettings(window_seconds=60, min_cancels=100, max_cancels_per_fill=20))
    for _ in range(10):
        sp.fill(T, B)
    out = []
    for i in range(200):  # 200 cancels vs 10 fills: ratio 20, not above it
        out += sp.cancel(T + i * 0.1, B)
    assert out == []
    for i in range(99):  # no fills at all, but fewer cancels than min_cancels
        out += sp.cancel(T + i * 0.1, C)
    assert out == []
    for i in range(300):  # many cancels, but spread over far more than the window
        out += sp.cancel(T + 1000 + i, D)
    assert out == []


# -- oracle --------------------------------------------------------------------------------------------

KEYS = [bytes([0x50 + i]) * 20 for i in range(4)]


def oracle(**kw) -> OracleWatch:
    s = OracleSettings(**{"max_deviation_ppm": 20_000, "min_feeds": 3, "fresh_seconds": 60,
                          "stale_seconds": 120, **kw})
    return OracleWatch(s, quorum=2, underlyings=["ETH"], start=T)


def test_feed_far_from_the_median_fires() -> None:
    o = oracle()
    assert o.feed(T, "ETH", KEYS[0], 3000 * U, T) == []
    assert o.feed(T, "ETH", KEYS[1], 3001 * U, T) == []
    out = o.feed(T + 1, "ETH", KEYS[2], 3100 * U, T + 1)  # 3.3% from the median 3001
    assert kinds(out) == ["oracle_deviation"] and out[0].subject == f"ETH/{to_checksum(KEYS[2])}"


def test_feed_deviation_near_misses() -> None:
    o = oracle()
    o.feed(T, "ETH", KEYS[0], 3000 * U, T)
    o.feed(T, "ETH", KEYS[1], 3000 * U, T)
    assert o.feed(T, "ETH", KEYS[2], 3060 * U, T) == []  # exactly 2.0%: not above
    p = oracle()
    p.feed(T, "ETH", KEYS[0], 3000 * U, T)
    assert p.feed(T, "ETH", KEYS[1], 9000 * U, T) == []  # two feeds: no median to judge by
    q = oracle()
    q.feed(T, "ETH", KEYS[0], 3000 * U, T)
    q.feed(T, "ETH", KEYS[1], 3000 * U, T)
    assert q.feed(T + 120, "ETH", KEYS[2], 9000 * U, T + 120) == []  # the others are stale


def test_stale_price_fires_once_per_window() -> None:
    o = oracle()
    o.feed(T, "ETH", KEYS[0], 3000 * U, T)
    o.feed(T + 10, "ETH", KEYS[1], 3000 * U, T + 10)
    assert o.tick(T + 120) == []  # the quorum's oldest feed is 120 s old: not more
    out = o.tick(T + 121)
    assert kinds(out) == ["oracle_stale"] and out[0].subject == "ETH" and out[0].severity == "critical"
    assert o.tick(T + 200) == []  # once per stale_seconds
    assert kinds(o.tick(T + 242)) == ["oracle_stale"]


def test_stale_near_miss_one_key_keeps_feeding_but_quorum_is_two() -> None:
    o = oracle()
    o.feed(T, "ETH", KEYS[0], 3000 * U, T)
    o.feed(T, "ETH", KEYS[1], 3000 * U, T)
    for t in range(0, 300, 10):  # only KEYS[0] goes on: no quorum of fresh feeds
        o.feed(T + t, "ETH", KEYS[0], 3000 * U, T + t)
    assert kinds(o.tick(T + 130)) == ["oracle_stale"]
    p = oracle()
    for t in range(0, 300, 10):  # two keys keep feeding: never stale
        p.feed(T + t, "ETH", KEYS[0], 3000 * U, T + t)
        p.feed(T + t, "ETH", KEYS[1], 3000 * U, T + t)
        assert p.tick(T + t + 5) == []


def test_never_fed_underlying_goes_stale_after_the_window() -> None:
    o = oracle()
    assert o.tick(T + 100) == []
    assert kinds(o.tick(T + 121)) == ["oracle_stale"]


# -- withdrawals ---------------------------------------------------------------------------------------

def test_withdrawal_spike_fires_over_the_total() -> None:
    w = WithdrawalSpike(WithdrawalSettings(window_seconds=3600, max_total=1000 * U))
    assert w.withdrawal(T, A, 600 * U) == []
    out = w.withdrawal(T + 100, B, 401 * U)
    assert kinds(out) == ["withdrawal_spike"] and out[0].subject == "all accounts"


def test_withdrawal_near_misses() -> None:
    w = WithdrawalSpike(WithdrawalSettings(window_seconds=3600, max_total=1000 * U))
    assert w.withdrawal(T, A, 600 * U) == [] and w.withdrawal(T + 1, B, 400 * U) == []  # == limit
    # the first ones left the window (buckets of window/30: gone by window + window/30)
    assert w.withdrawal(T + 3600 + 121, C, 900 * U) == []


def test_per_account_withdrawal_threshold() -> None:
    w = WithdrawalSpike(WithdrawalSettings(window_seconds=60, max_total=0, max_per_account=100 * U))
    assert w.withdrawal(T, A, 100 * U) == [] and w.withdrawal(T, B, 100 * U) == []
    out = w.withdrawal(T + 1, A, 1)
    assert kinds(out) == ["withdrawal_spike"] and out[0].subject == to_checksum(A)


# -- store -----------------------------------------------------------------------------------------------

def test_store_dedups_by_kind_and_subject_and_counts() -> None:
    st = AlertStore(max_alerts=2)
    seen = []
    st.sinks.append(seen.append)
    a1 = st.fire(Firing("wash_trade", "warning", "x", "first", T))
    a2 = st.fire(Firing("wash_trade", "critical", "x", "second", T + 5))
    assert a1.id == a2.id and a2.count == 2 and a2.first_seen == T and a2.last_seen == T + 5
    assert a2.detail == "second" and a2.severity == "critical"
    st.fire(Firing("spoofing", "warning", "y", "", T + 6))
    st.fire(Firing("oracle_stale", "critical", "ETH", "", T + 7))  # evicts the least recent
    assert [a.kind for a in st.list()] == ["oracle_stale", "spoofing"] and len(seen) == 4
    assert set(st.list()[0].to_json()) == {"id", "kind", "severity", "subject", "detail",
                                           "firstSeen", "lastSeen", "count"}
    with pytest.raises(ValueError):
        st.fire(Firing("x", "panic", "y", "", T))


def test_a_failing_sink_does_not_break_firing() -> None:
    st = AlertStore()

    def boom(_a) -> None:
        raise RuntimeError("sink down")

    st.sinks.append(boom)
    assert st.fire(Firing("k", "info", "s", "d", T)).count == 1


# -- settings -------------------------------------------------------------------------------------------

def test_settings_round_trip_and_refuse_unknown_keys() -> None:
    d = {"pollSeconds": 1, "badSignatures": {"perIp": 7, "allowIps": ["127.0.0.1"]},
         "withdrawals": {"maxTotal": "123456789012345678901"}, "webhook": {"url": "http://x/y"}}
    s = MonitorSettings.from_json(d)
    assert s.bad_signatures.per_ip == 7 and s.bad_signatures.allow_ips == ("127.0.0.1",)
    assert s.withdrawals.max_total == 123456789012345678901 and s.webhook.url == "http://x/y"
    assert s.oracle == OracleSettings()  # untouched sections keep their defaults
    assert MonitorSettings.from_json(s.to_json()) == s
    assert MonitorSettings.from_json(None) == MonitorSettings()
    for bad in ({"badSignatures": {"perIP": 1}}, {"nope": 1}, {"oracle": {"minFeeds": -1}},
                {"spoofing": {"windowSeconds": "x"}}, {"webhook": {"url": 5}}):
        with pytest.raises((TypeError, ValueError)):
            MonitorSettings.from_json(bad)
