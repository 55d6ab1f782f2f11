"""Liquidation (design.md "Risk"; docs/liquidation.md): detection at a block's marks, the Dutch
auction, partial takes by liquidators, and the insurance fund's takeover of insolvent accounts.
Rules version >= RISK_VERSION only; pure (called by `transition.apply`'s handlers, by the engine,
which proposes the status txs at each block start, and by `chain.replay_block`, which checks
them).

Figures are the margin of the account's positions at the block's marks in its margin mode
(open orders do not count): equity E = collateral + Σ value(q), maintenance MM, initial IM
(standard: margin.py; portfolio: portfolio.py; all rounded against the account). Base units throughout; fractions and discounts in ppm.

- Detection (`scan`), at the start of every block, after its Settle txs, in account-index
  order: an account (not the fund) not in liquidation with E < MM starts an auction
  (AuctionStartTx; the engine cancels its open orders); an account in liquidation with E <= 0
  is taken over by the fund (TakeoverTx, also right after its start); one with no positions or
  E >= IM leaves liquidation (AuctionEndTx). Accounts with a position lacking a valid oracle
  price are skipped until it has one.
- Price: the discount d(t) = 5% + 25%·min(t − start, 900 s)/900 s (ppm, rounded up) at block
  time t. A take of fraction f moves, of every position q, sign(q)·floor(|q|·f/10^6) rounded
  down to the instrument's amount step (all of it when f = 10^6), and ceil(collateral·f/10^6)
  of the collateral; its value W = moved collateral + Σ value(moved q) (value() rounds against
  the holder, i.e. the account); the liquidator pays the account floor(W·(10^6 − d)/10^6).
  With every position divisible this is f·E·(1 − d) of the design; each rounding is against
  the account being liquidated.
"""

from __future__ import annotations

from typing import NamedTuple

from sequencer.core import insurance
from sequencer.core.eip712 import Liquidate
from sequencer.core.margin import Margin, value
from sequencer.core.marks import Marks
from sequencer.core.portfolio import PORTFOLIO, portfolio_margin
from sequencer.core.rules import RISK_VERSION
from sequencer.core.state import Account, State, set_position
from sequencer.core.txs import AuctionEndTx, AuctionStartTx, TakeoverTx, Tx
from sequencer.errors import Conflict, InvalidRequest, NotFound, Rejected

PPM = 10**6
START_DISCOUNT = 50_000   # ppm at the auction's start
END_DISCOUNT = 300_000    # ppm from RAMP_SECONDS on
RAMP_SECONDS = 900


class Take(NamedTuple):
    """A planned Liquidate: `collateral` and `positions` ((instrument, signed amount), by name)
    move from `account` to `liquidator`, which pays `price` (base units; negative: it is paid);
    `value` is what moves at marks, `discount` ppm; `ended`: the auction ends with it."""

    liquidator: bytes
    account: bytes
    fraction: int
    collateral: int
    positions: tuple[tuple[str, int], ...]
    value: int
    discount: int
    price: int
    nonce: int
    ended: bool


def risk_on(marks: Marks) -> bool:
    """True iff the rules in force at the marks' block time have liquidation."""
    return marks.rules.version >= RISK_VERSION


def _check_rules(marks: Marks) -> None:
    if not risk_on(marks):
        raise Rejected(f"rules version {marks.rules.version} in force at {marks.now} has no "
                       "liquidation", code="liquidation_unavailable")


def margin_of(marks: Marks, mode: int, collateral: int, positions: dict[str, int]) -> Margin | None:
    """Equity, IM and MM of `positions` with `collateral` at `marks` in margin `mode`
    (standard, or portfolio: sequencer.core.portfolio); None if a position has no price."""
    if mode == PORTFOLIO:
        pm = portfolio_margin(marks, collateral, positions)
        return None if pm is None else pm.margin()
    return marks.margin(collateral, positions)


def margin(marks: Marks, acct: Account) -> Margin | None:
    """Equity, IM and MM of the account's positions at `marks` in its margin mode; None if one
    has no price."""
    return margin_of(marks, acct.margin_mode, acct.collateral, acct.positions)


