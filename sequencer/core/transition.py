"""`apply(state, tx, ctx)`: the state-transition function run by the sequencer and the replay
verifier. It validates a block transaction completely, then mutates `state`; on any error it
raises and leaves `state` untouched.

Signatures are recovered in batches before apply (`prepare_block`) and passed in through the
BlockContext as a (digest, signature) -> signer mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cext import Order, order_digests, recover_addresses, to_checksum
from sequencer.core import channelstate, compliance, eip712, insurance, liquidation, portfolio
from sequencer.core.header import WithdrawalLeaf
from sequencer.core.instruments import UNIT, Instrument, make_instrument
from sequencer.core.margin import Margin, fee, position_delta, reduces
from sequencer.core.marks import Marks
from sequencer.core.portfolio import MODES, PORTFOLIO
from sequencer.core.rules import CHANNELS_VERSION, PORTFOLIO_VERSION
from sequencer.core.oracle import OracleState, accept_feed, check_feed, prune_history
from sequencer.core.settlement import settle
from sequencer.core.state import Account, Channel, FilledOrder, State, account, set_position
from sequencer.core.txs import (AuctionEndTx, AuctionStartTx, ChannelCloseTx, ChannelConcludeTx,
                                ChannelOpenTx, DenyL1Tx, DepositTx, FillTx, ForcedWithdrawTx,
                                FreezeTx, LiquidateTx, ListTx, MarginModeTx, OracleTx,
                                SessionKeyTx, SettleTx, SignedOrder, TakeoverTx, Tx, UnfreezeTx,
                                WithdrawTx)
from sequencer.errors import (Conflict, InvalidRequest, InvalidSignature, NotFound,
                              OptrollupError, Rejected)

MAX_UINT64 = 2**64 - 1
MAX_COLLATERAL = 2**64 - 1
"""Most collateral an account may hold (base units): a deposit that would exceed it is refunded."""
FORCED_NONCE_BASE = 2**63
"""Withdrawal-leaf nonce of L1 message n (deposit refund, forced withdrawal) = FORCED_NONCE_BASE + n;
Withdraw nonces count from 0 per account and never reach it (docs/encoding.md)."""
ZERO_ADDRESS = b"\0" * 20
MAX_SESSION_KEYS = 16

Signers = Mapping[tuple[bytes, bytes], "bytes | None"]


@dataclass
class BlockContext:
    """Inputs of a block besides state and txs: `timestamp` (unix s), `signers` recovered per
    (digest, signature), and caches (order digests, marks) that are pure functions of state."""

    timestamp: int
    signers: dict[tuple[bytes, bytes], bytes | None] = field(default_factory=dict)
    digests: dict[Order | eip712.Message, bytes] = field(default_factory=dict)
    _marks: Marks | None = None

    def marks(self, state: State) -> Marks:
        """Marks of `state` at this block's time (rebuilt after an oracle update)."""
        m = self._marks = Marks.refreshed(self._marks, state, self.timestamp)
        return m

    def digest(self, domain: bytes, msg: Order | eip712.Message) -> bytes:
        """EIP-712 digest of an order or message (memoised; Orders hashed by cext)."""
        d = self.digests.get(msg)
        if d is None:
            d = self.digests[msg] = (order_digests(domain, [msg])[0] if type(msg) is Order
                                     else eip712.digest(domain, msg))
        return d

    def signer(self, digest: bytes, signature: bytes) -> bytes | None:
        """Recovered signer, from the batch; recovered singly if the batch missed it."""
        key = (digest, signature)
        try:
            return self.signers[key]
        except KeyError:
            s = self.signers[key] = recover_addresses([digest], [signature])[0]
            return s


def signed_items(tx: Tx) -> list[tuple[Order | eip712.Message, bytes]]:
    """(message, signature) pairs carried by a block transaction."""
    if isinstance(tx, FillTx):
        return [(r.order, r.signature) for r in (tx.maker, tx.taker) if isinstance(r, SignedOrder)]
    if isinstance(tx, (WithdrawTx, OracleTx, SessionKeyTx, ListTx, LiquidateTx, MarginModeTx,
                       FreezeTx, UnfreezeTx, DenyL1Tx)):
        return [(tx[0], tx[1])]
    return []


