"""Transaction manager of the batch poster: send one L1 transaction and see it through.

`TxSender.send(to, data)`:
1. takes the nonce from L1 (`eth_getTransactionCount(latest)`: mined transactions only, so a
   transaction left pending by a crashed run is replaced or, when the bytes are identical,
   recognised as "already known"), estimates gas (a call that would revert raises
   ContractRevert before anything is sent) and checks the sender's balance covers it;
2. signs an EIP-1559 transaction and broadcasts it;
3. waits until a receipt for any of its attempts has `confirmations` confirmations; if none is
   mined within `resubmit_after` seconds it re-signs the same nonce and data with both fee
   fields raised by at least 12.5% (or to the market fee if higher) and broadcasts again;
4. if the receipt disappears or moves to another block while waiting (an L1 reorg), it
   re-broadcasts the last attempt and waits again;
5. if the nonce is consumed by a transaction that is none of its attempts, it raises
   NonceTaken: the caller re-reads the contract (the state it planned from has moved on).

Reverted transactions raise TxReverted (with the receipt). Nothing here knows about batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from sequencer.errors import OptrollupError
from sequencer.l1 import L1Client, Receipt, RpcError

BUMP_NUM, BUMP_DEN = 9, 8  # +12.5%: above geth's and anvil's 10% replacement minimum
DEFAULT_TIP = 1_000_000_000


class SendError(OptrollupError):
    """A transaction could not be seen through."""

    code = "l1_send_failed"


class InsufficientFunds(SendError):
    """The sender's ETH balance cannot pay for the transaction."""

    code = "poster_insufficient_funds"


class NonceTaken(SendError):
    """Another transaction (none of ours) used the nonce: re-read the chain and re-plan."""

    code = "l1_nonce_taken"


class TxReverted(SendError):
    """The transaction was mined with status 0."""

    code = "l1_tx_reverted"

    def __init__(self, message: str, receipt: Receipt) -> None:
        super().__init__(message)
        self.receipt = receipt


class SendTimeout(SendError):
    """Not confirmed within the overall timeout (still pending; the next run takes over)."""

    code = "l1_send_timeout"


def bump(old: int) -> int:
    """`old` raised by at least 12.5% (and by at least 1 wei)."""
    return max(old * BUMP_NUM // BUMP_DEN + (1 if old * BUMP_NUM % BUMP_DEN else 0), old + 1)


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.6f} ETH"


@dataclass
class Attempt:
    tx_hash: str
    raw: bytes
    max_fee: int
    tip: int


@dataclass
class SendResult:
    receipt: Receipt
    nonce: int
    attempts: list[Attempt] = field(default_factory=list)
    reorgs: int = 0


