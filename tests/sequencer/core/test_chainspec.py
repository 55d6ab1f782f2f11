from __future__ import annotations

import dataclasses

import msgpack
import pytest

import cext
from sequencer.core.accounttree import AccountTree
from sequencer.core.chainspec import GENESIS_VERSION, Genesis
from sequencer.core.config import CoreConfig, OracleParams, UnderlyingParams
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
    want = AccountTree()  # the fee account at leaf 0, the insurance fund at leaf 1
    want.update({0: account_leaf(b"\x02" * 20, Account()),
                 1: account_leaf(g.config.insurance_fund, Account())})
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


# --- rules fork schedule ----------------------------------------------------------------------

def with_schedule(g: Genesis, schedule: tuple[tuple[int, int], ...]) -> Genesis:
    return Genesis(dataclasses.replace(g.config, rules_schedule=schedule), g.timestamp,
                   g.instruments)


def test_genesis_bytes_name_the_rules_schedule() -> None:
    g = sample()
    assert g.config.rules_schedule == ((0, 4),)
    fields = msgpack.unpackb(g.to_bytes(), raw=False)
    assert fields[0] == GENESIS_VERSION == 3 and fields[8] == [[0, 4]]
    assert fields[9] == [g.config.insurance_fund, 200_000]
    forked = with_schedule(g, ((0, 1), (g.timestamp + 86_400, 2)))
    back = Genesis.from_bytes(forked.to_bytes(), 412346, ROLLUP)
    assert back == forked and back.config.rules_schedule == ((0, 1), (g.timestamp + 86_400, 2))
    assert forked.block0()[2].hash() != g.block0()[2].hash()


def test_genesis_without_the_risk_rules_keeps_layout_2() -> None:
    """A chain whose schedule never activates rules version 2 keeps the layout-2 bytes (and
    block 0) it had before the insurance fund existed; the fund fields must then be defaults."""
    v1 = with_schedule(sample(), ((0, 1),))
    data = v1.to_bytes()
    fields = msgpack.unpackb(data, raw=False)
    assert fields[0] == 2 and len(fields) == 9 and fields[-1] == [[0, 1]]
    assert Genesis.from_bytes(data, 412346, ROLLUP) == v1
    state, tree, _ = v1.block0()
    assert list(state.accounts) == [b"\x02" * 20]  # no fund account
    # layout 2 naming the risk rules, or layout 3 without them, is not canonical
    with pytest.raises(InvalidRequest) as e:
        Genesis.from_bytes(repacked(data, schedule=[[0, 2]]), 412346, ROLLUP)
    assert e.value.code == "bad_genesis"
    three = msgpack.unpackb(sample().to_bytes(), raw=False)
    three[8] = [[0, 1]]
    with pytest.raises(InvalidRequest) as e:
        Genesis.from_bytes(msgpack.packb(three, use_bin_type=True), 412346, ROLLUP)
    assert e.value.code == "bad_genesis"


@pytest.mark.parametrize("fund, share", [(b"\0" * 20, 0), (b"\x05" * 19, 0), (b"\x05" * 20, 10**6 + 1)])
def test_bad_insurance_fund_is_bad_genesis(fund: bytes, share: int) -> None:
    g = sample()
    with pytest.raises(InvalidRequest) as e:
        Genesis(dataclasses.replace(g.config, insurance_fund=fund, insurance_fee_share=share),
                g.timestamp, g.instruments)
    assert e.value.code == "bad_genesis"


def repacked(data: bytes, **changes: object) -> bytes:
    fields = msgpack.unpackb(data, raw=False)
    if "schedule" in changes:
        fields[8] = changes["schedule"]
    if "layout" in changes:
        fields[0] = changes["layout"]
    if changes.get("drop_schedule"):
        fields = fields[:8]
    return msgpack.packb(fields, use_bin_type=True)


def test_unknown_rules_version_is_refused_at_decode() -> None:
    data = sample().to_bytes()
    ts = sample().timestamp
    for schedule in ([[0, 7]], [[0, 2], [ts + 10, 5]], [[0, 0]]):
        with pytest.raises(InvalidRequest) as e:
            Genesis.from_bytes(repacked(data, schedule=schedule), 412346, ROLLUP)
        assert e.value.code == "unknown_rules_version"
        assert str(schedule[-1][1]) in e.value.message
    # layout 1 had no schedule: it meant the float rules (version 0)
    with pytest.raises(InvalidRequest) as e:
        Genesis.from_bytes(repacked(data, layout=1, drop_schedule=True), 412346, ROLLUP)
    assert e.value.code == "unknown_rules_version"


@pytest.mark.parametrize("schedule", [[], [[1_790_000_001, 2]], [[0, 2], [0, 2]],
                                      [[10, 2], [5, 2]], [[-1, 2]], [[0, "2"]], [[0]], 5,
                                      [[0, 2, 2]]])
def test_malformed_schedule_is_bad_genesis(schedule: object) -> None:
    data = repacked(sample().to_bytes(), schedule=schedule)
    with pytest.raises(InvalidRequest) as e:
        Genesis.from_bytes(data, 412346, ROLLUP)
    assert e.value.code == "bad_genesis"


def test_genesis_refuses_unknown_rules_when_built() -> None:
    with pytest.raises(InvalidRequest) as e:
        with_schedule(sample(), ((0, 99),))
    assert e.value.code == "unknown_rules_version"
    with pytest.raises(InvalidRequest) as e:
        with_schedule(sample(), ((sample().timestamp + 1, 1),))  # nothing in force at genesis
    assert e.value.code == "bad_genesis"