def prepare_block(domain: bytes, timestamp: int, txs: Sequence[Tx], threads: int = 0) -> BlockContext:
    """BlockContext for `txs`: every digest computed and every signature recovered in one batch."""
    items = [it for tx in txs for it in signed_items(tx)]
    ctx = BlockContext(timestamp)
    if not items:
        return ctx
    try:
        ds = eip712.digests(domain, [m for m, _ in items])
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"bad signed message: {exc}", code="bad_tx") from None
    sigs = [s for _, s in items]
    ctx.digests.update(zip([m for m, _ in items], ds))
    ctx.signers.update(zip(zip(ds, sigs), recover_addresses(ds, sigs, threads)))
    return ctx


def authorized(acct: Account, address: bytes, signer: bytes | None, now: int) -> bool:
    """True iff `signer` is the account itself or one of its session keys live at `now`."""
    return signer is not None and (signer == address or acct.session_keys.get(signer, 0) > now)


def require_signer(acct: Account | None, address: bytes, signer: bytes | None, now: int,
                   what: str, session_ok: bool = True) -> None:
    """InvalidSignature naming the recovered and expected addresses unless authorized."""
    if signer is None:
        raise InvalidSignature(f"{what} signature is malformed or does not recover",
                               code="bad_signature")
    ok = signer == address or (session_ok and acct is not None
                               and acct.session_keys.get(signer, 0) > now)
    if not ok:
        raise InvalidSignature(
            f"{what} signature recovers to {to_checksum(signer)}, expected "
            f"{to_checksum(address)}{' or a live session key of it' if session_ok else ''}",
            code="signer_mismatch")


def check_order(state: State, order: Order, now: int) -> Instrument:
    """Validate an order's fields against state at `now` (not signature, not digest reuse)."""
    if type(order.account) is not bytes or len(order.account) != 20:
        raise InvalidRequest("account must be a 20-byte address", code="bad_address")
    ins = state.instruments.get(order.instrument)
    if ins is None:
        raise NotFound(f"instrument {order.instrument!r} is not listed", code="unknown_instrument")
    if ins.expiry <= now:
        raise Rejected(f"instrument {ins.name} expired at {ins.expiry}", code="instrument_expired")
    if not 0 < order.price <= MAX_UINT64:
        raise InvalidRequest(f"price must be in (0, 2^64), got {order.price}", code="bad_price")
    if order.price % ins.tick_size:
        raise InvalidRequest(f"price {order.price} is not a multiple of tick_size {ins.tick_size}",
                             code="price_not_on_tick")
    if not 0 < order.amount <= MAX_UINT64:
        raise InvalidRequest(f"amount must be in (0, 2^64), got {order.amount}", code="bad_amount")
    if order.amount % ins.amount_step:
        raise InvalidRequest(f"amount {order.amount} is not a multiple of amount_step "
                             f"{ins.amount_step}", code="amount_not_on_step")
    if order.amount < ins.min_amount:
        raise InvalidRequest(f"amount {order.amount} is below min_amount {ins.min_amount}",
                             code="amount_below_min")
    if order.expiry <= now:
        raise Rejected(f"order expiry {order.expiry} is not after {now}", code="order_expired")
    if order.expiry > now + state.config.max_order_ttl:
        raise InvalidRequest(f"order expiry {order.expiry} is more than "
                             f"{state.config.max_order_ttl}s after {now}", code="order_expiry_too_far")
    if order.timeInForce not in (0, 1, 2):
        raise InvalidRequest(f"timeInForce must be 0, 1 or 2, got {order.timeInForce}",
                             code="bad_time_in_force")
    if order.postOnly and order.timeInForce:
        raise InvalidRequest("postOnly requires timeInForce GTC (0)", code="post_only_not_gtc")
    if order.account not in state.accounts:
        raise NotFound(f"account {to_checksum(order.account)} does not exist",
                       code="unknown_account")
    return ins


