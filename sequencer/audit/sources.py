"""Where audit tools read a chain from: a node's data dir (blocks and input log; the node must
not be running, LevelDB allows one process) or a sequencer's HTTP API (blocks only). Plus the
replays shared by export, verify and statements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from cext import parse_address
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import BadBlock, replay_block
from sequencer.core.chainspec import Genesis
from sequencer.core.engine import Engine
from sequencer.core.header import Block, Header
from sequencer.core.state import State
from sequencer.core.statement import Statement, build
from sequencer.errors import InvalidRequest, NotFound, OptrollupError
from sequencer.node.config import NodeConfig
from sequencer.node.node import Core, CoreApplier
from sequencer.store import BlockStore, InputLog, open_db


class Source(Protocol):
    """A chain to check against: its genesis (with chain id and Rollup), operator and blocks."""

    genesis: Genesis

    def block(self, number: int) -> Block | None: ...

    def head(self) -> int: ...


class DataDirSource:
    """A node's data dir, opened read-mostly (this process takes LevelDB's lock: stop the node
    first, or use a copy). `config`: the node's config JSON (default: DIR/node.json, else
    DIR/../node.json as the devnet lays them out)."""

    def __init__(self, data_dir: str | Path, config: str | Path | None = None) -> None:
        d = Path(data_dir)
        if config is None:
            for cand in (d / "node.json", d.parent / "node.json"):
                if cand.is_file():
                    config = cand
                    break
            else:
                raise InvalidRequest(f"no node config found next to {d}: pass --config",
                                     code="bad_config")
        self.cfg = NodeConfig.load(config)
        self.genesis = self.cfg.genesis
        if not (d / "db").is_dir():
            raise NotFound(f"{d} is not a node data dir (no db/)", code="unknown_data_dir")
        self.db = open_db(d / "db")
        self.store, self.log = BlockStore(self.db), InputLog(self.db)

    def block(self, number: int) -> Block | None:
        got = self.store.get(number)
        return None if got is None else got[0]

    def head(self) -> int:
        return self.store.head() or 0

    def records(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        return self.log.read(start)

    def close(self) -> None:
        self.db.close()


class HttpSource:
    """A sequencer's public HTTP API: `GET /v1/info` (chain id, Rollup, operator) and
    `GET /v1/blocks/{n}` (block 0's one tx is the genesis bytes). `client`: anything with
    `get(url) -> response` (an httpx.Client; a FastAPI TestClient in tests)."""

    def __init__(self, url: str, client: Any = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.http = client if client is not None else httpx.Client(timeout=30)
        info = self._get("/v1/info")
        chain_id = int(info["chainId"])
        rollup = parse_address(info["eip712"]["domain"]["verifyingContract"])
        b0 = self._get("/v1/blocks/0")
        self.genesis = Genesis.from_bytes(bytes.fromhex(b0["txs"][0][2:]), chain_id, rollup)
        if parse_address(info["operator"]) != self.genesis.config.operator:
            raise InvalidRequest("the sequencer's /v1/info operator is not its genesis operator",
                                 code="bad_source")

    def _get(self, path: str) -> Any:
        r = self.http.get(self.url + path)
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise InvalidRequest(f"GET {self.url + path}: HTTP {r.status_code}", code="bad_source")
        return r.json()

    def block(self, number: int) -> Block | None:
        got = self._get(f"/v1/blocks/{number}")
        if got is None:
            return None
        return Block(Header.from_json(got["header"]), tuple(bytes.fromhex(t[2:]) for t in got["txs"]))

    def head(self) -> int:
        got = self._get("/v1/blocks/latest")
        return 0 if got is None else int(got["header"]["number"])

    def close(self) -> None:
        pass


def genesis_state(genesis: Genesis) -> tuple[State, AccountTree, Header]:
    """State, account tree and header of block 0."""
    state, tree, head = genesis.block0()
    state.touched.clear()
    return state, tree, head


def replay_blocks(genesis: Genesis, block: Callable[[int], Block | None], upto: int,
                  ) -> tuple[State, AccountTree, Header]:
    """The state after block `upto`, replayed from genesis with chain.replay_block (the
    verifier's code), each header checked against the stored one."""
    state, tree, head = genesis_state(genesis)
    b0 = block(0)
    if b0 is not None and b0.header != head:
        raise InvalidRequest("block 0 is not this genesis's", code="bad_source")
    for n in range(1, upto + 1):
        b = block(n)
        if b is None:
            raise NotFound(f"block {n} is not sealed", code="block_not_found")
        try:
            got = replay_block(state, tree, head, b.header.timestamp, b.txs)
        except BadBlock as exc:
            raise OptrollupError(f"the chain does not replay: {exc.message}",
                                 code="bad_block") from None
        if got != b.header:
            raise OptrollupError(f"block {n} replays to another header than the stored one",
                                 code="bad_block")
        head = got
    return state, tree, head


def build_statement(genesis: Genesis, block: Callable[[int], Block | None], account: bytes,
                    first: int, last: int) -> Statement:
    """`account`'s statement for blocks first..last, replayed from genesis over `block(n)`
    (sequencer.core.statement)."""
    state, tree, head = genesis_state(genesis)

    def blocks() -> Iterator[Block]:
        for n in range(1, last + 1):
            b = block(n)
            if b is None:
                raise NotFound(f"block {n} is not sealed", code="block_not_found")
            yield b

    return build(state, tree, head, blocks(), account, first, last)


class Replayer(CoreApplier):
    """Applies input-log records to a fresh node Core (no database): the node's own replay
    path (sequencer.node.node.CoreApplier), here to map records to the blocks they sealed and
    to re-execute exported records."""

    def __init__(self, genesis: Genesis) -> None:
        state, tree, header0 = genesis.block0()
        state.touched.clear()
        engine = Engine(state)
        engine.begin_block(genesis.timestamp)
        self.core = Core(engine, tree, header0)
        self.domain = genesis.config.domain

    def apply_record(self, rec: Any) -> Block | None:
        """Apply one record; the block it sealed, if it is a Seal that sealed one."""
        out = self._apply(rec, replay=True)
        if type(rec).__name__ == "Seal":
            return out[0]
        return None
