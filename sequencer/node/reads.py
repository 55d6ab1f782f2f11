"""The read side of the node: the one interface the HTTP API and the WebSocket stream use, so
that neither reaches into the engine, the committed state or the store. Loop thread only (the
thread that owns `Node.core`). Amounts and prices are integers in design.md units."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from cext import Order, to_checksum
from sequencer.core.engine import AccountView
from sequencer.core.header import Block, Header, WithdrawalLeaf
from sequencer.core.instruments import Instrument
from sequencer.core.liquidation import Quote, quote, risk_on
from sequencer.core.mmp import MS, MmpView
from sequencer.core.pricing import Mark
from sequencer.core.state import account_leaf, positions_hash
from sequencer.core.transition import authorized
from sequencer.errors import NotFound

if TYPE_CHECKING:
    from sequencer.node.node import Core


class BookView(NamedTuple):
    """Aggregated levels from the best, (price, amount) each, and the book's change sequence."""

    sequence: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class AccountProof(NamedTuple):
    """An account's leaf in the head state and its Merkle proof; `pending` is True when the
    account changed after the head block (the leaf is then the head's, not the live state's)."""

    account: bytes
    index: int
    block: int
    state_root: bytes
    leaf: bytes
    proof: list[bytes]
    collateral: int
    positions_hash: bytes
    pending: bool


class L1MessageView(NamedTuple):
    """L1 message `nonce` as the node processed it. `kind` 0 deposit (`counterparty` = the L1
    depositor), 1 forced withdrawal (`counterparty` = the L1 recipient); `amount` base units;
    `l1_block` where it was seen. `status`: "pending" until its L2 block is sealed and durable,
    then "credited" | "refunded" (deposits) or "paid_out" | "refused" (forced withdrawals);
    `reason` says why a forced withdrawal was refused (a stable code); `block` is the L2 block
    (None while pending); `withdrawal` is the leaf it emitted (refund or payout; None while
    pending or without one) and `leaf_index` its index among the block's withdrawal leaves."""

    nonce: int
    kind: int
    account: bytes
    counterparty: bytes
    amount: int
    l1_block: int
    status: str
    reason: str | None
    block: int | None
    withdrawal: WithdrawalLeaf | None
    leaf_index: int | None


class InsuranceView(NamedTuple):
    """The insurance fund (docs/liquidation.md): its `address`, `balance` (collateral, base
    units), the open `shortfall` (base units), its `fee_share` (ppm of every fee) and whether
    the rules in force at block time have liquidation (`enabled`)."""

    address: bytes
    balance: int
    shortfall: int
    fee_share: int
    enabled: bool