def margin_after(marks: Marks, address: bytes, acct: Account, collateral: int,
                 name: str = "", q: int = 0) -> Margin:
    """Positions-only margin of `acct` in its margin mode with `collateral` and position `name`
    set to `q` (`mm` not computed: 0)."""
    v, im = marks.positions(address, acct)
    if name:
        r = marks.row(name)
        if r is None:
            raise Rejected(f"no valid oracle price for {name}", code="oracle_stale")
        old = acct.positions.get(name, 0)
        dv, dim = position_delta(old, q, r)
        v += dv
        im += dim
    if acct.margin_mode == PORTFOLIO:
        exps = marks.exposures(address, acct)
        if name:
            if marks.scenarios(name) is None:
                raise Rejected(f"no valid oracle price for {name}", code="oracle_stale")
            im = portfolio.im_after(marks, exps, name, acct.positions.get(name, 0), q)
        else:
            im = portfolio.total_im(marks, exps.items())
    return Margin(collateral + v, im, 0)


def apply(state: State, tx: Tx, ctx: BlockContext) -> None:
    """Validate `tx` completely at block time `ctx.timestamp`, then apply it to `state`."""
    handler = _HANDLERS.get(type(tx))
    if handler is None:
        raise InvalidRequest(f"not a block transaction: {type(tx).__name__}", code="bad_tx")
    handler(state, tx, ctx)


def check_l1_message(state: State, tx: DepositTx | ForcedWithdrawTx) -> None:
    """What makes an L1 message tx invalid (it is then not processed at all): an amount outside
    (0, 2^64) or a nonce other than the message cursor. Codes: bad_amount, bad_deposit_nonce
    (deposits), bad_message_nonce (forced withdrawals)."""
    what = "deposit" if isinstance(tx, DepositTx) else "forced withdrawal"
    if not 0 < tx.amount <= MAX_UINT64:
        raise InvalidRequest(f"{what} amount must be in (0, 2^64), got {tx.amount}",
                             code="bad_amount")
    if tx.l1Nonce != state.message_cursor:
        raise Conflict(f"{what} L1 message nonce {tx.l1Nonce}, expected the message cursor "
                       f"{state.message_cursor}", code="bad_deposit_nonce"
                       if isinstance(tx, DepositTx) else "bad_message_nonce")


def deposit_refund(state: State, tx: DepositTx) -> str | None:
    """Why a (valid) deposit is refunded rather than credited: "depositor_denied" (its L1
    depositor is on the deny list, sequencer.core.compliance), "collateral_exceeded" (the
    account's collateral would exceed MAX_COLLATERAL), or None (credited)."""
    if tx.depositor in state.denied:
        return compliance.DEPOSITOR_DENIED
    acct = state.accounts.get(tx.account)
    if (acct.collateral if acct is not None else 0) + tx.amount > MAX_COLLATERAL:
        return "collateral_exceeded"
    return None


def _deposit(state: State, tx: DepositTx, ctx: BlockContext) -> None:
    """Credit, or refund to the depositor (a withdrawal leaf) if it is denied or the collateral
    would exceed MAX_COLLATERAL (`deposit_refund`); the message cursor moves on either way."""
    check_l1_message(state, tx)
    state.message_cursor += 1
    if deposit_refund(state, tx) is not None:
        state.withdrawal_leaves.append(WithdrawalLeaf(tx.account, tx.depositor, tx.amount,
                                                      FORCED_NONCE_BASE + tx.l1Nonce))
        return
    account(state, tx.account).collateral += tx.amount
    state.collateral_total += tx.amount
    state.touched.add(tx.account)


def forced_withdrawal_refusal(state: State, tx: ForcedWithdrawTx, ctx: BlockContext) -> str | None:
    """Why a forced withdrawal is refused, as a stable code (unknown_account, bad_recipient,
    account_frozen, recipient_denied, account_in_liquidation, insolvent,
    insufficient_collateral, insufficient_margin, oracle_stale), or None if it is paid. The
    debit is the amount plus the shortfall haircut (insurance.withdrawal_debit). Margin: the
    account's positions at the block's marks, equity after the debit >= initial margin."""
    acct = state.accounts.get(tx.account)
    if acct is None:
        return "unknown_account"
    if tx.recipient == ZERO_ADDRESS:
        return "bad_recipient"
    if tx.account in state.frozen:
        return compliance.ACCOUNT_FROZEN
    if tx.recipient in state.denied:
        return compliance.RECIPIENT_DENIED
    if tx.account in state.auctions:
        return "account_in_liquidation"
    try:
        debit = insurance.withdrawal_debit(state, tx.amount)
    except OptrollupError as exc:
        return exc.code
    if debit > acct.collateral:
        return "insufficient_collateral"
    if acct.positions:
        try:
            m = margin_after(ctx.marks(state), tx.account, acct, acct.collateral - debit)
        except OptrollupError as exc:  # a position without a valid oracle price
            return exc.code
        if m.equity < m.im:
            return "insufficient_margin"
    return None


