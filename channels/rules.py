"""The rules of a channel state (design.md "State channels"), pure: no I/O, clock or randomness.

Units: balances and premiums collateral base units; amounts contracts x 10^6; prices base
units per contract. `positions` are A's signed amounts; B holds the negative, so the two
sides net to zero by construction. Invariants every valid state keeps:

- balanceA + balanceB = depositA + depositB (nothing enters or leaves a channel until it closes);
- positions sorted strictly by instrument (UTF-8 bytewise, as the Adjudicator checks), no zero
  amount, at most MAX_POSITIONS, canonical instrument names (the rollup close merges them);
- turnNum strictly increases; a proposal is exactly turnNum + 1; nothing follows a final state.

Money moves only three ways: a trade's premium price·amount // 10^6 from buyer to seller
(floor, as the rollup's fill; no fees in-channel), expiry settlement (see settle_expired), and
nothing else. A party signs a state only if `check_margin` passes at current marks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from cext import domain_separator, recover_addresses
from sequencer.core.channelmsg import (MAX_POSITIONS, ChannelOpen, ChannelPosition, ChannelState,
                                       channel_id, state_digest)
from sequencer.core.instruments import UNIT, parse_name
from sequencer.core.margin import Margin, RiskRow, positions_margin
from sequencer.errors import InvalidRequest

from channels.errors import (BadSignature, CannotSettle, ChannelFinal, DoesNotFollow,
                             InsufficientBalance, InsufficientMargin, InvalidQuote, InvalidState,
                             InvalidTrade, MissingMark, OutsideQuote, StaleTurn, TooManyPositions)

_INT256 = 1 << 255
_UINT256 = 1 << 256


class Channel(NamedTuple):
    """A channel's fixed parameters: its id, its EIP-712 domain separator and its open."""

    id: bytes
    domain: bytes
    open: ChannelOpen

    @property
    def total(self) -> int:
        """depositA + depositB: what balanceA + balanceB always equals."""
        return self.open.depositA + self.open.depositB


class Trade(NamedTuple):
    """A trade from the proposer's side: it buys (`isBuy`) or sells `amount` (contracts
    x 10^6, > 0) of `instrument` at `price` (base units per contract) from the other side."""

    instrument: str
    isBuy: bool
    price: int
    amount: int


class QuoteLine(NamedTuple):
    """An owner's standing quote in one instrument: it buys up to `bidAmount` at `bid` and
    sells up to `askAmount` at `ask` (an amount of 0: no quote on that side)."""

    instrument: str
    bid: int
    bidAmount: int
    ask: int
    askAmount: int


Quote = tuple[QuoteLine, ...]


def make_channel(l2_chain_id: int, rollup: bytes, msg: ChannelOpen) -> Channel:
    """The Channel of an open in the domain (l2_chain_id, rollup)."""
    return Channel(channel_id(l2_chain_id, rollup, msg), domain_separator(l2_chain_id, rollup), msg)


def initial_state(ch: Channel) -> ChannelState:
    """Turn 0: the deposits as balances, no positions. Not signed (the open is)."""
    return ChannelState(ch.id, 0, ch.open.depositA, ch.open.depositB, (), False)


def _key(instrument: str) -> bytes:
    return instrument.encode()


def _check_positions(positions: Sequence[ChannelPosition]) -> None:
    if len(positions) > MAX_POSITIONS:
        raise InvalidState(f"{len(positions)} positions exceed the limit of {MAX_POSITIONS}",
                           code="too_many_positions")
    prev: bytes | None = None
    for i, p in enumerate(positions):
        try:
            parse_name(p.instrument)
        except InvalidRequest as exc:
            raise InvalidState(f"positions[{i}]: {exc.message}", code="bad_instrument_name") from None
        if type(p.amount) is not int or not -_INT256 <= p.amount < _INT256:
            raise InvalidState(f"positions[{i}].amount must be an int256", code="invalid_position")
        if p.amount == 0:
            raise InvalidState(f"positions[{i}] ({p.instrument}) has amount 0",
                               code="zero_position")
        k = _key(p.instrument)
        if prev is not None and not prev < k:
            raise InvalidState(f"positions[{i}] ({p.instrument}) is not after positions[{i - 1}]: "
                               "positions must be sorted by instrument with no duplicate",
                               code="positions_not_sorted")
        prev = k


