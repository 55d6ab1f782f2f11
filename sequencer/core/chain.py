"""Block-level rules shared by the sequencer (sealing) and the verifier (replay).

`seal_header` turns the state after a block's transactions into that block's header; the
verifier's `replay_block` applies decoded transactions then calls the same function, so both
sides compute roots with one piece of code.
"""

from __future__ import annotations

from collections.abc import Sequence

from cext import merkle_root
from sequencer.core.accounttree import AccountTree
from sequencer.core.header import Header, tx_root, withdrawal_leaf
from sequencer.core.state import State, account_leaf
from sequencer.core.transition import apply, prepare_block
from sequencer.core.txs import Tx, WithdrawTx, decode_tx
from sequencer.errors import OptrollupError


def withdrawal_leaves(txs: Sequence[Tx]) -> list[bytes]:
    """Withdrawal leaves of a block's Withdraw transactions, in block order."""
    return [withdrawal_leaf(t.withdraw.account, t.withdraw.recipient, t.withdraw.amount,
                            t.withdraw.nonce) for t in txs if isinstance(t, WithdrawTx)]


def seal_header(state: State, tree: AccountTree, parent: Header, timestamp: int,
                txs: Sequence[Tx], tx_bytes: Sequence[bytes]) -> Header:
    """Header of the block whose transactions `txs` (canonical bytes `tx_bytes`) have just been
    applied to `state`. Updates `tree` with the touched accounts' leaves and clears `touched`."""
    tree.update({state.index[a]: account_leaf(a, state.accounts[a])
                 for a in sorted(state.touched)})
    state.touched.clear()
    return Header(parent.number + 1, parent.hash(), timestamp, tx_root(list(tx_bytes)),
                  tree.root(), merkle_root(withdrawal_leaves(txs)), state.message_cursor)


class BadBlock(OptrollupError):
    """A block that does not replay: `number`, the index of the first bad transaction (or None
    when every tx applied but a root differs) and why."""

    code = "bad_block"

    def __init__(self, number: int, tx_index: int | None, reason: str) -> None:
        where = f"L2 block {number}" + (f", transaction {tx_index}" if tx_index is not None else "")
        super().__init__(f"{where}: {reason}")
        self.number, self.tx_index = number, tx_index


def replay_block(state: State, tree: AccountTree, parent: Header, timestamp: int,
                 tx_bytes: Sequence[bytes]) -> Header:
    """Decode and apply a block's transactions, then seal; BadBlock names the first failure."""
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
    for i, tx in enumerate(txs):
        try:
            apply(state, tx, ctx)
        except OptrollupError as exc:
            raise BadBlock(number, i, f"{type(tx).__name__} rejected [{exc.code}]: {exc.message}") from None
    return seal_header(state, tree, parent, timestamp, txs, tx_bytes)
