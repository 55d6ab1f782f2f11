"""The node side of the monitor: the detectors fed from the node, the alert store behind
`GET /v1/admin/alerts`, the IP block, and the webhook.

Two threads feed it, never inside the state transition:

- the node's event loop, through hooks that only count and compare (O(1)): `check_ip` (every
  front, before anything else), `unverified` (from `Api.admit`, for a signed request whose
  signature does not verify), `auth_rejected` (an auth header signed by someone else);
- the worker thread (`start`/`stop`, run by `attach` with the app; tests call `step` by hand),
  every `pollSeconds`: it reads the records appended to the input log since it last looked
  (durable, accepted requests: cancels, session keys, withdrawals, oracle feeds, deposits with
  their L1 depositor), drains the node's "trade" and "shortfall" events (queued by a listener
  that only appends), resolves the maker's and taker's accounts by order hash, feeds the
  detectors and ticks them (oracle staleness). Orders and seals are skipped without decoding.

Alerts go to the store; each firing is counted in `optrollup_alerts_total{kind,severity}` and
sent to the webhook, if one is configured.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily

from cext import to_checksum
from sequencer.api import wire
from sequencer.api.auth import authenticate
from sequencer.core.eip712 import Cancel, CancelAll, Feed, Listing, SessionKey, Withdraw
from sequencer.errors import InvalidSignature, OptrollupError
from sequencer.monitor._alerts import CRITICAL, Alert, AlertStore, Firing
from sequencer.monitor._detectors import (Links, OracleWatch, Spoofing, WashTrading,
                                          WithdrawalSpike)
from sequencer.monitor._guard import REQUEST, BadSignatures, IpBlocked
from sequencer.monitor._settings import MonitorSettings
from sequencer.monitor._webhook import Webhook
from sequencer.node.records import (DEPOSIT, FORCED_WITHDRAWAL, KINDS, REPLACE, Deposit,
                                    ForcedWithdrawal, Replace, Signed, decode_record)

if TYPE_CHECKING:
    from sequencer.node.node import Node

log = logging.getLogger("optrollup.monitor")

# input-log record kinds the detectors read; the rest (orders, seals, ...) are not decoded
_READ = frozenset({KINDS[Cancel], KINDS[CancelAll], KINDS[SessionKey], KINDS[Withdraw],
                   KINDS[Feed], DEPOSIT, FORCED_WITHDRAWAL, REPLACE})
# signature failures that count as bad signatures (not: a missing or expired auth header)
BAD_SIGNATURE_CODES = frozenset({"invalid_signature", "signer_mismatch", "bad_signature",
                                 "oracle_unknown_key"})
# an L1 message's kind (sequencer.node.l1follower.DEPOSIT, the Bridge's KIND_DEPOSIT; not a
# log record kind): not imported, since sequencer.node.config imports this package
DEPOSIT_KIND = 0
MAX_RECORDS_PER_STEP = 50_000
MAX_QUEUED_EVENTS = 100_000


def _record_kind(raw: bytes) -> int | None:
    """The kind of a log record without decoding it (a msgpack fixarray whose first item is a
    positive fixint), or None if it is not laid out so."""
    if len(raw) > 1 and 0x90 <= raw[0] <= 0x9F and raw[1] < 0x80:
        return raw[1]
    return None


class NodeMonitor:
    def __init__(self, node: Node, settings: MonitorSettings | None = None, *,
                 clock: Callable[[], float] | None = None) -> None:
        self.node = node
        self.s = settings if settings is not None else getattr(node.cfg, "monitor", MonitorSettings())
        self.clock = clock if clock is not None else node.clock
        g = node.cfg.genesis.config
        self.operator = g.operator
        self.oracle_keys = frozenset(g.oracle.keys)
        self.store = AlertStore(self.s.max_alerts)
        self.store.sinks.append(self._count)
        # loop thread
        self.signatures = BadSignatures(self.s.bad_signatures)
        # worker thread
        self.links = Links(self.s.wash_trading.max_linked_accounts)
        self.wash = WashTrading(self.s.wash_trading, self.links)
        self.spoofing = Spoofing(self.s.spoofing)
        self.oracle = OracleWatch(self.s.oracle, g.oracle.quorum, g.underlyings, start=self.clock())
        self.withdrawals = WithdrawalSpike(self.s.withdrawals)
        self.webhook: Webhook | None = None
        self._events: deque[tuple[str, Any, float]] = deque(maxlen=MAX_QUEUED_EVENTS)
        self._seq: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self._started = False
        _register_l1_gauges(node)

    # -- sinks --------------------------------------------------------------------------------

    def _count(self, a: Alert) -> None:
        self.node.metrics.alerts.labels(a.kind, a.severity).inc()

    def fire(self, firings: list[Firing]) -> None:
        if firings:
            self.store.fire_all(firings)

    # -- event-loop hooks (O(1), no I/O) ----------------------------------------------------------

    def check_ip(self, ip: str) -> IpBlocked | None:
        """The 403 to answer `ip` with while it is blocked, else None."""
        if not self.signatures.blocked:
            return None
        return self.signatures.check(ip, self.clock())

    def unverified(self, msg: Any, signer: bytes | None) -> None:
        """`Api.admit` saw a signed request whose signature does not make it its account's (or
        a message without an account: a feed, a listing, a liquidation bid). Counts a bad
        signature for the request's IP and claimed account when it really is one."""
        if isinstance(msg, Feed):
            claimed, bad = None, signer is None or signer not in self.oracle_keys
        elif isinstance(msg, Listing):
            claimed, bad = self.operator, signer != self.operator
        else:
            claimed = getattr(msg, "account", None) or getattr(msg, "liquidator", None)
            bad = signer is None or claimed is None or not self.node.may_sign_for(claimed, signer)
        if not bad:
            return
        info = REQUEST.get()
        if info is not None:
            info.counted = True
        self.fire(self.signatures.bad(self.clock(), None if info is None else info.ip, claimed))

    def auth_rejected(self, ip: str, claimed: str | None, exc: OptrollupError) -> None:
        """A request was refused with `exc`: an auth header signed by the wrong key (or a
        signed request the engine refused for its signature, if `unverified` did not count
        it already) is a bad signature of `ip` claiming `claimed` (the auth header's account)."""
        if not isinstance(exc, InvalidSignature) or exc.code not in BAD_SIGNATURE_CODES:
            return
        info = REQUEST.get()
        if info is not None and info.counted:
            return
        account = None
        if claimed:
            try:
                account = wire.address(claimed, "X-Optrollup-Account")
            except OptrollupError:
                account = None
        self.fire(self.signatures.bad(self.clock(), ip, account))

    def require_operator(self, headers: Mapping[str, str]) -> bytes:
        """The admin routes' auth: the auth headers (sequencer.api.auth) signed by the
        operator's own key (no session key). InvalidSignature otherwise."""
        who = authenticate(headers, int(self.node.clock()), lambda account, signer: account == signer)
        if who != self.operator:
            raise InvalidSignature(f"{to_checksum(who)} is not the operator "
                                   f"({to_checksum(self.operator)})", code="operator_required")
        return who

    def alerts_json(self, kind: str | None = None, since: float | None = None,
                    limit: int = 100) -> dict[str, Any]:
        rows = self.store.list(kind=kind, since=since)
        return {"alerts": [a.to_json() for a in rows[:max(0, limit)]], "total": len(rows)}

    def _on_event(self, kind: str, payload: Any) -> None:
        """The node listener (the loop thread, once the record is durable): queue, nothing else."""
        if kind == "trade" or kind == "shortfall":
            self._events.append((kind, payload, self.clock()))

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, *, thread: bool = True) -> None:
        """Start following the node (call on the node's loop, once it runs): from the next
        input-log record on, with what the node's state already says seeded (session keys,
        oracle feeds; L1 depositors in the worker). `thread=False`: the caller calls `step`."""
        if self._started:
            return
        self._started = True
        if self.s.webhook.url:
            self.webhook = Webhook(self.s.webhook, "sequencer")
            self.store.sinks.append(self.webhook)
        self._seq = self.node.log.next_seq
        self._seed_state()
        self.node.listeners.append(self._on_event)
        self._stop.clear()
        if thread:
            self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
            self._thread.start()
        else:
            self._seed_depositors()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self.node.listeners.remove(self._on_event)
        except ValueError:
            pass
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.webhook is not None:
            self.webhook.close()
            self.store.sinks.remove(self.webhook)
            self.webhook = None

    def _run(self) -> None:
        try:
            self._seed_depositors()
        except Exception:  # noqa: BLE001 - detection goes on without the old links
            log.exception("monitor: could not read past deposits for account links")
        while not self._stop.wait(self.s.poll_seconds):
            if self.node.failed is not None:
                continue
            try:
                self.step()
            except Exception:  # noqa: BLE001 - one bad round must not end the monitor
                log.exception("monitor step failed")

    def _seed_state(self) -> None:
        """Session keys and oracle feeds from the node's state (loop thread: a consistent view)."""
        st = self.node.core.engine.state
        now = self.node.core.engine.now
        for account, acct in st.accounts.items():
            for key, expiry in acct.session_keys.items():
                if expiry > now:
                    self.links.session_key(account, key)
        for u, ost in st.oracle.items():
            for key, f in ost.feeds.items():
                self.oracle.seed(u, key, f.spot, f.timestamp)

    def _seed_depositors(self) -> None:
        """Links by L1 depositor of the deposits the node processed before it started."""
        cursor = self.node.core.engine.state.message_cursor
        for n in range(cursor):
            m = self.node.l1_message(n)
            if m is not None and m.kind == DEPOSIT_KIND and m.counterparty is not None:
                self.links.depositor(bytes(m.account), bytes(m.counterparty))

    # -- the worker's round ---------------------------------------------------------------------

    def step(self, now: float | None = None) -> None:
        """One round: new log records, queued events, then the clock-driven checks."""
        now = self.clock() if now is None else now
        events = []
        while self._events:
            events.append(self._events.popleft())
        if self._seq is not None:
            n = 0
            for seq, raw in self.node.log.read(self._seq):
                self._seq = seq + 1
                kind = _record_kind(raw)
                if kind is None or kind in _READ:
                    self._record(now, decode_record(raw))
                n += 1
                if n >= MAX_RECORDS_PER_STEP:
                    break
        for kind, payload, t in events:
            self._event(kind, payload, t)
        self.fire(self.oracle.tick(now))
        if now - self._last_prune >= 60:
            self._last_prune = now
            self.spoofing.prune(now)
            self.withdrawals.prune(now)
            self.wash.fills.prune(now)

    def _record(self, now: float, rec: Any) -> None:
        if isinstance(rec, Signed):
            m = rec.msg
            if isinstance(m, (Cancel, CancelAll)):
                self.fire(self.spoofing.cancel(now, m.account))
            elif isinstance(m, SessionKey):
                if m.expiry > now:
                    self.links.session_key(m.account, m.key)
            elif isinstance(m, Withdraw):
                self.fire(self.withdrawals.withdrawal(now, m.account, m.amount))
            elif isinstance(m, Feed):
                self.fire(self.oracle.feed(now, m.underlying, rec.signer, m.spot, m.timestamp))
        elif isinstance(rec, Replace):
            self.fire(self.spoofing.cancel(now, rec.cancel.msg.account))
        elif isinstance(rec, Deposit):
            self.links.depositor(rec.account, rec.depositor)
        elif isinstance(rec, ForcedWithdrawal):
            self.fire(self.withdrawals.withdrawal(now, rec.account, rec.amount))

    def _event(self, kind: str, payload: Any, t: float) -> None:
        if kind == "trade":
            maker, taker = self.node.order(payload["makerOrder"]), self.node.order(payload["takerOrder"])
            if maker is None or taker is None:
                return
            self.fire(self.wash.fill(t, maker.account, taker.account, payload["instrument"],
                                     payload["amount"], payload["price"]))
            self.spoofing.fill(t, maker.account)
            self.spoofing.fill(t, taker.account)
        elif kind == "shortfall":
            total, added = payload
            self.fire([Firing("shortfall", CRITICAL, "insurance fund",
                              f"the insurance fund could not absorb a loss: open shortfall "
                              f"{total / 10**6:,.6f} USDC (+{added / 10**6:,.6f}); withdrawals "
                              "are haircut pro rata until it is recovered", t)])


