"""The one transaction manager of optrollup: every L1 sender (batch poster, deployment, faucet,
escape hatch, guardian actions) sends through a `TxManager`.

Like Optimism's op-service txmgr, sending is its own component that owns one key and sees each
transaction through; callers only say what to send (`send(to, data)`) and get a receipt with the
confirmations they asked for, or an error from `sequencer.l1.errors`:

- nonces: a fresh manager starts from the node's *latest* count (mined transactions only), so a
  transaction a crashed run left pending is replaced, or recognised as "already known" when the
  bytes are identical; afterwards it counts locally (concurrent sends in one process never
  collide). A local count above the node's pending count is a nonce gap (our transactions were
  dropped: a reorg, a pool eviction, a node restart) and is closed by re-using the node's count;
- gas: estimated against the latest block (+20% + 10k), so a call that would revert raises
  ContractRevert before anything is sent;
- fees: EIP-1559, `sequencer.l1.fees`; with `check_balance` the sender's balance must cover
  `gas x maxFeePerGas` first (InsufficientFunds, naming `label`);
- publishing: "already known" is ours; "underpriced" (another transaction holds the nonce) bumps
  the fees and retries; "nonce too low" with none of our attempts mined (a receipt within
  `receipt_grace`: nodes count a mined nonce before they serve its receipt) is NonceTaken;
- confirmations: waits until a receipt of any attempt is `confirmations` deep on the canonical
  chain; not mined within `resubmit_after` seconds -> re-signed with bumped fees; a receipt that
  disappears or moves (an L1 reorg) -> the attempts are broadcast again and the wait resumes;
  the nonce used by a transaction that is none of ours -> NonceTaken (the caller re-plans);
- failures: mined with status 0 -> ContractRevert (reason replayed) or TransactionFailed, both
  carrying the receipt. Not confirmed within `timeout` -> ReceiptTimeout (a later run with the
  same key takes the pending transaction over).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sequencer.l1.abi import checksum_address
from sequencer.l1.client import L1Client, Receipt
from sequencer.l1.errors import InsufficientFunds, NonceTaken, ReceiptTimeout, RpcError, SendError
from sequencer.l1.fees import Fees, market_fees, replacement_fees

if TYPE_CHECKING:
    from eth_account.signers.base import BaseAccount

    from sequencer.txkey import TxKey

logger = logging.getLogger("optrollup.l1.tx")

_KNOWN = ("already known", "known transaction", "already imported")
_NONCE_LOW = ("nonce too low", "nonce is too low", "old nonce")
_UNDERPRICED = ("underpriced", "fee too low", "less than block base fee", "fee cap less than")


@dataclass(frozen=True)
class TxConfig:
    """How a TxManager sees a transaction through. Times are seconds."""

    confirmations: int = 1          # receipt depth that counts as done (1: mined)
    resubmit_after: float = 30.0    # not mined for this long: re-sign with bumped fees
    timeout: float = 600.0          # give up (ReceiptTimeout) after this long
    poll: float = 0.2               # receipt polling interval
    max_fee_cap: int | None = None  # never offer more than this maxFeePerGas (wei)
    check_balance: bool = True      # refuse early when the balance cannot pay gas x maxFee
    max_underpriced: int = 20       # fee bumps while "underpriced" before giving up
    receipt_grace: float = 5.0      # a used nonce is ours if an attempt's receipt shows up within this
    label: str = "sender"           # how errors name the key, e.g. "poster"

    def __post_init__(self) -> None:
        if self.confirmations < 1:
            raise ValueError("confirmations must be >= 1")


#: the configuration of the managers `L1Client.tx_manager` creates (devnet tools, tests).
CLIENT_DEFAULTS = TxConfig(poll=0.05, timeout=30.0, check_balance=False)


@dataclass(frozen=True)
class Attempt:
    """One signed version of the transaction (same nonce and data, its own fees)."""

    tx_hash: str
    raw: bytes
    max_fee: int
    tip: int

    @property
    def fees(self) -> Fees:
        return Fees(self.max_fee, self.tip)


@dataclass
class SendResult:
    """A transaction seen through: its receipt, nonce, every attempt and the reorgs survived."""

    receipt: Receipt
    nonce: int
    attempts: list[Attempt] = field(default_factory=list)
    reorgs: int = 0


@dataclass
class _Job:
    to: str | None
    data: bytes
    value: int
    gas: int
    nonce: int
    context: str
    attempts: list[Attempt]


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.6f} ETH"


class TxManager:
    """Sends transactions from `account` through `client`. Thread-safe; one per key."""

    def __init__(
        self,
        client: L1Client,
        account: BaseAccount | TxKey,  # sequencer.keys.load_key's (HSM keys too) or load_tx_key's
        config: TxConfig | None = None,
        *,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client, self.account = client, account
        self.config = config or CLIENT_DEFAULTS
        self.log = log or logger.info
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._next: int | None = None
        self._refusal = ""
        self.current: list[Attempt] = []  # attempts of the latest send (in progress or done)

    @property
    def address(self) -> str:
        return self.account.address

    # -- nonces -----------------------------------------------------------------------------------

    def reset_nonce(self) -> None:
        """Forget the local nonce count; the next send reads it from the node."""
        with self._lock:
            self._next = None

    def _take_nonce(self) -> int:
        """The nonce of the next transaction (caller holds the lock)."""
        latest = self.client.get_transaction_count(self.address, "latest")
        nxt = self._next
        if nxt is None or nxt <= latest:
            return latest
        pending = self.client.get_transaction_count(self.address, "pending")
        if nxt > pending:
            self.log(f"{self.config.label} {self.address}: nonce gap (next local nonce {nxt}, "
                     f"the node has {pending}): transactions were dropped; re-using {pending}")
            return pending
        return nxt

    # -- pieces -----------------------------------------------------------------------------------

    def estimate_gas(self, to: str | None, data: bytes, value: int = 0, context: str = "") -> int:
        """Gas for the call against the latest block (not "pending": a pending transaction of
        ours at the same nonce is to be replaced, not built upon), +20% + 10k. A call that would
        revert raises ContractRevert."""
        tx: dict[str, str] = {"from": self.address, "data": "0x" + data.hex(), "value": hex(value)}
        if to is not None:
            tx["to"] = to
        return self.client.estimate_gas(tx, block="latest", context=context) * 6 // 5 + 10_000

    def fees(self) -> Fees:
        """Market fees for a new transaction, capped by the configuration."""
        return market_fees(self.client).capped(self.config.max_fee_cap)

    def check_balance(self, gas: int, fees: Fees, value: int = 0) -> None:
        """InsufficientFunds unless the balance covers `gas x maxFeePerGas + value`."""
        need = gas * fees.max_fee + value
        have = self.client.get_balance(self.address)
        if have < need:
            who = self.config.label
            raise InsufficientFunds(
                f"{who} {self.address} has {_eth(have)} on L1 but the next transaction may cost "
                f"up to {_eth(need)} ({gas} gas at {fees.max_fee / 1e9:.2f} gwei): fund the {who} "
                f"account")

    def _sign(self, job: _Job, fees: Fees) -> Attempt:
        fields: dict[str, object] = {
            "type": 2, "chainId": self.client.chain_id, "nonce": job.nonce, "value": job.value,
            "data": job.data, "gas": job.gas, "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.tip,
        }
        if job.to is not None:
            fields["to"] = checksum_address(job.to)
        signed = self.account.sign_transaction(fields)
        return Attempt("0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction), fees.max_fee, fees.tip)

    def _broadcast(self, a: Attempt) -> str:
        """Send the raw bytes; "sent", "known", "underpriced" or "nonce_low"."""
        try:
            self.client.rpc("eth_sendRawTransaction", ["0x" + a.raw.hex()])
            return "sent"
        except RpcError as exc:
            msg = exc.rpc_message.lower()
            if any(m in msg for m in _KNOWN):
                return "known"
            if any(m in msg for m in _NONCE_LOW):
                return "nonce_low"
            if any(m in msg for m in _UNDERPRICED):
                self._refusal = exc.rpc_message
                return "underpriced"
            if "insufficient funds" in msg:
                who = self.config.label
                raise InsufficientFunds(f"{who} {self.address}: L1 refused the transaction: "
                                        f"{exc.rpc_message}; fund the {who} account") from None
            raise

    def _publish(self, job: _Job, fees: Fees) -> None:
        """Sign at `fees` and broadcast, bumping while the node answers "underpriced"."""
        self._refusal = ""
        for _ in range(self.config.max_underpriced):
            a = self._sign(job, fees)
            status = self._broadcast(a)
            if status in ("sent", "known"):
                job.attempts.append(a)
                self.log(f"{job.context or 'tx'}: {status} {a.tx_hash} nonce {job.nonce} {fees.gwei()}")
                return
            if status == "nonce_low":
                # `a` itself may be what used the nonce: the client re-sends the same bytes
                # when an answer is lost, and the first copy may have been mined meanwhile
                if self._await_ours([*job.attempts, a]) is None:
                    raise NonceTaken(f"nonce {job.nonce} of {self.address} was used by another "
                                     f"transaction")
                job.attempts.append(a)  # (a fresh signature: never in the list yet)
                return  # one of ours was mined: the wait finds it
            new = replacement_fees(fees, market_fees(self.client), self.config.max_fee_cap)
            if new.max_fee <= fees.max_fee:
                raise SendError(f"nonce {job.nonce} of {self.address} is held by a transaction "
                                f"paying more than the fee cap ({self._refusal})")
            fees = new
            if self.config.check_balance:
                self.check_balance(job.gas, fees, job.value)
        raise SendError(f"L1 keeps refusing the transaction at nonce {job.nonce} after "
                        f"{self.config.max_underpriced} fee bumps: {self._refusal}")

    def _await_ours(self, attempts: list[Attempt]) -> Receipt | None:
        """The receipt of one of `attempts` once their nonce is used, waiting up to
        `receipt_grace`: a node may count a mined transaction in the nonce before it serves the
        receipt, and taking that for a stranger's transaction would send ours a second time."""
        end = self.clock() + self.config.receipt_grace
        while True:
            r = self._receipt(attempts)
            if r is not None or self.clock() >= end:
                return r
            self.sleep(self.config.poll)

    def _receipt(self, attempts: list[Attempt]) -> Receipt | None:
        for a in reversed(attempts):
            r = self.client.get_receipt(a.tx_hash)
            if r is not None:
                return r
        return None

    def _canonical(self, r: Receipt) -> bool:
        b = self.client.get_block(r.block_number)
        return b is not None and b.get("hash") == r.block_hash

    def _rebroadcast(self, job: _Job) -> None:
        for a in reversed(job.attempts):  # the highest-fee attempt first
            status = self._broadcast(a)
            if status in ("sent", "known", "nonce_low"):
                return  # nonce_low: the wait finds out whose transaction took the nonce
        raise SendError(f"could not re-broadcast nonce {job.nonce} of {self.address} after a reorg")

    # -- sending ----------------------------------------------------------------------------------

    def send(self, to: str | None, data: bytes = b"", *, value: int = 0, gas: int | None = None,
             timeout: float | None = None, context: str = "") -> SendResult:
        """Send `data` to `to` (None: create a contract) and wait for the confirmations; see the
        module docstring. Raises ContractRevert/TransactionFailed for a mined failure."""
        cfg = self.config
        gas = gas if gas is not None else self.estimate_gas(to, data, value, context)
        fees = self.fees()
        if cfg.check_balance:
            self.check_balance(gas, fees, value)
        attempts: list[Attempt] = []
        self.current = attempts
        with self._lock:
            job = _Job(to, bytes(data), value, gas, self._take_nonce(), context, attempts)
            try:
                self._publish(job, fees)
            except NonceTaken:
                self._next = None
                raise
            self._next = max(self._next or 0, job.nonce + 1)
        result = self._confirm(job, cfg.timeout if timeout is None else timeout)
        r = result.receipt
        if not r.ok:
            raise self.client.explain_failure(r, self.address, to, job.data, value, context)
        return result

    def transact(self, to: str | None, data: bytes = b"", *, value: int = 0, gas: int | None = None,
                 timeout: float | None = None, context: str = "") -> Receipt:
        """`send` for a self-contained transaction (its data does not depend on what another
        transaction changes): when another transaction takes the nonce, it is sent again with
        the next one (three attempts in all). Returns the receipt."""
        for _ in range(2):
            try:
                return self.send(to, data, value=value, gas=gas, timeout=timeout, context=context).receipt
            except NonceTaken as exc:
                self.log(f"{context or 'transaction'}: {exc.message}; sending it again")
        return self.send(to, data, value=value, gas=gas, timeout=timeout, context=context).receipt

    def _confirm(self, job: _Job, timeout: float) -> SendResult:
        cfg = self.config
        result = SendResult(receipt=None, nonce=job.nonce, attempts=job.attempts)  # type: ignore[arg-type]
        what = job.context or "transaction"
        deadline = self.clock() + timeout
        last_sent = self.clock()
        seen: Receipt | None = None
        while True:
            r = self._receipt(job.attempts)
            if r is not None and not self._canonical(r):
                r = None
            if r is not None:
                if seen is not None and r.block_hash != seen.block_hash:  # re-mined elsewhere
                    result.reorgs += 1
                    self.log(f"{what}: {r.tx_hash} moved from L1 block {seen.block_number} to "
                             f"{r.block_number} (reorg)")
                seen = r
                depth = 1 if cfg.confirmations == 1 else self.client.block_number() - r.block_number + 1
                if depth >= cfg.confirmations:
                    result.receipt = r
                    return result
            elif seen is not None:  # it was mined, now it is not: an L1 reorg
                result.reorgs += 1
                self.log(f"{what}: {seen.tx_hash} no longer in L1 block {seen.block_number} "
                         f"(reorg); broadcasting it again")
                seen = None
                self._rebroadcast(job)
                last_sent = self.clock()
            elif self.client.get_transaction_count(self.address, "latest") > job.nonce:
                if self._await_ours(job.attempts) is None:  # not a race with our own inclusion
                    raise NonceTaken(f"nonce {job.nonce} of {self.address} was used by a "
                                     f"transaction that is none of ours")
            elif self.clock() - last_sent >= cfg.resubmit_after:
                last = job.attempts[-1]
                new = replacement_fees(last.fees, market_fees(self.client), cfg.max_fee_cap)
                if new.max_fee > last.max_fee:
                    self.log(f"{what}: not mined after {cfg.resubmit_after:.1f}s, bumping fees")
                    if cfg.check_balance:
                        self.check_balance(job.gas, new, job.value)
                    self._publish(job, new)
                last_sent = self.clock()
            if self.clock() > deadline:
                raise ReceiptTimeout(job.attempts[-1].tx_hash, timeout,
                                     f"{what} at nonce {job.nonce} (attempts: "
                                     f"{', '.join(a.tx_hash for a in job.attempts)})")
            self.sleep(cfg.poll)
