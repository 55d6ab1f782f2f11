"""The batch poster's driver: wire a BlockSource, the Rollup and a TxManager, and tick.

One round (`Poster.post_missing`), repeated until L1 has every sealed block:
1. read the Rollup tip (next expected L2 block, last header hash) from L1;
2. check that the sequencer's block before the range hashes to L1's last header hash (a wrong
   sequencer, chain or data dir is refused rather than posted against);
3. plan with `missing_range` + `fit_batch`, send `submitBatch(...)` through the TxManager
   (sequencer.l1.txmanager: nonces, fees and bumps, replacement, reorgs) and wait for its
   confirmations;
4. re-read the tip: what counts is what L1 has, never what we think we sent, so a crash between
   send and receipt, a reverted or replaced transaction, or an L1 reorg that drops a batch are
   all handled by posting again from the tip actually on L1.

`run` holds a file lock (filelock) per Rollup for the whole run, so overlapping cron runs never
post the same range twice; a second run finds the lock taken and leaves.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from filelock import FileLock, Timeout

from cext import domain_separator
from sequencer.core.header import Header
from sequencer.errors import OptrollupError, Unavailable
from sequencer.keys import load_tx_key
from sequencer.l1 import (
    Contract,
    ContractRevert,
    L1Client,
    NonceTaken,
    ReceiptTimeout,
    TransactionFailed,
    TxConfig,
    TxManager,
)

from prover.batch import ZSTD_LEVEL, BlockData
from prover.plan import fit_batch, missing_range
from prover.source import BlockSource


class PosterError(OptrollupError):
    """The poster cannot go on (misconfiguration, or the sequencer disagrees with L1)."""

    code = "poster_error"


class _Fetched(Sequence[BlockData]):
    """Blocks `rng` of `source`, each read when first indexed (a backlog of hundreds of
    blocks is not all fetched for a batch of a few)."""

    def __init__(self, source: BlockSource, rng: range) -> None:
        self._source, self._rng = source, rng

    def __len__(self) -> int:
        return len(self._rng)

    @overload
    def __getitem__(self, i: int) -> BlockData: ...
    @overload
    def __getitem__(self, i: slice) -> list[BlockData]: ...

    def __getitem__(self, i: int | slice) -> BlockData | list[BlockData]:
        if isinstance(i, slice):
            return [self._source.block(n) for n in self._rng[i]]
        return self._source.block(self._rng[i])


@dataclass
class Posted:
    """One batch the poster saw through."""

    first_block: int
    last_block: int
    data_bytes: int
    tx_hash: str
    gas_used: int
    l1_block: int


def header_tuple(h: Header) -> tuple[int, bytes, int, bytes, bytes, bytes, int]:
    """An L2 header as the Rollup's `Encoding.BlockHeader` calldata struct."""
    return (h.number, h.parent_hash, h.timestamp, h.tx_root, h.state_root, h.withdrawal_root,
            h.l1_message_cursor)


def lock_path(lock_dir: str | os.PathLike[str] | None, rollup: str) -> Path:
    d = Path(lock_dir) if lock_dir is not None else Path(tempfile.gettempdir())
    d.mkdir(parents=True, exist_ok=True)
    return d / f"optrollup-post-batches-{rollup.lower()}.lock"


