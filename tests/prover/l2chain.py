"""A sequencer stand-in for the prover tests and the L1 benchmark: a real `Genesis`, the trading
engine, and blocks sealed exactly as the node seals them (`seal_header`), kept in memory.

`L2Chain` also serves as the poster's in-memory `BlockSource`, and `serve_blocks` exposes it
over HTTP with the sequencer's JSON (`GET /v1/blocks/latest`, `/v1/blocks/latest/header`,
`/v1/blocks/{n}`, `/v1/info`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cext import Order
from prover.batch import BlockData, block_data
from sequencer.core import CoreConfig, Engine, Feed, OracleParams, digest, make_instrument, order_digest
from sequencer.core.chain import marks_root, seal_header
from sequencer.core.chainspec import Genesis
from sequencer.core.header import Block, Header
from sequencer.core.txs import encode_tx
from tests.sequencer.core.core_world import CALL, EXPIRY, FEE, OPERATOR, ORACLES, PUT, SPOT, T0, USERS, Key

GENESIS_TS = T0 - 1


def make_genesis(chain_id: int, rollup: bytes) -> Genesis:
    cfg = CoreConfig(chain_id=chain_id, verifying_contract=rollup, operator=OPERATOR.address,
                     fee_account=FEE.address,
                     oracle=OracleParams(keys=tuple(k.address for k in ORACLES), quorum=2))
    return Genesis(cfg, GENESIS_TS, (make_instrument(CALL), make_instrument(PUT)))


class L2Chain:
    """Genesis + engine + sealed blocks. Deposits are L1-backed only if the caller makes the same
    deposit on the Bridge (`on_deposit` is called with (address, amount, nonce))."""

    def __init__(self, chain_id: int, rollup: bytes,
                 on_deposit: Callable[[bytes, int, int], None] | None = None,
                 depositor: bytes | None = None) -> None:
        self.genesis = make_genesis(chain_id, rollup)
        self.config = self.genesis.config
        self.state, self.tree, h0 = self.genesis.block0()
        self.blocks: list[Block] = [Block(h0, (self.genesis.to_bytes(),))]
        self.marks: list[bytes] = [marks_root(self.state, h0.timestamp)]
        self.depositor = depositor  # the L1 address that makes the mirrored deposits
        self.engine = Engine(self.state)
        self.engine.begin_block(T0)
        self.deposits = 0
        self.on_deposit = on_deposit
        self.nonces: dict[bytes, int] = {}

    # -- BlockSource ------------------------------------------------------------------------------

    def head(self) -> int:
        return self.blocks[-1].header.number

    def block(self, n: int) -> BlockData:
        return block_data(self.blocks[n])

    def header(self, n: int) -> Header:
        return self.blocks[n].header

    def marks_root(self, n: int) -> bytes:
        return self.marks[n]

    # -- producing blocks ------------------------------------------------------------------------

    def deposit(self, key: Key | bytes, amount: int, *, l1: bool = True) -> int:
        addr = key.address if isinstance(key, Key) else key
        nonce = self.deposits
        if l1 and self.on_deposit is not None:
            self.on_deposit(addr, amount, nonce)
        self.engine.deposit(addr, amount, nonce, self.depositor)
        self.deposits += 1
        return nonce

    def forced_withdraw(self, account: bytes, recipient: bytes, amount: int) -> int:
        """Process the next L1 message as a forced withdrawal (the caller queued it on L1)."""
        nonce = self.deposits
        self.engine.forced_withdraw(account, recipient, amount, nonce)
        self.deposits += 1
        return nonce

    def feed_all(self, spot: int = SPOT, vol: int = 800_000) -> None:
        ts = self.engine.now
        for k in ORACLES:
            f = Feed("ETH", spot, ts, (EXPIRY - 86400 * 30, EXPIRY), (vol, vol))
            self.engine.feed(f, k.sign(digest(self.config.domain, f)))

    def place(self, key: Key, instrument: str, is_buy: bool, price: int, amount: int,
              tif: int = 0):
        n = self.nonces.get(key.address, 0) + 1
        self.nonces[key.address] = n
        o = Order(key.address, instrument, is_buy, price, amount, n, T0 + 20 * 86400, tif,
                  False, False)
        return self.engine.place_order(o, key.sign(order_digest(self.config.domain, o)))

    def seal(self) -> Header:
        """Seal the current block; the next one starts one second later."""
        ts = self.engine.now
        txs = self.engine.end_block()
        tx_bytes = [encode_tx(t) for t in txs]
        header = seal_header(self.state, self.tree, self.blocks[-1].header, ts, txs, tx_bytes)
        self.blocks.append(Block(header, tuple(tx_bytes)))
        self.marks.append(marks_root(self.state, ts))
        self.engine.begin_block(ts + 1)
        return header


MAKERS = USERS[:4]
TAKERS = USERS[4:34]
MAKER_SIZE = 20 * 10**6  # 20 contracts per resting order


def market_flow(chain: L2Chain, trades: int, per_block: int, *, funds: int = 1_000_000 * 10**6,
                makers: int = 4, takers: int = 30) -> int:
    """Realistic flow: `makers` market makers quote both instruments with large resting orders
    (re-quoted when filled); `takers` hit them with small IOC orders. Produces at least `trades`
    fills, `per_block` per block, oracle feeds refreshed every 20 blocks. Returns the fill count."""
    mk, tk = MAKERS[:makers], TAKERS[:takers]
    if chain.head() == 0 and not chain.engine.txs:
        for u in (*mk, *tk):
            chain.deposit(u, funds)
        chain.feed_all()
    # resting quotes: each maker sells CALL and buys PUT at its own price level
    quotes = {}

    def quote(i: int, m: Key) -> None:
        chain.place(m, CALL, False, (100 + i) * 10**6, MAKER_SIZE)
        chain.place(m, PUT, True, (60 - i) * 10**6, MAKER_SIZE)
        quotes[m.address] = MAKER_SIZE

    for i, m in enumerate(mk):
        quote(i, m)
    fills = 0
    blocks = 0
    k = 0
    while fills < trades:
        if blocks and blocks % 20 == 0:
            chain.feed_all()
        in_block = 0
        while in_block < per_block and fills < trades:
            t = tk[k % len(tk)]
            amount = 10_000 * (1 + k % 5)
            if k % 2 == 0:
                r = chain.place(t, CALL, True, 200 * 10**6, amount, tif=1)
            else:
                r = chain.place(t, PUT, False, 1 * 10**6, amount, tif=1)
            k += 1
            fills += len(r.fills)
            in_block += len(r.fills)
            if k % (len(mk) * 40) == 0:  # makers re-quote now and then (fresh orders)
                for i, m in enumerate(mk):
                    quote(i, m)
        chain.seal()
        blocks += 1
    return fills


# -- the sequencer's block API over HTTP ------------------------------------------------------


class Upto:
    """`chain` as a sequencer whose head is `head` (an in-memory BlockSource; the poster's tests
    and benchmarks/test_l1.py post from it)."""

    def __init__(self, chain: L2Chain, head: int) -> None:
        self.chain, self.limit = chain, head

    def head(self) -> int:
        return min(self.limit, self.chain.head())

    def block(self, n: int) -> BlockData:
        assert n <= self.head()
        return self.chain.block(n)

    def header(self, n: int) -> Header:
        assert n <= self.head()
        return self.chain.header(n)

    def marks_root(self, n: int) -> bytes:
        assert n <= self.head()
        return self.chain.marks_root(n)


@contextmanager
def serve_blocks(source: L2Chain, l1_info: dict | None = None) -> Iterator[str]:
    """A tiny HTTP server speaking the sequencer's block JSON; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: dict) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            path = self.path.rstrip("/")
            if path == "/v1/info":
                return self._send(200, {"chainId": source.config.chain_id, "l1": l1_info or {}})
            prefix = "/v1/blocks/"
            if not path.startswith(prefix):
                return self._send(404, {"error": {"code": "not_found", "message": path}})
            which = path[len(prefix):]
            if which == "latest/header":
                return self._send(200, {"header": source.blocks[source.head()].header.to_json()})
            n = source.head() if which == "latest" else int(which) if which.isdigit() else -1
            if not 0 <= n <= source.head():
                return self._send(404, {"error": {"code": "block_not_found",
                                                  "message": f"no block {which}"}})
            blk = source.blocks[n]
            self._send(200, {"header": blk.header.to_json(), "marksRoot": "0x" + source.marks[n].hex(),
                             "txs": ["0x" + t.hex() for t in blk.txs]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
