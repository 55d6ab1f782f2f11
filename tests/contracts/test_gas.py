"""A fixed scenario measuring the gas of every call (figures land in contracts/GAS.md when
OPTROLLUP_GAS_REPORT is set, see l1_gas_report.py), with loose upper bounds as regression guards."""

from __future__ import annotations

import random

from tests.contracts.l1_testkit import (
    CHALLENGE_WINDOW,
    ESCAPE_DELAY,
    USDC,
    Marks,
    SparseTree,
    System,
    Withdrawal,
    account_leaf,
    escape_claim,
    escape_value,
    make_batch,
    positions_hash,
)

from sequencer.l1 import load_artifact, read_deployment

ZERO_ADDRESS = "0x" + "00" * 20


def test_gas_scenario(system: System, gas):
    s, c = system, system.client
    rng = random.Random(0)
    rec = {}

    def keep(label, receipt, bound):
        rec[label] = receipt.gas_used
        gas.record(label, receipt.gas_used)
        assert receipt.gas_used <= bound, f"{label}: {receipt.gas_used} > {bound}"

    for name, txh in s.deployment.tx_hashes.items():
        label = "deploy Rollup (creates the Adjudicator and the Bridge)" if name == "Rollup" else f"deploy {name}"
        keep(label, c.get_receipt(txh), 9_000_000)
    assert read_deployment(c, s.rollup.address) == s.deployment
    # code size limits (EIP-170 runtime 24,576 bytes, EIP-3860 initcode 49,152 bytes)
    for name in ("Rollup", "Bridge", "MockUSDC", "Adjudicator"):
        art = load_artifact(name)
        assert len(art.deployed_bytecode) <= 24_576 and len(art.bytecode) <= 49_152, name

    u0, u1, u2 = s.users
    keep("MockUSDC.mint (new holder)", s.token.transact("mint", s.outsider.address, 10 * USDC, sender=s.outsider),
         80_000)
    keep("MockUSDC.approve", s.token.transact("approve", s.bridge.address, 10 * USDC, sender=s.outsider), 60_000)
    keep("Bridge.deposit (first message)", s.bridge.transact("deposit", 100 * USDC, u0.address, sender=u0), 170_000)
    keep("Bridge.deposit", s.bridge.transact("deposit", 100 * USDC, u1.address, sender=u1), 150_000)
    keep("Bridge.requestWithdrawal", s.bridge.transact("requestWithdrawal", 5 * USDC, u2.address, sender=u2),
         120_000)
    assert s.bridge.call("messageCount") == 3

    # the final state: three accounts, with 0, 1 and 4 open positions, marks of 8 instruments
    names = [f"ETH-27DEC26-{k}-{cp}" for k in (2500, 3000, 3500, 4000) for cp in "CP"]
    marks = Marks({n: (rng.randrange(1, 10) * USDC, 0) for n in names})
    marks = Marks({n: (lo, lo + rng.randrange(0, USDC)) for n, (lo, _) in marks.marks.items()})
    pos1 = {names[1]: -3 * 10**5}
    pos2 = {names[0]: 2 * 10**6, names[3]: -10**6, names[5]: 1_234_567, names[7]: -7}
    tree = SparseTree()
    tree.set(0, account_leaf(u0.address, 50 * USDC))
    tree.set(1, account_leaf(u1.address, 60 * USDC, positions_hash(pos1)))
    tree.set(2, account_leaf(u2.address, 40 * USDC, positions_hash(pos2)))

    # submitBatch at several sizes: blocks per batch x data bytes
    prev = s.genesis
    batches = []
    for blocks, nbytes, wpb in [(1, 0, 0), (1, 1_000, 1), (10, 10_000, 1), (100, 100_000, 2)]:
        ws = [[Withdrawal(u0.address, u2.address, 1, 1000 * len(batches) + k * 10 + j) for j in range(wpb)]
              for k in range(blocks)]
        b = make_batch(prev, ws, state_root=tree.root(), message_cursor=3, data=rng.randbytes(nbytes),
                       marks_root=marks.root())
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
    r = s.rollup.transact("freeze", sender=s.outsider)
    keep("Rollup.freeze", r, 120_000)
    assert s.rollup.decode_logs(r, "RollupFrozen")[0]["reason"] == 1
    hdr = batches[3].last_header.as_dict()
    for i, (label, who, coll, pos) in enumerate([
        ("Bridge.escape (after freeze, depth-32 proof, no positions)", u0, 50 * USDC, {}),
        ("Bridge.escape (after freeze, depth-32 proof, 1 position at marks)", u1, 60 * USDC, pos1),
        ("Bridge.escape (after freeze, depth-32 proof, 4 positions at marks, 8 marks)", u2, 40 * USDC, pos2),
    ]):
        before = s.token.call("balanceOf", who.address)
        r = s.bridge.transact("escape", hdr, escape_claim(who.address, coll, i, tree, pos, marks), ZERO_ADDRESS, b"",
                              sender=s.outsider)
        keep(label, r, 150_000 + 25_000 * len(pos))
        value = escape_value(coll, pos, marks)
        assert s.token.call("balanceOf", who.address) - before == value
        assert s.bridge.decode_logs(r, "Escaped")[0]["paid"] == value  # not capped in this scenario