def check_state(ch: Channel, state: ChannelState, prev: ChannelState | None = None) -> None:
    """Raise unless `state` is valid for channel `ch` (and, given `prev`, a later turn of it).
    InvalidState: wrong_channel, balances_not_conserved, negative_balance, too_many_positions,
    bad_instrument_name, invalid_position, zero_position, positions_not_sorted; StaleTurn
    (turnNum not above prev's); ChannelFinal after a final `prev`."""
    if state.channelId != ch.id:
        raise InvalidState(f"state is for channel 0x{bytes(state.channelId).hex()}, not "
                           f"0x{ch.id.hex()}", code="wrong_channel")
    if state.balanceA + state.balanceB != ch.total:
        raise InvalidState(f"balanceA {state.balanceA} + balanceB {state.balanceB} != deposits "
                           f"{ch.total}", code="balances_not_conserved")
    if state.balanceA < 0 or state.balanceB < 0:
        raise InvalidState("balances must be non-negative", code="negative_balance")
    _check_positions(state.positions)
    if prev is not None:
        _check_turn(prev, state, exact=False)


def _check_turn(prev: ChannelState, state: ChannelState, *, exact: bool) -> None:
    if prev.isFinal:
        raise ChannelFinal(f"turn {prev.turnNum} is final: nothing follows it")
    if state.turnNum <= prev.turnNum:
        raise StaleTurn(f"turnNum {state.turnNum} is not above the previous {prev.turnNum}")
    if exact and state.turnNum != prev.turnNum + 1:
        raise DoesNotFollow(f"turnNum {state.turnNum} is not the next turn {prev.turnNum + 1}",
                            code="turn_not_next")


def positions_of(state: ChannelState, side_is_a: bool) -> dict[str, int]:
    """One side's signed positions {instrument: amount}: A's as stored, B's negated."""
    s = 1 if side_is_a else -1
    return {p.instrument: s * p.amount for p in state.positions}


# --- trades -------------------------------------------------------------------------------

def check_trade(trade: Trade) -> None:
    """InvalidTrade unless the trade is well formed: canonical instrument, bool side, amount
    in (0, 2^256), price in [0, 2^256)."""
    try:
        parse_name(trade.instrument)
    except InvalidRequest as exc:
        raise InvalidTrade(f"trade: {exc.message}", code="bad_instrument_name") from None
    if type(trade.isBuy) is not bool:
        raise InvalidTrade("trade.isBuy must be a bool", code="invalid_trade")
    if type(trade.amount) is not int or not 0 < trade.amount < _UINT256:
        raise InvalidTrade(f"trade.amount must be a positive uint256, got {trade.amount!r}",
                           code="invalid_trade_amount")
    if type(trade.price) is not int or not 0 <= trade.price < _UINT256:
        raise InvalidTrade(f"trade.price must be a uint256, got {trade.price!r}",
                           code="invalid_trade_price")


def apply_trade(state: ChannelState, trade: Trade, proposer_is_a: bool) -> ChannelState:
    """The next state (turnNum + 1, not final) after the proposer's `trade`: the buyer pays
    the seller price·amount // 10^6 and A's position moves by ±amount. Raises ChannelFinal,
    InvalidTrade, InsufficientBalance (buyer's balance < premium), TooManyPositions,
    InvalidTrade(position_overflow)."""
    if state.isFinal:
        raise ChannelFinal(f"turn {state.turnNum} is final: no trade follows it")
    check_trade(trade)
    premium = trade.price * trade.amount // UNIT
    buyer_is_a = proposer_is_a == trade.isBuy
    bal_a, bal_b = state.balanceA, state.balanceB
    if buyer_is_a:
        bal_a, bal_b = bal_a - premium, bal_b + premium
    else:
        bal_a, bal_b = bal_a + premium, bal_b - premium
    if min(bal_a, bal_b) < 0:
        side, bal = ("a", state.balanceA) if buyer_is_a else ("b", state.balanceB)
        raise InsufficientBalance(f"buyer {side.upper()}'s channel balance {bal} cannot pay "
                                  f"the premium {premium}")
    pos = {p.instrument: p.amount for p in state.positions}
    q = pos.get(trade.instrument, 0) + (trade.amount if buyer_is_a else -trade.amount)
    if not -_INT256 <= q < _INT256:
        raise InvalidTrade(f"position in {trade.instrument} would overflow int256",
                           code="position_overflow")
    if q:
        pos[trade.instrument] = q
    else:
        pos.pop(trade.instrument, None)
    if len(pos) > MAX_POSITIONS:
        raise TooManyPositions(f"the trade would open a position beyond the limit of "
                               f"{MAX_POSITIONS} instruments")
    return ChannelState(state.channelId, state.turnNum + 1, bal_a, bal_b,
                        _sorted(pos), False)


def _sorted(pos: Mapping[str, int]) -> tuple[ChannelPosition, ...]:
    return tuple(ChannelPosition(n, q) for n, q in sorted(pos.items(), key=lambda kv: _key(kv[0])))


def _check_header(prev: ChannelState, proposed: ChannelState) -> None:
    if proposed.channelId != prev.channelId:
        raise InvalidState(f"state is for channel 0x{bytes(proposed.channelId).hex()}, not "
                           f"0x{bytes(prev.channelId).hex()}", code="wrong_channel")
    _check_turn(prev, proposed, exact=True)


