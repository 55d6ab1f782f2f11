"""A fixed scenario measuring the gas of every call (figures land in contracts/GAS.md when
OPTROLLUP_GAS_REPORT is set, see gas_report.py), with loose upper bounds as regression guards."""

from __future__ import annotations

import random

from tests.contracts.l1_testkit import (
    CHALLENGE_WINDOW,
    ESCAPE_DELAY,
    USDC,
    SparseTree,
    System,
    Withdrawal,
    account_leaf,
    make_batch,
)

from sequencer.l1 import read_deployment


def test_gas_scenario(system: System, gas):
    s, c = system, system.client
    rng = random.Random(0)
    rec = {}

    def keep(label, receipt, bound):
        rec[label] = receipt.gas_used
        gas.record(label, receipt.gas_used)
        assert receipt.gas_used <= bound, f"{label}: {receipt.gas_used} > {bound}"

    for name, txh in s.deployment.tx_hashes.items():
        label = "deploy Rollup (creates the Bridge)" if name == "Rollup" else f"deploy {name}"
        keep(label, c.get_receipt(txh), 5_000_000)
    assert read_deployment(c, s.rollup.address) == s.deployment

    u0, u1, u2 = s.users
    keep("MockUSDC.mint (new holder)", s.token.transact("mint", s.outsider.address, 10 * USDC, sender=s.outsider),
         80_000)
    keep("MockUSDC.approve", s.token.transact("approve", s.bridge.address, 10 * USDC, sender=s.outsider), 60_000)
    keep("Bridge.deposit (first deposit)", s.bridge.transact("deposit", 100 * USDC, u0.address, sender=u0), 150_000)
    keep("Bridge.deposit", s.bridge.transact("deposit", 100 * USDC, u1.address, sender=u1), 130_000)

    # submitBatch at several sizes: blocks per batch x data bytes
    tree = SparseTree()
    tree.set(0, account_leaf(u0.address, 50 * USDC))
    tree.set(1, account_leaf(u1.address, 100 * USDC))
    prev = s.genesis
    batches = []
    for blocks, nbytes, wpb in [(1, 0, 0), (1, 1_000, 1), (10, 10_000, 1), (100, 100_000, 2)]:
        ws = [[Withdrawal(u0.address, u2.address, 1, 1000 * len(batches) + k * 10 + j) for j in range(wpb)]
              for k in range(blocks)]
        b = make_batch(prev, ws, state_root=tree.root(), message_cursor=2, data=rng.randbytes(nbytes))
        r = s.rollup.transact("submitBatch", *b.submit_args(), sender=s.poster)
        keep(f"Rollup.submitBatch ({blocks} blocks, {nbytes:,} data bytes)", r, 30_000_000)
        batches.append(b)
        prev = b.headers[-1]
    big = rec["Rollup.submitBatch (100 blocks, 100,000 data bytes)"]
    gas.record("Rollup.submitBatch: marginal gas per data byte (100 kB batch)",
               round((big - rec["Rollup.submitBatch (1 blocks, 0 data bytes)"]) / 100_000))

    s.advance(CHALLENGE_WINDOW)
    w = batches[1].withdrawals[0][0]
    keep("Bridge.finalizeWithdrawal (1-block batch, 1 leaf)",
         s.bridge.transact("finalizeWithdrawal", w.as_dict(), batches[1].proof(1, 0, 0), sender=s.outsider), 120_000)
    w = batches[3].withdrawals[57][1]
    keep("Bridge.finalizeWithdrawal (100-block batch, 2 leaves per block)",
         s.bridge.transact("finalizeWithdrawal", w.as_dict(), batches[3].proof(3, 57, 1), sender=s.outsider),
         130_000)

    # escape hatch
    s.advance(ESCAPE_DELAY + 1)
    keep("Rollup.freeze", s.rollup.transact("freeze", sender=s.outsider), 120_000)
    keep("Bridge.escape (after freeze, depth-32 proof)",
         s.bridge.transact("escape", u1.address, 100 * USDC, b"\0" * 32, 1, tree.proof(1), sender=s.outsider),
         150_000)
