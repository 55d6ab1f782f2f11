"""Where the batch poster gets sealed blocks: the `BlockSource` protocol and its one
implementation, the sequencer's public HTTP API (the poster never opens the node's database).

    GET {URL}/v1/blocks/latest/header -> {"header": <Header.to_json()>} (the durable head)
    GET {URL}/v1/blocks/{n}      -> {"header": ..., "txs": ["0x<tx bytes>", ...]} (404 past the head)
    GET {URL}/v1/info            -> {"chainId": ..., "l1": {"chainId", "rollup", ...}, ...}
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

import httpx

from sequencer.core.header import Block, Header, tx_root
from sequencer.errors import NotFound, OptrollupError, Unavailable

from prover.batch import BlockData, block_data


class BlockSource(Protocol):
    """Sealed L2 blocks, by number (block 0 is genesis)."""

    def head(self) -> int:
        """Number of the newest sealed block."""

    def block(self, n: int) -> BlockData:
        """What a batch carries for block `n`."""

    def header(self, n: int) -> Header:
        """The sealed header of block `n` (its hash chains the batches)."""

    def marks_root(self, n: int) -> bytes:
        """The marks root stored with block `n` (docs/encoding.md, "Marks root")."""


class SourceError(OptrollupError):
    """The sequencer answered something that is not a valid sealed block."""

    code = "bad_sequencer_answer"


class HttpBlockSource:
    """`BlockSource` over the sequencer's HTTP API. Every block is checked on arrival: its
    `txRoot` must commit to its transactions and, when the answer carries `hash`, the header
    must hash to it. Recent blocks are cached (the poster reads each block twice)."""

    def __init__(self, url: str, *, timeout: float = 10.0, retries: int = 2, cache: int = 4096) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)
        self._retries = retries
        self._cache: OrderedDict[int, Block] = OrderedDict()
        self._cache_size = cache

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpBlockSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str) -> Any:
        last: Exception | None = None
        for _ in range(self._retries + 1):
            try:
                resp = self._http.get(self.url + path)
            except httpx.TransportError as exc:
                last = exc
                continue
            if resp.status_code == 404:
                try:
                    err = resp.json().get("error", {})
                except ValueError:
                    err = {}
                raise NotFound(f"sequencer {self.url}{path}: {err.get('message', 'not found')}",
                               code=err.get("code") or "not_found")
            if resp.status_code >= 500:
                last = httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request,
                                             response=resp)
                continue
            if resp.status_code != 200:
                raise SourceError(f"sequencer {self.url}{path}: HTTP {resp.status_code}: {resp.text[:200]}")
            try:
                return resp.json()
            except ValueError as exc:
                raise SourceError(f"sequencer {self.url}{path}: not JSON: {exc}") from None
        raise Unavailable(f"sequencer {self.url} unreachable ({path}): {last}", code="sequencer_unavailable")

    @staticmethod
    def parse_header(body: Any) -> Header:
        """The `header` of an answer, checked against the `hash` it carries (if any)."""
        try:
            header = Header.from_json(body["header"])
            claimed = body["header"].get("hash")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SourceError(f"malformed block header from the sequencer: {exc!r}") from None
        if claimed is not None and claimed.lower() != "0x" + header.hash().hex():
            raise SourceError(f"block {header.number}: header fields hash to 0x{header.hash().hex()}, "
                              f"the sequencer says {claimed}")
        return header

    @staticmethod
    def parse_block(body: Any, expect: int | None = None) -> Block:
        """A `{"header", "txs"}` answer as a checked Block."""
        header = HttpBlockSource.parse_header(body)
        try:
            txs = tuple(bytes.fromhex(t.removeprefix("0x")) for t in body["txs"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SourceError(f"malformed block from the sequencer: {exc!r}") from None
        if expect is not None and header.number != expect:
            raise SourceError(f"asked the sequencer for block {expect}, got block {header.number}")
        if header.number > 0 and tx_root(list(txs)) != header.tx_root:
            raise SourceError(f"block {header.number}: txRoot does not commit to its transactions")
        return Block(header, txs)

    def _block(self, n: int) -> Block:
        blk = self._cache.get(n)
        if blk is None:
            blk = self.parse_block(self._get(f"/v1/blocks/{n}"), n)
            self._cache[n] = blk
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return blk

    # -- BlockSource --------------------------------------------------------------------------

    def head(self) -> int:
        # the header alone: the poster asks once per batch, and the newest block can be
        # maxBlockBytes of transactions (hex in JSON) for the node to render and us to parse
        return self.parse_header(self._get("/v1/blocks/latest/header")).number

    def block(self, n: int) -> BlockData:
        return block_data(self._block(n))

    def header(self, n: int) -> Header:
        return self._block(n).header

    def marks_root(self, n: int) -> bytes:
        """The `marksRoot` the sequencer stored with block `n` (docs/encoding.md, "Marks root")."""
        return bytes.fromhex(self._get(f"/v1/blocks/{n}")["marksRoot"].removeprefix("0x"))

    # -- not part of the protocol -------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """`GET /v1/info` (the poster checks the chain id and Rollup address against L1)."""
        return self._get("/v1/info")

    def forget(self) -> None:
        """Drop cached blocks (after an L2 reorg the sequencer should never have)."""
        self._cache.clear()
