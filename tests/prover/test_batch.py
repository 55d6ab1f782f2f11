"""Batch codec: exact round trip of canonical tx bytes, order back-references, tamper detection."""

from __future__ import annotations

import random

import msgpack
import pytest
import zstandard

import cext
from cext import Order
from prover.batch import BatchFormatError, BlockData, decode_batch, encode_batch
from sequencer.core.txs import DepositTx, FillTx, SettleTx, SignedOrder, encode_tx

DOMAIN = cext.domain_separator(412346, "0x" + "55" * 20)
rng = random.Random(5)


def signed(i: int, account: int = 1) -> SignedOrder:
    o = Order(bytes([account]) * 20, "ETH-27DEC26-3000-C", i % 2 == 0, 100_000 * (1 + i % 30),
              10_000 * (1 + i % 7), i, 1_800_000_000, 0, False, False)
    return SignedOrder(o, rng.randbytes(64) + b"\x1b")


def digest(so: SignedOrder) -> bytes:
    return cext.order_digests(DOMAIN, [so.order])[0]


def blocks_with_flow(n_blocks: int = 3, fills: int = 20) -> list[BlockData]:
    makers = [signed(1000 + i, account=2) for i in range(5)]
    seen: set[bytes] = set()
    out = []
    for b in range(n_blocks):
        txs = [encode_tx(DepositTx(b"\x09" * 20, 5_000_000, b, b"\x08" * 20))]
        for k in range(fills):
            m = makers[k % 5]
            d = digest(m)
            maker_ref = d if d in seen else m
            seen.add(d)
            txs.append(encode_tx(FillTx(maker_ref, signed(b * 100 + k), 10_000, 100_000)))
        txs.append(encode_tx(SettleTx("ETH-27DEC26-3000-C")))
        out.append(BlockData(10 + b, 1_800_000_000 + b, b + 1, rng.randbytes(32),
                             rng.randbytes(32), tuple(txs)))
    return out


def test_round_trip_is_exact() -> None:
    blocks = blocks_with_flow()
    assert decode_batch(encode_batch(blocks, DOMAIN), DOMAIN) == blocks


def test_back_references_shrink_the_batch() -> None:
    blocks = blocks_with_flow(fills=40)
    data = encode_batch(blocks, DOMAIN)
    body = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(data), raw=False)
    fills = [tx for blk in body[2] for tx in blk[4] if tx[0] == 2]
    # 5 maker orders appear in full once each; every other maker side is a small table index
    assert sum(isinstance(f[1], list) for f in fills) == 5
    assert sum(isinstance(f[1], int) for f in fills) == len(fills) - 5
    raw = sum(len(t) for blk in blocks for t in blk.txs)
    assert len(data) < raw * 0.7


def test_digest_from_an_earlier_batch_stays_a_digest() -> None:
    m = signed(1, account=3)
    tx = encode_tx(FillTx(digest(m), signed(2), 10_000, 100_000))
    blocks = [BlockData(1, 1, 0, b"\1" * 32, b"\2" * 32, (tx,))]
    assert decode_batch(encode_batch(blocks, DOMAIN), DOMAIN) == blocks


def test_rejects_bad_input() -> None:
    data = encode_batch(blocks_with_flow(1, 3), DOMAIN)
    with pytest.raises(BatchFormatError):
        decode_batch(data[:-5], DOMAIN)
    with pytest.raises(BatchFormatError):
        decode_batch(b"not zstd", DOMAIN)
    bad_version = zstandard.ZstdCompressor().compress(msgpack.packb([99, 0, []]))
    with pytest.raises(BatchFormatError, match="version"):
        decode_batch(bad_version, DOMAIN)
    body = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(data), raw=False)
    for bad_index in (-1, 999):
        tampered = [list(x) if isinstance(x, list) else x for x in body]
        fill = next(tx for tx in tampered[2][0][4] if tx[0] == 2)
        fill[1] = bad_index
        blob = zstandard.ZstdCompressor().compress(msgpack.packb(tampered, use_bin_type=True))
        with pytest.raises(BatchFormatError):
            decode_batch(blob, DOMAIN)
    with pytest.raises(ValueError, match="contiguous"):
        blocks = blocks_with_flow(2, 1)
        encode_batch([blocks[1], blocks[0]], DOMAIN)
    with pytest.raises(ValueError):
        encode_batch([], DOMAIN)
