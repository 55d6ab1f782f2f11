"""Liquidation through the node: detection at seals, a Liquidate request logged and replayed,
the orders an auction cancels, snapshots holding auctions, nonces and the shortfall (format 4)
and format-3 snapshots still read."""

from __future__ import annotations

from pathlib import Path

import pytest

from sequencer.core import Liquidate
from sequencer.core.liquidation import Take
from sequencer.errors import OptrollupError
from sequencer.node.node import Node
from sequencer.node.snapshot import copy_core_plain, decode_core, encode_core, pack_plain
from tests.sequencer.core.core_world import Key
from tests.sequencer.node.kit import CALL, PUT, USERS, Kit
from tests.sequencer.node.snapshot_compare import assert_cores_equal

RICH, LIQ = USERS[0], USERS[1]
POOR = Key(700)
U = 10**6


def seal(k: Kit, dt: int = 1) -> None:
    k.clock.t += dt
    k.node.seal(int(k.clock())).result(timeout=10)


def in_auction(k: Kit) -> Kit:
    """POOR sold 2 calls with 500 USDC a contract; two 10% rallies later it is in liquidation."""
    seal(k, 0)
    for key, amount in ((RICH, 10**6 * U), (LIQ, 10**6 * U), (POOR, 1_000 * U)):
        k.fund(key, amount)
    k.feeds(3000 * U)
    assert k.place(POOR, is_buy=False, price=380 * U, amount=2 * U, nonce=1).status == "open"
    assert k.place(RICH, price=380 * U, amount=2 * U, nonce=1, tif=1).status == "filled"
    assert k.place(POOR, instrument=PUT, price=U, amount=10_000, nonce=2).status == "open"
    for spot in (3300, 3600):
        seal(k)
        k.feeds(spot * U)
    seal(k)
    assert POOR.address in k.node.core.engine.state.auctions
    assert not k.node.core.engine.by_account.get(POOR.address)
    return k


def bid(k: Kit, fraction: int, nonce: int, max_price: int = 10**12) -> Take | OptrollupError:
    msg = Liquidate(LIQ.address, POOR.address, fraction, max_price, nonce)
    return k.run([(msg, k.sign(LIQ, msg))])[0]


def test_a_bid_is_logged_and_replayed(tmp_path: Path) -> None:
    k = in_auction(Kit(tmp_path, block_time=10**9))
    r = bid(k, 1, 1)
    assert isinstance(r, OptrollupError) and r.code == "fraction_too_small"
    r = bid(k, 500_000, 1, max_price=-1)
    assert isinstance(r, OptrollupError) and r.code == "price_above_max"
    take = bid(k, 500_000, 7)
    assert isinstance(take, Take) and take.positions == ((CALL, -U),)
    r = bid(k, 500_000, 7)
    assert isinstance(r, OptrollupError) and r.code == "liquidate_nonce_used"
    r = k.place(POOR, is_buy=False, price=900 * U, amount=10_000, nonce=3)
    assert isinstance(r, OptrollupError) and r.code == "account_in_liquidation"
    seal(k)
    state = k.node.core.engine.state
    want = (dict(state.accounts[POOR.address].positions), dict(state.auctions),
            dict(state.liquidate_nonces), state.shortfall, k.node.core.head)
    k.reopen()
    state = k.node.core.engine.state
    assert (dict(state.accounts[POOR.address].positions), dict(state.auctions),
            dict(state.liquidate_nonces), state.shortfall, k.node.core.head) == want
    assert state.liquidate_nonces == {LIQ.address: 8}


def test_snapshot_format_4_holds_liquidation_state(tmp_path: Path) -> None:
    k = in_auction(Kit(tmp_path, block_time=10**9, snapshot_every_records=10**9))
    assert isinstance(bid(k, 250_000, 1), Take)
    core, cfg = k.node.core, k.cfg
    core.engine.state.shortfall = 12_345  # as after a takeover the fund could not absorb
    core.engine.state.collateral_total += 12_345
    core.engine.state.accounts[cfg.genesis.config.insurance_fund].collateral += 12_345
    got = decode_core(encode_core(core, cfg), cfg)
    assert_cores_equal(core, got)
    assert got.engine.state.auctions and got.engine.state.liquidate_nonces
    k.node.close()


def test_a_format_3_snapshot_reads_without_auctions(tmp_path: Path) -> None:
    k = Kit(tmp_path, snapshot_every_records=10**9)
    k.fund(RICH, 1_000 * U)
    core, cfg = k.node.core, k.cfg
    plain = copy_core_plain(core, cfg)
    assert plain[4][12:] == [[], 0, [], []]  # auctions, shortfall, nonces, channels (v5)
    plain[0] = 3
    del plain[4][12:]
    got = decode_core(pack_plain(plain), cfg)
    assert_cores_equal(core, got)
    plain[4].append(5)  # a version-3 snapshot with a 13th state part is corrupt
    with pytest.raises(Exception, match="state has 13 parts"):
        decode_core(pack_plain(plain), cfg)
    k.node.close()


def test_restart_mid_auction_from_a_snapshot(tmp_path: Path) -> None:
    k = in_auction(Kit(tmp_path, block_time=10**9, snapshot_every_records=5))
    assert isinstance(bid(k, 250_000, 1), Take)
    seal(k)
    k.node.snapshotter.wait()
    live = k.node.core
    k.node.close()
    k.node = Node(k.path, k.cfg, clock=k.clock)
    assert_cores_equal(live, k.node.core)
    assert isinstance(bid(k, 1_000_000, 2), Take)
    assert POOR.address not in k.node.core.engine.state.auctions


def test_margin_modes_and_channels_round_trip_through_a_snapshot(tmp_path: Path) -> None:
    """Format 5: an account's margin mode and nonce, and open and closed channels (the tree
    leaves and collateral_total with them) come back from a snapshot as replay builds them."""
    from sequencer.core import SetMarginMode
    from sequencer.core.channelmsg import ChannelOpen, ChannelState, open_digest, state_digest
    from sequencer.core.txs import ChannelCloseTx, ChannelOpenTx
    k = Kit(tmp_path, snapshot_every_records=10**9)
    for key in (RICH, LIQ):
        k.fund(key, 1_000 * U)
    eng, dom = k.node.core.engine, k.cfg.genesis.config.domain
    m = SetMarginMode(RICH.address, 1, 0)
    [r] = k.run([(m, k.sign(RICH, m))])
    assert not isinstance(r, OptrollupError), r
    ids = []
    for nonce in (1, 2):
        msg = ChannelOpen(RICH.address, LIQ.address, RICH.address, LIQ.address, 10 * U, 5 * U,
                          nonce, 60)
        d = open_digest(dom, msg)
        ids.append(eng.channel_open(ChannelOpenTx(msg, RICH.sign(d), LIQ.sign(d))))
    s = ChannelState(ids[0], 4, 12 * U, 3 * U, (), True)
    d = state_digest(dom, s)
    eng.channel_close(ChannelCloseTx(s, RICH.sign(d), LIQ.sign(d)))
    core, cfg = k.node.core, k.cfg
    got = decode_core(encode_core(core, cfg), cfg)
    assert_cores_equal(core, got)
    st = got.engine.state
    assert st.accounts[RICH.address].margin_mode == 1 and set(st.channels) == set(ids)
    assert st.collateral_total == core.engine.state.collateral_total
    k.node.close()