def follows_expected(prev: ChannelState, proposed: ChannelState, expected: ChannelState) -> None:
    """Raise unless `proposed` is exactly `expected`, the successor of `prev` the rules build
    (a trade, a settlement, a final state). Checked in this order, each with its own code:
    wrong_channel, channel_final, stale_turn, turn_not_next, balances_not_conserved, the
    structure of the positions (positions_not_sorted, zero_position, ...), balances_mismatch,
    positions_mismatch, final_mismatch."""
    _check_header(prev, proposed)
    if proposed.balanceA + proposed.balanceB != prev.balanceA + prev.balanceB:
        raise InvalidState(f"balanceA {proposed.balanceA} + balanceB {proposed.balanceB} != "
                           f"{prev.balanceA + prev.balanceB}", code="balances_not_conserved")
    _check_positions(proposed.positions)
    if (proposed.balanceA, proposed.balanceB) != (expected.balanceA, expected.balanceB):
        raise DoesNotFollow(f"balances ({proposed.balanceA}, {proposed.balanceB}) are not the "
                            f"expected ({expected.balanceA}, {expected.balanceB})",
                            code="balances_mismatch")
    if tuple(proposed.positions) != expected.positions:
        raise DoesNotFollow("positions are not the previous positions with the trade applied",
                            code="positions_mismatch")
    if proposed.isFinal is not expected.isFinal:
        raise DoesNotFollow(f"isFinal is {proposed.isFinal}, expected {expected.isFinal}",
                            code="final_mismatch")


def follows(prev: ChannelState, proposed: ChannelState, trade: Trade, proposer_is_a: bool) -> None:
    """Raise unless `proposed` is exactly `prev` with the proposer's `trade` applied (see
    follows_expected for the codes; apply_trade's errors for a trade that cannot apply)."""
    _check_header(prev, proposed)  # wrong channel, final, replay: named before the trade's errors
    follows_expected(prev, proposed, apply_trade(prev, trade, proposer_is_a))


def final_state(state: ChannelState) -> ChannelState:
    """The cooperative close: the same balances and positions, isFinal, turnNum + 1."""
    if state.isFinal:
        raise ChannelFinal(f"turn {state.turnNum} is already final")
    return state._replace(turnNum=state.turnNum + 1, isFinal=True)


# --- margin -------------------------------------------------------------------------------

def margins(state: ChannelState, marks: Mapping[str, RiskRow]) -> tuple[Margin, Margin]:
    """(A's, B's) standard margin of the channel alone: equity = balance + Σ value of its
    channel positions, im = initial margin of its channel shorts (mm likewise), at `marks`
    {instrument: RiskRow}, with the rollup's own function and roundings (against the holder).
    MissingMark for a held instrument without a row."""
    rows = []
    for p in state.positions:
        row = marks.get(p.instrument)
        if row is None:
            raise MissingMark(f"no current mark for {p.instrument}")
        rows.append((p.amount, row))
    return (positions_margin(state.balanceA, rows),
            positions_margin(state.balanceB, [(-q, r) for q, r in rows]))


def check_margin(state: ChannelState, marks: Mapping[str, RiskRow]) -> None:
    """Raise InsufficientMargin (side "a" or "b") unless each side's equity in the channel is
    at least the initial margin of its channel shorts: the rule before signing any state."""
    for side, m in zip("ab", margins(state, marks)):
        if m.equity < m.im:
            raise InsufficientMargin(f"{side.upper()}'s channel equity {m.equity} is below the "
                                     f"initial margin {m.im} of its channel shorts", side=side)


# --- quotes -------------------------------------------------------------------------------

def check_quote(quote: Sequence[QuoteLine]) -> Quote:
    """The quote as a tuple, or InvalidQuote: bad_instrument_name, duplicate_instrument,
    invalid_quote (a negative or non-integer number), crossed_quote (bid > ask, both live)."""
    seen: set[str] = set()
    for i, line in enumerate(quote):
        try:
            parse_name(line.instrument)
        except InvalidRequest as exc:
            raise InvalidQuote(f"quotes[{i}]: {exc.message}", code="bad_instrument_name") from None
        if line.instrument in seen:
            raise InvalidQuote(f"quotes[{i}]: {line.instrument} is quoted twice",
                               code="duplicate_instrument")
        seen.add(line.instrument)
        for name, v in zip(QuoteLine._fields[1:], line[1:]):
            if type(v) is not int or not 0 <= v < _UINT256:
                raise InvalidQuote(f"quotes[{i}].{name} must be a uint256", code="invalid_quote")
        if line.bidAmount and line.askAmount and line.bid > line.ask:
            raise InvalidQuote(f"quotes[{i}]: bid {line.bid} is above ask {line.ask}",
                               code="crossed_quote")
    return tuple(quote)