def _forced_withdraw(state: State, tx: ForcedWithdrawTx, ctx: BlockContext) -> None:
    """Debit and emit the leaf (account, recipient, amount, FORCED_NONCE_BASE + l1Nonce), or
    refuse (no effect but the message cursor): see `forced_withdrawal_refusal`."""
    check_l1_message(state, tx)
    state.message_cursor += 1
    if forced_withdrawal_refusal(state, tx, ctx) is not None:
        return
    insurance.debit_withdrawal(state, tx.account, state.accounts[tx.account],
                               insurance.withdrawal_debit(state, tx.amount), tx.amount)
    state.withdrawal_leaves.append(WithdrawalLeaf(tx.account, tx.recipient, tx.amount,
                                                  FORCED_NONCE_BASE + tx.l1Nonce))


def _resolve(state: State, ref: object, ctx: BlockContext, party: str) -> tuple[bytes, FilledOrder]:
    now = ctx.timestamp
    if isinstance(ref, SignedOrder):
        order = ref.order
        check_order(state, order, now)
        d = ctx.digest(state.config.domain, order)
        if d in state.orders:
            raise Conflict(f"{party} order {d.hex()} was already posted; refer to it by digest",
                           code="order_already_posted")
        require_signer(state.accounts[order.account], order.account,
                       ctx.signer(d, ref.signature), now, f"{party} order")
        return d, FilledOrder(order, 0)
    fo = state.orders.get(ref)  # type: ignore[arg-type]
    if fo is None:
        raise NotFound(f"{party} order {ref!r} is unknown", code="unknown_order")
    ins = state.instruments.get(fo.order.instrument)
    if ins is None or ins.expiry <= now:
        raise Rejected(f"{party} instrument {fo.order.instrument} is not tradable",
                       code="instrument_expired")
    if fo.order.expiry <= now:
        raise Rejected(f"{party} order expired at {fo.order.expiry}", code="order_expired")
    return ref, fo  # type: ignore[return-value]


def _blame(exc: OptrollupError, party: str) -> OptrollupError:
    exc.party = party  # type: ignore[attr-defined]
    return exc


