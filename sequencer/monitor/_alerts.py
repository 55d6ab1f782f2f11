"""Alerts and their store.

An alert is one (kind, subject) pair: the first time a detector fires for it, it is created; each
later firing counts (`count`), moves `lastSeen` and replaces `detail`. The store is thread-safe
(the node's loop and the monitor's worker thread both fire) and bounded (the least recently
seen alert goes first). Every firing is passed to the store's sinks (metrics, the webhook, a
JSON-lines printer), which must not block.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger("optrollup.monitor")

INFO, WARNING, CRITICAL = "info", "warning", "critical"
SEVERITIES = (INFO, WARNING, CRITICAL)


@dataclass(frozen=True)
class Alert:
    """`firstSeen`/`lastSeen`: unix seconds (float) of the first and the latest firing."""

    id: str
    kind: str
    severity: str
    subject: str
    detail: str
    first_seen: float
    last_seen: float
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "severity": self.severity,
                "subject": self.subject, "detail": self.detail,
                "firstSeen": round(self.first_seen, 3), "lastSeen": round(self.last_seen, 3),
                "count": self.count}


def alert_id(kind: str, subject: str) -> str:
    """Stable id of the (kind, subject) pair: the same alert has the same id in every process."""
    return hashlib.sha256(f"{kind}\n{subject}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Firing:
    """What a detector reports: the store turns it into an Alert (or counts an existing one)."""

    kind: str
    severity: str
    subject: str
    detail: str
    at: float


Sink = Callable[[Alert], None]


class AlertStore:
    def __init__(self, max_alerts: int = 10_000) -> None:
        self.max_alerts = max(1, max_alerts)
        self._alerts: dict[tuple[str, str], Alert] = {}  # least recently seen first
        self._lock = threading.Lock()
        self.sinks: list[Sink] = []

    def fire(self, f: Firing) -> Alert:
        if f.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {f.severity!r}")
        key = (f.kind, f.subject)
        with self._lock:
            old = self._alerts.pop(key, None)
            if old is None:
                a = Alert(alert_id(f.kind, f.subject), f.kind, f.severity, f.subject, f.detail,
                          f.at, f.at, 1)
            else:  # the worst severity seen sticks
                sev = max(old.severity, f.severity, key=SEVERITIES.index)
                a = replace(old, severity=sev, detail=f.detail, last_seen=max(old.last_seen, f.at),
                            count=old.count + 1)
            self._alerts[key] = a
            while len(self._alerts) > self.max_alerts:
                del self._alerts[next(iter(self._alerts))]
        log.warning("ALERT %s [%s] %s: %s", a.kind, f.severity, a.subject, f.detail)
        for sink in list(self.sinks):
            try:
                sink(replace(a, severity=f.severity) if a.severity != f.severity else a)
            except Exception:  # noqa: BLE001 - a sink must not break a detector
                log.exception("alert sink failed")
        return a

    def fire_all(self, firings: list[Firing]) -> list[Alert]:
        return [self.fire(f) for f in firings]

    def list(self, *, kind: str | None = None, since: float | None = None,
             limit: int | None = None) -> list[Alert]:
        """Newest `lastSeen` first."""
        with self._lock:
            out = list(self._alerts.values())
        out.reverse()
        out.sort(key=lambda a: a.last_seen, reverse=True)
        if kind is not None:
            out = [a for a in out if a.kind == kind]
        if since is not None:
            out = [a for a in out if a.last_seen >= since]
        return out if limit is None else out[:limit]

    def get(self, kind: str, subject: str) -> Alert | None:
        with self._lock:
            return self._alerts.get((kind, subject))

    def __len__(self) -> int:
        with self._lock:
            return len(self._alerts)
