"""A withdrawal as the API shows it: status (pending, batched, final, paid), its two-level proof
once its block is in an L1 batch, and once that batch is final the ready-made finalize call
(GET /v1/withdrawals/..., GET /v1/accounts/{a}/withdrawals)."""

from __future__ import annotations

import asyncio
from typing import Any

from cext import parse_address, to_checksum
from sequencer.api import views
from sequencer.errors import NotFound
from sequencer.node.l1follower import withdrawal_proof

__all__ = ["withdrawal_proof_status", "withdrawal_status"]


async def withdrawal_status(api: Any, d: bytes) -> Any:
    node = api.node
    got = node.withdrawal(d)
    if got is None:
        if node.withdrawal_pending(d):
            return {"withdrawalHash": views.h(d), "status": "pending", "block": None}
        raise NotFound(f"no withdrawal {views.h(d)}", code="unknown_withdrawal")
    return await withdrawal_proof_status(api, got, d)


async def withdrawal_proof_status(api: Any, got: tuple[int, int, bytes, bytes, int, int],
                                  d: bytes | None = None) -> Any:
    """Status, proof and (once final) the finalizing L1 call of a sealed withdrawal leaf
    (block, leaf index, account, recipient, amount, nonce); `d` its digest if it is signed."""
    node, l1 = api.node, api.l1
    number, leaf_index, account, recipient, amount, nonce = got
    out: dict[str, Any] = {"withdrawalHash": None if d is None else views.h(d), "status": "pending",
                           "block": number, "batch": None, "leaf": None, "proof": None,
                           "finalize": None,
                           "account": to_checksum(account), "recipient": to_checksum(recipient),
                           "amount": views.money(amount), "nonce": str(nonce)}
    batch = l1.view.batch_of(number) if l1 is not None else None
    if batch is None:
        return out
    leaves = node.block_withdrawal_leaves(number)
    proof = withdrawal_proof(batch, number - batch.first_block, leaves, leaf_index)
    out.update(status="batched", batch=batch.index, leaf=views.h(leaves[leaf_index]),
               proof={k: (views.h(v) if isinstance(v, bytes) else
                          [views.h(x) for x in v] if isinstance(v, list) else v)
                      for k, v in proof.items()})
    if batch.index < l1.view.final_count:
        paid = await asyncio.get_running_loop().run_in_executor(None, l1.is_paid, account, nonce)
        w = {"account": to_checksum(account), "recipient": to_checksum(recipient),
             "amount": amount, "nonce": nonce}
        data = l1.bridge.encode("finalizeWithdrawal", w, proof)
        out.update(status="paid" if paid else "final",
                   finalize={"to": to_checksum(parse_address(l1.bridge.address)), "data": views.h(data)})
    return out