def _apply_fill(state: State, tx: FillTx, ctx: BlockContext) -> None:
    try:
        md, mf = _resolve(state, tx.maker, ctx, "maker")
    except OptrollupError as exc:
        raise _blame(exc, "maker")
    try:
        td, tf = _resolve(state, tx.taker, ctx, "taker")
    except OptrollupError as exc:
        raise _blame(exc, "taker")
    mo, to = mf.order, tf.order
    if mo.instrument != to.instrument or mo.isBuy == to.isBuy:
        raise InvalidRequest("maker and taker must be opposite sides of one instrument",
                             code="fill_mismatch")
    if mo.account == to.account:
        raise Rejected("maker and taker are the same account", code="self_trade")
    if mo.timeInForce != 0:
        raise _blame(Rejected("maker order is not GTC", code="maker_not_resting"), "maker")
    if to.postOnly:
        raise _blame(Rejected("a post-only order cannot take", code="post_only_would_cross"), "taker")
    if tx.price != mo.price:
        raise InvalidRequest(f"fill price {tx.price} is not the maker's price {mo.price}",
                             code="price_mismatch")
    if (to.isBuy and tx.price > to.price) or (not to.isBuy and tx.price < to.price):
        raise InvalidRequest(f"fill price {tx.price} violates the taker's limit {to.price}",
                             code="price_not_crossing")
    ins = state.instruments[mo.instrument]
    if tx.amount <= 0 or tx.amount % ins.amount_step:
        raise InvalidRequest(f"fill amount {tx.amount} must be a positive multiple of "
                             f"{ins.amount_step}", code="amount_not_on_step")
    for party, fo in (("maker", mf), ("taker", tf)):
        if fo.filled + tx.amount > fo.order.amount:
            raise _blame(Rejected(f"{party} order would fill {fo.filled + tx.amount} of "
                                  f"{fo.order.amount}", code="overfill"), party)
    marks = ctx.marks(state)
    price = marks.price(ins.underlying)
    if price is None:
        raise Rejected(f"no valid oracle price for {ins.underlying}", code="oracle_stale")
    params = state.config.underlyings[ins.underlying]
    premium = tx.price * tx.amount // UNIT
    name = ins.name
    updates = []
    for party, o, rate in (("maker", mo, params.maker_fee), ("taker", to, params.taker_fee)):
        acct = state.accounts[o.account]
        f = fee(premium, tx.amount, price.spot, rate, params.fee_cap)
        q = acct.positions.get(name, 0)
        delta = tx.amount if o.isBuy else -tx.amount
        coll = acct.collateral - f + (-premium if o.isBuy else premium)
        if o.reduceOnly and not reduces(q, delta):
            raise _blame(Rejected(f"{party} order is reduce-only and the fill would increase "
                                  f"|position| {q}", code="reduce_only_increase"), party)
        if coll < 0:
            raise _blame(Rejected(f"{party} collateral {acct.collateral} cannot pay premium and "
                                  f"fee {f}", code="insufficient_collateral"), party)
        if not reduces(q, delta):
            if o.account in state.frozen:
                raise _blame(compliance.frozen_error(o.account, f"{party} fill would increase "
                                                     f"|position| {q}"), party)
            if o.account in state.auctions:
                raise _blame(Rejected(f"{party} account is in liquidation: only fills that "
                                      "reduce its positions", code="account_in_liquidation"), party)
            try:
                m = margin_after(marks, o.account, acct, coll, name, q + delta)
            except OptrollupError as exc:
                raise _blame(exc, party)
            if m.equity < m.im:
                raise _blame(Rejected(f"{party} equity {m.equity} below initial margin {m.im} "
                                      "after the fill", code="insufficient_margin"), party)
        updates.append((o.account, acct, coll, q, q + delta, f))
    fund_share = liquidation.risk_on(marks)
    for address, acct, coll, old, q, f in updates:
        acct.collateral = coll
        set_position(state, address, acct, name, q)
        marks.moved(address, name, old, q)
        if fund_share:
            insurance.credit_fee(state, f)
        else:
            state.accounts[state.config.fee_account].collateral += f
            state.touched.add(state.config.fee_account)
    for d, fo in ((md, mf), (td, tf)):
        fo.filled += tx.amount
        state.orders[d] = fo


def _withdraw(state: State, tx: WithdrawTx, ctx: BlockContext) -> None:
    w, now = tx.withdraw, ctx.timestamp
    acct = state.accounts.get(w.account)
    if acct is None:
        raise NotFound(f"account {to_checksum(w.account)} does not exist", code="unknown_account")
    d = ctx.digest(state.config.domain, w)
    require_signer(acct, w.account, ctx.signer(d, tx.signature), now, "withdraw", session_ok=False)
    if w.nonce != acct.withdrawal_nonce:
        raise Conflict(f"withdraw nonce {w.nonce}, expected {acct.withdrawal_nonce}",
                       code="bad_withdrawal_nonce")
    if not 0 < w.amount <= MAX_UINT64:
        raise InvalidRequest(f"withdraw amount must be positive, got {w.amount}", code="bad_amount")
    if w.recipient == ZERO_ADDRESS:
        raise InvalidRequest("withdraw recipient is the zero address, which L1 can never pay",
                             code="bad_recipient")
    compliance.require_not_frozen(state, w.account, "no withdrawals")
    compliance.require_recipient_allowed(state, w.recipient, "withdraw")
    if w.account in state.auctions:
        raise Rejected("the account is in liquidation: no withdrawals until its auction ends",
                       code="account_in_liquidation")
    debit = insurance.withdrawal_debit(state, w.amount)
    if debit > acct.collateral:
        haircut = f" (with the shortfall haircut, {debit})" if debit != w.amount else ""
        raise Rejected(f"withdraw amount {w.amount}{haircut} exceeds collateral {acct.collateral}",
                       code="insufficient_collateral")
    coll = acct.collateral - debit
    if acct.positions:
        m = margin_after(ctx.marks(state), w.account, acct, coll)
        if m.equity < m.im:
            raise Rejected(f"equity {m.equity} below initial margin {m.im} after withdrawing",
                           code="insufficient_margin")
    insurance.debit_withdrawal(state, w.account, acct, debit, w.amount)
    acct.withdrawal_nonce += 1
    state.withdrawal_leaves.append(WithdrawalLeaf(w.account, w.recipient, w.amount, w.nonce))