def within_quote(quote: Sequence[QuoteLine], trade: Trade) -> Quote:
    """The owner's quote after the counterparty's `trade` (from the counterparty's side):
    it buys at price >= ask, at most askAmount, or sells at price <= bid, at most bidAmount;
    that side's amount shrinks by the trade's. OutsideQuote: not_quoted (no line, or that
    side's amount is 0), price_outside_quote, amount_exceeds_quote."""
    for i, line in enumerate(quote):
        if line.instrument == trade.instrument:
            break
    else:
        raise OutsideQuote(f"{trade.instrument} is not quoted", code="not_quoted")
    if trade.isBuy:
        price, avail, side = line.ask, line.askAmount, "ask"
        ok = trade.price >= price
    else:
        price, avail, side = line.bid, line.bidAmount, "bid"
        ok = trade.price <= price
    if avail == 0:
        raise OutsideQuote(f"{trade.instrument} has no {side}", code="not_quoted")
    if not ok:
        raise OutsideQuote(f"price {trade.price} is outside the {side} {price}",
                           code="price_outside_quote")
    if trade.amount > avail:
        raise OutsideQuote(f"amount {trade.amount} exceeds the {side} amount {avail}",
                           code="amount_exceeds_quote")
    field = "askAmount" if trade.isBuy else "bidAmount"
    new = line._replace(**{field: avail - trade.amount})
    return (*quote[:i], new, *quote[i + 1:])


# --- expiry and close ---------------------------------------------------------------------

def payoff(instrument: str, settlement_price: int) -> int:
    """Payoff per long contract (base units) at the recorded settlement price of the
    underlying (the rollup's `settled` price): calls max(S − K, 0), puts max(K − S, 0)."""
    _, _, strike, is_call = parse_name(instrument)
    return max(settlement_price - strike, 0) if is_call else max(strike - settlement_price, 0)


def settle_expired(state: ChannelState, prices: Mapping[str, int]) -> ChannelState:
    """The next state (turnNum + 1) with every position whose instrument has a settlement
    price in `prices` {instrument: settlement price of the underlying, base units} cash-settled
    and removed. Per instrument the short side pays the long side floor(|q|·payoff / 10^6):
    one transfer, so the total is conserved exactly, rounded against the receiver (the
    rollup's longs also receive the floor). Transfers of all settled instruments are netted
    before the check. CannotSettle: nothing_to_settle; settlement_exceeds_balance when the
    net payer's balance cannot cover it (then close on the rollup, which settles against
    the whole account)."""
    if state.isFinal:
        raise ChannelFinal(f"turn {state.turnNum} is final: nothing follows it")
    net_a = 0  # what A receives, net
    keep = []
    settled = False
    for p in state.positions:
        s = prices.get(p.instrument)
        if s is None:
            keep.append(p)
            continue
        if type(s) is not int or s < 0:
            raise InvalidRequest(f"settlement price of {p.instrument} must be a non-negative "
                                 f"integer, got {s!r}", code="invalid_number")
        t = abs(p.amount) * payoff(p.instrument, s) // UNIT
        net_a += t if p.amount > 0 else -t
        settled = True
    if not settled:
        raise CannotSettle("no position has a settlement price", code="nothing_to_settle")
    bal_a, bal_b = state.balanceA + net_a, state.balanceB - net_a
    if bal_a < 0 or bal_b < 0:
        side, bal, owe = ("A", state.balanceA, -net_a) if bal_a < 0 else ("B", state.balanceB, net_a)
        raise CannotSettle(f"{side}'s channel balance {bal} cannot pay the settlement {owe}; "
                           "close the channel on the rollup to settle against the account",
                           code="settlement_exceeds_balance")
    return ChannelState(state.channelId, state.turnNum + 1, bal_a, bal_b, tuple(keep), False)


# --- signatures ---------------------------------------------------------------------------

def verify_signatures(ch: Channel, state: ChannelState, sig_a: bytes | None,
                      sig_b: bytes | None) -> bytes:
    """The state's EIP-712 digest, after checking each given signature (65 bytes r‖s‖v, low s)
    recovers to the channel's signerA / signerB; BadSignature bad_signature_a / _b. Pass None
    for a side not signed yet."""
    digest = state_digest(ch.domain, state)
    for sig, signer, code in ((sig_a, ch.open.signerA, "bad_signature_a"),
                              (sig_b, ch.open.signerB, "bad_signature_b")):
        if sig is None:
            continue
        if type(sig) is not bytes or len(sig) != 65:
            raise BadSignature("a signature is 65 bytes r‖s‖v", code=code)
        if recover_addresses([digest], [sig])[0] != signer:
            raise BadSignature(f"signature does not recover to signer {signer.hex()}", code=code)
    return digest
