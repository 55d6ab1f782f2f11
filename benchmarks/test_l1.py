"""L1 cost of batches (issue 6, "Figures to report"): gas per batch and per trade at 10, 100 and
1,000 trades per batch, and batch bytes per trade before and after compression, on a real anvil
with the real poster path (Poster + TxManager -> Rollup.submitBatch) and the real verifier.

Flow: 4 market makers quote both instruments with large resting orders (re-quoted now and then)
and 30 takers hit them with small IOC orders, 50 fills per L2 block at most; so a maker order
travels in full once and later fills refer to it (by batch table index, or by digest once an
earlier batch carried it). Every order is really signed (65-byte signatures). A warm-up batch
(deposits, oracle feeds, first quotes) is posted first and not counted.

    .venv/bin/python -m pytest benchmarks/test_l1.py --benchmark-only -q -s
    .venv/bin/python -m benchmarks.test_l1          # same table, without pytest
"""

from __future__ import annotations

import time

import msgpack
import zstandard

from prover.poster import Poster
from prover.verifier import verify
from sequencer.l1 import Anvil, TxConfig, TxManager
from tests.contracts.l1_testkit import L2_CHAIN_ID, USDC, deploy_system
from tests.prover.l2chain import L2Chain, Upto, make_genesis, market_flow

SIZES = (10, 100, 1000)
PER_BLOCK = 50


def figures() -> list[dict]:
    rows = []
    with Anvil(accounts=12) as node, node.client() as client:
        accounts = node.accounts
        g = make_genesis(L2_CHAIN_ID, b"\0" * 20)
        _, _, h0 = g.block0()
        system = deploy_system(client, accounts, genesis_header_hash=h0.hash(),
                               genesis_state_root=h0.state_root, genesis_config=g.to_bytes())
        dep = system.users[0]
        system.token.transact("mint", dep.address, 10**10 * USDC, sender=dep)

        def on_deposit(addr: bytes, amount: int, nonce: int) -> None:
            system.bridge.transact("deposit", amount, "0x" + addr.hex(), sender=dep)

        chain = L2Chain(L2_CHAIN_ID, bytes.fromhex(system.deployment.rollup[2:]), on_deposit,
                        depositor=bytes.fromhex(dep.address[2:]))  # who sends the Bridge deposits
        sender = TxManager(client, system.poster, TxConfig(poll=0.02, label="poster"))

        def post_upto(head: int):
            p = Poster(client, system.deployment.rollup, Upto(chain, head), sender,
                       max_blocks=10_000, max_bytes=10**7)
            posted = p.post_missing()
            assert len(posted) == 1
            return posted[0]

        market_flow(chain, 20, PER_BLOCK)  # warm-up: deposits, feeds, quotes, 20 fills
        post_upto(chain.head())
        for n in SIZES:
            start = chain.head() + 1
            t0 = time.perf_counter()
            fills = market_flow(chain, n, PER_BLOCK)
            blocks = [chain.block(k) for k in range(start, chain.head() + 1)]
            raw = sum(len(t) for b in blocks for t in b.txs)
            posted = post_upto(chain.head())
            tx = client.get_transaction(posted.tx_hash)
            calldata = (len(tx["input"]) - 2) // 2
            data = bytes.fromhex(
                system.rollup.decode_input(bytes.fromhex(tx["input"][2:]))["data"].hex())
            body = zstandard.ZstdDecompressor().decompress(data)
            assert msgpack.unpackb(body, raw=False)[1] == start
            rows.append({
                "trades": fills, "blocks": len(blocks), "raw": raw, "msgpack": len(body),
                "data": len(data), "calldata": calldata, "gas": posted.gas_used,
                "seconds": time.perf_counter() - t0,
            })
        v = verify(client, system.deployment.rollup)
        assert v.head == chain.header(chain.head())  # every measured batch also replays from L1
    return rows


def table(rows: list[dict]) -> str:
    out = ["| trades/batch | L2 blocks | canonical tx bytes/trade | msgpack (uncompressed) bytes/trade "
           "| batch data (zstd-19) bytes/trade | L1 calldata bytes/trade | gas/batch | gas/trade |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r["trades"]
        out.append(f"| {t:,} | {r['blocks']} | {r['raw'] / t:.1f} | {r['msgpack'] / t:.1f} | "
                   f"{r['data'] / t:.1f} | {r['calldata'] / t:.1f} | {r['gas']:,} | {r['gas'] / t:,.0f} |")
    return "\n".join(out)


def test_l1_batch_figures(benchmark) -> None:
    rows = benchmark.pedantic(figures, rounds=1, iterations=1)
    print("\n" + table(rows))
    big = rows[-1]
    print(f"L1 calldata bytes per trade at {big['trades']:,} trades/batch: "
          f"{big['calldata'] / big['trades']:.1f} (target <= 150)")


if __name__ == "__main__":
    print(table(figures()))
