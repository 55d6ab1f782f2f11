"""Batch poster against a real anvil: posts what is missing, never twice — across runs, with
overlapping runs, a crash between send and receipt, a stuck transaction and an L1 reorg."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import zstandard
from eth_account import Account
from filelock import FileLock

from prover.batch import compress
from prover.poster import PosterError, Poster, lock_path, run
from prover.source import HttpBlockSource
from prover.verifier import verify
from sequencer.cli import main as optrollup
from sequencer.errors import NotFound
from sequencer.keys import load_key
from sequencer.l1 import InsufficientFunds, ReceiptTimeout, TxConfig, TxManager
from tests.prover.conftest import World
from tests.prover.l2chain import L2Chain, Upto, serve_blocks


def sender(world: World, **kw) -> TxManager:
    kw.setdefault("poll", 0.02)
    kw.setdefault("label", "poster")
    return TxManager(world.client, world.system.poster, TxConfig(**kw))


def poster(world: World, source=None, *, max_blocks: int = 3, **kw) -> Poster:
    return Poster(world.client, world.system.deployment.rollup, source or world.chain, sender(world, **kw),
                  max_blocks=max_blocks, retry_pause=0.1)


def nonce(world: World) -> int:
    return world.client.get_transaction_count(world.system.poster.address, "latest")


def batches(world: World) -> int:
    return world.system.rollup.call("batchCount")


def assert_all_posted_once(world: World, nonce0: int) -> None:
    ch = world.chain
    assert world.system.rollup.call("tip") == (ch.head(), ch.header(ch.head()).hash())
    assert nonce(world) - nonce0 == batches(world)  # every poster transaction is a live batch
    assert verify(world.client, world.system.deployment.rollup).head == ch.header(ch.head())


@contextmanager
def miner(world: World, when=lambda: True, every: float = 0.05) -> Iterator[None]:
    """Automine off; a thread mines a block every `every` s while `when()` holds."""
    c = world.client
    c.rpc("evm_setAutomine", [False])
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            if when():
                c.mine()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        c.rpc("evm_setAutomine", [True])


def test_posts_missing_then_nothing_twice_across_runs(world: World) -> None:
    n0, ch = nonce(world), world.chain
    first = poster(world, Upto(ch, 4)).post_missing()
    assert [(p.first_block, p.last_block) for p in first] == [(1, 3), (4, 4)]
    rest = poster(world).post_missing()
    assert rest[0].first_block == 5 and rest[-1].last_block == ch.head()
    assert poster(world).post_missing() == []  # up to date: nothing sent
    assert_all_posted_once(world, n0)


def test_max_bytes_splits_batches(world: World) -> None:
    n0 = nonce(world)
    p = poster(world, max_blocks=100)
    p.max_bytes = 3_000
    posted = p.post_missing()
    assert len(posted) > 1 and all(x.data_bytes <= 3_000 for x in posted)
    assert_all_posted_once(world, n0)


def test_overlapping_runs_hold_the_lock(world: World, tmp_path) -> None:
    n0 = nonce(world)
    lock = lock_path(tmp_path, world.system.deployment.rollup)
    with FileLock(str(lock)):  # a run in progress
        assert run(poster(world), lock, once=True) is None
    assert batches(world) == 0
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(run(poster(world), lock, once=True)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r) for r in results if r) == batches(world)  # every batch posted by one run
    assert_all_posted_once(world, n0)


def test_crash_after_send_then_mined_before_restart(world: World) -> None:
    n0 = nonce(world)
    world.client.rpc("evm_setAutomine", [False])
    with pytest.raises(ReceiptTimeout):  # stands for a crash: sent, no receipt seen
        poster(world, timeout=0.2, resubmit_after=60).post_one()
    world.client.mine()
    world.client.rpc("evm_setAutomine", [True])
    assert batches(world) == 1
    posted = poster(world).post_missing()
    assert posted[0].first_block == 4  # 1..3 are on L1: not re-sent
    assert_all_posted_once(world, n0)


def test_crash_after_send_still_pending_at_restart(world: World) -> None:
    n0 = nonce(world)
    world.client.rpc("evm_setAutomine", [False])
    with pytest.raises(ReceiptTimeout):
        poster(world, timeout=0.2, resubmit_after=60).post_one()
    assert batches(world) == 0
    with miner(world):  # the restarted run meets its predecessor's pending transaction
        posted = poster(world).post_missing()
    assert posted[0].first_block == 1
    assert_all_posted_once(world, n0)


def test_stuck_transaction_gets_a_fee_bump(world: World) -> None:
    n0 = nonce(world)
    c = world.client
    p = poster(world, resubmit_after=0.3)
    spiked = []

    def mine_when() -> bool:  # once our tx is in the pool, a fee spike prices it out
        if not p.sender.current:
            return False
        if not spiked:
            c.rpc("anvil_setNextBlockBaseFeePerGas", [hex(200 * 10**9)])
            spiked.append(True)
        return True

    with miner(world, when=mine_when):
        first = p.post_one()
        attempts = list(p.sender.current)
    assert len(attempts) >= 2 and first.tx_hash == attempts[-1].tx_hash != attempts[0].tx_hash
    assert attempts[-1].max_fee >= attempts[0].max_fee * 9 // 8
    assert batches(world) == 1 and nonce(world) - n0 == 1
    poster(world).post_missing()
    assert_all_posted_once(world, n0)


def test_l1_reorg_drops_batches_and_poster_reposts(world: World) -> None:
    c = world.client
    n0 = nonce(world)
    snap = c.snapshot()
    poster(world).post_missing()
    assert batches(world) > 0
    c.revert_to(snap)  # the L1 blocks carrying the batches are gone
    assert batches(world) == 0
    again = poster(world).post_missing()
    assert again[0].first_block == 1
    assert_all_posted_once(world, n0)


def test_sender_rebroadcasts_after_reorg_of_a_mined_tx(world: World) -> None:
    c = world.client
    s = sender(world, confirmations=3, resubmit_after=60)
    state = {"step": 0, "snap": None}

    def step() -> bool:  # runs in the miner thread
        if not s.current:
            return False
        if state["step"] == 0:
            state["snap"] = c.snapshot()
            state["step"] = 1
            return True  # mine the block with our tx
        if state["step"] == 1:
            c.revert_to(state["snap"])  # reorg: that block is gone
            state["step"] = 2
            return False
        return True

    data = world.system.rollup.encode("tip")  # a harmless call
    with miner(world, when=step, every=0.15):
        res = s.send(world.system.rollup.address, data)
    assert res.reorgs >= 1 and res.receipt.ok


def test_insufficient_balance_is_a_clear_error(world: World) -> None:
    world.client.set_balance(world.system.poster.address, 10**9)
    with pytest.raises(InsufficientFunds, match="fund the poster"):
        poster(world).post_missing()
    assert batches(world) == 0


def test_wrong_key_and_wrong_chain_are_refused(world: World, accounts) -> None:
    with pytest.raises(PosterError, match="not the Rollup's poster"):
        Poster(world.client, world.system.deployment.rollup, world.chain, TxManager(world.client, accounts[11]))
    poster(world, Upto(world.chain, 2)).post_missing()
    other = L2Chain(world.chain.config.chain_id, b"\x01" * 20)  # same genesis, other history
    other.deposit(b"\x05" * 20, 1, l1=False)
    for _ in range(4):
        other.seal()
    with pytest.raises(PosterError, match="not the chain on L1"):
        poster(world, other).post_missing()


def test_http_source_speaks_the_sequencer_json(world: World) -> None:
    ch = world.chain
    with serve_blocks(ch) as url, HttpBlockSource(url) as src:
        assert src.head() == ch.head()
        for n in (0, 1, ch.head()):
            assert src.header(n) == ch.header(n)
        assert src.block(2) == ch.block(2)
        with pytest.raises(NotFound):
            src.block(ch.head() + 1)


def _batch_data(world: World) -> list[bytes]:
    """The data argument of every submitBatch the poster sent so far, from L1."""
    c, addr, rollup = world.client, world.system.poster.address.lower(), world.system.rollup
    out = []
    for n in range(c.block_number() + 1):
        for tx in c.rpc("eth_getBlockByNumber", [hex(n), True])["transactions"]:
            if tx["from"].lower() == addr and (tx.get("to") or "").lower() == rollup.address.lower():
                out.append(rollup.decode_input(bytes.fromhex(tx["input"][2:]))["data"])
    return out


def test_cli_post_batches_once_from_http_keystore(world: World, tmp_path, monkeypatch, capsys) -> None:
    n0 = nonce(world)
    ks = tmp_path / "poster.json"
    ks.write_text(json.dumps(Account.encrypt(world.system.poster.key, "s3cret", kdf="pbkdf2", iterations=2)))
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    assert load_key(ks, password_file=pw).address == world.system.poster.address
    d = world.system.deployment
    info = {"chainId": d.l1_chain_id, "rollup": d.rollup, "bridge": d.bridge, "collateralToken": d.collateral_token}
    with serve_blocks(world.chain, info) as url:
        argv = ["post-batches", "--sequencer", url, "--l1-rpc", world.client.url, "--rollup", d.rollup,
                "--keystore", str(ks), "--once", "--max-blocks", "4", "--lock-dir", str(tmp_path)]
        monkeypatch.delenv("OPTROLLUP_PASSWORD", raising=False)
        assert optrollup(argv) == 2
        assert "error [password_missing]" in capsys.readouterr().err
        monkeypatch.setenv("OPTROLLUP_PASSWORD", "wrong")
        assert optrollup(argv) == 2
        assert "error [bad_password]" in capsys.readouterr().err
        monkeypatch.setenv("POSTER_PW", "s3cret")  # a named variable wins over OPTROLLUP_PASSWORD
        with pytest.raises(SystemExit):
            optrollup([*argv, "--password-env", "POSTER_PW", "--zstd-level", "23"])
        assert "--zstd-level must be a whole number from 1 to 22, not '23'" in capsys.readouterr().err
        assert batches(world) == 0
        assert optrollup([*argv, "--password-env", "POSTER_PW", "--zstd-level", "3"]) == 0
        data = _batch_data(world)  # what the level-3 run sent decodes as level 3 compressed it
        assert data and all(compress(zstandard.ZstdDecompressor().decompress(d), 3) == d for d in data)
        assert optrollup([*argv, "--password-file", str(pw)]) == 0
        assert optrollup([*argv, "--password-file", str(pw)]) == 0  # second cron run: nothing to do
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("posted ") and not out[0].startswith("posted 0 ")
    assert out[1].startswith("posted 0 batches") and out[2].startswith("posted 0 batches")
    assert_all_posted_once(world, n0)


RUN_AND_LIST_HEAVY = (
    "import json, sys\n"
    "from sequencer.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print(json.dumps({'rc': rc, 'heavy': sorted(m for m in sys.modules\n"
    "                  if m.split('.')[0] in ('eth_account', 'eth_keyfile', 'py_ecc'))}))\n")


def test_cron_run_posts_without_importing_eth_account(world: World, tmp_path) -> None:
    """The devnet's cron run, in its own interpreter: a scrypt keystore (the devnet's), a whole
    post through the TxManager, and eth-account, eth-keyfile, py_ecc never imported."""
    n0 = nonce(world)
    ks = tmp_path / "poster.json"
    ks.write_text(json.dumps(Account.encrypt(world.system.poster.key, "s3cret", kdf="scrypt", iterations=2**14)))
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    d = world.system.deployment
    info = {"chainId": d.l1_chain_id, "rollup": d.rollup, "bridge": d.bridge, "collateralToken": d.collateral_token}
    with serve_blocks(world.chain, info) as url:
        argv = ["post-batches", "--sequencer", url, "--l1-rpc", world.client.url, "--rollup", d.rollup,
                "--keystore", str(ks), "--password-file", str(pw), "--once", "--lock-dir", str(tmp_path)]
        r = subprocess.run([sys.executable, "-c", RUN_AND_LIST_HEAVY, *argv], capture_output=True, text=True,
                           timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("posted ") and not lines[0].startswith("posted 0 "), r.stdout
    assert json.loads(lines[-1]) == {"rc": 0, "heavy": []}
    assert_all_posted_once(world, n0)
