"""Block-level rules shared by the sequencer (sealing) and the verifier (replay).

`seal_header` turns the state after a block's transactions into that block's header; the
verifier's `replay_block` applies decoded transactions then calls the same function, so both
sides compute roots with one piece of code. `marks_root` is the per-block commitment to the
consensus marks (docs/encoding.md, "Marks root"): stored with each block, not in the header.
"""

from __future__ import annotations

from collections.abc import Sequence

from cext import merkle_root
from sequencer.core.accounttree import AccountTree
from sequencer.core.header import Header, WithdrawalLeaf, mark_leaf, tx_root
from sequencer.core.liquidation import scan
from sequencer.core.marks import Marks
from sequencer.core.channelstate import channel_leaf
from sequencer.core.state import State, account_leaf
from sequencer.core.transition import apply, prepare_block
from sequencer.core.txs import STATUS_TXS, SettleTx, Tx, decode_tx, encode_tx
from sequencer.errors import OptrollupError


def withdrawal_leaves(state: State) -> list[bytes]:
    """Leaf hashes of what the open block of `state` pays out on L1 (Withdraw txs, deposit
    refunds, forced withdrawals), in transaction order."""
    return [w.leaf() for w in state.withdrawal_leaves]


def touched_leaves(state: State) -> dict[bytes, bytes]:
    """{address or channel id: leaf} of every account and channel in `state.touched`, which it
    clears. A seal takes them all; a node may take them earlier in the block and hand them to
    `seal_header` (`ahead`): every change to an account or channel adds it to `touched`
    again, so a leaf taken earlier and not taken since is still the leaf at the seal."""
    leaves = {k: account_leaf(k, state.accounts[k]) if len(k) == 20
              else channel_leaf(k, state.channels[k]) for k in state.touched}
    state.touched.clear()
    return leaves


def seal_header(state: State, tree: AccountTree, parent: Header, timestamp: int,
                txs: Sequence[Tx], tx_bytes: Sequence[bytes], *,
                ahead: dict[bytes, bytes] | None = None,
                tx_hashes: Sequence[bytes] | None = None) -> Header:
    """Header of the block whose transactions `txs` (canonical bytes `tx_bytes`) have just been
    applied to `state`. Updates `tree` with the touched accounts' leaves, clears `touched` and
    `withdrawal_leaves` (read them before sealing to index the block's payouts). `txs` is not
    read: the withdrawal leaves come from the state, since refunds and forced withdrawals
    depend on it. Work a node did during the block, so that the seal does not: `ahead`, the
    `touched_leaves` it took since the last seal (oldest first: later ones win; updated in
    place); `tx_hashes`, `tx_leaves(tx_bytes)`. The tree gets its leaves in address order
    whatever was taken ahead (its node order is part of a snapshot's bytes)."""
    leaves = touched_leaves(state)
    if ahead:
        ahead.update(leaves)
        leaves = ahead
    index = state.index
    tree.update({index[k]: leaf for k, leaf in sorted(leaves.items())})
    wroot = merkle_root(withdrawal_leaves(state))
    state.withdrawal_leaves.clear()
    troot = tx_root(list(tx_bytes)) if tx_hashes is None else merkle_root(list(tx_hashes))
    return Header(parent.number + 1, parent.hash(), timestamp, troot,
                  tree.root(), wroot, state.message_cursor)


def mark_table(state: State, now: int, marks: Marks | None = None) -> list[tuple[str, int, int]]:
    """(instrument, markLo, markHi) of every listed instrument of `state` at block time `now`
    (unix s; marks in collateral base units per contract, 0/0 for an instrument without a valid
    oracle price), sorted by name (code point order = the bytewise order of their UTF-8): the
    leaves of the marks root, in order. `marks` may pass a `Marks(state, now)` already computed
    (used only if it is current)."""
    if marks is None or not marks.current(state, now):
        marks = Marks(state, now)
    rows = []
    for name in sorted(state.instruments):
        m = marks.mark(name)
        rows.append((name, 0, 0) if m is None else (name, m.mark_lo, m.mark_hi))
    return rows


def marks_root(state: State, now: int, marks: Marks | None = None) -> bytes:
    """Merkle root over `mark_leaf(name, markLo, markHi)` of `mark_table(state, now)`
    (docs/encoding.md, "Marks root")."""
    return merkle_root([mark_leaf(*row) for row in mark_table(state, now, marks)])


class BadBlock(OptrollupError):
    """A block that does not replay: `number`, the index of the first bad transaction (or None
    when every tx applied but a root differs) and why."""

    code = "bad_block"

    def __init__(self, number: int, tx_index: int | None, reason: str) -> None:
        where = f"L2 block {number}" + (f", transaction {tx_index}" if tx_index is not None else "")
        super().__init__(f"{where}: {reason}")
        self.number, self.tx_index = number, tx_index


def replay_block(state: State, tree: AccountTree, parent: Header, timestamp: int,
                 tx_bytes: Sequence[bytes], payouts: list[WithdrawalLeaf] | None = None) -> Header:
    """Decode and apply a block's transactions, then seal; BadBlock names the first failure.
    `payouts`, if given, receives the block's withdrawal leaves (in leaf order).
    Liquidation detection is checked too: right after the block's leading Settle txs come
    exactly the status txs (AuctionStart, Takeover, AuctionEnd) that `liquidation.scan`
    finds at the block's marks, and no status tx appears anywhere else in the block."""
    number = parent.number + 1
    txs: list[Tx] = []
    for i, raw in enumerate(tx_bytes):
        try:
            txs.append(decode_tx(raw))
        except OptrollupError as exc:
            raise BadBlock(number, i, f"does not decode: {exc.message}") from None
    if timestamp < parent.timestamp:
        raise BadBlock(number, None, f"timestamp {timestamp} before parent's {parent.timestamp}")
    ctx = prepare_block(state.config.domain, timestamp, txs)
    detect = 0  # txs before the detection: the leading Settle txs
    while detect < len(txs) and isinstance(txs[detect], SettleTx):
        detect += 1
    due: list[bytes] | None = None
    for i, tx in enumerate(txs):
        if i == detect:
            due = [encode_tx(t) for t in scan(state, ctx.marks(state))]
            got = list(tx_bytes[i:i + len(due)])
            if got != due:
                k = next((j for j, (a, b) in enumerate(zip(got, due)) if a != b), len(got))
                raise BadBlock(number, i + k, f"liquidation detection at the block's marks wants "
                               f"{len(due)} status txs here, the block has others")
        elif isinstance(tx, STATUS_TXS) and (due is None or i >= detect + len(due)):
            raise BadBlock(number, i, f"{type(tx).__name__} outside the block's liquidation "
                           "detection (right after its Settle txs)")
        try:
            apply(state, tx, ctx)
        except OptrollupError as exc:
            raise BadBlock(number, i, f"{type(tx).__name__} rejected [{exc.code}]: {exc.message}") from None
    if due is None and scan(state, ctx.marks(state)):  # only Settle txs, or none
        raise BadBlock(number, len(txs), "liquidation detection at the block's marks wants "
                       "status txs the block does not have")
    if payouts is not None:
        payouts.extend(state.withdrawal_leaves)
    return seal_header(state, tree, parent, timestamp, txs, tx_bytes)