def _oracle(state: State, tx: OracleTx, ctx: BlockContext) -> None:
    feed, now, cfg = tx.feed, ctx.timestamp, state.config
    if feed.underlying not in cfg.underlyings:
        raise NotFound(f"underlying {feed.underlying!r} is not configured", code="unknown_underlying")
    d = ctx.digest(cfg.domain, feed)
    signer = ctx.signer(d, tx.signature)
    ostate = state.oracle.get(feed.underlying) or OracleState()
    check_feed(ostate, feed, signer, now, cfg.oracle)
    state.oracle[feed.underlying] = ostate
    accept_feed(ostate, feed, signer, now, cfg.oracle)  # type: ignore[arg-type]
    state.oracle_version += 1
    expiries = [i.expiry for i in state.instruments.values() if i.underlying == feed.underlying]
    prune_history(ostate, min([now, *expiries]) - cfg.settlement_window)


def _settle(state: State, tx: SettleTx, ctx: BlockContext) -> None:
    settle(state, tx.instrument, ctx.timestamp)
    ctx.marks(state).forget()


def _session_key(state: State, tx: SessionKeyTx, ctx: BlockContext) -> None:
    sk, now = tx.sessionKey, ctx.timestamp
    acct = state.accounts.get(sk.account)
    if acct is None:
        raise NotFound(f"account {to_checksum(sk.account)} does not exist", code="unknown_account")
    d = ctx.digest(state.config.domain, sk)
    require_signer(acct, sk.account, ctx.signer(d, tx.signature), now, "session key",
                   session_ok=False)
    if sk.key == sk.account or sk.key == b"\0" * 20:
        raise InvalidRequest("session key must differ from the account and zero", code="bad_session_key")
    if d in acct.used_key_digests:
        raise Conflict("this SessionKey message was already applied", code="session_key_replayed")
    live = [k for k, e in acct.session_keys.items() if e > now]
    if sk.expiry > now and sk.key not in live and len(live) >= MAX_SESSION_KEYS:
        raise Rejected(f"at most {MAX_SESSION_KEYS} live session keys", code="too_many_session_keys")
    acct.session_keys = {k: acct.session_keys[k] for k in live}
    acct.used_key_digests.add(d)
    if sk.expiry > now:
        acct.session_keys[sk.key] = sk.expiry
    else:
        acct.session_keys.pop(sk.key, None)


def _list(state: State, tx: ListTx, ctx: BlockContext) -> None:
    lst, cfg = tx.listing, state.config
    d = ctx.digest(cfg.domain, lst)
    require_signer(None, cfg.operator, ctx.signer(d, tx.signature), ctx.timestamp, "listing",
                   session_ok=False)
    list_instrument(state, make_instrument(lst.instrument, lst.tickSize, lst.amountStep,
                                           lst.minAmount), ctx.timestamp)


def list_instrument(state: State, ins: Instrument, now: int) -> None:
    """Add a checked instrument (errors: unknown_underlying, instrument_listed, instrument_expired)."""
    if ins.underlying not in state.config.underlyings:
        raise NotFound(f"underlying {ins.underlying!r} is not configured", code="unknown_underlying")
    if ins.name in state.instruments or ins.name in state.settled:
        raise Conflict(f"instrument {ins.name} is already listed", code="instrument_listed")
    if ins.expiry <= now:
        raise Rejected(f"instrument {ins.name} expiry {ins.expiry} is not after {now}",
                       code="instrument_expired")
    state.instruments[ins.name] = ins
    state.holders[ins.name] = {}


