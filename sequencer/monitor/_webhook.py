"""The alert webhook: each firing POSTed as JSON, `{"source": <who>, "alert": <Alert JSON>}`,
from a thread of its own.

`send(alert)` only appends to a bounded queue (the oldest waiting alert is dropped when it is
full) and returns: a slow, hanging or dead webhook costs the caller nothing, the node's event
loop included. The thread POSTs each alert with a timeout, retrying a failed attempt (a
connection error or a non-2xx answer) with exponential backoff, and gives up on the alert after
`retries` attempts. `close()` gives what is queued a short grace period, then stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import httpx

from sequencer.monitor._alerts import Alert
from sequencer.monitor._settings import WebhookSettings

log = logging.getLogger("optrollup.monitor.webhook")

MAX_BACKOFF = 30.0


def webhook_body(source: str, alert: Alert) -> dict[str, Any]:
    return {"source": source, "alert": alert.to_json()}


class Webhook:
    def __init__(self, s: WebhookSettings, source: str, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not s.url:
            raise ValueError("webhook URL missing")
        self.s, self.source = s, source
        self._q: deque[dict[str, Any]] = deque()
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self.sent = self.failed = self.dropped = 0
        self._client = httpx.Client(timeout=s.timeout_seconds, transport=transport)
        self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self._thread.start()

    # -- any thread ---------------------------------------------------------------------------

    def __call__(self, alert: Alert) -> None:
        self.send(alert)

    def send(self, alert: Alert) -> None:
        body = webhook_body(self.source, alert)
        with self._cv:
            if len(self._q) >= max(1, self.s.queue):
                self._q.popleft()
                self.dropped += 1
            self._q.append(body)
            self._cv.notify()

    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._q)

    def close(self, grace: float = 2.0) -> None:
        """Let the thread send what is queued for up to `grace` seconds, then stop it (a
        request in flight is abandoned: the thread is a daemon)."""
        end = time.monotonic() + grace
        while self.pending and self._thread.is_alive() and time.monotonic() < end:
            time.sleep(0.02)
        self._stop.set()
        with self._cv:
            self._cv.notify()
        self._thread.join(timeout=max(0.0, end - time.monotonic()) + 0.1)
        if not self._thread.is_alive():
            self._client.close()

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while not self._q and not self._stop.is_set():
                    self._cv.wait()
                if self._stop.is_set():
                    return
                body = self._q.popleft()
            try:
                self._deliver(body)
            except Exception:  # noqa: BLE001 - keep the thread alive for the next alert
                log.exception("alert webhook failed")

    def _deliver(self, body: dict[str, Any]) -> None:
        delay = self.s.backoff_seconds
        attempts = max(1, self.s.retries)
        for attempt in range(1, attempts + 1):
            try:
                r = self._client.post(self.s.url, json=body)  # type: ignore[arg-type]
                if 200 <= r.status_code < 300:
                    self.sent += 1
                    return
                why = f"HTTP {r.status_code}"
            except (httpx.HTTPError, OSError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            if attempt == attempts:
                break
            log.info("alert webhook attempt %d/%d failed (%s); retrying in %.1f s",
                     attempt, attempts, why, delay)
            if self._stop.wait(delay):
                return
            delay = min(MAX_BACKOFF, delay * 2)
        self.failed += 1
        log.warning("alert webhook gave up on %s %s after %d attempts (%s)",
                    body["alert"]["kind"], body["alert"]["subject"], attempts, why)
