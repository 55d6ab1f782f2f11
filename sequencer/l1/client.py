"""The one L1 client of optrollup: plain Ethereum JSON-RPC over httpx.

Everything that talks to an L1 node goes through `L1Client` (no other module opens an HTTP
connection to L1), so retries, timeouts, error mapping and revert decoding live in one place.
The HTTP transport is a constructor argument: `httpx.MockTransport` in unit tests, the default
network transport otherwise.

Sending is not done here: `sequencer.l1.txmanager.TxManager` owns nonces, fees, replacement
and confirmations. `transact` is the short way to send through the client's manager for that
key (one per key per client).

Failures map to `sequencer.l1.errors`: transport problems -> `L1Unavailable`, JSON-RPC error
objects -> `RpcError`, reverts (at estimate time, or of a mined transaction, replayed with
`eth_call`) -> `ContractRevert` naming the custom error.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from sequencer.l1.abi import checksum_address
from sequencer.l1.errors import ContractRevert, L1Unavailable, RpcError, TransactionFailed

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from sequencer.l1.txmanager import TxManager

BlockId = int | str  # a number or "latest" / "pending" / "safe" / "finalized" / "earliest"


def _hex(n: int) -> str:
    return hex(n)


def parse_quantity(x: str | int | None) -> int:
    """A JSON-RPC quantity ("0x1a", or already an int; None is 0) as an int."""
    if x is None:
        return 0
    return x if isinstance(x, int) else int(x, 16)


_int = parse_quantity


def _bytes(x: str | None) -> bytes:
    return bytes.fromhex(x[2:]) if x else b""


def _block_id(b: BlockId) -> str:
    return _hex(b) if isinstance(b, int) else b


@dataclass(frozen=True)
class Log:
    """One event log (JSON-RPC `Log`), with topics and data as bytes."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    removed: bool

    @classmethod
    def from_rpc(cls, d: dict[str, Any]) -> Log:
        return cls(
            address=checksum_address(d["address"]),
            topics=tuple(_bytes(t) for t in d["topics"]),
            data=_bytes(d["data"]),
            block_number=_int(d.get("blockNumber")),
            block_hash=d.get("blockHash") or "",
            tx_hash=d.get("transactionHash") or "",
            tx_index=_int(d.get("transactionIndex")),
            log_index=_int(d.get("logIndex")),
            removed=bool(d.get("removed", False)),
        )


