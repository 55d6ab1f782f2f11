"""Compliance actions of the operator as block transactions (design.md "Monitoring, detection,
compliance"; docs/compliance.md). Pure, like the rest of `apply`.

- `Freeze(address account,uint64 nonce)` (FreezeTx, tag 17) freezes an L2 account;
  `Unfreeze(address account,uint64 nonce)` (UnfreezeTx, tag 18) lifts it.
- `DenyL1(address l1Address,bool denied,uint64 nonce)` (DenyL1Tx, tag 19) puts an L1 address
  on the deny list (`denied` true) or takes it off (false). The list starts empty at genesis.

All three are EIP-712 messages of the orders' domain signed by the genesis operator key itself
(no session keys), like `List`. Nonces: one counter in the committed state,
`State.compliance_nonce`, shared by the three; a message must carry exactly its value, and each
applied action adds one. So the operator's actions form one gap-free, totally ordered sequence
that L1 sees in order, a signed action can never be replayed (after an Unfreeze, the Freeze
before it is stale), and the next nonce is public (`GET /v1/compliance`).

What a freeze does, checked in `apply` (so the verifier enforces it too): a fill that would
increase |position| of a frozen account is refused (`account_frozen`; reducing fills go
through), as are its Withdraws and forced withdrawals (refused at credit of the L1 message),
channel opens with it as a party, and Liquidate bids with it as the liquidator. It can still be
liquidated (auction, takes, takeover), receive deposits, settle and close channels. The matching
engine cancels its open orders when the freeze applies (like the start of a liquidation) and
refuses its new risk-increasing orders up front with the same code.

What the deny list does: an L1 deposit whose depositor is denied is not credited but refunded
to the depositor with a withdrawal leaf (as a deposit that does not fit is; the L1 message's
outcome says `depositor_denied`); a Withdraw or forced withdrawal to a denied recipient is
refused (`recipient_denied`).

Codes of the actions themselves: `bad_signature` (does not recover), `signer_mismatch` (not the
operator), `bad_compliance_nonce`, `bad_address` (the zero address), `account_already_frozen`,
`account_not_frozen`, `deny_list_unchanged` (the address already has that status).
"""

from __future__ import annotations

from typing import Any

from cext import to_checksum
from sequencer.core.state import State
from sequencer.core.txs import DenyL1Tx, FreezeTx, Tx, UnfreezeTx
from sequencer.errors import Conflict, InvalidRequest, InvalidSignature, Rejected

ACCOUNT_FROZEN = "account_frozen"
RECIPIENT_DENIED = "recipient_denied"
DEPOSITOR_DENIED = "depositor_denied"
ZERO_ADDRESS = b"\0" * 20


def require_operator(state: State, msg: Any, signature: bytes, ctx: Any, what: str) -> None:
    """InvalidSignature unless `signature` over `msg` recovers to the genesis operator (no
    session keys): bad_signature if it does not recover, signer_mismatch naming both addresses."""
    op = state.config.operator
    signer = ctx.signer(ctx.digest(state.config.domain, msg), signature)
    if signer is None:
        raise InvalidSignature(f"{what} signature is malformed or does not recover",
                               code="bad_signature")
    if signer != op:
        raise InvalidSignature(f"{what} signature recovers to {to_checksum(signer)}, expected "
                               f"the operator {to_checksum(op)}", code="signer_mismatch")


def _nonce(state: State, nonce: int, what: str) -> None:
    if nonce != state.compliance_nonce:
        raise Conflict(f"{what}.nonce {nonce}, expected the next compliance nonce "
                       f"{state.compliance_nonce}", code="bad_compliance_nonce")


def _address(a: bytes, what: str) -> None:
    if a == ZERO_ADDRESS:
        raise InvalidRequest(f"{what} is the zero address", code="bad_address")


def check_compliance(state: State, tx: Tx, ctx: Any) -> None:
    """Validate a FreezeTx, UnfreezeTx or DenyL1Tx completely (signature, nonce, status)."""
    if isinstance(tx, FreezeTx):
        msg, what = tx.freeze, "freeze"
        require_operator(state, msg, tx.signature, ctx, what)
        _nonce(state, msg.nonce, what)
        _address(msg.account, "freeze.account")
        if msg.account in state.frozen:
            raise Conflict(f"account {to_checksum(msg.account)} is already frozen (since "
                           f"{state.frozen[msg.account]})", code="account_already_frozen")
    elif isinstance(tx, UnfreezeTx):
        msg, what = tx.unfreeze, "unfreeze"
        require_operator(state, msg, tx.signature, ctx, what)
        _nonce(state, msg.nonce, what)
        if msg.account not in state.frozen:
            raise Conflict(f"account {to_checksum(msg.account)} is not frozen",
                           code="account_not_frozen")
    elif isinstance(tx, DenyL1Tx):
        msg, what = tx.denyL1, "denyL1"
        require_operator(state, msg, tx.signature, ctx, what)
        _nonce(state, msg.nonce, what)
        _address(msg.l1Address, "denyL1.l1Address")
        if (msg.l1Address in state.denied) == msg.denied:
            raise Conflict(f"L1 address {to_checksum(msg.l1Address)} is "
                           f"{'already' if msg.denied else 'not'} on the deny list",
                           code="deny_list_unchanged")
    else:
        raise InvalidRequest(f"not a compliance transaction: {type(tx).__name__}", code="bad_tx")


def apply_compliance(state: State, tx: FreezeTx | UnfreezeTx | DenyL1Tx, ctx: Any) -> None:
    """`apply`'s handler of the three compliance txs: validate, then record the new status at
    block time and advance the compliance nonce."""
    check_compliance(state, tx, ctx)
    if isinstance(tx, FreezeTx):
        state.frozen[tx.freeze.account] = ctx.timestamp
    elif isinstance(tx, UnfreezeTx):
        del state.frozen[tx.unfreeze.account]
    elif tx.denyL1.denied:
        state.denied[tx.denyL1.l1Address] = ctx.timestamp
    else:
        del state.denied[tx.denyL1.l1Address]
    state.compliance_nonce += 1


def frozen_error(account: bytes, what: str) -> Rejected:
    """The `account_frozen` refusal of `what` for `account`."""
    return Rejected(f"account {to_checksum(account)} is frozen by the operator: {what}",
                    code=ACCOUNT_FROZEN)


def require_not_frozen(state: State, account: bytes, what: str) -> None:
    """Rejected account_frozen if `account` is frozen (`what`: the refused action)."""
    if account in state.frozen:
        raise frozen_error(account, what)


def require_recipient_allowed(state: State, recipient: bytes, what: str) -> None:
    """Rejected recipient_denied if L1 `recipient` is on the deny list."""
    if recipient in state.denied:
        raise Rejected(f"{what} recipient {to_checksum(recipient)} is on the L1 deny list",
                       code=RECIPIENT_DENIED)
