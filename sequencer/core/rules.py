"""Versioned consensus rules and the fork schedule that says which version governs a block.

A change of the rules that decide committed state (today: vol interpolation and the Black-76
mark) is a new version registered here; the old version stays, so a batch replays under the
rules it was made under. The genesis names a fork schedule (`CoreConfig.rules_schedule`): a
tuple of (activation block timestamp, rules version) pairs with strictly increasing
timestamps, the first at or before the genesis timestamp; a block at time T uses the version of
the last pair whose activation is ≤ T.

Versions:
- 1: integer rules. `pricing.interpolate_vol` (total variance, integer vol x 10^6) and
  `pricing.mark` (Black-76 in 2^96 binary fixed point, `sequencer.core.fixedpoint`).
- 2: version 1's pricing plus the risk rules of docs/liquidation.md: liquidation auctions
  (`sequencer.core.liquidation`), the insurance fund's fee share, settlement deficits covered
  by the fund then recorded as shortfall (longs are paid in full), withdrawals haircut pro rata
  while a shortfall is open (`sequencer.core.insurance`).
- 3: version 2 plus portfolio margin (`sequencer.core.portfolio`): the signed SetMarginMode
  transaction; an account in portfolio mode is margined (fills, withdrawals, liquidation) by
  the 27-scenario grid of design.md instead of the standard per-short rates; and state
  channels (`sequencer.core.channelstate`): ChannelOpen, ChannelClose, ChannelConclude.
- 4: version 3 plus the settlement fallback (`sequencer.core.settlement`): an expiry with no
  accepted oracle point in its TWAP window (an oracle outage over it) settles at the first
  accepted point after expiry instead of never settling (positions stuck open, expired).
(Version 0 would be the float pricing of genesis layout 1; it is not implemented.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from sequencer.core import pricing
from sequencer.core.pricing import Mark
from sequencer.errors import InvalidRequest

Schedule = tuple[tuple[int, int], ...]
"""((activation block timestamp unix s, rules version), ...)."""


class Rules(NamedTuple):
    """The versioned functions of one rules version."""

    version: int
    interpolate_vol: Callable[[Sequence[int], Sequence[int], int, int], int]
    """(expiries, vols x 10^6, target expiry, now) -> vol x 10^6."""
    mark: Callable[[int, int, int, int, int, bool], Mark]
    """(spot, strike, expiry, now, vol x 10^6, is_call) -> Mark."""


RULES: Mapping[int, Rules] = {
    1: Rules(1, pricing.interpolate_vol, pricing.mark),
    2: Rules(2, pricing.interpolate_vol, pricing.mark),
    3: Rules(3, pricing.interpolate_vol, pricing.mark),
    4: Rules(4, pricing.interpolate_vol, pricing.mark),
}
"""Every rules version this code can execute."""

RISK_VERSION = 2
"""The first rules version with liquidation and the insurance fund."""
PORTFOLIO_VERSION = 3
"""The first rules version with portfolio margin (SetMarginMode) and state channels."""
CHANNELS_VERSION = 3
SETTLEMENT_FALLBACK_VERSION = 4
"""The first rules version that settles an expiry without a TWAP point at the first point after it."""
LATEST = max(RULES)
DEFAULT_SCHEDULE: Schedule = ((0, LATEST),)
"""The latest rules from the beginning of time: what a new chain uses."""


def check_schedule(schedule: Schedule, genesis_timestamp: int) -> None:
    """Raise InvalidRequest unless `schedule` is a valid fork schedule for a genesis at
    `genesis_timestamp`: code unknown_rules_version for a version not in RULES, bad_genesis for
    a malformed schedule (empty, not (int, int) pairs, timestamps not strictly increasing or
    negative, first activation after the genesis)."""
    if not isinstance(schedule, tuple) or not schedule:
        raise InvalidRequest("the rules schedule must be a non-empty tuple of "
                             "(activation timestamp, version) pairs", code="bad_genesis")
    prev = -1
    for pair in schedule:
        if (not isinstance(pair, tuple) or len(pair) != 2
                or any(type(x) is not int for x in pair)):
            raise InvalidRequest(f"rules schedule entry {pair!r} is not an (int, int) pair",
                                 code="bad_genesis")
        at, version = pair
        if at <= prev:
            raise InvalidRequest("rules schedule activations must be non-negative and strictly "
                                 "increasing", code="bad_genesis")
        if version not in RULES:
            raise InvalidRequest(
                f"rules version {version} (activating at {at}) is not known to this node; "
                f"known versions: {sorted(RULES)}", code="unknown_rules_version")
        prev = at
    if schedule[0][0] > genesis_timestamp:
        raise InvalidRequest(f"the first rules version activates at {schedule[0][0]}, after the "
                             f"genesis at {genesis_timestamp}", code="bad_genesis")


def version_at(schedule: Schedule, timestamp: int) -> int:
    """The rules version in force at block time `timestamp` (the first entry's before it)."""
    version = schedule[0][1]
    for at, v in schedule:
        if at > timestamp:
            break
        version = v
    return version


def rules_at(schedule: Schedule, timestamp: int) -> Rules:
    """The Rules in force at block time `timestamp`; KeyError for a version not in RULES
    (a checked schedule has none)."""
    return RULES[version_at(schedule, timestamp)]
