"""Replay verifier against a real anvil: honest batches pass; tampering is caught and located."""

from __future__ import annotations

import dataclasses
import os

import msgpack
import pytest

from cext import merkle_root
from prover.batch import BlockData, encode_batch
from prover.cli import register
from prover.poster import header_tuple
from prover.verifier import VerificationFailed, Verifier, verify
from sequencer.core.txs import DepositTx, ForcedWithdrawTx, decode_tx, encode_tx
from sequencer.l1 import send_reject
from tests.contracts.l1_testkit import THRESHOLD
from tests.prover.conftest import World

OTHER = b"\x77" * 32


def submit(world: World, first: int, last: int, *, blocks: list[BlockData] | None = None,
           header: dict | None = None, **override):
    """Post L2 blocks first..last as one batch from the poster key, honest unless overridden
    (`header`: fields of the last header to replace, e.g. {"state_root": OTHER})."""
    ch, sys_ = world.chain, world.system
    blocks = blocks if blocks is not None else [ch.block(n) for n in range(first, last + 1)]
    last_header = dataclasses.replace(ch.header(last), **(header or {}))
    args = dict(
        firstBlock=first,
        prevHeaderHash=sys_.rollup.call("tip")[1],
        lastHeader=header_tuple(last_header),
        withdrawalRoots=[ch.header(n).withdrawal_root for n in range(first, last)] + [last_header.withdrawal_root],
        marksRoot=ch.marks_root(last),
        data=encode_batch(blocks, ch.config.domain),
    )
    args.update(override)
    return sys_.rollup.transact("submitBatch", *args.values(), sender=sys_.poster)


def run_cli(*argv: str) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


def caught(world: World) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as info:
        verify(world.client, world.system.deployment.rollup)
    return info.value


def test_honest_batches_verify_and_cli_agrees(world: World, capsys) -> None:
    ch = world.chain
    head = ch.head()
    assert head >= 6 and any(h.withdrawal_root != b"\0" * 32 for h in (b.header for b in ch.blocks))
    mid = head // 2
    submit(world, 1, mid)
    submit(world, mid + 1, head)
    v = verify(world.client, world.system.deployment.rollup)
    assert v.head == ch.header(head) and len(v.verified) == 2
    assert run_cli("verify", "--l1-rpc", world.client.url, "--rollup", world.system.deployment.rollup) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 2 batches") and f"0..{head}" in out


def test_nothing_posted_checks_genesis_only(world: World) -> None:
    v = verify(world.client, world.system.deployment.rollup)
    assert v.head == world.chain.header(0) and v.verified == []


def test_wrong_state_root_in_block_is_named(world: World, capsys) -> None:
    ch = world.chain
    blocks = [ch.block(n) for n in (1, 2, 3)]
    blocks[1] = dataclasses.replace(blocks[1], state_root=OTHER)
    submit(world, 1, 3, blocks=blocks)
    e = caught(world)
    assert (e.batch, e.block, e.tx_index) == (0, 2, None) and "posted stateRoot" in e.reason
    rc = run_cli("verify", "--l1-rpc", world.client.url, "--rollup", world.system.deployment.rollup)
    line = capsys.readouterr().out.strip()
    assert rc == 1 and line.startswith("MISMATCH: batch 0, L2 block 2, transaction -")


def test_wrong_batch_state_root_argument(world: World) -> None:
    submit(world, 1, 2, header={"state_root": OTHER})
    e = caught(world)
    assert e.block == 2 and "in stateRoot 0x" + OTHER.hex() in e.reason


def test_tampered_transaction_is_named(world: World) -> None:
    ch = world.chain
    blocks = [ch.block(n) for n in (1, 2)]
    txs = list(blocks[1].txs)
    i = next(k for k, t in enumerate(txs) if t[1] == 2)  # first Fill of block 2
    raw = msgpack.unpackb(txs[i], raw=False)
    raw[3] += 10**9  # a fill far larger than any order
    txs[i] = msgpack.packb(raw, use_bin_type=True)
    blocks[1] = dataclasses.replace(blocks[1], txs=tuple(txs))
    submit(world, 1, 2, blocks=blocks)
    e = caught(world)
    assert (e.block, e.tx_index) == (2, i) and "FillTx rejected" in e.reason


def test_forged_deposit_is_caught(world: World) -> None:
    """A deposit the Bridge never saw replays fine (cursor in order) but must be refused."""
    ch = world.chain
    b1 = ch.block(1)
    forged = encode_tx(DepositTx(b"\x66" * 20, 10**15, ch.header(1).l1_message_cursor, b"\x66" * 20))
    txs = (*b1.txs, forged)
    submit(world, 1, 1, blocks=[dataclasses.replace(b1, txs=txs)])
    e = caught(world)
    assert (e.block, e.tx_index) == (1, len(txs) - 1) and "no message with that nonce (forged)" in e.reason


def test_deposit_with_wrong_amount_is_caught(world: World) -> None:
    ch = world.chain
    b1 = ch.block(1)
    txs = list(b1.txs)
    i = next(k for k, t in enumerate(txs) if isinstance(decode_tx(t), DepositTx))
    d = decode_tx(txs[i])
    txs[i] = encode_tx(d._replace(amount=d.amount * 2))
    submit(world, 1, 1, blocks=[dataclasses.replace(b1, txs=tuple(txs))])
    e = caught(world)
    assert (e.block, e.tx_index) == (1, i) and "differs from the Bridge" in e.reason


def test_broken_header_chain_is_caught(world: World) -> None:
    submit(world, 1, 2, header={"tx_root": OTHER})
    submit(world, 3, 4)  # extends the (wrong) tip on L1, as the contract requires
    e = caught(world)
    assert (e.batch, e.block) == (0, 2) and "txRoot" in e.reason and "header chain broken" in e.reason


