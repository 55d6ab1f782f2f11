"""Node configuration: a JSON file (written by `optrollup devnet`, or by an operator).

    {"chainId": 412346, "rollup": "0x..", "genesis": "0x<Genesis.to_bytes() hex>",
     "blockTime": 1.0, "maxBlockTxs": 5000, "maxBlockBytes": 90000, "snapshotEveryRecords": 50000,
     "l1": {"rpc": "http://127.0.0.1:8545", "bridge": "0x..", "collateralToken": "0x..",
            "chainId": 31337, "deploymentBlock": 1, "confirmations": 1, "pollSeconds": 1.0},
     "limits": {"ordersPerSecond": 2000, "burst": 4000, "ipRequestsPerSecond": 500,
                "ipBurst": 1000, "maxBatch": 500, "maxBodyBytes": 1048576},
     "monitor": {...detector thresholds, IP block, webhook: sequencer/monitor/_settings.py}}

Every field but chainId, rollup and genesis has a default; "l1" may be omitted (no deposits
are followed and withdrawals never finalize: for tests and benchmarks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cext import parse_address
from sequencer.core.chainspec import Genesis
from sequencer.errors import InvalidRequest
from sequencer.monitor._settings import MonitorSettings  # the module: no import cycle


@dataclass(frozen=True)
class L1Settings:
    """Where the L1 contracts are and how to follow them. Addresses are 0x hex."""

    rpc: str
    bridge: str
    collateral_token: str
    chain_id: int
    deployment_block: int = 0
    confirmations: int = 1
    poll_seconds: float = 1.0
    adjudicator: str | None = None
    """The state channels' L1 Adjudicator whose conclusions the node applies (None: none)."""


@dataclass(frozen=True)
class Limits:
    """Per-account order rate (orders/s, burst), per-IP request rate, batch and body caps."""

    orders_per_second: float = 2000
    burst: float = 4000
    ip_requests_per_second: float = 500
    ip_burst: float = 1000
    max_batch: int = 500
    max_body_bytes: int = 1 << 20


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs besides its data dir. `block_time` in seconds."""

    chain_id: int
    rollup: str
    genesis: Genesis
    block_time: float = 1.0
    max_block_txs: int = 5000
    # seal once the open block's txs encode to this many bytes: with the <= ~26 KB one request
    # can add (engine.MAX_FILLS_PER_ORDER) a block stays under the poster's 120,000-byte batch
    # budget (prover/plan.py: a block that alone exceeds it could never be posted)
    max_block_bytes: int = 90_000
    snapshot_every_records: int = 50_000
    l1: L1Settings | None = None
    limits: Limits = field(default_factory=Limits)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)  # docs/monitoring.md

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "NodeConfig":
        try:
            rollup = d["rollup"]
            chain_id = int(d["chainId"])
            genesis = Genesis.from_bytes(bytes.fromhex(d["genesis"].removeprefix("0x")), chain_id,
                                         parse_address(rollup, "rollup"))
            l1 = d.get("l1")
            lim = d.get("limits", {})
            return cls(
                chain_id=chain_id, rollup=rollup, genesis=genesis,
                block_time=float(d.get("blockTime", 1.0)),
                max_block_txs=int(d.get("maxBlockTxs", 5000)),
                max_block_bytes=int(d.get("maxBlockBytes", 90_000)),
                snapshot_every_records=int(d.get("snapshotEveryRecords", 50_000)),
                l1=None if l1 is None else L1Settings(
                    rpc=l1["rpc"], bridge=l1["bridge"], collateral_token=l1["collateralToken"],
                    chain_id=int(l1["chainId"]), deployment_block=int(l1.get("deploymentBlock", 0)),
                    confirmations=int(l1.get("confirmations", 1)),
                    poll_seconds=float(l1.get("pollSeconds", 1.0)),
                    adjudicator=l1.get("adjudicator")),
                limits=Limits(
                    orders_per_second=float(lim.get("ordersPerSecond", 2000)),
                    burst=float(lim.get("burst", 4000)),
                    ip_requests_per_second=float(lim.get("ipRequestsPerSecond", 500)),
                    ip_burst=float(lim.get("ipBurst", 1000)),
                    max_batch=int(lim.get("maxBatch", 500)),
                    max_body_bytes=int(lim.get("maxBodyBytes", 1 << 20))),
                monitor=MonitorSettings.from_json(d.get("monitor")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidRequest(f"bad node config: {exc!r}", code="bad_config") from None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chainId": self.chain_id, "rollup": self.rollup,
            "genesis": "0x" + self.genesis.to_bytes().hex(), "blockTime": self.block_time,
            "maxBlockTxs": self.max_block_txs,
            "maxBlockBytes": self.max_block_bytes, "snapshotEveryRecords": self.snapshot_every_records,
            "limits": {"ordersPerSecond": self.limits.orders_per_second, "burst": self.limits.burst,
                       "ipRequestsPerSecond": self.limits.ip_requests_per_second,
                       "ipBurst": self.limits.ip_burst, "maxBatch": self.limits.max_batch,
                       "maxBodyBytes": self.limits.max_body_bytes},
            "monitor": self.monitor.to_json(),
        }
        if self.l1 is not None:
            out["l1"] = {"rpc": self.l1.rpc, "bridge": self.l1.bridge,
                         "collateralToken": self.l1.collateral_token, "chainId": self.l1.chain_id,
                         "deploymentBlock": self.l1.deployment_block,
                         "confirmations": self.l1.confirmations, "pollSeconds": self.l1.poll_seconds,
                         "adjudicator": self.l1.adjudicator}
        return out

    @classmethod
    def load(cls, path: str | Path) -> "NodeConfig":
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidRequest(f"cannot read node config {path}: {exc}", code="bad_config") from None
