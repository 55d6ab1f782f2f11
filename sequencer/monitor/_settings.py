"""The `monitor` section of the node config (sequencer/node/config.py): detector thresholds,
the IP block, the alert store and the webhook. Every field has a default, so a config without
the section (every config written before it existed) loads unchanged.

    "monitor": {
      "pollSeconds": 0.5, "maxAlerts": 10000,
      "webhook": {"url": null, "queue": 1000, "retries": 5, "timeoutSeconds": 5.0, "backoffSeconds": 0.5},
      "badSignatures": {"windowSeconds": 60, "perIp": 500, "perAccount": 100, "blockSeconds": 600,
                        "allowIps": ["127.0.0.1", "::1"]},
      "washTrading": {"windowSeconds": 3600, "minFills": 1, "maxLinkedAccounts": 10},
      "spoofing": {"windowSeconds": 60, "minCancels": 500, "maxCancelsPerFill": 50},
      "oracle": {"maxDeviationPpm": 20000, "minFeeds": 3, "freshSeconds": 60, "staleSeconds": 120},
      "withdrawals": {"windowSeconds": 3600, "maxTotal": "1000000000000", "maxPerAccount": "0"}
    }

JSON names are the fields' names in lowerCamel; an unknown key is an error (a typo would
otherwise silently keep a default). Money is in collateral base units (a decimal string or a
JSON integer); 0 disables a money threshold.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None = None
    queue: int = 1000              # alerts waiting to be sent; beyond it the oldest is dropped
    retries: int = 5               # attempts per alert
    timeout_seconds: float = 5.0   # per attempt
    backoff_seconds: float = 0.5   # first retry delay, doubled per attempt (at most 30 s)


@dataclass(frozen=True)
class BadSignatureSettings:
    window_seconds: float = 60.0
    per_ip: int = 500              # more bad signatures than this from one IP in the window: blocked
    per_account: int = 100         # more than this claiming one account in the window: alert only
    block_seconds: float = 600.0   # how long a blocked IP gets 403 ip_blocked
    # never blocked (still counted per account); loopback: the operator's own tools (poster,
    # feeder, liquidator) and a reverse proxy that does not forward client addresses
    allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class WashSettings:
    window_seconds: float = 3600.0
    min_fills: int = 1             # wash fills of one pair within the window before it alerts
    max_linked_accounts: int = 10  # a session key / depositor shared by more accounts links none


@dataclass(frozen=True)
class SpoofSettings:
    window_seconds: float = 60.0
    min_cancels: int = 500         # fewer cancels than this in the window never alert
    max_cancels_per_fill: float = 50.0  # alert when cancels > this x max(1, fills)


@dataclass(frozen=True)
class OracleSettings:
    max_deviation_ppm: int = 20_000  # a feed more than 2% from the median of the fresh feeds
    min_feeds: int = 3             # fresh feeds (this one included) needed for a median
    fresh_seconds: float = 60.0    # a key's feed counts for the median this long
    stale_seconds: float = 120.0   # no quorum of feeds newer than this: stale


@dataclass(frozen=True)
class WithdrawalSettings:
    window_seconds: float = 3600.0
    max_total: int = 1_000_000 * 10**6   # all accounts together in the window (0: off)
    max_per_account: int = 0             # one account in the window (0: off)


@dataclass(frozen=True)
class MonitorSettings:
    poll_seconds: float = 0.5      # how often the node-side worker reads the log and ticks
    max_alerts: int = 10_000       # alerts kept (the least recently seen are dropped)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    bad_signatures: BadSignatureSettings = field(default_factory=BadSignatureSettings)
    wash_trading: WashSettings = field(default_factory=WashSettings)
    spoofing: SpoofSettings = field(default_factory=SpoofSettings)
    oracle: OracleSettings = field(default_factory=OracleSettings)
    withdrawals: WithdrawalSettings = field(default_factory=WithdrawalSettings)

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> MonitorSettings:
        """ValueError / TypeError naming the bad key (NodeConfig turns them into bad_config)."""
        return _load(cls, d or {}, "monitor")

    def to_json(self) -> dict[str, Any]:
        return _dump(self)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _load(cls: type, d: Any, where: str) -> Any:
    if not isinstance(d, dict):
        raise TypeError(f"{where} must be an object")
    fields = {_camel(f.name): f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    kw: dict[str, Any] = {}
    for key, f in fields.items():
        if key not in d:
            continue
        v, here = d[key], f"{where}.{key}"
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            kw[f.name] = _load(type(default), v, here)
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                raise TypeError(f"{here} must be true or false")
            kw[f.name] = v
        elif isinstance(default, int):
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise TypeError(f"{here} must be an integer (or a decimal string)")
            kw[f.name] = int(v)
            if kw[f.name] < 0:
                raise ValueError(f"{here} must be >= 0")
        elif isinstance(default, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{here} must be a number")
            kw[f.name] = float(v)
            if kw[f.name] < 0:
                raise ValueError(f"{here} must be >= 0")
        elif isinstance(default, tuple):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise TypeError(f"{here} must be a list of strings")
            kw[f.name] = tuple(v)
        else:  # str | None
            if v is not None and not isinstance(v, str):
                raise TypeError(f"{here} must be a string or null")
            kw[f.name] = v
    return cls(**kw)


def _dump(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = _dump(v)
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, int) and not isinstance(v, bool) and v >= 2**53:
            v = str(v)
        out[_camel(f.name)] = v
    return out
