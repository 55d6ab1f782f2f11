"""A scriptable in-memory Ethereum JSON-RPC node, served through `httpx.MockTransport`.

Enough of a node for the transaction manager and the event tracker: signed type-2 transactions
go into a pool with geth's rules ("already known", "nonce too low", "replacement transaction
underpriced" below +10% on both fee fields, "insufficient funds"); `mine()` includes what pays
the base fee, in nonce order; `reorg(depth)` replaces the last blocks (the transactions in them
go back to the pool or are dropped); logs are scheduled into the next mined block. Nothing is
executed: every transaction succeeds unless its `to` is in `revert_to`, gas is `gas_estimate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from cext import keccak256

GWEI = 10**9
URL = "http://fake-l1.invalid"


@dataclass
class Tx:
    hash: str
    sender: str
    nonce: int
    to: str | None
    data: bytes
    value: int
    gas: int
    max_fee: int
    tip: int


@dataclass
class Block:
    number: int
    hash: str
    parent: str
    base_fee: int
    txs: list[Tx] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)


class FakeL1:
    """The node. `calls` records every (method, params); `refuse(method, message)` makes a
    method answer with a JSON-RPC error while `refusals[method]` is non-empty; after
    `down_after[method]` more answers, the method answers HTTP 503 (the node is unreachable)."""

    chain_id = 31337

    def __init__(self, *, base_fee: int = GWEI, tip: int = GWEI) -> None:
        self.next_base_fee = base_fee
        self.tip = tip
        self.gas_estimate = 50_000
        self.balances: dict[str, int] = {}
        self.default_balance = 10**24
        self.revert_to: set[str] = set()
        self.max_log_range: int | None = None
        self.pool: dict[tuple[str, int], Tx] = {}
        self.salt = 0
        self.blocks: list[Block] = [Block(0, self._hash(0, "0x" + "00" * 32), "0x" + "00" * 32, base_fee)]
        self.scheduled_logs: list[dict[str, Any]] = []
        self.calls: list[tuple[str, list[Any]]] = []
        self.refusals: dict[str, list[str]] = {}
        self.down_after: dict[str, int] = {}  # method -> answers left before it answers HTTP 503
        # faults of a node under load: a mined transaction's receipt is served only after this
        # many more receipt queries (its nonce already counts), and the next `lost_answers`
        # eth_sendRawTransaction calls are taken and mined at once (automine) but their answer
        # never arrives (the client sees a transport error)
        self.receipt_lag = 0
        self.mined_known = True  # re-sent mined bytes: "already known" (anvil), else "nonce too low" (geth)
        self.lost_answers = 0
        self._hidden: dict[str, int] = {}

    # -- transport ----------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        method, params = body["method"], body.get("params", [])
        self.calls.append((method, params))
        out: dict[str, Any] = {"jsonrpc": "2.0", "id": body["id"]}
        try:
            if self.down_after.get(method) == 0:
                return httpx.Response(503, text="down")
            if method in self.down_after:
                self.down_after[method] -= 1
            pending = self.refusals.get(method)
            if pending:
                raise RpcFail(-32000, pending.pop(0))
            out["result"] = getattr(self, "rpc_" + method)(*params)
            if method == "eth_sendRawTransaction" and self.lost_answers > 0:
                self.lost_answers -= 1
                self.mine()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        except RpcFail as exc:
            out["error"] = {"code": exc.code, "message": exc.message, **({"data": exc.data} if exc.data else {})}
        except AttributeError:
            out["error"] = {"code": -32601, "message": f"method {method} not found"}
        return httpx.Response(200, json=out)

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    # -- chain control ------------------------------------------------------------------------------

    @property
    def head(self) -> Block:
        return self.blocks[-1]

    def _hash(self, number: int, parent: str) -> str:
        return "0x" + keccak256(f"{number}/{parent}/{self.salt}".encode()).hex()

    def nonce(self, sender: str) -> int:
        n = 0
        for b in self.blocks:
            n += sum(1 for t in b.txs if t.sender == sender)
        return n

    def pending_nonce(self, sender: str) -> int:
        n = self.nonce(sender)
        while (sender, n) in self.pool:
            n += 1
        return n

    def mine(self, blocks: int = 1) -> None:
        """Mine blocks: each includes the pool's transactions that pay its base fee, in nonce
        order per sender; logs scheduled so far go into the first one."""
        for _ in range(blocks):
            parent = self.head
            b = Block(parent.number + 1, self._hash(parent.number + 1, parent.hash), parent.hash,
                      self.next_base_fee)
            progress = True
            while progress:
                progress = False
                for key, tx in sorted(self.pool.items()):
                    if tx.nonce == self.nonce(tx.sender) + sum(1 for t in b.txs if t.sender == tx.sender) \
                            and tx.max_fee >= b.base_fee:
                        b.txs.append(tx)
                        del self.pool[key]
                        if self.receipt_lag:
                            self._hidden[tx.hash] = self.receipt_lag
                        progress = True
            for i, lg in enumerate(self.scheduled_logs):
                b.logs.append({**lg, "blockNumber": hex(b.number), "blockHash": b.hash, "logIndex": hex(i),
                               "transactionHash": "0x" + keccak256(f"log{b.hash}{i}".encode()).hex(),
                               "transactionIndex": "0x0", "removed": False})
            self.scheduled_logs = []
            self.blocks.append(b)

    def reorg(self, depth: int, *, requeue: bool = True, include: bool = False,
              new_blocks: int | None = None) -> None:
        """Replace the last `depth` blocks with `new_blocks` (default: as many) new ones. Their
        transactions go back to the pool (`requeue`) or are dropped, like anvil's revert; the new
        blocks include the pool (`include`) or are empty."""
        gone = self.blocks[-depth:]
        del self.blocks[-depth:]
        if requeue:
            for b in gone:
                for t in b.txs:
                    self.pool[(t.sender, t.nonce)] = t
        self.salt += 1
        keep_pool, self.pool = self.pool, (self.pool if include else {})
        self.mine(depth if new_blocks is None else new_blocks)
        if not include:
            self.pool = keep_pool

    def evict(self, tx_hash: str) -> None:
        """Drop a transaction from the pool (a node restart, an eviction)."""
        self.pool = {k: t for k, t in self.pool.items() if t.hash != tx_hash}

    def schedule_log(self, address: str, topics: list[bytes], data: bytes = b"") -> None:
        self.scheduled_logs.append({"address": address.lower(), "topics": ["0x" + t.hex() for t in topics],
                                    "data": "0x" + data.hex()})

    def refuse(self, method: str, *messages: str) -> None:
        self.refusals.setdefault(method, []).extend(messages)

    def receipt_of(self, tx_hash: str) -> tuple[Block, Tx] | None:
        for b in self.blocks:
            for t in b.txs:
                if t.hash == tx_hash:
                    return b, t
        return None

    # -- JSON-RPC methods ---------------------------------------------------------------------------

    def rpc_eth_chainId(self) -> str:
        return hex(self.chain_id)

    def rpc_eth_blockNumber(self) -> str:
        return hex(self.head.number)

    def _block_at(self, tag: str) -> Block | None:
        if tag == "latest":
            return self.head
        if tag == "earliest":
            return self.blocks[0]
        n = int(tag, 16)
        return self.blocks[n] if n < len(self.blocks) else None

    def rpc_eth_getBlockByNumber(self, tag: str, full: bool = False) -> dict[str, Any] | None:
        if tag == "pending":
            return {"number": hex(self.head.number + 1), "hash": None, "baseFeePerGas": hex(self.next_base_fee)}
        b = self._block_at(tag)
        if b is None:
            return None
        return {"number": hex(b.number), "hash": b.hash, "parentHash": b.parent,
                "baseFeePerGas": hex(b.base_fee), "timestamp": hex(1_700_000_000 + b.number),
                "transactions": [t.hash for t in b.txs]}

    def rpc_eth_maxPriorityFeePerGas(self) -> str:
        return hex(self.tip)

    def rpc_eth_getTransactionCount(self, address: str, tag: str) -> str:
        a = address.lower()
        return hex(self.pending_nonce(a) if tag == "pending" else self.nonce(a))

    def rpc_eth_getBalance(self, address: str, tag: str = "latest") -> str:
        return hex(self.balances.get(address.lower(), self.default_balance))

    def rpc_eth_estimateGas(self, tx: dict[str, Any], tag: str = "latest") -> str:
        if (tx.get("to") or "").lower() in self.revert_to:
            raise RpcFail(3, "execution reverted", "0x")
        return hex(self.gas_estimate)

    def rpc_eth_call(self, tx: dict[str, Any], tag: str = "latest") -> str:
        if (tx.get("to") or "").lower() in self.revert_to:
            raise RpcFail(3, "execution reverted", "0x")
        return "0x"

    def rpc_eth_sendRawTransaction(self, raw_hex: str) -> str:
        raw = bytes.fromhex(raw_hex[2:])
        d = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        sender = Account.recover_transaction(raw_hex).lower()
        tx = Tx("0x" + keccak256(raw).hex(), sender, d["nonce"], d.get("to") and ("0x" + bytes(d["to"]).hex()),
                bytes(d.get("data") or b""), d["value"], d["gas"], d["maxFeePerGas"], d["maxPriorityFeePerGas"])
        if (self.mined_known and self.receipt_of(tx.hash) is not None) or \
                any(t.hash == tx.hash for t in self.pool.values()):
            raise RpcFail(-32000, "already known")
        if tx.nonce < self.nonce(sender):
            raise RpcFail(-32000, "nonce too low")
        if tx.gas * tx.max_fee + tx.value > self.balances.get(sender, self.default_balance):
            raise RpcFail(-32000, "insufficient funds for gas * price + value")
        old = self.pool.get((sender, tx.nonce))
        if old is not None and (tx.max_fee * 10 < old.max_fee * 11 or tx.tip * 10 < old.tip * 11):
            raise RpcFail(-32000, "replacement transaction underpriced")
        self.pool[(sender, tx.nonce)] = tx
        return tx.hash

    def rpc_eth_getTransactionReceipt(self, tx_hash: str) -> dict[str, Any] | None:
        found = self.receipt_of(tx_hash)
        if found is None:
            return None
        if self._hidden.get(tx_hash, 0) > 0:  # mined, counted in the nonce, not served yet
            self._hidden[tx_hash] -= 1
            return None
        b, t = found
        return {"transactionHash": t.hash, "blockNumber": hex(b.number), "blockHash": b.hash,
                "status": "0x0" if (t.to or "") in self.revert_to else "0x1", "gasUsed": hex(21_000),
                "effectiveGasPrice": hex(b.base_fee + t.tip), "contractAddress": None,
                "from": t.sender, "to": t.to, "logs": []}

    def rpc_eth_getLogs(self, flt: dict[str, Any]) -> list[dict[str, Any]]:
        lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
        if self.max_log_range is not None and hi - lo + 1 > self.max_log_range:
            raise RpcFail(-32005, f"query exceeds max block range {self.max_log_range}")
        addrs = flt.get("address")
        addrs = {a.lower() for a in ([addrs] if isinstance(addrs, str) else addrs or [])}
        topic0 = (flt.get("topics") or [None])[0]
        wanted = None if topic0 is None else {t.lower() for t in ([topic0] if isinstance(topic0, str) else topic0)}
        out = []
        for b in self.blocks[lo:hi + 1]:
            for lg in b.logs:
                if addrs and lg["address"] not in addrs:
                    continue
                if wanted is not None and lg["topics"][0] not in wanted:
                    continue
                out.append(lg)
        return out


class RpcFail(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class FakeClock:
    """Monotonic time that only moves when slept; `on_sleep(now)` runs at each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep = lambda now: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep(self.now)
