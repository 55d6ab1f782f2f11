"""A node on a real LevelDB in a temp dir, with a settable clock and signing helpers."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from cext import Order
from sequencer.core import Feed, make_instrument
from sequencer.core.chainspec import Genesis
from sequencer.core.eip712 import digest, order_digest
from sequencer.node import NodeConfig
from sequencer.node.node import Node
from tests.sequencer.core.core_world import (CALL, EXPIRY, ORACLES, PUT, SPOT, T0, USERS, Key,
                                             make_config, order)

__all__ = ["CALL", "EXPIRY", "PUT", "SPOT", "T0", "USERS", "Clock", "Kit", "order"]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def node_config(**kw: Any) -> NodeConfig:
    cfg = make_config()
    g = Genesis(cfg, T0 - 10, (make_instrument(CALL), make_instrument(PUT)))
    return NodeConfig(chain_id=cfg.chain_id, rollup="0x" + cfg.verifying_contract.hex(), genesis=g, **kw)


class Kit:
    """Drives a Node synchronously: verify + process + wait for durability."""

    def __init__(self, path: Path, **cfg_kw: Any) -> None:
        self.path = path
        self.cfg = node_config(**cfg_kw)
        self.clock = Clock(T0)
        self.node = Node(path, self.cfg, clock=self.clock)
        self.deposits = 0

    def reopen(self) -> Node:
        self.node.close()
        self.node = Node(self.path, self.cfg, clock=self.clock)
        return self.node

    def run(self, items: list[tuple[Any, bytes]]) -> list[Any]:
        d, s = self.node.verify(items)
        done = self.node.process(items, d, s)
        for _, f in done:
            if f is not None:
                f.result(timeout=10)
        return [v for v, _ in done]

    def sign(self, key: Key, msg: Any) -> bytes:
        dom = self.cfg.genesis.config.domain
        if isinstance(msg, Order):
            return key.sign(order_digest(dom, msg))
        return key.sign(digest(dom, msg))

    def fund(self, key: Key, amount: int) -> None:
        f: Future | None = self.node.credit_deposit(key.address, amount, self.deposits, 1)
        assert f is not None
        f.result(timeout=10)
        self.deposits += 1

    def feeds(self, spot: int = SPOT) -> None:
        ts = int(self.clock())
        items = []
        for k in ORACLES:
            f = Feed("ETH", spot, ts, (EXPIRY - 86400 * 30, EXPIRY), (800_000, 800_000))
            items.append((f, self.sign(k, f)))
        assert all(not isinstance(r, Exception) for r in self.run(items))

    def place(self, key: Key, **kw: Any) -> Any:
        o = order(key, **kw)
        return self.run([(o, self.sign(key, o))])[0]