class NodeReads:
    """Mixed into `Node`: everything the API and the stream may read."""

    core: Core
    domain: bytes

    # -- identity and signatures ----------------------------------------------------------------

    def may_sign_for(self, account: bytes, signer: bytes) -> bool:
        """The core's rule: the account itself, or one of its session keys live at block time."""
        eng = self.core.engine
        acct = eng.state.accounts.get(account)
        if acct is None:
            return signer == account
        return authorized(acct, account, signer, eng.now)

    def digest(self, msg: Any) -> bytes:
        """EIP-712 digest of an order or message under this chain's domain (memoised)."""
        return self.core.engine.ctx.digest(self.domain, msg)

    # -- markets --------------------------------------------------------------------------------

    def instruments(self) -> list[tuple[Instrument, Mark | None]]:
        """Every listed instrument by name with its mark (None while its oracle is stale)."""
        eng = self.core.engine
        marks = eng.ctx.marks(eng.state)
        return [(i, marks.mark(n)) for n, i in sorted(eng.state.instruments.items())]

    def instrument(self, name: str) -> tuple[Instrument, Mark | None]:
        """One listed instrument and its mark; NotFound unknown_instrument."""
        eng = self.core.engine
        ins = eng.state.instruments.get(name)
        if ins is None:
            raise NotFound(f"instrument {name!r} is not listed", code="unknown_instrument")
        return ins, eng.ctx.marks(eng.state).mark(name)

    def is_listed(self, name: str) -> bool:
        """True iff `name` has a book (listed and not yet settled)."""
        return name in self.core.engine.books

    def book(self, name: str, depth: int) -> BookView:
        """The top `depth` levels of each side; NotFound unknown_instrument."""
        b = self.core.engine.books.get(name)
        if b is None:
            raise NotFound(f"instrument {name!r} is not listed", code="unknown_instrument")
        return BookView(self.core.book_seq.get(name, 0), b.depth(True, depth), b.depth(False, depth))

    def book_sequence(self, name: str) -> int:
        return self.core.book_seq.get(name, 0)

    def book_sizes(self) -> dict[str, int]:
        """Open orders per listed instrument (for metrics)."""
        return {name: sum(len(lvl) for side in (b.bids, b.asks) for lvl in side.values())
                for name, b in self.core.engine.books.items()}

    def recent_trades(self, instrument: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first, at most `limit`, optionally of one instrument."""
        rows = [t for t in reversed(self.core.trades) if instrument in (None, t["instrument"])]
        return rows[:limit]

    # -- chain ----------------------------------------------------------------------------------

    @property
    def head(self) -> Header:
        """The newest sealed header (its write may not be synced yet: see durable_head)."""
        return self.core.head

    @property
    def l1_message_cursor(self) -> int:
        """How many L1 messages (deposits, forced withdrawals) the node has processed."""
        return self.core.engine.state.message_cursor

    @property
    def block_time(self) -> int:
        """The open block's time, unix s."""
        return self.core.engine.now

    def block(self, number: int) -> Block | None:
        """A durable block, or None."""
        got = self.store.get(number)  # type: ignore[attr-defined]
        return None if got is None else got[0]

    def block_marks_root(self, number: int) -> bytes | None:
        """The marks root stored with durable block `number` (None if it has none or is not
        durable): docs/encoding.md, "Marks root"."""
        got = self.store.sealed(number)  # type: ignore[attr-defined]
        return None if got is None else got.marks_root

    def durable_head(self) -> int:
        """Number of the newest block whose write is synced."""
        durable = self.store.head()  # type: ignore[attr-defined]
        return self.core.head.number if durable is None else durable

    def account_proof(self, address: bytes) -> AccountProof:
        """The account's leaf and proof against the head's state root; NotFound unknown_account."""
        st, tree = self.core.engine.state, self.core.tree
        idx = st.index.get(address)
        if idx is None:
            raise NotFound(f"account {to_checksum(address)} has no leaf", code="unknown_account")
        acct = st.accounts[address]
        leaf = tree.leaf(idx)
        return AccountProof(address, idx, self.core.head.number, self.core.head.state_root, leaf,
                            tree.proof(idx), acct.collateral, positions_hash(acct.positions),
                            account_leaf(address, acct) != leaf)

    # -- accounts and orders --------------------------------------------------------------------

    def account(self, address: bytes) -> AccountView:
        """Collateral, margins, positions and open orders; NotFound unknown_account."""
        if address not in self.core.engine.state.accounts:
            raise NotFound(f"account {to_checksum(address)} does not exist (no deposit yet)",
                           code="unknown_account")
        return self.core.engine.account_view(address)

    def mmp(self, account: bytes) -> tuple[int, list[MmpView]]:
        """(block time in unix ms, the account's market-maker protection pairs by underlying)."""
        eng = self.core.engine
        return eng.now * MS, eng.mmp.views(account)

    def liquidations(self) -> list[Quote]:
        """Every open liquidation auction at the open block's time and marks, oldest first."""
        st = self.core.engine.state
        marks = self.core.engine.ctx.marks(st)
        return sorted((quote(st, marks, a) for a in st.auctions), key=lambda q: (q.started, q.account))

    def insurance(self) -> InsuranceView:
        """The insurance fund's balance and the shortfall."""
        eng = self.core.engine
        st, cfg = eng.state, eng.state.config
        fund = st.accounts.get(cfg.insurance_fund)
        return InsuranceView(cfg.insurance_fund, fund.collateral if fund is not None else 0,
                             st.shortfall, cfg.insurance_fee_share,
                             risk_on(eng.ctx.marks(st)))

    def open_orders(self, account: bytes) -> dict[str, list[tuple[bytes, Order, int]]]:
        """The account's open orders by instrument: (orderHash, order, remaining), in time order."""
        per = self.core.engine.by_account.get(account, {})
        return {name: [(d, r.order, r.remaining) for d, r in orders.items()]
                for name, orders in sorted(per.items())}

    def open_remaining(self, account: bytes, instrument: str) -> dict[bytes, int]:
        """orderHash -> remaining of the account's open orders in one instrument."""
        per = self.core.engine.by_account.get(account, {}).get(instrument, {})
        return {d: r.remaining for d, r in per.items()}

    def remaining(self, digest: bytes) -> int:
        """Unfilled amount of an open order, 0 if it is not open."""
        r = self.core.engine.open.get(digest)
        return r.remaining if r is not None else 0

    def withdrawal_pending(self, digest: bytes) -> bool:
        """True iff the withdrawal was accepted and its block is not yet durable."""
        return digest in self.core.pending_withdrawals