# -- wiring into the app ----------------------------------------------------------------------------

def attach(app: Any) -> NodeMonitor:
    """Run the monitor's worker (and webhook) for the lifetime of `app` (a create_app app),
    inside its lifespan: started once the node runs, stopped before the node closes."""
    mon: NodeMonitor = app.state.api.monitor
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any):  # noqa: ANN202
        async with inner(a) as state:
            mon.start()
            try:
                yield state
            finally:
                mon.stop()

    app.router.lifespan_context = lifespan
    return mon


class _L1Gauges:
    """Scrape-time gauges of the node's L1 follower (for the shipped Prometheus rules)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Any:
        l1 = self.node.l1
        err = GaugeMetricFamily("optrollup_l1_follower_error",
                                "1 while the node's last L1 poll failed (0 without L1)")
        head = GaugeMetricFamily("optrollup_l1_follower_head",
                                 "Last L1 block the node's follower scanned")
        view = None if l1 is None else l1.view
        err.add_metric([], 0 if view is None or view.error is None else 1)
        head.add_metric([], 0 if view is None else view.head)
        yield err
        yield head


def _register_l1_gauges(node: Node) -> None:
    if getattr(node.metrics, "_monitor_l1_gauges", False):
        return
    node.metrics.registry.register(_L1Gauges(node))
    node.metrics._monitor_l1_gauges = True  # type: ignore[attr-defined]  # noqa: SLF001
