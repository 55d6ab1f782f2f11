"""The escape hatch, from L1 data alone: an account's claim on the last final state.

When the rollup is frozen the sequencer may be gone, so nothing here asks it: the verifier
replays the final batches from L1 calldata, the replayed last header must hash to
`Rollup.lastFinalState()`'s header hash, and the replayed marks must hash to that batch's
`marksRoot`. The claim carries the account leaf's depth-32 proof and, per open position, its
mark and the mark's proof; `Bridge.escape` pays `max(0, collateral + Σ value(q))` once
(contracts/README.md). `send_escape` sends it through a TxManager (anyone may send it).
"""

from __future__ import annotations

from dataclasses import dataclass

from cext import merkle_proof, merkle_root, parse_address, to_checksum
from prover.poster import header_tuple
from prover.verifier import Verifier
from sequencer.core.chain import mark_table
from sequencer.core.header import Header, mark_leaf
from sequencer.core.margin import RiskRow, value
from sequencer.core.state import Account, positions_hash
from sequencer.errors import NotFound, OptrollupError
from sequencer.l1 import Contract, L1Client, Receipt, TxManager

ZERO_ADDRESS = "0x" + "00" * 20


class EscapeError(OptrollupError):
    """The replayed final state does not match L1 (a verifier finding)."""

    code = "escape_state_mismatch"


@dataclass(frozen=True)
class PositionClaim:
    """One open position with its mark (base units per contract) and the mark's proof."""

    instrument: str
    amount: int  # contracts x 10^6, signed
    mark_lo: int
    mark_hi: int
    mark_index: int
    mark_proof: list[bytes]

    def value(self) -> int:
        """The position's escape value, rounded against the holder (as the L2's equity)."""
        return value(self.amount, RiskRow(self.mark_lo, self.mark_hi, 0, 0))


@dataclass(frozen=True)
class EscapeClaim:
    """Arguments of `Bridge.escape` for one account, against the last final state."""

    account: bytes
    collateral: int
    positions_hash: bytes
    index: int
    proof: list[bytes]
    positions: list[PositionClaim]
    header: Header  # the last final L2 header
    marks_root: bytes
    final_batches: int

    @property
    def state_root(self) -> bytes:
        return self.header.state_root

    def value(self) -> int:
        """What the Bridge pays (before the cap by its balance): max(0, collateral + Σ value)."""
        return max(0, self.collateral + sum(p.value() for p in self.positions))

    def args(self, recipient: str | None = None, owner_signature: bytes = b"") -> tuple:
        """`Bridge.escape(lastFinalHeader, claim, recipient, ownerSignature)` arguments."""
        positions = [(p.instrument, p.amount, p.mark_lo, p.mark_hi, p.mark_index, p.mark_proof)
                     for p in self.positions]
        claim = (to_checksum(self.account), self.collateral, self.index, self.proof, positions)
        return (header_tuple(self.header), claim, recipient or ZERO_ADDRESS, owner_signature)


def escape_claim(client: L1Client, rollup: str, account: bytes | str,
                 verifier: Verifier | None = None) -> EscapeClaim:
    """Replay the final batches from L1 and build the escape claim of `account`. A `verifier`
    already synced (e.g. by `optrollup withdraw --force`) is reused and synced further."""
    acct20 = parse_address(account, "account")
    v = verifier or Verifier(client, rollup)
    final_count, header_hash, state_root, marks_root = v.rollup.call("lastFinalState")
    v.sync(limit=int(final_count))
    if len(v.verified) != int(final_count):
        raise EscapeError(f"replayed {len(v.verified)} batches, the Rollup has {final_count} final")
    if v.tree.root() != bytes(state_root) or v.head.hash() != bytes(header_hash):
        raise EscapeError(f"replayed state root 0x{v.tree.root().hex()} / header 0x{v.head.hash().hex()} "
                          f"after {final_count} final batches != lastFinalState 0x{bytes(state_root).hex()} "
                          f"/ 0x{bytes(header_hash).hex()}")
    idx = v.state.index.get(acct20)
    if idx is None:
        raise NotFound(f"{to_checksum(acct20)} has no account in the last final state",
                       code="unknown_account")
    acct: Account = v.state.accounts[acct20]
    table = mark_table(v.state, v.head.timestamp)
    leaves = [mark_leaf(n, lo, hi) for n, lo, hi in table]
    if int(final_count) and merkle_root(leaves) != bytes(marks_root):
        raise EscapeError(f"replayed marks root 0x{merkle_root(leaves).hex()} != the final batch's "
                          f"marksRoot 0x{bytes(marks_root).hex()}")
    where = {n: i for i, (n, _, _) in enumerate(table)}
    positions = []
    for name, q in sorted(acct.positions.items()):
        if not q:
            continue
        i = where.get(name)
        if i is None:
            raise EscapeError(f"position in {name}, which has no mark in the final state")
        _, lo, hi = table[i]
        positions.append(PositionClaim(name, q, lo, hi, i, merkle_proof(leaves, i)))
    return EscapeClaim(acct20, acct.collateral, positions_hash(acct.positions), idx,
                       v.tree.proof(idx), positions, v.head, bytes(marks_root), int(final_count))


def send_escape(bridge: Contract, claim: EscapeClaim, sender: TxManager, *, recipient: str | None = None,
                owner_signature: bytes = b"") -> Receipt:
    """Send `Bridge.escape(claim)` through `sender` and wait for its confirmations."""
    return sender.transact(bridge.address, bridge.encode("escape", *claim.args(recipient, owner_signature)),
                           context="Bridge.escape")
