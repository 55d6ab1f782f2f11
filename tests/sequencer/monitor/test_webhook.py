"""The alert webhook against real local HTTP servers: alerts arrive (retried after a failure),
and a dead webhook costs the sender nothing."""

from __future__ import annotations

import socket
import time

from sequencer.monitor import AlertStore, Firing, Webhook, WebhookSettings
from tests.sequencer.monitor.webhook_server import dead_server, recording_server

T = 1_800_000_000.0


def test_alerts_arrive_and_a_failed_attempt_is_retried() -> None:
    with recording_server(fail_first=1) as (url, rec):
        hook = Webhook(WebhookSettings(url=url, retries=3, backoff_seconds=0.05), "sequencer")
        store = AlertStore()
        store.sinks.append(hook)
        store.fire(Firing("wash_trade", "warning", "0xA|0xB", "linked", T))
        store.fire(Firing("wash_trade", "warning", "0xA|0xB", "linked again", T + 1))
        store.fire(Firing("oracle_stale", "critical", "ETH", "stale", T + 2))
        got = rec.wait_for(3)
        hook.close()
    assert [b["source"] for b in got] == ["sequencer"] * 3
    assert [(b["alert"]["kind"], b["alert"]["count"]) for b in got] == [
        ("wash_trade", 1), ("wash_trade", 2), ("oracle_stale", 1)]
    assert got[1]["alert"]["detail"] == "linked again" and got[2]["alert"]["severity"] == "critical"
    assert rec.attempts == 4 and hook.sent == 3 and hook.failed == 0  # the first was retried


def test_gives_up_after_the_retries() -> None:
    with recording_server(fail_first=100) as (url, rec):
        hook = Webhook(WebhookSettings(url=url, retries=3, backoff_seconds=0.01), "sequencer")
        store = AlertStore()
        store.sinks.append(hook)
        store.fire(Firing("k", "info", "s", "d", T))
        deadline = time.monotonic() + 10
        while hook.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        hook.close()
    assert hook.failed == 1 and rec.attempts == 3 and rec.bodies == []


def test_a_dead_webhook_blocks_no_sender() -> None:
    """A webhook that accepts and never answers: firing thousands of alerts returns at once,
    the queue stays bounded (the oldest are dropped), and closing does not hang."""
    with dead_server() as url:
        hook = Webhook(WebhookSettings(url=url, queue=50, retries=5, timeout_seconds=30,
                                       backoff_seconds=1), "sequencer")
        store = AlertStore()
        store.sinks.append(hook)
        t0 = time.perf_counter()
        for i in range(5000):
            store.fire(Firing("bad_signature_ip", "warning", f"10.0.{i // 256}.{i % 256}", "x", T + i))
        took = time.perf_counter() - t0
        assert took < 2.0, took  # ~µs each: nothing waits for the network
        assert hook.pending <= 50 and hook.dropped >= 5000 - 51
        t0 = time.perf_counter()
        hook.close(grace=0.5)
        assert time.perf_counter() - t0 < 2.0


def test_a_refused_connection_is_retried_then_dropped() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    hook = Webhook(WebhookSettings(url=f"http://127.0.0.1:{port}/x", retries=2, backoff_seconds=0.01),
                   "l1-monitor")
    store = AlertStore()
    store.sinks.append(hook)
    store.fire(Firing("k", "info", "s", "d", T))
    deadline = time.monotonic() + 10
    while hook.failed == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    hook.close()
    assert hook.failed == 1 and hook.sent == 0
