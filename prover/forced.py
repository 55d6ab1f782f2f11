"""`optrollup withdraw --force`: leave the rollup without the operator's help.

1. `request_withdrawal` sends `Bridge.requestWithdrawal(amount, recipient)` from the L2
   account's own key: the request joins the L1 message queue.
2. Each round, `observe` replays the live batches from L1 (prover.verifier: nothing is asked of
   the sequencer) and reads the Rollup's clocks; `decide` (pure) turns that into the next step:
   wait, finalize the withdrawal leaf (nonce FORCED_NONCE_BASE + message nonce) once its batch
   is final, report a refusal, or freeze the Rollup and escape once the request is overdue.
3. `run_forced` is the loop that wires them and sends the transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from cext import parse_address, to_checksum
from prover.escape import escape_claim, send_escape
from prover.verifier import Verifier
from sequencer.core.header import WithdrawalLeaf
from sequencer.core.transition import FORCED_NONCE_BASE
from sequencer.errors import OptrollupError
from sequencer.l1 import Contract, L1Client, TxManager


class ForcedWithdrawalError(OptrollupError):
    """The forced withdrawal cannot go on (e.g. the L2 refused it)."""

    code = "forced_withdrawal_failed"


@dataclass(frozen=True)
class ForcedRequest:
    """A `WithdrawalRequested` message: L1 queue nonce, L2 account, L1 recipient, base units."""

    nonce: int
    account: bytes
    recipient: bytes
    amount: int

    @property
    def leaf(self) -> WithdrawalLeaf:
        """The withdrawal leaf the L2 emits if it pays the request."""
        return WithdrawalLeaf(self.account, self.recipient, self.amount, FORCED_NONCE_BASE + self.nonce)


class Step(Enum):
    WAIT_INCLUSION = "waiting for a batch to include the request"
    WAIT_FINAL = "included and paid on L2; waiting for its batch to become final"
    FINALIZE = "final: sending finalizeWithdrawal"
    DONE = "paid on L1"
    REFUSED = "the L2 refused the request (collateral or margin did not allow it)"
    FREEZE = "overdue: freezing the Rollup"
    ESCAPE = "frozen: escaping with the account's value in the last final state"


@dataclass(frozen=True)
class Observation:
    """What one round saw on L1 (all from L1 alone)."""

    processed: bool  # the replayed live batches processed the message
    leaf_batch: int | None  # index of the live batch whose blocks emitted the leaf
    leaf_final: bool  # that batch is final
    paid: bool  # Bridge.isWithdrawalPaid
    frozen: bool
    freeze_reason: int  # Rollup.freezeReason()
    seconds_left: int  # live seconds until the request is overdue (<= 0: overdue)
    escaped: bool


def decide(o: Observation) -> Step:
    """The next step of a forced withdrawal (pure; tested without L1)."""
    if o.paid:
        return Step.DONE
    if o.leaf_batch is not None and o.leaf_final:
        return Step.FINALIZE  # payable, frozen or not
    if o.frozen:
        return Step.DONE if o.escaped else Step.ESCAPE
    if o.processed and o.leaf_batch is None:
        return Step.REFUSED
    if o.leaf_batch is not None:
        return Step.WAIT_FINAL
    if o.freeze_reason != 0:
        return Step.FREEZE
    return Step.WAIT_INCLUSION


def request_withdrawal(bridge: Contract, sender: TxManager, amount: int, recipient: str) -> ForcedRequest:
    """Queue the request on L1 (from `sender`, the L2 account) and return it as L1 recorded it."""
    receipt = sender.transact(bridge.address, bridge.encode("requestWithdrawal", amount, recipient),
                              context="Bridge.requestWithdrawal")
    events = bridge.decode_logs(receipt, "WithdrawalRequested")
    if len(events) != 1:
        raise ForcedWithdrawalError(f"requestWithdrawal tx {receipt.tx_hash} emitted {len(events)} "
                                    "WithdrawalRequested events")
    ev = events[0]
    return ForcedRequest(int(ev["nonce"]), parse_address(ev["account"]), parse_address(ev["recipient"]),
                         int(ev["amount"]))


def observe(v: Verifier, req: ForcedRequest) -> Observation:
    """Replay what L1 has now and read the Rollup's clocks and the Bridge's paid set."""
    v.sync()
    rollup, bridge = v.rollup, v.bridge
    found = v.find_withdrawal(req.account, req.leaf.nonce)
    leaf_batch = found[0] if found is not None and found[1] == req.leaf else None
    frozen = bool(rollup.call("frozen"))
    queued = int(bridge.call("messageQueuedLive", req.nonce))
    left = queued + int(rollup.call("inclusionDelay")) - int(rollup.call("liveClock"))
    return Observation(
        processed=v.state.message_cursor > req.nonce,
        leaf_batch=leaf_batch,
        leaf_final=leaf_batch is not None and bool(rollup.call("isFinal", leaf_batch)),
        paid=bool(bridge.call("isWithdrawalPaid", to_checksum(req.account), req.leaf.nonce)),
        frozen=frozen,
        freeze_reason=int(rollup.call("freezeReason")),
        seconds_left=left,
        escaped=bool(bridge.call("escaped", to_checksum(req.account))),
    )


def run_forced(client: L1Client, v: Verifier, sender: TxManager, req: ForcedRequest, *,
               poll: float, log: Callable[[str], None], sleep: Callable[[float], None],
               max_rounds: int = 1_000_000) -> Step:
    """Drive the request to DONE (or raise on REFUSED); `sender` pays the gas of each step."""
    bridge, rollup = v.bridge, v.rollup
    last: Step | None = None
    for _ in range(max_rounds):
        o = observe(v, req)
        step = decide(o)
        if step is not Step.DONE and (step != last or step is Step.WAIT_INCLUSION):
            extra = f" ({max(o.seconds_left, 0)} live s until overdue)" if step is Step.WAIT_INCLUSION else ""
            log(f"forced withdrawal #{req.nonce}: {step.value}{extra}")
        last = step
        if step is Step.DONE:
            return step
        if step is Step.REFUSED:
            raise ForcedWithdrawalError(f"the L2 processed forced withdrawal #{req.nonce} without paying "
                                        "it: the account's collateral or margin did not allow "
                                        f"{req.amount} base units (nothing moved)")
        if step is Step.FINALIZE:
            w, proof = v.withdrawal_proof(req.account, req.leaf.nonce)
            sender.transact(bridge.address, bridge.encode("finalizeWithdrawal", w, proof),
                            context="Bridge.finalizeWithdrawal")
            continue
        if step is Step.FREEZE:
            sender.transact(rollup.address, rollup.encode("freeze"), context="Rollup.freeze")
            continue
        if step is Step.ESCAPE:
            claim = escape_claim(client, rollup.address, req.account, verifier=v)
            log(f"escape: collateral {claim.collateral}, {len(claim.positions)} positions, value {claim.value()}")
            send_escape(bridge, claim, sender)
            continue
        sleep(poll)
    return last or Step.WAIT_INCLUSION
