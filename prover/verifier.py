"""Replay verifier: rebuild the L2 chain from L1 data alone and check every commitment.

Given only an L1 JSON-RPC endpoint and the Rollup address, the verifier reads the deployment
(immutables + the genesis bytes of the `RollupDeployed` event), rebuilds block 0 and checks it
against the Rollup's genesis header hash and state root, then for every live batch (the batches
`0..batchCount-1` as they stand now: a batch dropped by a guardian rejection or by the freeze
is skipped, its index reused by the batch that replaced it):

- fetches the `submitBatch` transaction, decodes its arguments, checks `keccak(data)` against
  the stored `dataHash` and the arguments against the stored batch;
- decodes the batch data (prover.batch) and replays each block with the sequencer's own pure
  code (`sequencer.core.chain.replay_block`: every signature, limit and margin check, and the
  liquidation steps: each block starts, right after its Settle txs, with exactly the auction
  starts, takeovers and auction ends that the detection at its marks finds, and every
  Liquidate is checked against its signed fraction and price limit, the auction price and the
  liquidator's margin, docs/liquidation.md);
- checks block numbers are contiguous from `firstBlock`, each block's posted state root,
  withdrawal root and message cursor against the recomputed header, the header chain (the
  batch's `prevHeaderHash` is the previous batch's recomputed last header hash, the genesis
  header hash for the first), the batch's full `lastHeader` and `withdrawalRoots[]` against the
  recomputed ones, and its `marksRoot` against the marks of the replayed state after the last
  block (what escapes are valued at);
- checks every L1 message the blocks process against the Bridge: `DepositTx(account, amount,
  l1Nonce, depositor)` against `Deposited`, `ForcedWithdrawTx(account, recipient, amount,
  l1Nonce)` against `WithdrawalRequested` with that nonce (otherwise a sequencer could mint
  collateral, redirect a refund or invent a withdrawal);
- with the state channels' Adjudicator (the Rollup's own, read from L1; `adjudicator=`
  overrides it), checks every `ChannelConclude` against
  a confirmed `Concluded` event of that channel whose stateHash is the applied state's EIP-712
  digest (a sequencer cannot conclude a channel on its own), and that every conclusion is
  applied in time: a channel concluded on L1 in block N must be closed in the replayed state of
  every batch posted after L1 block N + `conclusion_deadline` (blocks), else the sequencer is
  censoring it.

It also indexes every withdrawal leaf of the batches it checked, so that `withdrawal_proof`
builds the `finalizeWithdrawal` arguments from L1 data alone (prover.forced uses it).

The first mismatch raises `VerificationFailed` naming the batch, the L2 block and (when one
transaction is to blame) the transaction index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cext import keccak256, merkle_proof, merkle_root, parse_address, to_checksum
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import BadBlock, marks_root, replay_block
from sequencer.core.chainspec import Genesis
from sequencer.core.state import State
from sequencer.core.header import Header, WithdrawalLeaf
from sequencer.core.channelmsg import state_digest
from sequencer.core.txs import ChannelConcludeTx, DepositTx, ForcedWithdrawTx, decode_tx
from sequencer.errors import OptrollupError
from sequencer.l1 import Contract, Deployment, L1Client, RollupTracker, SubmittedBatch, read_deployment

from prover.batch import BatchFormatError, decode_batch
from sequencer.l1.conclusions import ConclusionFollower, SeenConclusion

CONCLUSION_DEADLINE = 300
"""L1 blocks (about an hour at 12 s) within which an L1 channel conclusion must be applied."""


class VerificationFailed(OptrollupError):
    """L1 data does not re-execute to the committed roots. `block`/`tx_index` locate the first
    mismatch (None when it is not about one block/transaction), `batch` is the batch index."""

    code = "verification_failed"

    def __init__(self, reason: str, *, batch: int | None = None, block: int | None = None,
                 tx_index: int | None = None) -> None:
        parts = []
        if batch is not None:
            parts.append(f"batch {batch}")
        parts.append(f"L2 block {block}" if block is not None else "L2 block -")
        parts.append(f"transaction {tx_index}" if tx_index is not None else "transaction -")
        super().__init__(", ".join(parts) + f": {reason}")
        self.batch, self.block, self.tx_index, self.reason = batch, block, tx_index, reason


#: a live batch as L1 has it: the BatchSubmitted event of its current occupant.
BatchRef = SubmittedBatch


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


class Verifier:
    """Incremental replay of the rollup at `rollup_address`. `sync()` checks every live batch
    not yet checked and returns how many it checked; it raises VerificationFailed at the first
    mismatch. If batches already checked are dropped (guardian rejection, freeze) the replay
    restarts from genesis on the next `sync()`. L1 is read incrementally, in bounded block
    ranges, by a `RollupTracker`; an L1 reorg it detects voids what it read from dropped blocks."""

    def __init__(self, client: L1Client, rollup_address: str,
                 log: Callable[[str], None] | None = None, *, confirmations: int = 1,
                 adjudicator: str | None = None,
                 conclusion_deadline: int = CONCLUSION_DEADLINE) -> None:
        self.client = client
        self.log = log or (lambda _msg: None)
        self.deployment: Deployment = read_deployment(client, rollup_address)
        self.rollup: Contract = self.deployment.rollup_contract(client)
        self.bridge: Contract = self.deployment.bridge_contract(client)
        self.genesis = self._check_genesis()
        # batches and deposits, read incrementally in bounded ranges (sequencer.l1.rolluptracker)
        self.tracker = RollupTracker(client, self.rollup, self.bridge,
                                     start_block=self.deployment.deployment_block,
                                     confirmations=confirmations)
        # L1 messages by nonce: DepositTx / ForcedWithdrawTx as the Bridge's events say they must be
        self._messages: dict[int, tuple[DepositTx | ForcedWithdrawTx, int]] = {}  # -> (tx, L1 block)
        self._failed: tuple[list[BatchRef], VerificationFailed] | None = None
        # channel conclusions on the Adjudicator, by channel id (sequencer.l1.conclusions)
        self.conclusion_deadline = conclusion_deadline
        adjudicator = adjudicator if adjudicator is not None else self.deployment.adjudicator
        self.conclusions = (None if adjudicator is None else ConclusionFollower(
            client, adjudicator, self.genesis.config.domain,
            start_block=self.deployment.deployment_block, confirmations=confirmations))
        self._concluded: dict[bytes, SeenConclusion] = {}
        self._reset()

    # -- state ----------------------------------------------------------------------------------

    def _check_genesis(self) -> Genesis:
        d = self.deployment
        rollup20 = bytes.fromhex(d.rollup[2:])
        try:
            g = Genesis.from_bytes(d.genesis_config, d.l2_chain_id, rollup20)
        except OptrollupError as exc:
            raise VerificationFailed(f"genesis configuration from RollupDeployed: {exc.message}",
                                     block=0) from None
        _, _, h0 = g.block0()
        if h0.hash() != d.genesis_header_hash:
            raise VerificationFailed(
                f"genesis configuration rebuilds header hash {_hex(h0.hash())}, the Rollup has "
                f"genesisHeaderHash {_hex(d.genesis_header_hash)}", block=0)
        if h0.state_root != d.genesis_state_root:
            raise VerificationFailed(
                f"genesis configuration rebuilds state root {_hex(h0.state_root)}, the Rollup has "
                f"genesisStateRoot {_hex(d.genesis_state_root)}", block=0)
        return g

    def _reset(self) -> None:
        self.state: State
        self.tree: AccountTree
        self.state, self.tree, self.head = self.genesis.block0()
        self.verified: list[BatchRef] = []  # batches checked, in order
        # withdrawal leaves of the checked batches: (account, nonce) -> (batch, block offset,
        # leaf index, leaf); per batch the blocks' leaf lists and withdrawal roots
        self.payouts: dict[tuple[bytes, int], tuple[int, int, int, WithdrawalLeaf]] = {}
        self._batch_leaves: dict[int, tuple[list[list[bytes]], list[bytes]]] = {}

    @property
    def domain(self) -> bytes:
        return self.state.config.domain

    # -- L1 reads -------------------------------------------------------------------------------

    def live_batches(self, at: int) -> list[BatchRef]:
        """The live batches at L1 block `at`: for each index < batchCount, the latest
        BatchSubmitted event with that index (earlier ones were dropped and overwritten).
        Reads the L1 blocks not read yet (batches and deposits) up to `at`."""
        self._follow(at)
        count = self.rollup.call("batchCount", block=at)
        live = self.tracker.live_batches(at)
        out = []
        for i in range(count):
            ref = live[i] if i < len(live) else None
            if ref is None:
                raise VerificationFailed(f"Rollup has batch {i} but no BatchSubmitted event for it",
                                         batch=i)
            out.append(ref)
        return out

    def _follow(self, at: int) -> None:
        up = self.tracker.poll(to_block=at)
        if up.rewound_to is not None:  # an L1 reorg: messages from the dropped blocks are void
            self._messages = {n: m for n, m in self._messages.items() if m[1] <= up.rewound_to}
        for d in up.deposits:
            self._messages[d.nonce] = (DepositTx(d.account, d.amount, d.nonce, parse_address(d.depositor)),
                                       d.l1_block)
        for r in up.withdrawal_requests:
            self._messages[r.nonce] = (ForcedWithdrawTx(r.account, r.recipient, r.amount, r.nonce), r.l1_block)

    def _batch_args(self, ref: BatchRef) -> dict[str, Any]:
        tx = self.client.get_transaction(ref.tx_hash)
        if tx is None:
            raise VerificationFailed(f"L1 transaction {ref.tx_hash} of the batch not found",
                                     batch=ref.index, block=ref.first_block)
        to = (tx.get("to") or "").lower()
        calldata = bytes.fromhex((tx.get("input") or tx.get("data") or "0x")[2:])
        if to != self.rollup.address.lower():
            raise VerificationFailed(
                f"batch was not submitted by a direct call to the Rollup (tx {ref.tx_hash} to "
                f"{to}): its data cannot be read from calldata", batch=ref.index, block=ref.first_block)
        try:
            args = self.rollup.decode_input(calldata)
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a finding
            raise VerificationFailed(f"calldata of {ref.tx_hash} does not decode: {exc}",
                                     batch=ref.index, block=ref.first_block) from None
        if "data" not in args or "withdrawalRoots" not in args or "lastHeader" not in args:
            raise VerificationFailed(f"{ref.tx_hash} is not a submitBatch call", batch=ref.index,
                                     block=ref.first_block)
        return args

    # -- checking -------------------------------------------------------------------------------

    def sync(self, at: int | None = None, limit: int | None = None) -> int:
        """Check the live batches not yet checked, as of L1 block `at` (default: the newest
        block with `confirmations` confirmations, i.e. latest for 1); with `limit`, only the
        first `limit` live batches (e.g. the final ones)."""
        at = self.tracker.events.safe_head() if at is None else at
        live = self.live_batches(at)
        if limit is not None:
            live = live[:limit]
        if self._failed is not None:
            failed_live, failure = self._failed
            if live[:len(failed_live)] == failed_live:
                raise failure  # the bad batch is still live: nothing to re-check
            self._failed = None
            self.log("the failing batch was dropped on L1: replaying from genesis")
            self._reset()
        if any(i >= len(live) or live[i] != ref for i, ref in enumerate(self.verified)):
            self.log(f"batches were dropped or replaced on L1 since the last check "
                     f"({len(self.verified)} checked, {len(live)} live): replaying from genesis")
            self._reset()
        todo = live[len(self.verified):]
        if self.conclusions is not None and todo:
            self._concluded = {c.channel_id: c for c in self.conclusions.poll()}
        for ref in todo:
            try:
                self.check_batch(ref)
            except VerificationFailed as exc:
                # the state is part-way through the bad batch: keep the finding until L1 drops it
                self._failed = (live[:ref.index + 1], exc)
                raise
            self.verified.append(ref)
            self.log(f"batch {ref.index}: L2 blocks {ref.first_block}..{ref.last_block} OK "
                     f"(state root {_hex(ref.state_root)})")
        return len(todo)

    def check_batch(self, ref: BatchRef) -> None:
        """Replay one batch on top of the current head; VerificationFailed on a mismatch."""
        i = ref.index

        def fail(reason: str, block: int | None = None, tx: int | None = None) -> VerificationFailed:
            return VerificationFailed(reason, batch=i, block=block, tx_index=tx)

        args = self._batch_args(ref)
        data: bytes = args["data"]
        lh = args["lastHeader"]
        posted = Header(lh["number"], lh["parentHash"], lh["timestamp"], lh["txRoot"], lh["stateRoot"],
                        lh["withdrawalRoot"], lh["l1MessageCursor"])
        first, last = args["firstBlock"], posted.number
        if keccak256(data) != ref.data_hash:
            raise fail(f"keccak256(data) {_hex(keccak256(data))} != stored dataHash "
                       f"{_hex(ref.data_hash)}", first)
        if (first, last, posted.hash(), posted.state_root, posted.l1_message_cursor, args["marksRoot"]) != (
                ref.first_block, ref.last_block, ref.last_header_hash, ref.state_root, ref.message_cursor,
                ref.marks_root):
            raise fail("submitBatch arguments differ from the BatchSubmitted event", first)
        wroots: list[bytes] = list(args["withdrawalRoots"])
        if merkle_root(wroots) != ref.withdrawals_root:
            raise fail("merkle(withdrawalRoots) != stored withdrawalsRoot", first)
        if first != self.head.number + 1:
            raise fail(f"batch starts at L2 block {first}, expected {self.head.number + 1}", first)
        if args["prevHeaderHash"] != self.head.hash():
            raise fail(f"prevHeaderHash {_hex(args['prevHeaderHash'])} does not link to the "
                       f"recomputed header of L2 block {self.head.number} "
                       f"({_hex(self.head.hash())})", first)
        try:
            blocks = decode_batch(data, self.domain)
        except BatchFormatError as exc:
            raise fail(f"batch data: {exc}", first) from None
        if not blocks or blocks[0].number != first:
            got = blocks[0].number if blocks else "nothing"
            raise fail(f"batch data starts at L2 block {got}, the batch at {first} "
                       f"(block numbers not contiguous)", first)
        if blocks[-1].number != last:
            raise fail(f"batch data covers L2 blocks {first}..{blocks[-1].number}, the batch "
                       f"{first}..{last}", min(last, blocks[-1].number) + 1)
        if len(wroots) != len(blocks):
            raise fail(f"{len(wroots)} withdrawal roots for {len(blocks)} blocks", first)

        block_leaves: list[list[WithdrawalLeaf]] = []
        for k, blk in enumerate(blocks):
            n = blk.number
            bad_message = self._first_bad_message(blk.txs)
            payouts: list[WithdrawalLeaf] = []
            try:
                header = replay_block(self.state, self.tree, self.head, blk.timestamp, blk.txs, payouts)
            except BadBlock as exc:
                if bad_message is not None and (exc.tx_index is None or bad_message[0] < exc.tx_index):
                    raise fail(bad_message[1], n, bad_message[0]) from None
                reason = exc.message.split(": ", 1)[1] if ": " in exc.message else exc.message
                raise fail(reason, n, exc.tx_index) from None
            if bad_message is not None:
                raise fail(bad_message[1], n, bad_message[0])
            block_leaves.append(payouts)
            if header.state_root != blk.state_root:
                raise fail(f"posted stateRoot {_hex(blk.state_root)} != recomputed "
                           f"{_hex(header.state_root)}", n)
            if header.withdrawal_root != blk.withdrawal_root:
                raise fail(f"posted withdrawalRoot {_hex(blk.withdrawal_root)} != recomputed "
                           f"{_hex(header.withdrawal_root)}", n)
            if header.l1_message_cursor != blk.message_cursor:
                raise fail(f"posted l1MessageCursor {blk.message_cursor} != recomputed "
                           f"{header.l1_message_cursor}", n)
            if wroots[k] != header.withdrawal_root:
                raise fail(f"withdrawalRoots[{k}] {_hex(wroots[k])} != recomputed "
                           f"{_hex(header.withdrawal_root)}", n)
            self.head = header
        if self.head != posted:
            mine, theirs = self.head.to_json(), posted.to_json()
            diff = ", ".join(f"{k} {theirs[k]} (recomputed {mine[k]})" for k in mine
                             if k != "hash" and mine[k] != theirs[k])
            raise fail(f"lastHeader differs from the recomputed header of L2 block {self.head.number} "
                       f"in {diff}: header chain broken", self.head.number)
        mroot = marks_root(self.state, self.head.timestamp)
        if mroot != args["marksRoot"]:
            raise fail(f"marksRoot {_hex(args['marksRoot'])} != the marks of the replayed state "
                       f"({_hex(mroot)}): escapes would be valued at wrong marks", self.head.number)
        self._index_payouts(i, block_leaves, wroots)
        for c in self._concluded.values():
            ch = self.state.channels.get(c.channel_id)
            if ch is not None and ch.status == 0 and ref.l1_block > c.l1_block + self.conclusion_deadline:
                raise fail(f"channel {_hex(c.channel_id)} was concluded on L1 in block {c.l1_block} "
                           f"(turn {c.turn}) and is still open after this batch, posted in L1 "
                           f"block {ref.l1_block} (deadline {self.conclusion_deadline} blocks): "
                           "the conclusion was not applied in time", self.head.number)

    def _index_payouts(self, batch: int, block_leaves: list[list[WithdrawalLeaf]], wroots: list[bytes]) -> None:
        self._batch_leaves[batch] = ([[w.leaf() for w in ls] for ls in block_leaves], wroots)
        for k, ls in enumerate(block_leaves):
            for j, w in enumerate(ls):
                self.payouts[(bytes(w.account), w.nonce)] = (batch, k, j, w)

    def find_withdrawal(self, account: bytes, nonce: int) -> tuple[int, WithdrawalLeaf] | None:
        """(live batch index, leaf) of the withdrawal (account, nonce) among the checked
        batches, or None."""
        hit = self.payouts.get((bytes(account), nonce))
        return None if hit is None else (hit[0], hit[3])

    def withdrawal_proof(self, account: bytes, nonce: int) -> tuple[tuple, dict[str, Any]]:
        """`Bridge.finalizeWithdrawal(w, p)` arguments of a checked withdrawal; KeyError if none."""
        batch, k, j, w = self.payouts[(bytes(account), nonce)]
        leaves, wroots = self._batch_leaves[batch]
        proof = {"batchIndex": batch, "blockOffset": k, "blockWithdrawalRoot": wroots[k],
                 "blockProof": merkle_proof(wroots, k), "leafIndex": j, "leafProof": merkle_proof(leaves[k], j)}
        return (to_checksum(w.account), to_checksum(w.recipient), w.amount, w.nonce), proof

    def _first_bad_message(self, txs: tuple[bytes, ...]) -> tuple[int, str] | None:
        """(index, why) of the first DepositTx / ForcedWithdrawTx that is not the Bridge's
        message with its nonce, or None."""
        for j, raw in enumerate(txs):
            try:
                tx = decode_tx(raw)
            except OptrollupError:
                continue  # replay_block reports it
            if isinstance(tx, ChannelConcludeTx):
                s = tx.channelState
                seen = self._concluded.get(s.channelId)
                if seen is None or state_digest(self.domain, s) != seen.state_hash:
                    return j, (f"ChannelConclude of channel {_hex(s.channelId)} at turn "
                               f"{s.turnNum} has no Concluded event with that state on the "
                               "Adjudicator (forged)" if self.conclusions is not None else
                               "ChannelConclude cannot be checked: the verifier was given no "
                               "Adjudicator")
                continue
            if not isinstance(tx, (DepositTx, ForcedWithdrawTx)):
                continue
            kind = type(tx).__name__
            seen = self._messages.get(tx.l1Nonce)
            if seen is None:
                return j, (f"{kind} processes L1 message {tx.l1Nonce}, but the Bridge has no message "
                           f"with that nonce (forged)")
            if seen[0] != tx:
                return j, f"{kind} {_describe(tx)} differs from the Bridge's message {_describe(seen[0])}"
        return None


def _describe(tx: DepositTx | ForcedWithdrawTx) -> str:
    fields = ", ".join(f"{k}={_hex(bytes(v)) if isinstance(v, bytes) else v}" for k, v in tx._asdict().items())
    return f"{type(tx).__name__}({fields})"


def verify(client: L1Client, rollup_address: str, log: Callable[[str], None] | None = None,
           **kw: Any) -> Verifier:
    """Verify everything on L1 now; returns the verifier (its `head` is the last checked L2
    header). Raises VerificationFailed. `kw`: Verifier options (adjudicator=...)."""
    v = Verifier(client, rollup_address, log, **kw)
    v.sync()
    return v
