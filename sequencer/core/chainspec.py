"""Chain spec: the genesis configuration every replica must agree on, its canonical bytes, and block 0.

The canonical genesis bytes carry everything in `CoreConfig` except what the L1 Rollup already
holds (chain id, and its own address as EIP-712 verifyingContract), plus the genesis timestamp
and the instruments listed at genesis. Block 0's txRoot commits to those bytes, and the Rollup
emits them at deployment, so a verifier rebuilds the exact genesis from L1 alone. The bytes name
the consensus rules: the fork schedule of rules versions (`sequencer.core.rules`), checked at
decode. Layout: docs/encoding.md ("Genesis configuration bytes").
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import msgpack

from sequencer.core.accounttree import AccountTree
from sequencer.core.config import (DEFAULT_INSURANCE_FEE_SHARE, DEFAULT_INSURANCE_FUND, CoreConfig,
                                   OracleParams, UnderlyingParams)
from sequencer.core.header import ZERO32, Header, tx_root
from sequencer.core.instruments import Instrument
from sequencer.core.rules import check_schedule
from sequencer.core.state import State, account_leaf, genesis
from sequencer.errors import InvalidRequest

GENESIS_VERSION = 3
"""Layout version of the genesis bytes. 3 added the insurance fund (last field), written when
the schedule has the risk rules (CoreConfig.risk_scheduled), layout 2 otherwise, so the genesis
of a chain without them keeps its bytes. 2 added the rules fork schedule; layout 1 implied the
float pricing rules (rules version 0), which this code does not implement."""


@dataclass(frozen=True)
class Genesis:
    """The genesis of one L2 chain. `timestamp` is unix seconds."""

    config: CoreConfig
    timestamp: int
    instruments: tuple[Instrument, ...] = ()

    def __post_init__(self) -> None:
        check_schedule(self.config.rules_schedule, self.timestamp)
        c = self.config
        if c.risk_scheduled:
            if type(c.insurance_fund) is not bytes or len(c.insurance_fund) != 20 \
                    or c.insurance_fund == b"\0" * 20:
                raise InvalidRequest("the insurance fund must be a non-zero 20-byte address",
                                     code="bad_genesis")
            if type(c.insurance_fee_share) is not int or not 0 <= c.insurance_fee_share <= 10**6:
                raise InvalidRequest("the insurance fee share must be in [0, 10^6] ppm",
                                     code="bad_genesis")

    def to_bytes(self) -> bytes:
        """Canonical msgpack of the genesis (chain id and Rollup address excluded): layout 3
        when the schedule has the risk rules, else layout 2 (docs/encoding.md)."""
        c = self.config
        fund = [[c.insurance_fund, c.insurance_fee_share]] if c.risk_scheduled else []
        return msgpack.packb([
            GENESIS_VERSION if c.risk_scheduled else 2, self.timestamp, c.operator, c.fee_account,
            [list(c.oracle.keys), c.oracle.quorum, c.oracle.max_age, c.oracle.max_deviation,
             c.oracle.max_future],
            [[name, list(astuple(p))] for name, p in sorted(c.underlyings.items())],
            [c.max_order_ttl, c.cancel_all_window, c.settlement_window],
            [list(i) for i in self.instruments],
            [list(pair) for pair in c.rules_schedule],
            *fund,
        ], use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes, chain_id: int, rollup: bytes) -> "Genesis":
        """Inverse of to_bytes for the chain `chain_id` whose Rollup is at `rollup` (20 bytes).
        InvalidRequest bad_genesis for bytes that do not decode or are not canonical,
        unknown_rules_version when they name rules this code does not implement."""
        try:
            fields = msgpack.unpackb(data, raw=False)
            if isinstance(fields, list) and fields and type(fields[0]) is int and fields[0] == 1:
                raise InvalidRequest(
                    "genesis layout 1 implies rules version 0 (float Black-76 pricing), which "
                    "this node does not implement; known rules versions start at 1",
                    code="unknown_rules_version")
            version = fields[0]
            if version == 2:
                fund, share = DEFAULT_INSURANCE_FUND, DEFAULT_INSURANCE_FEE_SHARE
                (version, ts, operator, fee_account, oracle, unders, limits,
                 instruments, schedule) = fields
            elif version == GENESIS_VERSION:
                (version, ts, operator, fee_account, oracle, unders, limits,
                 instruments, schedule, (fund, share)) = fields
            else:
                raise ValueError(f"unknown genesis version {version}")
            keys, quorum, max_age, max_dev, max_future = oracle
            config = CoreConfig(
                chain_id=chain_id, verifying_contract=rollup, operator=operator,
                fee_account=fee_account,
                oracle=OracleParams(tuple(keys), quorum, max_age, max_dev, max_future),
                underlyings={name: UnderlyingParams(*vals) for name, vals in unders},
                max_order_ttl=limits[0], cancel_all_window=limits[1], settlement_window=limits[2],
                rules_schedule=tuple(tuple(pair) for pair in schedule),
                insurance_fund=fund, insurance_fee_share=share)
            g = cls(config, ts, tuple(Instrument(*i) for i in instruments))
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidRequest(f"genesis bytes do not decode: {exc}", code="bad_genesis") from None
        if g.to_bytes() != data:
            raise InvalidRequest("genesis bytes are not canonical", code="bad_genesis")
        return g

    def state(self) -> State:
        """The genesis state (fee account at leaf 0, genesis instruments listed)."""
        return genesis(self.config, self.instruments)

    def block0(self) -> tuple[State, AccountTree, Header]:
        """Genesis state, its account tree, and the header of block 0."""
        state = self.state()
        tree = AccountTree()
        tree.update({state.index[a]: account_leaf(a, acct) for a, acct in state.accounts.items()})
        header = Header(0, ZERO32, self.timestamp, tx_root([self.to_bytes()]), tree.root(),
                        ZERO32, 0)
        return state, tree, header
