"""kill -9 a real `optrollup serve` under concurrent order load; every acknowledged order must
survive the restart, replay must reproduce the stored blocks, and a second server on the same
data dir must refuse to start.

Real processes over loopback; bounded to a few seconds of load (~1-3k orders) so that it fits
both passes of `make test` (accelerated and OPTROLLUP_PUREPYTHON=1).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.messages import encode_typed_data

from cext import Order
from sequencer.node.node import Node
from tests.e2e.serverkit import (ROOT, U, Server, auth_headers, fund, instrument_names, node_config,
                                 open_limits, order_json, sign_orders, write_config)
from tests.sequencer.core.core_world import Key

N_ACCOUNTS = 6
LOAD_SECONDS = 2.0


class Loader(threading.Thread):
    """One account's client: alternating single orders and small batches, as fast as acked."""

    def __init__(self, url: str, cfg, key: Key, names: list[str], expiry: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.url, self.cfg, self.key, self.names, self.expiry = url, cfg, key, names, expiry
        self.rng = random.Random(seed)
        self.nonce = seed * 1_000_000
        self.sent: set[bytes] = set()
        self.acked: set[bytes] = set()
        self.rejected: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def orders(self, n: int) -> list[tuple[bytes, dict]]:
        out = []
        for _ in range(n):
            self.nonce += 1
            buy = self.rng.random() < 0.5
            out.append(Order(self.key.address, self.rng.choice(self.names), buy,
                             100 * U + self.rng.randint(-5, 5) * 100_000,
                             10_000 * self.rng.randint(1, 5), self.nonce, self.expiry - 86400,
                             self.rng.choice((0, 0, 1)), False, False))
        return sign_orders(self.cfg, {self.key.address: self.key}, out)

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=10.0) as c:
                i = 0
                while not self.stop.is_set():
                    i += 1
                    batch = self.orders(1 if i % 2 else 20)
                    self.sent.update(d for d, _ in batch)
                    try:
                        if len(batch) == 1:
                            r = c.post("/v1/orders", json=batch[0][1])
                            results = [r.json() if r.status_code == 200 else {"error": r.json()["error"]}]
                        else:
                            r = c.post("/v1/orders/batch", json={"orders": [b for _, b in batch]})
                            assert r.status_code == 200, r.text
                            results = r.json()["results"]
                    except httpx.TransportError:
                        return  # the server was killed: whatever was not answered is not acked
                    for (d, _), res in zip(batch, results):
                        if "error" in res:
                            self.rejected.append(res["error"]["code"])
                        else:
                            assert res["orderHash"] == "0x" + d.hex()
                            self.acked.add(d)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def test_signatures_match_eth_account(tmp_path: Path) -> None:
    """The fast signer of the e2e kit and the benchmarks equals eth-account over /v1/info."""
    from fastapi.testclient import TestClient

    from sequencer.api.app import create_app

    cfg = node_config(time.time())
    node = Node(tmp_path / "d", cfg)
    with TestClient(create_app(node, tick_seconds=3600)) as client:
        info = client.get("/v1/info").json()
    key = Key(100)
    names, expiry = instrument_names(time.time())
    o = Order(key.address, names[0], True, 100 * U, 10_000, 7, expiry - 86400, 0, False, False)
    [(d, body)] = sign_orders(cfg, {key.address: key}, [o])
    typed = encode_typed_data(domain_data=info["eip712"]["domain"],
                              message_types={"Order": info["eip712"]["types"]["Order"]},
                              message_data=order_json(o))
    signed = Account.from_key(key.priv.secret).sign_message(typed)
    assert bytes(signed.message_hash) == d
    assert body["signature"] == "0x" + bytes(signed.signature).hex()


