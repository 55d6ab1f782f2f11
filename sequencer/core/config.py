"""Genesis configuration of the trading core: immutable, identical for sequencer and verifier.

Rates are parts per million (ppm) so that every rule is integer arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from cext import domain_separator, keccak256
from sequencer.core.rules import DEFAULT_SCHEDULE, RISK_VERSION, Schedule

DEFAULT_INSURANCE_FUND = keccak256(b"optrollup.insurance-fund.v1")[12:]
"""The insurance fund account when the genesis names none: an address without a known key, so
only the rules move its collateral."""
DEFAULT_INSURANCE_FEE_SHARE = 200_000
"""Share of every trading fee (ppm) that goes to the insurance fund (docs/liquidation.md)."""


@dataclass(frozen=True)
class UnderlyingParams:
    """Per-underlying risk and fee parameters, all in ppm.

    Short option margin per contract: initial = max(im_rate·S − OTM, im_floor·S),
    maintenance = mm_rate·S, both capped at K for puts. Fees: rate x notional (spot x amount),
    capped at fee_cap x premium."""

    im_rate: int = 150_000
    im_floor: int = 100_000
    mm_rate: int = 75_000
    maker_fee: int = 100
    taker_fee: int = 300
    fee_cap: int = 125_000


@dataclass(frozen=True)
class OracleParams:
    """Oracle rules: `keys` are the 20-byte addresses allowed to sign feeds; a price needs
    `quorum` keys whose freshest feed is at most `max_age` s old; a feed more than
    `max_deviation` ppm from the median of the other fresh keys is rejected (checked when at least
    `quorum` other keys are fresh); feeds may be at most `max_future` s ahead of block time."""

    keys: tuple[bytes, ...] = ()
    quorum: int = 1
    max_age: int = 60
    max_deviation: int = 100_000
    max_future: int = 5


@dataclass(frozen=True)
class CoreConfig:
    """Everything the state transition depends on besides state and transactions.

    `verifying_contract` is the L1 Rollup address (20 bytes); `operator` signs `List`;
    `fee_account` receives fees and settlement dust. Time bounds are seconds.
    `insurance_fund` is the insurance fund account (sequencer.core.insurance): from rules
    version 2 it receives `insurance_fee_share` ppm of every fee, takes over insolvent
    accounts and covers what shorts cannot pay at settlement.
    `rules_schedule` is the fork schedule of consensus rules versions, ((activation block
    timestamp, version), ...), checked against the genesis timestamp (`sequencer.core.rules`)."""

    chain_id: int
    verifying_contract: bytes
    operator: bytes
    fee_account: bytes
    oracle: OracleParams = OracleParams()
    underlyings: dict[str, UnderlyingParams] = field(default_factory=lambda: {"ETH": UnderlyingParams()})
    max_order_ttl: int = 30 * 86_400
    cancel_all_window: int = 60
    settlement_window: int = 1_800
    rules_schedule: Schedule = DEFAULT_SCHEDULE
    insurance_fund: bytes = DEFAULT_INSURANCE_FUND
    insurance_fee_share: int = DEFAULT_INSURANCE_FEE_SHARE

    @cached_property
    def risk_scheduled(self) -> bool:
        """True iff the fork schedule ever activates the risk rules (liquidation, insurance
        fund: rules version >= RISK_VERSION); then the genesis names the fund (layout 3)."""
        return any(v >= RISK_VERSION for _, v in self.rules_schedule)

    @cached_property
    def domain(self) -> bytes:
        """EIP-712 domain separator of (optrollup, 1, chain_id, verifying_contract)."""
        return domain_separator(self.chain_id, self.verifying_contract)
