"""Ingress workers (sequencer/ingress) against real processes: `optrollup serve --ingress-workers 2`.

- The same requests (orders, batches, amends, mass quotes, cancels, cancel-alls, withdrawals,
  session keys, and every kind of malformed or refused one) sent to a plain node's main port and
  to an identical node's gateway port get byte-identical answers (status, body, Retry-After),
  and leave both nodes in the same state (rejected requests leave no trace).
- Requests pipelined on one connection to the gateway are applied in order.
- A stranger's forged orders charge only the IP budget (shared by both ports), never the account.
- The core going away: a standalone `optrollup gateway` answers 503 store_unavailable at once and
  reattaches when the node is back; the workers `serve` spawned die with it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cext import Order, to_checksum
from sequencer.core import digest
from sequencer.core.eip712 import Cancel, CancelAll, SessionKey, Withdraw
from sequencer.node import Limits
from tests.e2e.serverkit import (ROOT, U, Server, auth_headers, free_port, fund, instrument_names,
                                 node_config, open_limits, sign_orders, write_config)
from tests.sequencer.core.core_world import Key

A, B, STRANGER = Key(71), Key(72), Key(73)


def wait_ready(url: str, timeout: float = 20.0, in_a_row: int = 20) -> None:
    """Until `in_a_row` health checks in a row, each on a new connection, say the core is
    attached: the workers share the port, each connection reaches one of them, and a worker
    answers 503 store_unavailable until its own link to the core is up (one check in CI
    reached the worker that was, and the first order the one that was not)."""
    deadline = time.monotonic() + timeout
    ok = 0
    while time.monotonic() < deadline:
        try:
            ok = ok + 1 if httpx.get(url + "/health", timeout=1.0).status_code == 200 else 0
        except httpx.TransportError:
            ok = 0
        if ok >= in_a_row:
            return
        time.sleep(0.01 if ok else 0.05)
    raise AssertionError(f"{url} not ready within {timeout} s")


class World:
    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.domain = cfg.genesis.config.domain
        self.names, expiry = instrument_names(cfg.genesis.timestamp + 10)
        self.expiry = expiry - 86400
        self.keys = {k.address: k for k in (A, B, STRANGER)}
        self.nonce = 0

    def order(self, key: Key, buy: bool, price: int, amount: int = 10_000, tif: int = 0,
              inst: int = 0, signer: Key | None = None) -> tuple[str, dict[str, Any]]:
        self.nonce += 1
        o = Order(key.address, self.names[inst], buy, price, amount, self.nonce, self.expiry,
                  tif, False, False)
        [(d, body)] = sign_orders(self.cfg, {key.address: signer or key}, [o])
        return "0x" + d.hex(), body

    def signed(self, primary: str, msg: Any, js: dict[str, Any], signer: Key) -> dict[str, Any]:
        return {primary: js, "signature": "0x" + signer.sign(digest(self.domain, msg)).hex()}

    def cancel(self, key: Key, h: str, signer: Key | None = None) -> dict[str, Any]:
        return self.signed("cancel", Cancel(key.address, bytes.fromhex(h[2:])),
                           {"account": to_checksum(key.address), "orderHash": h}, signer or key)

    def cancel_all(self, key: Key, ts: int, inst: str = "", signer: Key | None = None) -> dict[str, Any]:
        return self.signed("cancelAll", CancelAll(key.address, inst, ts),
                           {"account": to_checksum(key.address), "instrument": inst,
                            "timestamp": ts}, signer or key)

    def replace(self, key: Key, old: str, buy: bool, price: int,
                cancel_signer: Key | None = None) -> tuple[str, dict[str, Any]]:
        h, body = self.order(key, buy, price)
        return h, {"cancel": self.cancel(key, old, cancel_signer), "order": body}


def scenario(w: World, now: int) -> list[tuple[str, Any]]:
    """(path, body) requests; bodies that are bytes are sent raw."""
    P = 100 * U
    reqs: list[tuple[str, Any]] = []
    a1, a1b = w.order(A, False, P + 500_000)
    a2, a2b = w.order(A, False, P + 600_000)
    reqs += [("/v1/orders", a1b), ("/v1/orders", a2b), ("/v1/orders", a1b)]  # 3rd: duplicate
    # a batch: good, forged (stranger signs for A), bad v, malformed item, good, duplicate
    good = [w.order(A, True, P - 500_000 - i * 100_000) for i in range(3)]
    _, forged = w.order(A, True, P - 900_000, signer=STRANGER)
    bad_v = json.loads(json.dumps(good[0][1]))
    bad_v["signature"] = bad_v["signature"][:-2] + "05"
    reqs.append(("/v1/orders/batch", {"orders": [good[0][1], forged, bad_v, {"order": 5},
                                                 good[1][1], good[0][1], good[2][1]]}))
    # takers: B crosses A's ask (fills), an IOC that finds nothing, an unlisted instrument
    _, take = w.order(B, True, P + 500_000, tif=1)
    _, ioc = w.order(B, True, P - 5_000_000, tif=1)
    bad_inst = w.order(B, True, P)[1]
    bad_inst["order"]["instrument"] = "ETH-1JAN20-1-C"
    reqs += [("/v1/orders", take), ("/v1/orders", ioc), ("/v1/orders", bad_inst)]
    # amends: good; cancel of an unknown order; cancel signed by a stranger
    n1, rep = w.replace(A, a2, False, P + 700_000)
    _, rep_unknown = w.replace(A, "0x" + "11" * 32, False, P + 800_000)
    _, rep_forged = w.replace(A, n1, False, P + 900_000, cancel_signer=STRANGER)
    reqs += [("/v1/orders/replace", rep), ("/v1/orders/replace", rep_unknown),
             ("/v1/orders/replace", rep_forged)]
    # mass quote: good pairs, a malformed pair, a pair whose cancel fails
    q1, qa = w.replace(A, good[0][0], True, P - 300_000)
    _, qb = w.replace(A, good[1][0], True, P - 350_000)
    _, qc = w.replace(A, "0x" + "22" * 32, True, P - 400_000)
    reqs.append(("/v1/quotes", {"quotes": [qa, {"cancel": 1, "order": 2}, qb, qc]}))
    reqs.append(("/v1/quotes", {"quotes": []}))
    reqs.append(("/v1/quotes", {"quotes": [qa] * 501}))  # over maxBatch
    # cancels: good, again (gone), forged, cancel-all of one instrument, a forged cancel-all
    # (not one out of the window: its message names the block time, which may differ by a second)
    reqs += [("/v1/cancel", w.cancel(A, q1)), ("/v1/cancel", w.cancel(A, q1)),
             ("/v1/cancel", w.cancel(A, good[2][0], STRANGER)),
             ("/v1/cancel_all", w.cancel_all(A, now, w.names[0])),
             ("/v1/cancel_all", w.cancel_all(A, now + 1, signer=STRANGER))]
    # withdrawals and session keys
    wd = Withdraw(B.address, B.address, 5 * U, 0)
    reqs += [("/v1/withdrawals", w.signed("withdraw", wd, {
                 "account": to_checksum(B.address), "recipient": to_checksum(B.address),
                 "amount": str(5 * U), "nonce": 0}, B)),
             ("/v1/withdrawals", w.signed("withdraw", Withdraw(B.address, B.address, 5 * U, 7), {
                 "account": to_checksum(B.address), "recipient": to_checksum(B.address),
                 "amount": str(5 * U), "nonce": 7}, B))]
    sk = SessionKey(A.address, STRANGER.address, now + 3600)
    reqs.append(("/v1/session_keys", w.signed("sessionKey", sk, {
        "account": to_checksum(A.address), "key": to_checksum(STRANGER.address),
        "expiry": now + 3600}, A)))
    _, by_session = w.order(A, False, P + 2_000_000, signer=STRANGER)  # now a live session key
    reqs.append(("/v1/orders", by_session))
    # malformed requests
    reqs += [("/v1/orders", b"{not json"), ("/v1/orders", b"[]"), ("/v1/orders", {"order": {}}),
             ("/v1/orders", {"order": good[0][1]["order"], "signature": "0x12"}),
             ("/v1/orders/batch", {"orders": []}), ("/v1/orders/batch", {"orders": 3}),
             ("/v1/cancel", {"cancel": {"account": "0x00"}, "signature": "0x"}),
             ("/v1/orders", b"x" * ((1 << 20) + 10)), ("/v1/orders", "\u00e9")]
    return reqs


def send(c: httpx.Client, path: str, body: Any) -> tuple[int, bytes, str | None]:
    if isinstance(body, bytes):
        r = c.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = c.post(path, json=body)
    return r.status_code, r.content, r.headers.get("retry-after")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    """Two nodes from one funded data dir: `plain` (main port only) and `ingress` (2 workers)."""
    tmp = tmp_path_factory.mktemp("ingress")
    now = time.time()
    cfg = node_config(now, limits=open_limits())
    (tmp / "seed").mkdir()
    fund(tmp / "seed", cfg, [A, B, STRANGER], 10**11)
    conf = write_config(tmp / "config.json", cfg)
    shutil.copytree(tmp / "seed", tmp / "plain")
    shutil.copytree(tmp / "seed", tmp / "ingress")
    gport = free_port()
    plain = Server(tmp / "plain", conf).start()
    ing = Server(tmp / "ingress", conf,
                 extra=["--ingress-workers", "2", "--ingress-port", str(gport)]).start()
    gurl = f"http://127.0.0.1:{gport}"
    try:
        wait_ready(gurl)
        # only a node asked to (--ingress-workers / --ingress-socket) takes pre-verified records
        assert not (tmp / "plain" / "ingress.sock").exists()
        assert (tmp / "ingress" / "ingress.sock").exists()
        yield cfg, plain, ing, gurl
    finally:
        for s in (plain, ing):
            s.stop()


def test_same_answers_and_state_as_main_port(pair: Any) -> None:
    cfg, plain, ing, gurl = pair
    w = World(cfg)
    now = int(time.time())
    reqs = scenario(w, now)
    with httpx.Client(base_url=plain.url, timeout=30) as pc, httpx.Client(base_url=gurl, timeout=30) as gc:
        statuses = set()
        for path, body in reqs:
            want, got = send(pc, path, body), send(gc, path, body)
            assert got == want, (path, want, got)
            statuses.add(want[0])
        assert statuses >= {200, 400, 401, 404, 409, 413}, statuses
        # same state on both nodes: open orders, accounts, books (reads on the main ports)
        with httpx.Client(base_url=ing.url, timeout=30) as ic:
            for key in (A, B, STRANGER):
                addr = to_checksum(key.address)
                # equity and margins are at each node's block time (marks decay with time): two
                # real-time nodes can be a second apart, so read again until both answer at one
                for _ in range(20):
                    ra = pc.get(f"/v1/accounts/{addr}", headers=auth_headers(key)).json()
                    rb = ic.get(f"/v1/accounts/{addr}", headers=auth_headers(key)).json()
                    if ra == rb:
                        break
                    time.sleep(0.25)
                assert ra == rb
            for name in w.names:
                assert pc.get(f"/v1/book/{name}").json() == ic.get(f"/v1/book/{name}").json()
            assert pc.get("/v1/trades").json() == ic.get("/v1/trades").json()
        # the gateway serves nothing else; the main port still serves the writes
        r = gc.get("/v1/info")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert ing.url in r.json()["error"]["message"]
        assert gc.get("/health").json()["core"] == "attached"


def test_forged_rejection_leaves_no_trace(pair: Any) -> None:
    cfg, plain, ing, gurl = pair
    w = World(cfg)
    w.nonce = 10_000
    h, forged = w.order(A, True, 50 * U, signer=B)
    w.nonce -= 1
    h2, real = w.order(A, True, 50 * U)
    assert h == h2
    with httpx.Client(base_url=gurl, timeout=30) as gc:
        r = gc.post("/v1/orders", json=forged)
        assert r.status_code == 401, r.text
        r = httpx.get(f"{ing.url}/v1/orders/{h}", headers=auth_headers(A))
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_order"
        r = gc.post("/v1/orders", json=real)  # the digest was not spent by the forgery
        assert r.status_code == 200 and r.json()["orderHash"] == h, r.text


def _http_responses(sock: socket.socket, n: int, timeout: float = 30.0) -> list[tuple[int, Any]]:
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536) or b""
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:])
                      if k.strip().lower() == b"content-length")
        while len(rest) < length:
            rest += sock.recv(65536)
        out.append((status, json.loads(rest[:length])))
        buf = rest[length:]
    return out


def test_pipelined_requests_keep_their_order(pair: Any) -> None:
    cfg, plain, ing, gurl = pair
    w = World(cfg)
    w.nonce = 20_000
    port = int(gurl.rsplit(":", 1)[1])
    reqs, hashes = [], []
    for i in range(15):  # place, then cancel it: the cancel finds it only if applied after
        h, body = w.order(B, True, (60 + i) * U, inst=1)
        hashes.append(h)
        reqs += [("/v1/orders", body), ("/v1/cancel", w.cancel(B, h))]
    raw = b"".join(
        b"POST " + p.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(js)).encode() + b"\r\n\r\n" + js
        for p, js in ((p, json.dumps(b).encode()) for p, b in reqs))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(raw)
        answers = _http_responses(s, len(reqs))
    for i, (status, body) in enumerate(answers):
        assert status == 200, (i, body)
        assert body["orderHash"] == hashes[i // 2]
        assert body["status"] == ("open" if i % 2 == 0 else "cancelled")


def _gateway(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sequencer.cli", "gateway", "--data-dir",
                             str(data_dir), "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_budgets_and_core_going_away(tmp_path: Path) -> None:
    now = time.time()
    lim = Limits(orders_per_second=0.001, burst=3, ip_requests_per_second=0.001, ip_burst=60)
    cfg = node_config(now, limits=lim)
    data = tmp_path / "data"
    data.mkdir()
    fund(data, cfg, [A, B], 10**11)
    conf = write_config(tmp_path / "config.json", cfg)
    wport, sport = free_port(), free_port()
    srv = Server(data, conf, extra=["--ingress-workers", "1", "--ingress-port", str(wport)]).start()
    solo = _gateway(data, sport, tmp_path / "gateway.log")
    wurl, surl = f"http://127.0.0.1:{wport}", f"http://127.0.0.1:{sport}"
    try:
        wait_ready(wurl)
        wait_ready(surl)
        w = World(cfg)
        with httpx.Client(timeout=30) as c:
            # a stranger's forgeries in A's name: refused, charged to the IP only
            for _ in range(6):
                r = c.post(wurl + "/v1/orders", json=w.order(A, True, 50 * U, signer=STRANGER)[1])
                assert r.status_code == 401, r.text
            for i in range(3):  # A's own budget (burst 3) is intact, on either worker
                r = c.post((wurl, surl)[i % 2] + "/v1/orders", json=w.order(A, True, 50 * U)[1])
                assert r.status_code == 200, r.text
            ra = c.post(wurl + "/v1/orders", json=w.order(A, True, 50 * U)[1])
            rb = c.post(srv.url + "/v1/orders", json=w.order(A, True, 50 * U)[1])
            assert ra.status_code == rb.status_code == 429, (ra.text, rb.text)
            ea, eb = ra.json()["error"], rb.json()["error"]  # equal but for "retry in N s"
            assert ea["code"] == eb["code"] == "rate_limited"
            assert ea["message"].split("retry in")[0] == eb["message"].split("retry in")[0]
            assert "retry-after" in ra.headers and "retry-after" in rb.headers
            # the IP budget is one for both ports
            for _ in range(80):
                r = c.post(surl + "/v1/orders", content=b"{")
                if r.status_code == 429:
                    break
                assert r.status_code == 400
            assert r.status_code == 429 and "retry-after" in r.headers, r.text
            main = c.get(srv.url + "/v1/info")
            assert main.status_code == 429
        # the core goes away: the standalone gateway answers 503 at once, no hang
        worker_pids = [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(srv.proc.pid), "-f", "sequencer.cli gateway"],
            capture_output=True, text=True).stdout.split()]
        assert len(worker_pids) == 1
        srv.kill()
        t0 = time.monotonic()
        r = httpx.post(surl + "/v1/orders", json=w.order(B, True, 50 * U)[1], timeout=10)
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable", r.text
        assert time.monotonic() - t0 < 2
        assert httpx.get(surl + "/health").status_code == 503
        deadline = time.monotonic() + 10  # the spawned worker died with its serve
        while time.monotonic() < deadline and Path(f"/proc/{worker_pids[0]}").exists():
            time.sleep(0.05)
        assert not Path(f"/proc/{worker_pids[0]}").exists() or \
            Path(f"/proc/{worker_pids[0]}/stat").read_text().split()[2] == "Z"
        # the node comes back: the gateway reattaches
        srv2 = Server(data, conf, port=srv.port, extra=["--ingress-socket"]).start()
        try:
            wait_ready(surl)
            r = httpx.post(surl + "/v1/orders", json=w.order(B, True, 50 * U)[1], timeout=10)
            assert r.status_code in (200, 429), r.text  # the new node's IP budget is fresh: 200
            assert r.status_code == 200, r.text
        finally:
            srv2.stop()
    finally:
        solo.terminate()
        solo.wait(10)
        srv.stop()


def test_sdk_sends_signed_writes_to_the_order_entry_port(pair: Any) -> None:
    """`Client(url, order_url=gateway)`: the signed writes go to the ingress workers, reads to the
    main port (the gateway answers reads 404, so a read sent there would fail); the routes the
    SDK sends there are exactly those the gateway serves."""
    from optrollup_client import ORDER_ENTRY_ROUTES, AsyncClient, Client, NewOrder, TransportError
    from sequencer.ingress.gateway import ROUTES

    assert ORDER_ENTRY_ROUTES == ROUTES
    cfg, plain, ing, gurl = pair
    name = World(cfg).names[1]
    with Client(ing.url, order_url=gurl, private_key=STRANGER.hex) as c:
        a = c.place_order(name, "buy", 2 * U, 10_000, post_only=True)
        b = c.place_order(name, "buy", 3 * U, 10_000, post_only=True)
        [q] = c.mass_quote([(b.order_hash, NewOrder(name, "buy", 4 * U, 10_000, post_only=True))])
        assert {o.order_hash for o in c.open_orders()} == {a.order_hash, q.order_hash}
        assert c.order(q.order_hash).status == "open"  # a read: the main port

        async def amend() -> None:
            async with AsyncClient(ing.url, order_url=gurl, private_key=STRANGER.hex) as ac:
                r = await ac.replace_order(a.order_hash, NewOrder(name, "buy", 1 * U, 10_000, post_only=True))
                assert r.status == "open" and (await ac.order(r.order_hash)).status == "open"

        asyncio.run(amend())
        assert c.cancel_all(name) == 2
    # the writes really take the order-entry port: with nothing listening there they fail,
    # while the reads still work
    with Client(ing.url, order_url=f"http://127.0.0.1:{free_port()}", private_key=STRANGER.hex) as c:
        assert c.open_orders() == []
        with pytest.raises(TransportError):
            c.place_order(name, "buy", 2 * U, 10_000, post_only=True)
