"""A real `optrollup serve` process on a temp data dir, for the e2e test and the node benchmarks.

There is no L1 here, so accounts are funded before the server starts: a Node is opened in
process on the data dir, credits the deposits (and a first round of oracle feeds) and is closed;
then the server starts on that data dir and recovers them from the log like any other records.

Signing is done with coincurve over digests from cext (fast enough for 10^5+ orders);
tests/e2e/test_crash.py checks that these signatures equal eth-account's for the same message.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

from cext import Order, order_digests, to_checksum
from sequencer.api.auth import auth_message, eip191_digest
from sequencer.core import CoreConfig, Feed, OracleParams, digest, make_instrument
from sequencer.core.chainspec import Genesis
from sequencer.node import Limits, NodeConfig
from sequencer.node.node import Node
from tests.sequencer.core.core_world import Key

ROOT = Path(__file__).resolve().parents[2]
U = 10**6
CHAIN_ID = 412346
ROLLUP = b"\x5f" * 20
SPOT = 3000 * U
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]

OPERATOR, FEE = Key(1), Key(2)
ORACLE = Key(3)


def expiry_name(now: float, days: int = 20) -> tuple[str, int]:
    """A date-part of an instrument name `days` ahead of `now`, and that expiry (08:00 UTC)."""
    d = dt.datetime.fromtimestamp(now, dt.timezone.utc).date() + dt.timedelta(days=days)
    return f"{d.day}{MONTHS[d.month - 1]}{d.year % 100:02d}", calendar.timegm((d.year, d.month, d.day, 8, 0, 0))


def instrument_names(now: float, n: int = 2) -> tuple[list[str], int]:
    """`n` listed instruments (calls and puts around spot) expiring ~20 days after `now`."""
    date, expiry = expiry_name(now)
    names = []
    for i in range(n):
        strike = 3000 + 100 * (i // 2)
        names.append(f"ETH-{date}-{strike}-{'C' if i % 2 == 0 else 'P'}")
    return names, expiry


def node_config(now: float, *, n_instruments: int = 2, **kw: Any) -> NodeConfig:
    core = CoreConfig(chain_id=CHAIN_ID, verifying_contract=ROLLUP, operator=OPERATOR.address,
                      fee_account=FEE.address, oracle=OracleParams(keys=(ORACLE.address,), quorum=1))
    names, _ = instrument_names(now, n_instruments)
    g = Genesis(core, int(now) - 10, tuple(make_instrument(n) for n in names))
    return NodeConfig(chain_id=CHAIN_ID, rollup="0x" + ROLLUP.hex(), genesis=g, **kw)


def open_limits() -> Limits:
    """Rate limits out of the way of a load generator on one IP."""
    return Limits(orders_per_second=1e9, burst=1e9, ip_requests_per_second=1e9, ip_burst=1e9)


def feed(now: float, expiry: int) -> Feed:
    return Feed("ETH", SPOT, int(now), (expiry, expiry + 30 * 86400), (800_000, 800_000))


def feed_body(cfg: NodeConfig, now: float) -> dict[str, Any]:
    _, expiry = instrument_names(cfg.genesis.timestamp + 10)
    f = feed(now, expiry)
    return {"feed": {"underlying": f.underlying, "spot": str(f.spot), "timestamp": f.timestamp,
                     "expiries": list(f.expiries), "vols": [str(v) for v in f.vols]},
            "signature": "0x" + ORACLE.sign(digest(cfg.genesis.config.domain, f)).hex()}


def fund(data_dir: Path, cfg: NodeConfig, keys: Iterable[Key], amount: int) -> None:
    """Credit `amount` to each key (as L1 deposits 0, 1, ...) and post one oracle feed, in a
    Node opened in process and closed again."""
    node = Node(data_dir, cfg)
    try:
        futs = []
        for i, k in enumerate(keys):
            futs.append(node.credit_deposit(k.address, amount, i, 1))
        _, expiry = instrument_names(cfg.genesis.timestamp + 10)
        f = feed(time.time(), expiry)
        sig = ORACLE.sign(digest(cfg.genesis.config.domain, f))
        d, s = node.verify([(f, sig)])
        [(value, fut)] = node.process([(f, sig)], d, s)
        assert fut is not None, value
        futs.append(fut)
        for fu in futs:
            fu.result(timeout=30)
    finally:
        node.close()


def write_config(path: Path, cfg: NodeConfig) -> Path:
    path.write_text(json.dumps(cfg.to_json()))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- orders ---------------------------------------------------------------------------------------

def order_json(o: Order) -> dict[str, Any]:
    return {"account": to_checksum(o.account), "instrument": o.instrument, "isBuy": o.isBuy,
            "price": str(o.price), "amount": str(o.amount), "nonce": o.nonce, "expiry": o.expiry,
            "timeInForce": o.timeInForce, "postOnly": o.postOnly, "reduceOnly": o.reduceOnly}


def sign_orders(cfg: NodeConfig, keys: dict[bytes, Key], orders: Sequence[Order]) -> list[tuple[bytes, dict[str, Any]]]:
    """(orderHash, signed JSON body item) per order; digests in one cext batch, coincurve signs."""
    ds = order_digests(cfg.genesis.config.domain, list(orders))
    return [(d, {"order": order_json(o), "signature": "0x" + keys[o.account].sign(d).hex()})
            for o, d in zip(orders, ds)]


def auth_headers(key: Key, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    sig = key.sign(eip191_digest(auth_message(key.address, ts)))
    return {"X-Optrollup-Account": to_checksum(key.address), "X-Optrollup-Timestamp": str(ts),
            "X-Optrollup-Signature": "0x" + sig.hex()}


# -- the server process ---------------------------------------------------------------------------

class Server:
    """`optrollup serve` in a child process (its own process group), output to a log file."""

    def __init__(self, data_dir: Path, config: Path, *, port: int | None = None,
                 log_path: Path | None = None, extra: Sequence[str] = ()) -> None:
        self.data_dir, self.config = data_dir, config
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or data_dir.parent / f"serve-{self.port}.log"
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None

    def cmd(self) -> list[str]:
        return [sys.executable, "-m", "sequencer.cli", "serve", "--data-dir", str(self.data_dir),
                "--config", str(self.config), "--port", str(self.port), "--log-level", "warning",
                *self.extra]

    def start(self, timeout: float = 20.0) -> "Server":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd(), cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not answer /health within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, no chance to flush anything."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (graceful: uvicorn's shutdown closes the node), SIGKILL if it hangs."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode
