"""Bad-signature bursts and the intrusion response.

`BadSignatures` counts signatures that do not verify (a malformed one, or one that recovers to
neither the claimed account nor a live session key of it; an auth header signed by someone
else) per client IP and per claimed account over a window. An IP over `perIp` is blocked for
`blockSeconds`: every route answers it `403 ip_blocked` (the HTTP front, the ingress workers'
frames, the WebSocket handshake and its messages), checked before anything else is done for it.
Nothing is charged or blocked for the claimed account: a stranger's forgeries never cost the
account its budget or its orders; over `perAccount` it only raises an alert.

Pure like the detectors (times are passed in), but used from the node's event-loop thread only.
`REQUEST` carries the client IP of the request being handled down to the signature check
(`Api.admit`), which has no request object.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass

from sequencer.errors import Forbidden
from sequencer.monitor._alerts import WARNING, Firing
from sequencer.monitor._detectors import MAX_KEYS, Episodes, Keyed, _acct
from sequencer.monitor._settings import BadSignatureSettings


class IpBlocked(Forbidden):
    """The client's IP is blocked after too many bad signatures (HTTP 403 with Retry-After; a
    Forbidden in sequencer.api.errors' table). The fronts answer it with `parts()` before a
    request is parsed, with exactly what the table gives."""

    code = "ip_blocked"
    status = 403

    def __init__(self, ip: str, until: float, now: float) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
        super().__init__(f"IP {ip} is blocked until {stamp} (unix {int(until)}) after too many "
                         "requests with bad signatures")
        self.ip, self.until = ip, until
        self.retry_after = max(0.0, until - now)

    def parts(self) -> tuple[int, dict, dict[str, str]]:
        """(status, body, headers) as the error table would give them."""
        return (self.status, {"error": {"code": self.code, "message": self.message}},
                {"Retry-After": str(max(1, int(self.retry_after + 0.999)))})


@dataclass
class RequestInfo:
    """The request being handled: its client IP, and whether a bad signature of it was counted
    already (so that the signature check and the error handler do not both count it)."""

    ip: str
    counted: bool = False


REQUEST: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "optrollup_request", default=None)


class BadSignatures:
    IP, ACCOUNT = "bad_signature_ip", "bad_signature_account"

    def __init__(self, s: BadSignatureSettings, max_keys: int = MAX_KEYS) -> None:
        self.s = s
        self.per_ip = Keyed(s.window_seconds, max_keys)
        self.per_account = Keyed(s.window_seconds, max_keys)
        self.episodes = Episodes(s.window_seconds, max_keys)
        self.blocked: dict[str, float] = {}  # ip -> until
        self.allow = frozenset(s.allow_ips)
        self.max_keys = max_keys

    def check(self, ip: str, now: float) -> IpBlocked | None:
        """The error to answer `ip` with while it is blocked, else None."""
        until = self.blocked.get(ip)
        if until is None:
            return None
        if now >= until:
            del self.blocked[ip]
            return None
        return IpBlocked(ip, until, now)

    def bad(self, now: float, ip: str | None, account: bytes | None) -> list[Firing]:
        """Count one bad signature from `ip` (None: unknown) claiming `account` (None: none)."""
        out = []
        if ip is not None and ip not in self.allow:
            n = self.per_ip.add(ip, now)
            if n > self.s.per_ip:
                until = now + self.s.block_seconds
                if len(self.blocked) >= self.max_keys:
                    for k in [k for k, u in self.blocked.items() if u <= now]:
                        del self.blocked[k]
                self.blocked[ip] = until
                self.per_ip.reset(ip)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
                out.append(Firing(self.IP, WARNING, ip,
                                  f"{int(n)} bad signatures from {ip} in {self.s.window_seconds:g} s "
                                  f"(limit {self.s.per_ip}): blocked until {stamp}"
                                  + (f"; latest claimed {_acct(account)}" if account else ""), now))
        if account is not None:
            n = self.per_account.add(account, now)
            if n > self.s.per_account and self.episodes.ready(account, now):
                out.append(Firing(self.ACCOUNT, WARNING, _acct(account),
                                  f"{int(n)} bad signatures claiming {_acct(account)} in "
                                  f"{self.s.window_seconds:g} s (limit {self.s.per_account}); "
                                  f"latest from {ip or 'an unknown client'}; the account itself "
                                  "is not restricted", now))
        return out

    def prune(self, now: float) -> None:
        self.per_ip.prune(now)
        self.per_account.prune(now)
        for k in [k for k, u in self.blocked.items() if u <= now]:
            del self.blocked[k]