class Poster:
    """Posts the sealed blocks L1 lacks, from `source` to the Rollup at `rollup_address`."""

    def __init__(self, client: L1Client, rollup_address: str, source: BlockSource, sender: TxManager,
                 *, max_blocks: int = 1000, max_bytes: int = 120_000, retry_pause: float = 1.0,
                 zstd_level: int = ZSTD_LEVEL, log: Callable[[str], None] | None = None) -> None:
        self.client, self.source, self.sender = client, source, sender
        self.zstd_level = zstd_level
        self.rollup = Contract.at(client, "Rollup", rollup_address)
        self.max_blocks, self.max_bytes = max_blocks, max_bytes
        self.retry_pause = retry_pause
        self.log = log or (lambda _m: None)
        poster = self.rollup.call("poster")
        if poster != sender.address:
            raise PosterError(f"the key {sender.address} is not the Rollup's poster {poster}",
                              code="not_poster")
        self.l2_chain_id = self.rollup.call("l2ChainId")
        self.domain = domain_separator(self.l2_chain_id, bytes.fromhex(self.rollup.address[2:]))

    def tip(self) -> tuple[int, bytes]:
        """(next L2 block L1 expects, header hash of the block before it), as L1 has it now."""
        last, h = self.rollup.call("tip")
        return last + 1, h

    def _check_link(self, next_block: int, l1_hash: bytes) -> None:
        mine = self.source.header(next_block - 1).hash()
        if mine != l1_hash:
            raise PosterError(
                f"the sequencer's L2 block {next_block - 1} has header hash 0x{mine.hex()} but L1's "
                f"last batch ends with 0x{l1_hash.hex()}: this sequencer is not the chain on L1 "
                f"(wrong sequencer, data dir or Rollup?)", code="chain_mismatch")

    def plan(self) -> tuple[int, bytes, list[Header], bytes] | None:
        """The next batch: (first block, prevHeaderHash, headers, data), or None if L1 is up to date."""
        nxt, tip_hash = self.tip()
        rng = missing_range(nxt, self.source.head(), self.max_blocks)
        if not rng:
            return None
        self._check_link(nxt, tip_hash)
        blocks = _Fetched(self.source, rng)  # read as far as the batch reaches
        count, data = fit_batch(blocks, self.domain, self.max_bytes, level=self.zstd_level)
        headers = [self.source.header(n) for n in rng[:count]]
        parent = tip_hash
        for h, b in zip(headers, blocks):
            if h.parent_hash != parent or (h.state_root, h.withdrawal_root) != (b.state_root, b.withdrawal_root):
                raise PosterError(f"the sequencer's L2 block {h.number} does not chain to its parent",
                                  code="chain_mismatch")
            parent = h.hash()
        return nxt, tip_hash, headers, data

    def post_one(self) -> Posted | None:
        """Post the next batch and wait for its confirmations; None if nothing is missing."""
        p = self.plan()
        if p is None:
            return None
        first, prev, headers, data = p
        last = headers[-1]
        marks_root = self.source.marks_root(last.number)
        calldata = self.rollup.encode("submitBatch", first, prev, header_tuple(last),
                                      [h.withdrawal_root for h in headers], marks_root, data)
        ctx = f"batch L2 {first}..{last.number}"
        res = self.sender.send(self.rollup.address, calldata, context=ctx)
        r = res.receipt
        self.log(f"{ctx}: {len(data)} bytes in L1 block {r.block_number} ({r.tx_hash}, gas {r.gas_used})")
        return Posted(first, last.number, len(data), r.tx_hash, r.gas_used, r.block_number)

    def post_missing(self, max_rounds: int = 1_000_000) -> list[Posted]:
        """Post until L1 has every sealed block (as of each round's `head()`)."""
        out: list[Posted] = []
        failures = 0
        for _ in range(max_rounds):
            try:
                p = self.post_one()
            except (NonceTaken, TransactionFailed) as exc:
                # someone else moved L1 on (another poster run, a crashed run's transaction): the
                # next round plans again from the tip actually on L1
                failures += 1
                self.log(f"{exc.message}; re-reading the Rollup tip")
                if failures > 5:
                    raise
                time.sleep(self.retry_pause)
                continue
            except ContractRevert as exc:
                # at estimate time (the tip moved between our read and the estimate) or mined
                # (another transaction landed first): plan again from L1's tip
                raced = exc.error in ("BlockGap", "PrevHeaderMismatch") or exc.receipt is not None
                if raced and failures < 5:
                    failures += 1
                    self.log(f"{exc.message}; re-reading the Rollup tip")
                    time.sleep(self.retry_pause)
                    continue
                raise
            if p is None:
                return out
            failures = 0
            out.append(p)
        return out


def run(poster: Poster, lock: Path, *, once: bool, poll: float = 5.0,
        log: Callable[[str], None] = lambda _m: None) -> list[Posted] | None:
    """Hold the lock and post. With `once`, a lock held by another run returns None at once;
    otherwise wait for it and keep posting every `poll` seconds (until interrupted)."""
    fl = FileLock(str(lock))
    try:
        fl.acquire(timeout=0 if once else -1)
    except Timeout:
        log(f"another post-batches run holds {lock}; leaving it to post")
        return None
    try:
        posted = poster.post_missing()
        if once:
            return posted
        while True:
            time.sleep(poll)
            try:
                posted += poster.post_missing()
            except (Unavailable, ReceiptTimeout) as exc:  # L1 or the sequencer down: next round
                log(f"{exc.message}; retrying in {poll:.0f}s")
    finally:
        fl.release()


def run_cli(args: argparse.Namespace) -> int:
    """`optrollup post-batches` (see prover/cli.py for the options)."""
    from prover.source import HttpBlockSource

    def log(msg: str) -> None:
        print(f"post-batches: {msg}", file=sys.stderr, flush=True)

    # a keystore opens without eth-account: each cron run is a fresh interpreter (sequencer.txkey)
    account = load_tx_key(args.keystore, password_file=args.password_file, password_env=args.password_env)
    with L1Client(args.l1_rpc) as client, HttpBlockSource(args.sequencer) as source:
        info = source.info()
        rollup = Contract.at(client, "Rollup", args.rollup)
        want_l2 = rollup.call("l2ChainId")
        l1_rollup = str((info.get("l1") or {}).get("rollup") or "")
        if int(info.get("chainId", -1)) != want_l2 or (l1_rollup and l1_rollup.lower() != rollup.address.lower()):
            raise PosterError(f"the sequencer at {args.sequencer} serves L2 chain {info.get('chainId')} "
                              f"for Rollup {l1_rollup or '?'}, not chain {want_l2} of {rollup.address}",
                              code="chain_mismatch")
        sender = TxManager(client, account, TxConfig(confirmations=args.confirmations,
                                                     resubmit_after=args.fee_bump_after, label="poster"),
                           log=log)
        poster = Poster(client, rollup.address, source, sender, max_blocks=args.max_blocks,
                        max_bytes=args.max_bytes, zstd_level=ZSTD_LEVEL if args.zstd_level is None else args.zstd_level,
                        log=log)
        try:
            posted = run(poster, lock_path(args.lock_dir, rollup.address), once=args.once,
                         poll=args.poll, log=log)
        except KeyboardInterrupt:
            return 130
        if posted is not None:
            tip = poster.tip()[0] - 1
            print(f"posted {len(posted)} batches; L1 has L2 blocks up to {tip}", flush=True)
        return 0
