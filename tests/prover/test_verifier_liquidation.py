"""The replay verifier against a real anvil, on a chain that liquidates: an honest chain with
auctions, a bid and insurance-fund takeovers verifies; a tampered Liquidate, an omitted auction
start and a takeover the detection did not ask for are caught and located."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import msgpack
import pytest

from prover.batch import BlockData
from prover.verifier import verify
from sequencer.core import Liquidate, digest
from sequencer.core.txs import AuctionStartTx, LiquidateTx, TakeoverTx, decode_tx, encode_tx
from sequencer.l1 import L1Client
from tests.prover.conftest import World, new_world, rolled_back
from tests.prover.test_verifier import caught, submit
from tests.sequencer.core.core_world import CALL, USERS, Key

U = 10**6
RICH, LIQ = USERS[0], USERS[1]
POOR, POORER = Key(600), Key(601)


def liquidation_flow(world: World) -> None:
    """Two thin accounts sell calls; the spot rallies 10% a block: both auctions start, a
    liquidator takes half of one, then the fund takes both over."""
    ch = world.chain
    for k, amount in ((RICH, 10**6 * U), (LIQ, 10**6 * U), (POOR, 1_000 * U), (POORER, 2_300 * U)):
        ch.deposit(k, amount)
    ch.feed_all(3000 * U)
    for k, amount in ((POOR, 2 * U), (POORER, 5 * U)):
        ch.place(k, CALL, False, 380 * U, amount)
        assert ch.place(RICH, CALL, True, 380 * U, amount, tif=1).filledAmount == amount
    for spot in (3300, 3600):
        ch.seal()
        ch.feed_all(spot * U)
    ch.seal()  # the next block's detection starts both auctions
    assert set(ch.state.auctions) == {POOR.address, POORER.address}
    msg = Liquidate(LIQ.address, POOR.address, 500_000, 10**12, 1)
    take = ch.engine.liquidate(msg, LIQ.sign(digest(ch.config.domain, msg)))
    assert take.price > 0 and not take.ended
    ch.seal()
    ch.feed_all(3960 * U)
    ch.seal()  # the fund takes over what is left
    assert not ch.state.auctions and ch.state.shortfall > 0
    ch.seal()


@pytest.fixture(scope="module")
def _liq_world(client: L1Client, accounts) -> World:
    w = new_world(client, accounts)
    liquidation_flow(w)
    return w


@pytest.fixture
def liq_world(_liq_world: World, client: L1Client) -> Iterator[World]:
    with rolled_back(client):
        yield _liq_world


def find(world: World, kind: type) -> tuple[int, int]:
    """(block number, tx index) of the first tx of `kind`."""
    for b in world.chain.blocks[1:]:
        for i, raw in enumerate(b.txs):
            if isinstance(decode_tx(raw), kind):
                return b.header.number, i
    raise AssertionError(f"no {kind.__name__}")


def with_txs(world: World, number: int, txs: list[bytes]) -> list[BlockData]:
    ch = world.chain
    blocks = [ch.block(n) for n in range(1, ch.head() + 1)]
    blocks[number - 1] = dataclasses.replace(blocks[number - 1], txs=tuple(txs))
    return blocks


def test_honest_liquidation_chain_verifies(liq_world: World) -> None:
    ch = liq_world.chain
    kinds = {type(decode_tx(t)) for b in ch.blocks[1:] for t in b.txs}
    assert {AuctionStartTx, LiquidateTx, TakeoverTx} <= kinds
    submit(liq_world, 1, ch.head())
    v = verify(liq_world.client, liq_world.system.deployment.rollup)
    assert v.head == ch.header(ch.head()) and v.state.shortfall == ch.state.shortfall


def test_tampered_liquidate_is_caught(liq_world: World) -> None:
    """A bigger fraction than the liquidator signed: the signature no longer recovers to it."""
    n, i = find(liq_world, LiquidateTx)
    txs = list(liq_world.chain.blocks[n].txs)
    raw = msgpack.unpackb(txs[i], raw=False)
    raw[3] = 1_000_000  # [tag, liquidator, account, fractionPpm, ...]
    txs[i] = msgpack.packb(raw, use_bin_type=True)
    submit(liq_world, 1, liq_world.chain.head(), blocks=with_txs(liq_world, n, txs))
    e = caught(liq_world)
    assert (e.block, e.tx_index) == (n, i) and "LiquidateTx rejected [signer_mismatch]" in e.reason


def test_liquidate_with_a_cheaper_price_is_caught(liq_world: World) -> None:
    """The same take re-signed by the liquidator but with a max price below the auction price
    (as if the sequencer let it buy for less): refused by the replay."""
    n, i = find(liq_world, LiquidateTx)
    txs = list(liq_world.chain.blocks[n].txs)
    t = decode_tx(txs[i])
    cheap = t.liquidate._replace(maxPrice=0)
    txs[i] = encode_tx(LiquidateTx(cheap, LIQ.sign(digest(liq_world.chain.config.domain, cheap))))
    submit(liq_world, 1, liq_world.chain.head(), blocks=with_txs(liq_world, n, txs))
    e = caught(liq_world)
    assert (e.block, e.tx_index) == (n, i) and "[price_above_max]" in e.reason


def test_omitted_auction_start_is_caught(liq_world: World) -> None:
    n, i = find(liq_world, AuctionStartTx)
    txs = list(liq_world.chain.blocks[n].txs)
    del txs[i]
    submit(liq_world, 1, liq_world.chain.head(), blocks=with_txs(liq_world, n, txs))
    e = caught(liq_world)
    assert (e.block, e.tx_index) == (n, i) and "liquidation detection" in e.reason


def test_takeover_outside_the_detection_is_caught(liq_world: World) -> None:
    n, i = find(liq_world, LiquidateTx)
    txs = list(liq_world.chain.blocks[n].txs) + [encode_tx(TakeoverTx(RICH.address))]
    submit(liq_world, 1, liq_world.chain.head(), blocks=with_txs(liq_world, n, txs))
    e = caught(liq_world)
    assert (e.block, e.tx_index) == (n, len(txs) - 1) and "outside" in e.reason
