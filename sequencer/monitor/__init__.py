"""Detection and response (design.md "Monitoring, detection, compliance"; docs/monitoring.md).

- Detectors: pure objects fed events with explicit timestamps, returning `Firing`s (bad
  signatures per IP and per claimed account, wash trading between one account or linked
  accounts, cancel/fill ratio spikes, oracle deviation and staleness, withdrawal spikes).
- `AlertStore`: alerts deduplicated by (kind, subject), counted; `Webhook` posts each firing.
- `NodeMonitor`: the node side (the app owns one: `GET /v1/admin/alerts`, the `403 ip_blocked`
  intrusion response, `optrollup_alerts_total`); `attach(app)` runs its worker with the app.
- `L1Monitor`: the L1 side, run as a process of its own by `optrollup monitor` (prover.monitor,
  which replays L1 with the verifier for the solvency ledger).
"""

from sequencer.monitor._alerts import CRITICAL, INFO, SEVERITIES, WARNING, Alert, AlertStore, Firing
from sequencer.monitor._detectors import (Links, OracleWatch, Spoofing, WashTrading, WindowSum,
                                          WithdrawalSpike)
from sequencer.monitor._guard import REQUEST, BadSignatures, IpBlocked, RequestInfo
from sequencer.monitor._l1 import L1Monitor, Ledger, LedgerSource, ReplayFailed
from sequencer.monitor._node import NodeMonitor, attach
from sequencer.monitor._settings import (BadSignatureSettings, MonitorSettings, OracleSettings,
                                         SpoofSettings, WashSettings, WebhookSettings,
                                         WithdrawalSettings)
from sequencer.monitor._webhook import Webhook, webhook_body

__all__ = [
    "CRITICAL",
    "INFO",
    "REQUEST",
    "SEVERITIES",
    "WARNING",
    "Alert",
    "AlertStore",
    "BadSignatureSettings",
    "BadSignatures",
    "Firing",
    "IpBlocked",
    "L1Monitor",
    "Ledger",
    "LedgerSource",
    "Links",
    "MonitorSettings",
    "NodeMonitor",
    "OracleSettings",
    "OracleWatch",
    "ReplayFailed",
    "RequestInfo",
    "SpoofSettings",
    "Spoofing",
    "WashSettings",
    "WashTrading",
    "Webhook",
    "WebhookSettings",
    "WindowSum",
    "WithdrawalSettings",
    "WithdrawalSpike",
    "attach",
    "webhook_body",
]
