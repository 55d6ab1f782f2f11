"""Expiry settlement: cash-settle every position of an instrument at the TWAP of the accepted
oracle spot over the settlement window before expiry, then delist it. Idempotent.

Payoff per contract: calls max(S−K, 0), puts max(K−S, 0). Shorts pay ceil(|q|·payoff/10^6),
capped at their collateral; longs receive floor(q·payoff/10^6). When shorts could not pay in
full: under rules version 1 the longs are scaled down pro rata (floor); from rules version 2
(RISK_VERSION) they are paid in full and the deficit is covered by the insurance fund, then
recorded as shortfall (insurance.cover). What is collected but not paid out (rounding dust)
goes to the fee account, so Σ collateral − shortfall is unchanged.
"""

from __future__ import annotations

from sequencer.core import insurance
from sequencer.core.instruments import UNIT
from sequencer.core.oracle import twap
from sequencer.core.rules import RISK_VERSION, SETTLEMENT_FALLBACK_VERSION, version_at
from sequencer.core.state import State
from sequencer.errors import NotFound, Rejected


def settlement_price(state: State, name: str, now: int) -> int:
    """TWAP settlement price (base units) of an expired instrument; Rejected
    settlement_too_early before expiry + oracle max_age (no later feed can still change it),
    settlement_price_unavailable without an accepted oracle point in the window. From rules
    version 4 (SETTLEMENT_FALLBACK_VERSION) an empty window (an oracle outage over it) falls
    back to the first accepted point after expiry; unavailable only until one exists."""
    ins = state.instruments[name]
    cfg = state.config
    if now < ins.expiry + cfg.oracle.max_age:
        raise Rejected(f"{name} settles at or after {ins.expiry + cfg.oracle.max_age}",
                       code="settlement_too_early")
    ostate = state.oracle.get(ins.underlying)
    history = ostate.history if ostate else []
    price = twap(history, ins.expiry - cfg.settlement_window, ins.expiry)
    if price is None and version_at(cfg.rules_schedule, now) >= SETTLEMENT_FALLBACK_VERSION:
        price = next((v for t, v in history if ins.expiry < t <= now), None)
    if price is None:
        raise Rejected(f"no accepted oracle spot for {ins.underlying} in the "
                       f"{cfg.settlement_window}s before {ins.expiry}",
                       code="settlement_price_unavailable")
    return price


def settle(state: State, name: str, now: int) -> None:
    """Settle and delist `name` at block time `now`; a no-op if it is already settled."""
    if name in state.settled:
        return
    ins = state.instruments.get(name)
    if ins is None:
        raise NotFound(f"instrument {name!r} is not listed", code="unknown_instrument")
    s = settlement_price(state, name, now)
    payoff = max(s - ins.strike, 0) if ins.is_call else max(ins.strike - s, 0)
    holders = sorted(state.holders[name])
    collected = owed = 0
    credits: list[tuple[bytes, int]] = []
    state.touched.update(holders)
    state.touched.add(state.config.fee_account)
    for addr in holders:
        acct = state.accounts[addr]
        q = acct.positions.pop(name)
        if q > 0:
            c = q * payoff // UNIT
            credits.append((addr, c))
            owed += c
        else:
            d = min(-(q * payoff // UNIT), acct.collateral)
            acct.collateral -= d
            collected += d
    backstop = version_at(state.config.rules_schedule, now) >= RISK_VERSION
    if backstop and collected < owed:
        insurance.cover(state, owed - collected)
        collected = owed
    paid = 0
    for addr, c in credits:
        c = c if collected >= owed else c * collected // owed
        state.accounts[addr].collateral += c
        paid += c
    state.accounts[state.config.fee_account].collateral += collected - paid
    del state.instruments[name]
    del state.holders[name]
    state.settled[name] = s