@dataclass(frozen=True)
class Receipt:
    """A transaction receipt (the fields we use)."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    sender: str
    to: str | None
    logs: tuple[Log, ...]

    @property
    def ok(self) -> bool:
        return self.status == 1

    @classmethod
    def from_rpc(cls, d: dict[str, Any]) -> Receipt:
        ca = d.get("contractAddress")
        to = d.get("to")
        return cls(
            tx_hash=d["transactionHash"],
            block_number=_int(d["blockNumber"]),
            block_hash=d["blockHash"],
            status=_int(d["status"]),
            gas_used=_int(d["gasUsed"]),
            effective_gas_price=_int(d.get("effectiveGasPrice")),
            contract_address=checksum_address(ca) if ca else None,
            sender=checksum_address(d["from"]),
            to=checksum_address(to) if to else None,
            logs=tuple(Log.from_rpc(x) for x in d.get("logs", ())),
        )


RevertDecoder = Callable[[bytes], tuple[str, dict[str, Any]]]


def _default_decoder(data: bytes) -> tuple[str, dict[str, Any]]:
    from sequencer.l1.abi import decode_revert

    return decode_revert(data)


class L1Client:
    """JSON-RPC client of one L1 node. Thread-safe (one httpx connection pool).

    `transport` replaces the network (e.g. `httpx.MockTransport(handler)` in unit tests)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        decode_revert: RevertDecoder | None = None,
        transport: httpx.BaseTransport | None = None,
        retry_pause: float = 0.1,
    ) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self._retries = retries
        self._retry_pause = retry_pause
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._managers: dict[str, TxManager] = {}
        self._chain_id: int | None = None
        self._decode = decode_revert or _default_decoder

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> L1Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------------

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call. Transport errors are retried `retries` times (calls we make are
        idempotent, including eth_sendRawTransaction: re-sending the same signed bytes)."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            try:
                resp = self._http.post(self.url, json=body)
                resp.raise_for_status()
                answer = resp.json()
                break
            except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
                last = exc
                if attempt < self._retries:
                    time.sleep(self._retry_pause * (attempt + 1))
        else:
            raise L1Unavailable(f"L1 node {self.url} unreachable ({method}): {last}") from last
        err = answer.get("error")
        if err is not None:
            raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return answer.get("result")

    # -- chain reads ----------------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = _int(self.rpc("eth_chainId"))
        return self._chain_id

    def block_number(self) -> int:
        return _int(self.rpc("eth_blockNumber"))

    def get_block(self, block: BlockId = "latest", *, full: bool = False) -> dict[str, Any] | None:
        return self.rpc("eth_getBlockByNumber", [_block_id(block), full])

    def get_block_timestamp(self, block: BlockId = "latest") -> int:
        b = self.get_block(block)
        if b is None:
            raise RpcError("eth_getBlockByNumber", 0, f"no block {block}")
        return _int(b["timestamp"])

    def get_balance(self, address: str, block: BlockId = "latest") -> int:
        return _int(self.rpc("eth_getBalance", [address, _block_id(block)]))

    def get_code(self, address: str, block: BlockId = "latest") -> bytes:
        return _bytes(self.rpc("eth_getCode", [address, _block_id(block)]))

    def get_transaction_count(self, address: str, block: BlockId = "pending") -> int:
        return _int(self.rpc("eth_getTransactionCount", [address, _block_id(block)]))

    def get_transaction(self, tx_hash: str) -> dict[str, Any] | None:
        """The raw JSON-RPC transaction object (its `input` is the calldata, hex)."""
        return self.rpc("eth_getTransactionByHash", [tx_hash])

    def get_receipt(self, tx_hash: str) -> Receipt | None:
        r = self.rpc("eth_getTransactionReceipt", [tx_hash])
        return Receipt.from_rpc(r) if r else None

    def get_logs(
        self,
        *,
        address: str | Sequence[str] | None = None,
        topics: Sequence[bytes | Sequence[bytes] | None] = (),
        from_block: BlockId = 0,
        to_block: BlockId = "latest",
    ) -> list[Log]:
        """eth_getLogs. `topics[i]` is one topic, a list of alternatives, or None (any)."""

        def topic(t: bytes | Sequence[bytes] | None) -> Any:
            if t is None:
                return None
            if isinstance(t, (bytes, bytearray)):
                return "0x" + bytes(t).hex()
            return ["0x" + bytes(x).hex() for x in t]

        flt: dict[str, Any] = {"fromBlock": _block_id(from_block), "toBlock": _block_id(to_block)}
        if address is not None:
            flt["address"] = address
        if topics:
            flt["topics"] = [topic(t) for t in topics]
        return [Log.from_rpc(x) for x in self.rpc("eth_getLogs", [flt])]

    def call(
        self,
        to: str | None,
        data: bytes,
        *,
        sender: str | None = None,
        value: int = 0,
        block: BlockId = "latest",
        context: str = "",
    ) -> bytes:
        """eth_call (`to=None`: a contract creation); a revert raises ContractRevert with the
        decoded custom error."""
        tx: dict[str, Any] = {"data": "0x" + data.hex()}
        if to is not None:
            tx["to"] = to
        if sender:
            tx["from"] = sender
        if value:
            tx["value"] = _hex(value)
        try:
            return _bytes(self.rpc("eth_call", [tx, _block_id(block)]))
        except RpcError as exc:
            raise self._as_revert(exc, context) from exc

    def estimate_gas(self, tx: dict[str, Any], *, block: BlockId = "latest", context: str = "") -> int:
        """eth_estimateGas of `tx` (JSON-RPC fields) against `block`. A call that would revert
        raises ContractRevert (when the node's answer has no revert data, the call is replayed
        with eth_call to get it)."""
        try:
            return _int(self.rpc("eth_estimateGas", [tx, _block_id(block)]))
        except RpcError as exc:
            revert = self._as_revert(exc, context)
            if isinstance(revert, ContractRevert) and revert.data:
                raise revert from exc
            data = bytes.fromhex(str(tx.get("data", "0x"))[2:])
            self.call(tx.get("to"), data, sender=tx.get("from"), value=_int(tx.get("value")),
                      block=block, context=context)  # raises the decoded revert if it has one
            if revert is exc:
                raise
            raise revert from exc

    # -- sending (through the transaction manager) -------------------------------------------

    def tx_manager(self, sender: LocalAccount | TxManager) -> TxManager:
        """The transaction manager of `sender` on this client (created on first use with the
        default `TxConfig`); a TxManager is returned as it is."""
        from sequencer.l1.txmanager import TxManager

        if isinstance(sender, TxManager):
            return sender
        with self._lock:
            m = self._managers.get(sender.address)
            if m is None:
                m = self._managers[sender.address] = TxManager(self, sender)
            return m

    def transact(
        self,
        sender: LocalAccount | TxManager,
        to: str | None,
        data: bytes = b"",
        *,
        value: int = 0,
        gas: int | None = None,
        timeout: float = 30.0,
        context: str = "",
    ) -> Receipt:
        """Send through `sender`'s TxManager and wait for the receipt (`to=None` creates a
        contract). A call that would revert raises ContractRevert before anything is sent; a
        mined failure raises ContractRevert (reason recovered by replaying it) or
        TransactionFailed."""
        m = self.tx_manager(sender)
        return m.transact(to, data, value=value, gas=gas, timeout=timeout, context=context)

    def explain_failure(
        self, receipt: Receipt, sender: str, to: str | None, data: bytes, value: int = 0, context: str = ""
    ) -> ContractRevert | TransactionFailed:
        """The error for a mined transaction with status 0: its revert reason, recovered by
        replaying it with eth_call on the parent block, else TransactionFailed."""
        try:
            self.call(to, data, sender=sender, value=value, block=receipt.block_number - 1, context=context)
        except ContractRevert as exc:
            return ContractRevert(exc.error, exc.error_args, data=exc.data, tx_hash=receipt.tx_hash,
                                  context=context, receipt=receipt)
        except RpcError:
            pass
        where = f"{context} " if context else ""
        return TransactionFailed(f"{where}transaction {receipt.tx_hash} failed (status 0, gas "
                                 f"{receipt.gas_used})", receipt=receipt)

    # -- development node helpers (anvil / hardhat) --------------------------------------------

    def snapshot(self) -> str:
        """evm_snapshot: an id to `revert_to` later."""
        return self.rpc("evm_snapshot")

    def revert_to(self, snapshot_id: str) -> bool:
        """evm_revert. The snapshot is consumed; take a new one to revert again. The nonces of
        this client's transaction managers are re-read from the node afterwards."""
        ok = bool(self.rpc("evm_revert", [snapshot_id]))
        with self._lock:
            managers = list(self._managers.values())
        for m in managers:
            m.reset_nonce()
        return ok

    def increase_time(self, seconds: int) -> None:
        """evm_increaseTime: moves the next block's timestamp forward (mine to apply it)."""
        self.rpc("evm_increaseTime", [seconds])

    def set_next_block_timestamp(self, timestamp: int) -> None:
        self.rpc("evm_setNextBlockTimestamp", [timestamp])

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", [_hex(blocks)])

    def set_balance(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", [address, _hex(wei)])

    # -- internals ------------------------------------------------------------------------------

    def _as_revert(self, exc: RpcError, context: str) -> Exception:
        data = _revert_data(exc)
        if data is None:
            return exc
        name, args = self._decode(data)
        return ContractRevert(name, args, data=data, context=context)


def _revert_data(exc: RpcError) -> bytes | None:
    """Revert bytes from a JSON-RPC error (`data` is a hex string, or an object with `data`)."""
    d = exc.data
    if isinstance(d, dict):
        d = d.get("data")
    if isinstance(d, str) and d.startswith("0x"):
        try:
            return bytes.fromhex(d[2:])
        except ValueError:
            return None
    if "revert" in exc.rpc_message.lower():
        return b""
    return None