def test_data_not_contiguous_with_first_block(world: World) -> None:
    ch = world.chain
    submit(world, 1, 2, blocks=[ch.block(2), ch.block(3)])
    e = caught(world)
    assert e.block == 1 and "not contiguous" in e.reason


def test_wrong_withdrawal_root_argument(world: World) -> None:
    ch = world.chain
    n = next(b.header.number for b in ch.blocks[1:] if b.header.withdrawal_root != b"\0" * 32)
    roots = [ch.header(k).withdrawal_root for k in range(1, n + 2)]
    roots[n - 1] = OTHER  # not the last root: the Rollup checks that one against lastHeader
    submit(world, 1, n + 1, withdrawalRoots=roots)
    e = caught(world)
    assert e.block == n and "withdrawalRoots" in e.reason
    assert merkle_root(roots) != merkle_root([ch.header(k).withdrawal_root for k in range(1, n + 2)])


def test_rejected_bad_batch_is_skipped_and_watch_recovers(world: World) -> None:
    sys_ = world.system
    submit(world, 1, 2)
    submit(world, 3, 4, header={"state_root": OTHER})
    v = Verifier(world.client, sys_.deployment.rollup)
    with pytest.raises(VerificationFailed, match="batch 1, L2 block 4"):
        v.sync()
    with pytest.raises(VerificationFailed):  # still live: same finding, no re-replay needed
        v.sync()
    send_reject(sys_.rollup, sys_.guardians[:THRESHOLD], 1, sender=sys_.outsider)
    submit(world, 3, world.chain.head())
    assert v.sync() == 2 and v.head == world.chain.header(world.chain.head())  # from genesis
    assert len(verify(world.client, sys_.deployment.rollup).verified) == 2


def test_genesis_mismatch_is_reported(client, accounts) -> None:
    """A Rollup whose genesis bytes do not rebuild its genesisHeaderHash fails at block 0."""
    from tests.prover.l2chain import make_genesis
    from tests.contracts.l1_testkit import L2_CHAIN_ID, deploy_system

    snap = client.snapshot()
    try:
        g = make_genesis(L2_CHAIN_ID, b"\0" * 20)
        _, _, h0 = g.block0()
        s = deploy_system(client, accounts, genesis_header_hash=OTHER, genesis_state_root=h0.state_root,
                          genesis_config=g.to_bytes())
        with pytest.raises(VerificationFailed, match="L2 block 0.*genesisHeaderHash"):
            Verifier(client, s.deployment.rollup)
    finally:
        client.revert_to(snap)


@pytest.mark.skipif(os.environ.get("OPTROLLUP_SKIP_SUBPROCESS") == "1", reason="no subprocess")
def test_verify_entry_point_subprocess(world: World) -> None:
    """The installed `optrollup verify` command (entry point) answers with its exit code."""
    import subprocess
    import sys

    submit(world, 1, 3)
    cmd = [sys.executable, "-c", "import sys; from sequencer.cli import main; sys.exit(main())",
           "verify", "--l1-rpc", world.client.url, "--rollup", world.system.deployment.rollup]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: 1 batches")


def test_verify_watch_follows_new_batches(world: World) -> None:
    """`optrollup verify --watch` reports each new batch, then a bad one; Ctrl-C exits 1."""
    import signal
    import subprocess
    import sys

    head = world.chain.head()
    submit(world, 1, 2)
    cmd = [sys.executable, "-c", "import sys; from sequencer.cli import main; sys.exit(main())",
           "verify", "--l1-rpc", world.client.url, "--rollup", world.system.deployment.rollup,
           "--watch", "--poll", "0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().startswith("OK: 1 batches")
        submit(world, 3, 4)
        assert proc.stdout.readline().startswith("OK: 2 batches")
        submit(world, 5, head, header={"state_root": OTHER})
        assert proc.stdout.readline().startswith(f"MISMATCH: batch 2, L2 block {head}")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 1
    finally:
        proc.kill()


def test_wrong_marks_root_is_caught(world: World) -> None:
    """Escapes are valued at the batch's marksRoot: one that is not the replayed state's marks is
    a finding (else an operator could set the marks an escape pays at)."""
    submit(world, 1, 2, marksRoot=OTHER)
    e = caught(world)
    assert (e.batch, e.block) == (0, 2) and "marksRoot 0x" + OTHER.hex() in e.reason


def test_forged_forced_withdrawal_is_caught(world: World) -> None:
    """A ForcedWithdrawTx the Bridge never queued would pay an L1 leaf: refused by the verifier."""
    ch = world.chain
    b1 = ch.block(1)
    forged = encode_tx(ForcedWithdrawTx(b"\x66" * 20, b"\x66" * 20, 10**6, ch.header(1).l1_message_cursor))
    txs = (*b1.txs, forged)
    submit(world, 1, 1, blocks=[dataclasses.replace(b1, txs=txs)])
    e = caught(world)
    assert (e.block, e.tx_index) == (1, len(txs) - 1)
    assert "ForcedWithdrawTx processes L1 message" in e.reason and "(forged)" in e.reason


def test_deposit_refund_redirected_is_caught(world: World) -> None:
    """The depositor is part of the message: a DepositTx naming another one is refused."""
    ch = world.chain
    b1 = ch.block(1)
    txs = list(b1.txs)
    i = next(k for k, t in enumerate(txs) if isinstance(decode_tx(t), DepositTx))
    d = decode_tx(txs[i])
    txs[i] = encode_tx(d._replace(depositor=b"\x99" * 20))
    submit(world, 1, 1, blocks=[dataclasses.replace(b1, txs=tuple(txs))])
    e = caught(world)
    assert (e.block, e.tx_index) == (1, i) and "depositor=0x" + "99" * 20 in e.reason
