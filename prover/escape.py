"""The escape hatch, from L1 data alone: the proof of an account's leaf in the last final state.

When the rollup is frozen (no batch finalized for the escape delay) the sequencer may be gone,
so nothing here asks it: the verifier replays the final batches from L1 calldata, its state
root is checked against `Rollup.lastFinalState()`, and the account's leaf and depth-32 proof
are read from the rebuilt tree. `Bridge.escape` pays the leaf's collateral once (open positions
are valued at zero; contracts/README.md). `send_escape` sends the claim through a TxManager
(anyone may send it; the Bridge pays the account, once).
"""

from __future__ import annotations

from dataclasses import dataclass

from cext import parse_address, to_checksum
from prover.verifier import Verifier
from sequencer.core.state import Account, positions_hash
from sequencer.errors import NotFound, OptrollupError
from sequencer.l1 import Contract, L1Client, Receipt, TxManager


class EscapeError(OptrollupError):
    """The replayed final state does not match L1 (a verifier finding)."""

    code = "escape_state_mismatch"


@dataclass(frozen=True)
class EscapeClaim:
    """Arguments of `Bridge.escape` for one account, against the last final state root."""

    account: bytes
    collateral: int
    positions_hash: bytes
    index: int
    proof: list[bytes]
    state_root: bytes
    final_batches: int

    def args(self) -> tuple:
        return (to_checksum(self.account), self.collateral, self.positions_hash, self.index, self.proof)


def escape_claim(client: L1Client, rollup: str, account: bytes | str) -> EscapeClaim:
    """Replay the final batches from L1 and build the escape claim of `account`."""
    acct20 = parse_address(account, "account")
    v = Verifier(client, rollup)
    final_count, _, state_root = v.rollup.call("lastFinalState")
    v.sync(limit=int(final_count))
    if v.tree.root() != bytes(state_root):
        raise EscapeError(f"replayed state root 0x{v.tree.root().hex()} after {final_count} final "
                          f"batches != lastFinalState 0x{bytes(state_root).hex()}")
    idx = v.state.index.get(acct20)
    if idx is None:
        raise NotFound(f"{to_checksum(acct20)} has no account in the last final state",
                       code="unknown_account")
    acct: Account = v.state.accounts[acct20]
    return EscapeClaim(acct20, acct.collateral, positions_hash(acct.positions), idx,
                       v.tree.proof(idx), bytes(state_root), int(final_count))


def send_escape(bridge: Contract, claim: EscapeClaim, sender: TxManager) -> Receipt:
    """Send `Bridge.escape(claim)` through `sender` and wait for its confirmations."""
    return sender.transact(bridge.address, bridge.encode("escape", *claim.args()), context="Bridge.escape")