def _auction_start(state: State, tx: AuctionStartTx, ctx: BlockContext) -> None:
    liquidation.start(state, tx.account, ctx.marks(state), ctx.timestamp)


def _auction_end(state: State, tx: AuctionEndTx, ctx: BlockContext) -> None:
    liquidation.end(state, tx.account, ctx.marks(state))


def _takeover(state: State, tx: TakeoverTx, ctx: BlockContext) -> None:
    liquidation.takeover(state, tx.account, ctx.marks(state))


def check_liquidate(state: State, tx: LiquidateTx, ctx: BlockContext) -> liquidation.Take:
    """Validate a Liquidate completely (signature: the liquidator or a live session key of it)
    and plan it (liquidation.plan_take)."""
    msg = tx.liquidate
    liq = state.accounts.get(msg.liquidator)
    d = ctx.digest(state.config.domain, msg)
    require_signer(liq, msg.liquidator, ctx.signer(d, tx.signature), ctx.timestamp, "liquidate")
    compliance.require_not_frozen(state, msg.liquidator, "it may not bid as a liquidator")
    return liquidation.plan_take(state, msg, ctx.marks(state), ctx.timestamp)


def _liquidate(state: State, tx: LiquidateTx, ctx: BlockContext) -> None:
    liquidation.execute_take(state, check_liquidate(state, tx, ctx), ctx.marks(state))


def _require_channels(ctx: BlockContext, state: State) -> Marks:
    marks = ctx.marks(state)
    if marks.rules.version < CHANNELS_VERSION:
        raise Rejected(f"rules version {marks.rules.version} in force at {ctx.timestamp} has no "
                       f"state channels (from version {CHANNELS_VERSION})",
                       code="channels_unavailable")
    return marks


def check_channel_open(state: State, tx: ChannelOpenTx, ctx: BlockContext) -> bytes:
    """Validate a ChannelOpen completely: fields, both signatures (each account or a live
    session key of it), and each deposit like a withdrawal (collateral, then the initial
    margin of the account's positions in its mode). Returns the channel id."""
    marks = _require_channels(ctx, state)
    msg, now = tx.channelOpen, ctx.timestamp
    cid = channelstate.check_open(state, msg)
    for side, who in (("a", msg.a), ("b", msg.b)):
        compliance.require_not_frozen(state, who, f"channelOpen.{side} may not open channels")
    d = channelstate.open_digest_of(state, msg)
    for side, who, sig in (("a", msg.a, tx.sigA), ("b", msg.b, tx.sigB)):
        require_signer(state.accounts[who], who, ctx.signer(d, sig), now, f"channelOpen.{side}")
    for side, who, dep in (("a", msg.a, msg.depositA), ("b", msg.b, msg.depositB)):
        acct = state.accounts[who]
        if dep and acct.positions:
            m = margin_after(marks, who, acct, acct.collateral - dep)
            if m.equity < m.im:
                raise Rejected(f"channelOpen.{side}: equity {m.equity} below initial margin "
                               f"{m.im} after the deposit", code="insufficient_margin")
    return cid


def _channel_open(state: State, tx: ChannelOpenTx, ctx: BlockContext) -> None:
    cid = check_channel_open(state, tx, ctx)
    channelstate.open_channel(state, cid, tx.channelOpen, ctx.timestamp)


def _channel(state: State, cid: bytes) -> Channel:
    ch = state.channels.get(cid)
    if ch is None:
        raise NotFound(f"channel 0x{cid.hex()} does not exist", code="unknown_channel")
    return ch