class TxSender:
    """Sends transactions from `account` through `client`, one at a time."""

    def __init__(
        self,
        client: L1Client,
        account: LocalAccount,
        *,
        confirmations: int = 1,
        resubmit_after: float = 30.0,
        timeout: float = 600.0,
        poll: float = 0.2,
        max_fee_cap: int | None = None,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if confirmations < 1:
            raise ValueError("confirmations must be >= 1")
        self.client, self.account = client, account
        self.confirmations = confirmations
        self.resubmit_after, self.timeout, self.poll = resubmit_after, timeout, poll
        self.max_fee_cap = max_fee_cap
        self.log = log or (lambda _m: None)
        self.clock, self.sleep = clock, sleep
        self._refusal = ""
        self.current: list[Attempt] = []  # attempts of the send in progress (or the last one)

    @property
    def address(self) -> str:
        return self.account.address

    # -- pieces -----------------------------------------------------------------------------------

    def market_fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) for a new transaction: 2 x base fee + tip,
        with the base fee of the next block (the pending block's) when the node tells it."""
        base = 0
        for tag in ("pending", "latest"):
            base = max(base, int((self.client.get_block(tag) or {}).get("baseFeePerGas") or "0x0", 16))
        try:
            tip = int(self.client.rpc("eth_maxPriorityFeePerGas"), 16)
        except RpcError:
            tip = DEFAULT_TIP
        return 2 * base + tip, tip

    def estimate(self, to: str, data: bytes, context: str = "") -> int:
        """Gas for the call against the latest block (not "pending": a pending transaction of
        ours at the same nonce is to be replaced, not built upon), +20% + 10k."""
        tx = {"from": self.address, "to": to, "data": "0x" + data.hex()}
        try:
            gas = int(self.client.rpc("eth_estimateGas", [tx, "latest"]), 16)
        except RpcError:
            # replay as eth_call to raise ContractRevert naming the custom error
            self.client.call(to, data, sender=self.address, block="latest", context=context)
            raise
        return gas * 6 // 5 + 10_000

    def check_balance(self, gas: int, max_fee: int) -> None:
        need = gas * max_fee
        have = self.client.get_balance(self.address)
        if have < need:
            raise InsufficientFunds(
                f"poster {self.address} has {_eth(have)} on L1 but the next transaction may cost "
                f"up to {_eth(need)} ({gas} gas at {max_fee / 1e9:.2f} gwei): fund the poster account")

    def _sign(self, to: str, data: bytes, nonce: int, gas: int, max_fee: int, tip: int) -> Attempt:
        signed = self.account.sign_transaction({
            "type": 2, "chainId": self.client.chain_id, "nonce": nonce, "to": to, "value": 0,
            "data": data, "gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip,
        })
        return Attempt("0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction), max_fee, tip)

    def _broadcast(self, a: Attempt) -> str:
        """Send the raw bytes; returns "sent", "known", "underpriced" or "nonce_low"."""
        try:
            self.client.rpc("eth_sendRawTransaction", ["0x" + a.raw.hex()])
            return "sent"
        except RpcError as exc:
            msg = exc.rpc_message.lower()
            if "already known" in msg or "known transaction" in msg or "already imported" in msg:
                return "known"
            if "nonce too low" in msg or "nonce is too low" in msg or "old nonce" in msg:
                return "nonce_low"
            if "underpriced" in msg or "fee too low" in msg or "less than block base fee" in msg:
                self._refusal = exc.rpc_message
                return "underpriced"
            if "insufficient funds" in msg:
                raise InsufficientFunds(f"poster {self.address}: L1 refused the transaction: "
                                        f"{exc.rpc_message}; fund the poster account") from None
            raise

    def _receipt(self, attempts: list[Attempt]) -> Receipt | None:
        for a in reversed(attempts):
            r = self.client.get_receipt(a.tx_hash)
            if r is not None:
                return r
        return None

    def _canonical(self, r: Receipt) -> bool:
        b = self.client.get_block(r.block_number)
        return b is not None and b.get("hash") == r.block_hash

    # -- the loop ---------------------------------------------------------------------------------

    def send(self, to: str, data: bytes, *, gas: int | None = None, context: str = "") -> SendResult:
        """Send `data` to `to` and wait for `confirmations`; see the module docstring."""
        nonce = self.client.get_transaction_count(self.address, "latest")
        gas = gas if gas is not None else self.estimate(to, data, context)
        max_fee, tip = self.market_fees()
        if self.max_fee_cap is not None:
            max_fee = min(max_fee, self.max_fee_cap)
            tip = min(tip, max_fee)
        self.check_balance(gas, max_fee)
        attempts: list[Attempt] = []
        self.current = attempts
        result = SendResult(receipt=None, nonce=nonce, attempts=attempts)  # type: ignore[arg-type]

        def attempt(max_fee: int, tip: int) -> None:
            for _ in range(20):  # "underpriced": a stranger's (or a crashed run's) tx holds the nonce
                a = self._sign(to, data, nonce, gas, max_fee, tip)
                status = self._broadcast(a)
                if status in ("sent", "known"):
                    attempts.append(a)
                    self.log(f"{context or 'tx'}: {status} {a.tx_hash} nonce {nonce} "
                             f"maxFee {max_fee / 1e9:.3f} gwei tip {tip / 1e9:.3f} gwei")
                    return
                if status == "nonce_low":
                    if self._receipt(attempts) is None:
                        raise NonceTaken(f"nonce {nonce} of {self.address} was used by another "
                                         f"transaction")
                    return
                m_fee, m_tip = self.market_fees()
                max_fee, tip = self._capped(max(bump(max_fee), m_fee), max(bump(tip), m_tip))
                self.check_balance(gas, max_fee)
            raise SendError(f"L1 keeps refusing the transaction at nonce {nonce} after 20 fee "
                        f"bumps: {self._refusal}")

        attempt(max_fee, tip)
        deadline = self.clock() + self.timeout
        last_sent = self.clock()
        seen: Receipt | None = None
        while True:
            r = self._receipt(attempts)
            if r is not None and not self._canonical(r):
                r = None
            if r is not None:
                if r != seen:
                    seen = r
                depth = self.client.block_number() - r.block_number + 1
                if depth >= self.confirmations:
                    result.receipt = r
                    if not r.ok:
                        raise TxReverted(f"{context or 'transaction'} {r.tx_hash} reverted in L1 "
                                         f"block {r.block_number}", r)
                    return result
            else:
                if seen is not None:  # it was mined, now it is not: reorg
                    result.reorgs += 1
                    self.log(f"{context or 'tx'}: {seen.tx_hash} no longer in L1 block "
                             f"{seen.block_number} (reorg); re-broadcasting")
                    seen = None
                    self._rebroadcast(attempts)
                    last_sent = self.clock()
                elif self.client.get_transaction_count(self.address, "latest") > nonce:
                    if self._receipt(attempts) is None:  # not a race with our own inclusion
                        raise NonceTaken(f"nonce {nonce} of {self.address} was used by a "
                                         f"transaction that is none of ours")
                    continue
                elif self.clock() - last_sent >= self.resubmit_after:
                    last = attempts[-1]
                    m_fee, m_tip = self.market_fees()
                    new_fee, new_tip = self._capped(max(bump(last.max_fee), m_fee),
                                                    max(bump(last.tip), m_tip))
                    if new_fee > last.max_fee:
                        self.log(f"{context or 'tx'}: not mined after {self.resubmit_after:.1f}s, "
                                 f"bumping fees")
                        self.check_balance(gas, new_fee)
                        attempt(new_fee, min(new_tip, new_fee))
                    last_sent = self.clock()
            if self.clock() > deadline:
                raise SendTimeout(f"{context or 'transaction'} at nonce {nonce} not confirmed "
                                  f"after {self.timeout:.0f}s (attempts: "
                                  f"{', '.join(a.tx_hash for a in attempts)})")
            self.sleep(self.poll)

    def _capped(self, max_fee: int, tip: int) -> tuple[int, int]:
        if self.max_fee_cap is not None:
            max_fee = min(max_fee, self.max_fee_cap)
        return max_fee, min(tip, max_fee)

    def _rebroadcast(self, attempts: list[Attempt]) -> None:
        for a in reversed(attempts):  # the highest-fee attempt first
            status = self._broadcast(a)
            if status in ("sent", "known"):
                return
            if status == "nonce_low":
                return  # the loop finds out whose transaction took the nonce
        raise SendError("could not re-broadcast after a reorg")