def test_kill9_under_load_keeps_every_acknowledged_order(tmp_path: Path) -> None:
    now = time.time()
    cfg = node_config(now, max_block_txs=100, snapshot_every_records=250, limits=open_limits())
    keys = [Key(100 + i) for i in range(N_ACCOUNTS)]
    by_addr = {k.address: k for k in keys}
    data = tmp_path / "data"
    fund(data, cfg, keys, 10**9 * U)
    conf = write_config(tmp_path / "node.json", cfg)
    names, expiry = instrument_names(now)

    srv = Server(data, conf).start()
    try:
        # a second server on the same data dir: a clear error and a non-zero exit, nothing opened
        second = subprocess.run(Server(data, conf).cmd(), capture_output=True, text=True, timeout=30,
                                cwd=ROOT)
        assert second.returncode != 0
        assert "in use" in second.stderr and "data_dir_locked" in second.stderr, second.stderr

        loaders = [Loader(srv.url, cfg, k, names, expiry, seed=i + 1) for i, k in enumerate(keys)]
        for ld in loaders:
            ld.start()
        t0 = time.monotonic()
        seen_block = None
        def snapshotted() -> bool:  # the kill must also find a snapshot to recover from
            return any((data / "snapshots").glob("*.snap"))

        while (time.monotonic() - t0 < LOAD_SECONDS or sum(len(ld.acked) for ld in loaders) < 200
               or not snapshotted()):
            time.sleep(0.25)
            r = httpx.get(srv.url + "/v1/blocks/latest", timeout=5)
            assert r.status_code == 200
            seen_block = r.json()["header"]
            assert time.monotonic() - t0 < 15 or sum(len(ld.acked) for ld in loaders) >= 200, \
                "load made no progress"
            # (the pure-Python twin's snapshot worker replays slowly on a slow machine)
            assert time.monotonic() - t0 < 90, "no snapshot was written under load"
        srv.kill()  # mid-load: loaders have requests in flight
        for ld in loaders:
            ld.join(timeout=15)
            assert not ld.is_alive()
            assert ld.error is None, repr(ld.error)
    finally:
        srv.kill()
        srv.stop()

    acked = {d: ld.key for ld in loaders for d in ld.acked}
    sent = set().union(*(ld.sent for ld in loaders))
    rejected = [c for ld in loaders for c in ld.rejected]
    print(f"acked {len(acked)}, rejected {len(rejected)} {sorted(set(rejected))}, "
          f"sent and unanswered at the kill {len(sent) - len(acked) - len(rejected)}")
    assert len(acked) >= 200, (len(acked), rejected[:10])
    assert int(seen_block["number"]) >= 1  # blocks were sealed under load

    srv2 = Server(data, conf).start()  # replays the log: refuses to start if it diverges
    try:
        latest = httpx.get(srv2.url + "/v1/blocks/latest", timeout=5).json()["header"]
        assert int(latest["number"]) >= int(seen_block["number"])
        again = httpx.get(f"{srv2.url}/v1/blocks/{int(seen_block['number'])}", timeout=5).json()["header"]
        assert again == seen_block  # a block served before the crash is unchanged after it
        hdrs = {k.address: auth_headers(k) for k in keys}

        def check(items: list[tuple[bytes, Key]]) -> list[str]:
            bad = []
            with httpx.Client(base_url=srv2.url, timeout=10) as c:
                for d, k in items:
                    r = c.get(f"/v1/orders/0x{d.hex()}", headers=hdrs[k.address])
                    if r.status_code != 200 or r.json()["orderHash"] != "0x" + d.hex():
                        bad.append(f"{d.hex()}: {r.status_code} {r.text[:200]}")
            return bad

        items = sorted(acked.items())
        with ThreadPoolExecutor(4) as ex:
            missing = [b for part in ex.map(check, [items[i::4] for i in range(4)]) for b in part]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged orders lost: {missing[:5]}"
        served_head = latest
    finally:
        # uvicorn shuts down gracefully on SIGTERM (closing the node), then re-raises the signal
        assert srv2.stop() in (0, -15), srv2.output()

    # Recompute: the whole log from genesis (snapshots removed, in a copy) and from the latest
    # snapshot must reach the same head; the head's stateRoot is the account tree's root.
    full = tmp_path / "full"
    shutil.copytree(data, full)
    snaps = sorted((full / "snapshots").glob("*.snap"))
    for p in snaps:
        p.unlink()
    assert snaps, "the load should have taken at least one snapshot"
    heads = {}
    for name, path in (("snapshot", data), ("genesis", full)):
        node = Node(path, cfg)
        try:
            core = node.core
            assert core.tree.root() == core.head.state_root
            assert node.store.head() == core.head.number
            assert node.store.get(core.head.number)[0].header == core.head
            assert int(served_head["number"]) <= core.head.number
            accepted = set(node.accepted_order_hashes())
            assert accepted >= set(acked)
            assert accepted <= sent | set(acked), "an order nobody sent is in the state"
            st = core.engine.state
            heads[name] = (core.head, {a: (st.accounts[a].collateral, dict(st.accounts[a].positions))
                                       for a in by_addr}, sorted(core.engine.open))
        finally:
            node.close()
    assert heads["snapshot"] == heads["genesis"]
