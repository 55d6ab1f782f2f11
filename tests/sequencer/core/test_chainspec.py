from __future__ import annotations

import pytest

import cext
from sequencer.core.accounttree import AccountTree
from sequencer.core.config import CoreConfig, OracleParams, UnderlyingParams
from sequencer.core.chainspec import Genesis
from sequencer.core.header import ZERO32, tx_leaf
from sequencer.core.instruments import make_instrument
from sequencer.core.state import Account, account_leaf
from sequencer.errors import InvalidRequest

ROLLUP = b"\x42" * 20


def sample() -> Genesis:
    cfg = CoreConfig(chain_id=412346, verifying_contract=ROLLUP, operator=b"\x01" * 20,
                     fee_account=b"\x02" * 20,
                     oracle=OracleParams(keys=(b"\x03" * 20, b"\x04" * 20), quorum=2, max_age=30),
                     underlyings={"ETH": UnderlyingParams(), "BTC": UnderlyingParams(im_rate=200_000)})
    return Genesis(cfg, 1_790_000_000, (make_instrument("ETH-27DEC26-3000-C"),
                                        make_instrument("BTC-27DEC26-90000-P")))


def test_bytes_round_trip() -> None:
    g = sample()
    assert Genesis.from_bytes(g.to_bytes(), 412346, ROLLUP) == g


def test_block0_commits_to_config_and_fee_account() -> None:
    g = sample()
    state, tree, header = g.block0()
    assert header.number == 0 and header.parent_hash == ZERO32
    assert header.tx_root == tx_leaf(g.to_bytes())   # one leaf: the root is the leaf
    want = AccountTree()
    want.update({0: account_leaf(b"\x02" * 20, Account())})
    assert header.state_root == want.root() == tree.root()
    assert set(state.instruments) == {"ETH-27DEC26-3000-C", "BTC-27DEC26-90000-P"}
    # any change to the config changes the genesis header hash
    other = Genesis(g.config, g.timestamp + 1, g.instruments)
    assert other.block0()[2].hash() != header.hash()


def test_rejects_garbage_and_non_canonical() -> None:
    with pytest.raises(InvalidRequest):
        Genesis.from_bytes(b"\x01\x02", 1, ROLLUP)
    data = sample().to_bytes()
    with pytest.raises(InvalidRequest):
        Genesis.from_bytes(data[:-3], 1, ROLLUP)
    assert cext.keccak256(data) != cext.keccak256(data[:-1])
