"""The L1 side a user needs next to the L2 API: deposit into the Bridge (approve, then deposit)
and send a final withdrawal's `finalize` call. JSON-RPC over httpx, transactions signed with
eth-account (EIP-1559); nothing of web3 or of the node.

Amounts are collateral base units (USDC × 10^6), the Bridge's and the L2's unit alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

from optrollup_client._errors import ClientError
from optrollup_client._types import Withdrawal

if TYPE_CHECKING:
    from eth_account.signers.base import BaseAccount

__all__ = ["Deposit", "L1Error", "L1Wallet", "Receipt"]

DEPOSITED = keccak(text="Deposited(uint256,address,address,uint256)")  # Bridge event, topic 0


class L1Error(ClientError):
    """An L1 failure: `l1_rpc_error` (the node answered an error), `l1_reverted` (mined, status
    0), `l1_timeout` (not mined in time), `l1_not_final` (a withdrawal without a finalize call)."""

    code = "l1_error"


@dataclass(frozen=True)
class Receipt:
    """A mined transaction: its hash, block and gas used (status 1; reverts raise L1Error)."""

    tx_hash: str
    block: int
    gas_used: int
    logs: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Deposit:
    """A mined Bridge deposit: its receipt and the L1 message `nonce` the Bridge gave it
    (follow it with `Client.l1_message(nonce)`: "credited" once the node has processed it)."""

    receipt: Receipt
    nonce: int


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


class L1Wallet:
    """One key on one L1 node. `key` is an eth-account account (`Signer.key`, a LocalAccount,
    or a key in an HSM opened by the node's `sequencer.keys`); `rpc_url` the L1 JSON-RPC URL."""

    def __init__(self, rpc_url: str, key: BaseAccount, *, timeout: float = 120.0, poll: float = 0.25,
                 http: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rpc_url, self.key, self.timeout, self.poll, self._sleep = rpc_url, key, timeout, poll, sleep
        self._http = http or httpx.Client(timeout=30.0)
        self._id = 0

    @property
    def address(self) -> str:
        return self.key.address

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "L1Wallet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call; L1Error `l1_rpc_error` on an error answer or no answer."""
        self._id += 1
        try:
            r = self._http.post(self.rpc_url, json={"jsonrpc": "2.0", "id": self._id, "method": method,
                                                    "params": list(params)})
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise L1Error(f"{method} to {self.rpc_url} failed: {exc}", code="l1_rpc_error") from None
        if not isinstance(body, dict) or "error" in body:
            err = body.get("error") if isinstance(body, dict) else body
            raise L1Error(f"{method}: {err}", code="l1_rpc_error")
        return body.get("result")

    def node_l1(self, info: Any) -> dict[str, Any]:
        """The L1 settings a node publishes (`Client.info()`: chainId, rollup, bridge,
        collateralToken) after checking this wallet's RPC is on that chain; L1Error `no_l1`
        (the node follows no L1) or `wrong_l1_chain`."""
        l1 = getattr(info, "l1", None)
        if not l1 or not l1.get("bridge"):
            raise L1Error("the node has no L1 bridge configured", code="no_l1")
        chain = int(self.rpc("eth_chainId"), 16)
        if chain != int(l1["chainId"]):
            raise L1Error(f"the L1 RPC {self.rpc_url} is chain {chain}, but the node's L1 is chain "
                          f"{l1['chainId']}", code="wrong_l1_chain")
        return dict(l1)

    def call(self, to: str, data: bytes) -> bytes:
        """eth_call at the latest block: the return data."""
        out = self.rpc("eth_call", {"to": to, "data": "0x" + data.hex()}, "latest")
        return bytes.fromhex(out[2:])

    def send(self, to: str, data: bytes) -> Receipt:
        """Sign and send a call, wait until it is mined; L1Error `l1_reverted` if it reverted
        (the estimate fails first for most reverts, with the node's reason)."""
        frm = self.address
        tx_for_estimate = {"from": frm, "to": to, "data": "0x" + data.hex()}
        gas = int(self.rpc("eth_estimateGas", tx_for_estimate), 16)
        base = int(self.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
        tip = int(self.rpc("eth_maxPriorityFeePerGas"), 16)
        tx = {"type": 2, "chainId": int(self.rpc("eth_chainId"), 16),
              "nonce": int(self.rpc("eth_getTransactionCount", frm, "pending"), 16),
              "to": to_checksum_address(to), "value": 0, "data": data, "gas": gas * 6 // 5 + 10_000,
              "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}
        signed = self.key.sign_transaction(tx)
        raw = getattr(signed, "raw_transaction", None) or signed.rawTransaction
        tx_hash = self.rpc("eth_sendRawTransaction", "0x" + bytes(raw).hex())
        deadline = time.monotonic() + self.timeout
        while True:
            rec = self.rpc("eth_getTransactionReceipt", tx_hash)
            if rec is not None:
                if int(rec["status"], 16) != 1:
                    raise L1Error(f"transaction {tx_hash} to {to} reverted", code="l1_reverted")
                return Receipt(tx_hash, int(rec["blockNumber"], 16), int(rec["gasUsed"], 16),
                               tuple(rec.get("logs") or ()))
            if time.monotonic() > deadline:
                raise L1Error(f"transaction {tx_hash} not mined after {self.timeout:.0f} s", code="l1_timeout")
            self._sleep(self.poll)

    def token_balance(self, token: str, owner: str | None = None) -> int:
        """ERC-20 balance of `owner` (default: this key), base units."""
        data = _selector("balanceOf(address)") + encode(["address"], [owner or self.address])
        return int(decode(["uint256"], self.call(token, data))[0])

    def deposit(self, bridge: str, token: str, amount: int, l2_account: str | None = None) -> Deposit:
        """Approve the Bridge for `amount` if its allowance is short, then `Bridge.deposit` for
        `l2_account` (default: this key's address). The L2 credits it once the node has seen
        the deposit (a confirmation or so later): poll `Client.account`."""
        if amount <= 0:
            raise ClientError(f"deposit amount must be positive, got {amount}", code="invalid_argument")
        allowance_q = _selector("allowance(address,address)") + encode(["address", "address"],
                                                                        [self.address, bridge])
        if int(decode(["uint256"], self.call(token, allowance_q))[0]) < amount:
            self.send(token, _selector("approve(address,uint256)") + encode(["address", "uint256"],
                                                                             [bridge, amount]))
        rec = self.send(bridge, _selector("deposit(uint256,address)")
                        + encode(["uint256", "address"], [amount, l2_account or self.address]))
        for log in rec.logs:
            topics = log.get("topics") or []
            if (str(log.get("address", "")).lower() == bridge.lower() and topics
                    and bytes.fromhex(topics[0][2:]) == DEPOSITED):
                return Deposit(rec, int(topics[1], 16))
        raise L1Error(f"deposit tx {rec.tx_hash} mined without the Bridge's Deposited event",
                      code="l1_no_event")

    def finalize(self, withdrawal: Withdrawal) -> Receipt:
        """Send a final withdrawal's ready-made `finalize` call (from `Client.withdrawal`);
        anyone may send it, the funds go to the withdrawal's recipient."""
        if not withdrawal.finalize:
            raise L1Error(f"withdrawal is {withdrawal.status}, not final: no finalize call yet",
                          code="l1_not_final")
        return self.send(withdrawal.finalize["to"], bytes.fromhex(withdrawal.finalize["data"][2:]))