def check_channel_close(state: State, tx: ChannelCloseTx, ctx: BlockContext) -> None:
    """Validate a cooperative close: an open channel, a final state that conserves its
    deposits, signed by its signerA and signerB."""
    _require_channels(ctx, state)
    s = tx.channelState
    ch = _channel(state, s.channelId)
    channelstate.check_state(state, ch, s, s.channelId, strict=True)
    d = channelstate.state_hash(state, s)
    for side, want, sig in (("A", ch.open.signerA, tx.sigA), ("B", ch.open.signerB, tx.sigB)):
        got = ctx.signer(d, sig)
        if got != want:
            raise InvalidSignature(
                f"channelState signature {side} "
                + (f"recovers to {to_checksum(got)}" if got else "is malformed")
                + f", expected signer{side} {to_checksum(want)}", code="signer_mismatch")


def _channel_close(state: State, tx: ChannelCloseTx, ctx: BlockContext) -> None:
    check_channel_close(state, tx, ctx)
    s = tx.channelState
    channelstate.close_channel(state, s.channelId, s, ctx.marks(state), channelstate.CLOSED)


def _channel_conclude(state: State, tx: ChannelConcludeTx, ctx: BlockContext) -> None:
    """The L1 Adjudicator's conclusion (the verifier checks it against L1's Concluded event)."""
    _require_channels(ctx, state)
    s = tx.channelState
    ch = _channel(state, s.channelId)
    channelstate.check_state(state, ch, s, s.channelId, strict=False)
    channelstate.close_channel(state, s.channelId, s, ctx.marks(state), channelstate.CONCLUDED)


def check_margin_mode(state: State, tx: MarginModeTx, ctx: BlockContext) -> Account:
    """Validate a SetMarginMode (signed by the account itself) but the margin of its positions
    in the new mode; returns the account."""
    msg, now = tx.setMarginMode, ctx.timestamp
    marks = ctx.marks(state)
    if marks.rules.version < PORTFOLIO_VERSION:
        raise Rejected(f"rules version {marks.rules.version} in force at {now} has no margin "
                       f"modes (from version {PORTFOLIO_VERSION})", code="margin_mode_unavailable")
    acct = state.accounts.get(msg.account)
    if acct is None:
        raise NotFound(f"account {to_checksum(msg.account)} does not exist", code="unknown_account")
    d = ctx.digest(state.config.domain, msg)
    require_signer(acct, msg.account, ctx.signer(d, tx.signature), now, "setMarginMode",
                   session_ok=False)
    if msg.mode not in MODES:
        raise InvalidRequest(f"setMarginMode.mode must be 0 (standard) or 1 (portfolio), got "
                             f"{msg.mode}", code="bad_margin_mode")
    if msg.nonce != acct.margin_nonce:
        raise Conflict(f"setMarginMode.nonce {msg.nonce}, expected {acct.margin_nonce}",
                       code="bad_margin_nonce")
    if msg.account in state.auctions:
        raise Rejected("the account is in liquidation: its margin mode cannot change until its "
                       "auction ends", code="account_in_liquidation")
    return acct


def _margin_mode(state: State, tx: MarginModeTx, ctx: BlockContext) -> None:
    msg = tx.setMarginMode
    acct = check_margin_mode(state, tx, ctx)
    if acct.positions and msg.mode != acct.margin_mode:
        m = liquidation.margin_of(ctx.marks(state), msg.mode, acct.collateral, acct.positions)
        if m is None:
            raise Rejected("a position has no valid oracle price", code="oracle_stale")
        if m.equity < m.im:
            raise Rejected(f"equity {m.equity} below initial margin {m.im} in "
                           f"{MODES[msg.mode]} mode", code="insufficient_margin")
    acct.margin_mode = msg.mode
    acct.margin_nonce += 1


_HANDLERS = {DepositTx: _deposit, FillTx: _apply_fill, WithdrawTx: _withdraw, OracleTx: _oracle,
             SettleTx: _settle, SessionKeyTx: _session_key, ListTx: _list,
             ForcedWithdrawTx: _forced_withdraw, AuctionStartTx: _auction_start,
             LiquidateTx: _liquidate, TakeoverTx: _takeover, AuctionEndTx: _auction_end,
             MarginModeTx: _margin_mode, ChannelOpenTx: _channel_open,
             ChannelCloseTx: _channel_close, ChannelConcludeTx: _channel_conclude,
             FreezeTx: compliance.apply_compliance, UnfreezeTx: compliance.apply_compliance,
             DenyL1Tx: compliance.apply_compliance}
