"""The insurance fund and the shortfall (rules version >= 2; docs/liquidation.md).

Money moves only between accounts, except at the edges (deposits in, withdrawal leaves out) and
at the shortfall, so at every step:

    Σ collateral (all accounts, the fee account and the fund included) − shortfall
        = Σ deposits credited − Σ withdrawal leaves paid

- Fees: `insurance_fee_share` ppm of every fee (rounded down) goes to the fund, the rest to the
  fee account; while a shortfall is open the fund's part pays it down first.
- Losses the fund cannot absorb (an insolvent account taken over, a short that cannot pay at
  settlement) are credited to the fund's collateral and recorded as `shortfall`: collateral
  the Bridge does not hold.
- Withdrawals while `shortfall` S > 0 are haircut pro rata: receiving `amount` on L1 costs
  `amount + min(S, ceil(amount·S / (C − S)))` of collateral (C = Σ collateral), rounded
  against the account; the extra pays the shortfall down. Each unit of collateral is then worth
  (C − S)/C on L1, the same for every account.
"""

from __future__ import annotations

from sequencer.core.state import Account, State
from sequencer.errors import Rejected

PPM = 10**6


def credit_fee(state: State, fee: int) -> None:
    """Credit a trading fee (already debited from the payer): the fund's share (rounded down)
    pays the shortfall first, then goes to the fund; the rest goes to the fee account."""
    cfg = state.config
    cut = fee * cfg.insurance_fee_share // PPM
    state.accounts[cfg.fee_account].collateral += fee - cut
    state.touched.add(cfg.fee_account)
    repay = min(cut, state.shortfall)
    if repay:
        state.shortfall -= repay
        state.collateral_total -= repay
    if cut > repay:
        state.accounts[cfg.insurance_fund].collateral += cut - repay
        state.touched.add(cfg.insurance_fund)


def cover(state: State, deficit: int) -> int:
    """Pay `deficit` base units owed by nobody who can pay (a short's unpaid settlement) from
    the fund's collateral; what it cannot pay becomes shortfall. Returns the shortfall added."""
    fund = state.accounts[state.config.insurance_fund]
    paid = min(deficit, fund.collateral)
    fund.collateral -= paid
    state.touched.add(state.config.insurance_fund)
    rest = deficit - paid
    state.shortfall += rest
    state.collateral_total += rest
    return rest


def absorb(state: State, loss: int) -> int:
    """The fund takes on an account whose equity is −`loss` (loss >= 0): the part of the loss
    beyond the fund's collateral is credited to the fund and recorded as shortfall, so the
    fund's collateral covers the liability it took over at the marks. Returns that part."""
    fund = state.accounts[state.config.insurance_fund]
    s = max(0, loss - fund.collateral)
    if s:
        fund.collateral += s
        state.shortfall += s
        state.collateral_total += s
        state.touched.add(state.config.insurance_fund)
    return s


def withdrawal_debit(state: State, amount: int) -> int:
    """Collateral a withdrawal paying `amount` on L1 costs: `amount`, plus the pro-rata haircut
    while a shortfall is open. Rejected insolvent if nothing backs the collateral."""
    s = state.shortfall
    if not s:
        return amount
    backing = state.collateral_total - s
    if backing <= 0:
        raise Rejected(f"the shortfall {s} is all of the collateral: nothing can be withdrawn "
                       "until it is recovered", code="insolvent")
    return amount + min(s, -(-amount * s // backing))


def debit_withdrawal(state: State, address: bytes, acct: Account, debit: int, amount: int) -> None:
    """Take `debit` (from `withdrawal_debit`) from the account for a leaf paying `amount`; the
    difference pays the shortfall down."""
    acct.collateral -= debit
    state.collateral_total -= debit
    state.shortfall -= debit - amount
    state.touched.add(address)