def _priced(marks: Marks, acct: Account, who: str) -> Margin:
    m = margin(marks, acct)
    if m is None:
        raise Rejected(f"a position of the {who} has no valid oracle price", code="oracle_stale")
    return m


def discount_ppm(start: int, now: int) -> int:
    """d(t) in ppm at block time `now` of an auction started at `start` (rounded up)."""
    e = min(max(now - start, 0), RAMP_SECONDS)
    return START_DISCOUNT + -(-(END_DISCOUNT - START_DISCOUNT) * e // RAMP_SECONDS)


class Quote(NamedTuple):
    """An open auction at block time `now` (reads and liquidators): the account's `collateral`,
    `equity`, `im`, `mm` and `positions` at the marks, the auction's `started` time and
    `discount` (ppm), and `price`, what a full take (fractionPpm 10^6) pays the account now
    (floor(equity·(10^6 − d)/10^6)); a take of f pays about f·price. `insolvent`: equity <= 0,
    the fund takes it over at the next block. None fields: a position has no valid price."""

    account: bytes
    started: int
    now: int
    discount: int
    collateral: int
    equity: int | None
    im: int | None
    mm: int | None
    price: int | None
    positions: tuple[tuple[str, int], ...]

    @property
    def insolvent(self) -> bool:
        return self.equity is not None and self.equity <= 0


def quote(state: State, marks: Marks, address: bytes) -> Quote:
    """The auction of `address` (in liquidation) at `marks` (KeyError if it is not)."""
    start_ts = state.auctions[address]
    acct = state.accounts[address]
    d = discount_ppm(start_ts, marks.now)
    m = margin(marks, acct)
    pos = tuple(sorted(acct.positions.items()))
    if m is None:
        return Quote(address, start_ts, marks.now, d, acct.collateral, None, None, None, None, pos)
    return Quote(address, start_ts, marks.now, d, acct.collateral, m.equity, m.im, m.mm,
                 m.equity * (PPM - d) // PPM, pos)


# -- detection ---------------------------------------------------------------------------------

Scanned = dict[bytes, tuple[int, int, "Margin | None"]]
"""Margins a node priced ahead for a scan (`scan_margins`): address -> (margin mode,
collateral, `margin`) at the scan's marks."""


def _short_holders(state: State) -> list[bytes]:
    """Every holder of a short position not in auction and not the fund (the order does not
    matter: `scan` sorts what is due by leaf index)."""
    fund, accts, auctions = state.config.insurance_fund, state.accounts, state.auctions
    # every holder of a position, each once (a set union in C: walking each instrument's
    # holders in Python visited every (instrument, holder) pair)
    return [a for a in set().union(*state.holders.values())
            if a not in auctions and a != fund and min(accts[a].positions.values(), default=0) < 0]


def scan_margins(state: State, marks: Marks) -> Scanned:
    """`margin` of every account `scan(state, marks)` would price, with the account's margin
    mode and collateral: a node computes them just before a seal, between requests, and hands
    the scan those of accounts nothing has touched since (`scan(..., known=...)`)."""
    accts = state.accounts
    return {a: (accts[a].margin_mode, accts[a].collateral, margin(marks, accts[a]))
            for a in (*[a for a in state.auctions if accts[a].positions], *_short_holders(state))}


def scan(state: State, marks: Marks, known: Scanned | None = None) -> list[Tx]:
    """The liquidation status txs due at the start of a block (see the module docstring).
    `known`: margins priced ahead at these same marks (`scan_margins`) of accounts whose
    positions have not changed since (the caller drops the touched ones); an entry is used
    only if the account's margin mode and collateral are still those it was priced with."""
    if not risk_on(marks):
        return []

    def margin_at(a: bytes, acct: Account) -> Margin | None:
        k = known.get(a) if known else None
        if k is not None and k[0] == acct.margin_mode and k[1] == acct.collateral:
            return k[2]
        return margin(marks, acct)

    due: list[tuple[int, list[Tx]]] = []
    for a in state.auctions:
        acct = state.accounts[a]
        if not acct.positions:
            due.append((state.index[a], [AuctionEndTx(a)]))
            continue
        m = margin_at(a, acct)
        if m is None:
            continue
        if m.equity >= m.im:
            due.append((state.index[a], [AuctionEndTx(a)]))
        elif m.equity <= 0:
            due.append((state.index[a], [TakeoverTx(a)]))
    for a in _short_holders(state):
        m = margin_at(a, state.accounts[a])
        if m is not None and m.equity < m.mm:
            due.append((state.index[a], [AuctionStartTx(a)] + (
                [TakeoverTx(a)] if m.equity <= 0 else [])))
    due.sort(key=lambda x: x[0])
    return [t for _, txs in due for t in txs]


# -- status transactions -----------------------------------------------------------------------

def _account(state: State, address: bytes) -> Account:
    acct = state.accounts.get(address)
    if acct is None:
        raise NotFound(f"account 0x{address.hex()} does not exist", code="unknown_account")
    return acct


def start(state: State, address: bytes, marks: Marks, now: int) -> None:
    """AuctionStartTx: the account is below maintenance at `marks`; its auction starts at `now`."""
    _check_rules(marks)
    acct = _account(state, address)
    if address == state.config.insurance_fund:
        raise Rejected("the insurance fund is never liquidated", code="insurance_fund")
    if address in state.auctions:
        raise Conflict("the account is already in liquidation", code="already_in_liquidation")
    m = _priced(marks, acct, "account")
    if m.equity >= m.mm:
        raise Rejected(f"equity {m.equity} is not below maintenance margin {m.mm}",
                       code="not_below_maintenance")
    state.auctions[address] = now


def end(state: State, address: bytes, marks: Marks) -> None:
    """AuctionEndTx: the account has no positions or equity >= IM at `marks`."""
    _check_rules(marks)
    acct = _account(state, address)
    if address not in state.auctions:
        raise Rejected("the account is not in liquidation", code="not_in_liquidation")
    if acct.positions:
        m = _priced(marks, acct, "account")
        if m.equity < m.im:
            raise Rejected(f"equity {m.equity} is still below initial margin {m.im}",
                           code="auction_not_over")
    del state.auctions[address]


def takeover(state: State, address: bytes, marks: Marks) -> int:
    """TakeoverTx: the fund takes every position and all collateral of an account in
    liquidation whose equity at `marks` is <= 0; the loss beyond the fund's collateral becomes
    shortfall (insurance.absorb). Returns the shortfall added."""
    _check_rules(marks)
    acct = _account(state, address)
    if address not in state.auctions:
        raise Rejected("the account is not in liquidation", code="not_in_liquidation")
    m = _priced(marks, acct, "account")
    if m.equity > 0:
        raise Rejected(f"equity {m.equity} is positive: the auction goes on", code="account_solvent")
    fund_addr = state.config.insurance_fund
    fund = state.accounts[fund_addr]
    added = insurance.absorb(state, -m.equity)
    for name, q in list(acct.positions.items()):
        set_position(state, address, acct, name, 0)
        marks.moved(address, name, q, 0)
        old = fund.positions.get(name, 0)
        set_position(state, fund_addr, fund, name, old + q)
        marks.moved(fund_addr, name, old, old + q)
    fund.collateral += acct.collateral
    acct.collateral = 0
    state.touched.update((address, fund_addr))
    del state.auctions[address]
    return added


# -- bids --------------------------------------------------------------------------------------

def plan_take(state: State, msg: Liquidate, marks: Marks, now: int) -> Take:
    """Validate a Liquidate (not its signature) at `marks` and block time `now`; what it moves
    and costs. Errors name the field or rule that refuses it."""
    _check_rules(marks)
    if not 0 < msg.fractionPpm <= PPM:
        raise InvalidRequest(f"liquidate.fractionPpm must be in (0, {PPM}], got {msg.fractionPpm}",
                             code="bad_fraction")
    if msg.liquidator == msg.account:
        raise InvalidRequest("liquidate.liquidator must differ from liquidate.account",
                             code="self_liquidation")
    acct = _account(state, msg.account)
    liq = _account(state, msg.liquidator)
    start_ts = state.auctions.get(msg.account)
    if start_ts is None:
        raise Rejected("liquidate.account is not in liquidation", code="not_in_liquidation")
    if msg.liquidator in state.auctions:
        raise Rejected("liquidate.liquidator is itself in liquidation",
                       code="account_in_liquidation")
    least = state.liquidate_nonces.get(msg.liquidator, 0)
    if msg.nonce < least:
        raise Conflict(f"liquidate.nonce {msg.nonce} is below the liquidator's next {least}",
                       code="liquidate_nonce_used")
    if not acct.positions:
        raise Rejected("liquidate.account has no positions left: its auction ends at the next "
                       "block", code="auction_over")
    m = _priced(marks, acct, "account")
    if m.equity <= 0:
        raise Rejected(f"equity {m.equity} <= 0: the account goes to the insurance fund",
                       code="account_insolvent")
    if m.equity >= m.im:
        raise Rejected(f"liquidate.account is back at its initial margin ({m.equity} >= {m.im}): "
                       "its auction ends at the next block", code="auction_over")
    f = msg.fractionPpm
    moved: list[tuple[str, int]] = []
    for name in sorted(acct.positions):
        q = acct.positions[name]
        if f == PPM:
            mq = q
        else:
            a = abs(q) * f // PPM
            a -= a % state.instruments[name].amount_step
            mq = a if q > 0 else -a
        if mq:
            moved.append((name, mq))
    if not moved:
        raise Rejected(f"liquidate.fractionPpm {f} moves no position (amount steps)",
                       code="fraction_too_small")
    coll = -(-acct.collateral * f // PPM)
    worth = coll + sum(value(mq, marks.row(name)) for name, mq in moved)  # type: ignore[arg-type]
    d = discount_ppm(start_ts, now)
    price = worth * (PPM - d) // PPM
    if price > msg.maxPrice:
        raise Rejected(f"auction price {price} is above liquidate.maxPrice {msg.maxPrice}",
                       code="price_above_max")
    acct_after = acct.collateral - coll + price
    liq_after = liq.collateral + coll - price
    if liq_after < 0:
        raise Rejected(f"liquidator collateral {liq.collateral} cannot pay {price - coll}",
                       code="insufficient_collateral")
    if acct_after < 0:
        raise Rejected(f"account collateral cannot pay the liquidator {-price}",
                       code="insufficient_collateral")
    lpos = dict(liq.positions)
    apos = dict(acct.positions)
    for name, mq in moved:
        lpos[name] = lpos.get(name, 0) + mq
        apos[name] -= mq
    lm = margin_of(marks, liq.margin_mode, liq_after, {n: q for n, q in lpos.items() if q})
    if lm is None:
        raise Rejected("a position of the liquidator has no valid oracle price",
                       code="oracle_stale")
    if lm.equity < lm.im:
        raise Rejected(f"liquidator equity {lm.equity} below initial margin {lm.im} after the take",
                       code="insufficient_margin")
    left = {n: q for n, q in apos.items() if q}
    am = margin_of(marks, acct.margin_mode, acct_after, left)
    assert am is not None  # its positions were all priced above
    return Take(msg.liquidator, msg.account, f, coll, tuple(moved), worth, d, price, msg.nonce,
                not left or am.equity >= am.im)


def execute_take(state: State, take: Take, marks: Marks) -> None:
    """Apply a planned take (plan_take on this very state and marks)."""
    acct, liq = state.accounts[take.account], state.accounts[take.liquidator]
    for name, mq in take.positions:
        old = acct.positions[name]
        set_position(state, take.account, acct, name, old - mq)
        marks.moved(take.account, name, old, old - mq)
        old = liq.positions.get(name, 0)
        set_position(state, take.liquidator, liq, name, old + mq)
        marks.moved(take.liquidator, name, old, old + mq)
    acct.collateral += take.price - take.collateral
    liq.collateral += take.collateral - take.price
    state.touched.update((take.account, take.liquidator))
    state.liquidate_nonces[take.liquidator] = take.nonce + 1
    if take.ended:
        del state.auctions[take.account]
