// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Rollup} from "optrollup/Rollup.sol";
import {Bridge} from "optrollup/Bridge.sol";
import {Encoding} from "optrollup/Encoding.sol";
import {MockUSDC} from "optrollup/MockUSDC.sol";
import {RollupDriver} from "../base/RollupDriver.sol";
import {Vm} from "../base/Vm.sol";
import {Spec} from "../base/Spec.sol";

/// @notice The L2 state the handler starts from: `actors` with zero collateral, no deposit.
function genesisHeader(address[] memory actors) pure returns (Encoding.BlockHeader memory h) {
    uint256[] memory zeros = new uint256[](actors.length);
    (bytes32 stateRoot,) = Spec.stateTree(actors, zeros, 0);
    h.stateRoot = stateRoot;
}

/// @title BridgeHandler: the actors of the invariant suite.
/// @notice Every public function is one fuzzer action; it never reverts (failures of the system
///         under test are caught and leave the model unchanged). The handler keeps a model of L2
///         as an honest sequencer would run it:
///           * actors queue L1 messages: deposits (`deposit`) and forced withdrawals
///             (`forceWithdrawal`); and sign L2 withdrawals (`l2Withdraw`: the L2 balance is
///             debited at once, the leaf waits for the next batch);
///           * the test poster (`postBatch`) processes the queue in nonce order (deposits are
///             credited, forced withdrawals paid out of the balance if it covers them, else
///             refused), puts the withdrawal leaves in 1-3 blocks and commits the resulting
///             state (depth-32 account tree) and message cursor;
///           * time passes (`warp`), guardians pause/unpause and reject, anyone freezes;
///           * anyone pays withdrawals (`finalizeWithdrawal`: any known one, also already paid
///             or rejected ones), escapes and refunds deposits after the freeze.
///         A snapshot of the model is kept per batch, so a rejection or the freeze rolls the model
///         back to the state the Rollup keeps. Ghost variables record every payout.
///         The Rollup's finality and freeze are watched too: after every action the final
///         batches seen so far must still be final and unchanged (`tracked`); the events of
///         each successful payout, refund and freeze are read (vm.recordLogs) and checked
///         against the Rollup's state in the same block.
/// @dev Planted bugs (`bug`), for the canaries:
///      * BUG_FORGET_PAID: after each successful withdrawal payout the Bridge's "paid" flag is
///        wiped with vm.store, simulating a Bridge that forgets it. The payout invariants must
///        then fail: the fuzzer reaches payouts (and a second payout of the same withdrawal).
///      * BUG_PAY_NON_FINAL: when a withdrawal of a non-final batch is tried, the Rollup's
///        `finalWithdrawalsRoot` is mocked to answer anyway (a Rollup without its finality
///        check). "Payouts only from final batches" must then fail.
contract BridgeHandler is RollupDriver {
    uint256 internal constant MAX_AMOUNT = 1_000_000e6;

    uint8 internal constant KIND_DEPOSIT = 0;
    uint8 internal constant KIND_FORCED = 1;
    /// @notice Forced withdrawals are paid with nonce FORCED_NONCE_BASE + message nonce.
    uint64 internal constant FORCED_NONCE_BASE = uint64(1) << 63;

    uint8 public constant BUG_NONE = 0;
    uint8 public constant BUG_FORGET_PAID = 1;
    uint8 public constant BUG_PAY_NON_FINAL = 2;

    /// @notice A withdrawal leaf waiting for the next batch.
    struct Request {
        address account;
        address recipient;
        uint256 amount;
        uint64 nonce;
    }

    /// @notice An L1 message (Bridge queue), by nonce.
    struct Message {
        uint8 kind;
        address from; // depositor, or the L2 account forcing a withdrawal
        address to; // L2 account credited, or the withdrawal's recipient
        uint256 amount;
        bool refunded;
    }

    /// @notice Model state after a batch (index = batch index).
    struct Snapshot {
        uint256[] balances;
        uint64[] nextNonce;
        uint64 cursor;
        Encoding.BlockHeader lastHeader;
        uint256 postId; // key of the batch's block leaves (unique per submission)
    }

    /// @notice A withdrawal leaf that was posted in a batch.
    struct Posted {
        address account;
        address recipient;
        uint256 amount;
        uint64 nonce;
        uint256 batchIndex;
        uint256 postId;
        uint256 blockOffset;
        uint256 leafIndex;
        bool live; // false once its batch was rejected or dropped by the freeze
    }

    MockUSDC public immutable token;
    uint8 public immutable bug;
    address[] internal actors;
    Encoding.BlockHeader internal genesis;

    // ---- the sequencer's current L2 state (last batch + operations not posted yet)
    uint256[] internal balances;
    uint64[] internal nextNonce;
    uint64 internal cursor;
    uint64 internal l2Block;
    bytes32 internal tipHash;
    Request[] internal pending;

    // ---- L1 records
    Message[] internal messages;
    Snapshot[] internal snapshots;
    Posted[] internal posted;
    uint256 internal postCount;
    mapping(uint256 postId => mapping(uint256 offset => bytes32[])) internal blockLeaves;
    mapping(uint256 postId => bytes32[]) internal blockRoots;

    // ---- ghosts
    mapping(address account => mapping(uint64 nonce => uint256)) public paidCount;
    mapping(address account => uint256) public escapeCount;
    uint256 public totalDeposited;
    uint256 public totalPaidOut;
    /// @notice Payouts the model says must not happen (non-final, dropped, double escape, ...).
    uint256 public unexpectedPayouts;
    /// @notice Successful calls per action (for the curious: `forge test -vvv` traces).
    mapping(bytes32 action => uint256) public calls;

    // ---- ghosts of finality and the freeze
    /// @notice WithdrawalFinalized events seen, and those against a batch that was not final
    ///         (before or after the call, same block), or paid while paused and not frozen.
    uint256 public payoutsSeen;
    uint256 public payoutsFromNonFinal;
    uint256 public payoutsWhilePaused;
    /// @notice Header hash of every batch seen final, by index: a final batch never stops being
    ///         final nor changes (`tracked` checks it after every action).
    bytes32[] internal finalHashes;
    uint256 internal trackedBatchCount; // batchCount at the last check
    /// @notice A final batch lost or changed, finalizedBatchCount() going back, or a rejection
    ///         of a batch that was final accepted.
    uint256 public finalityViolations;
    /// @notice RollupFrozen events seen; those that dropped non-final batches; anything wrong
    ///         about a freeze (see _checkFreeze).
    uint256 public freezes;
    uint256 public freezesDroppingBatches;
    uint256 public freezeViolations;
    /// @notice Recorded at the freeze: the final batches kept, the last final header hash and
    ///         its L1 message cursor, by the Rollup and by the model.
    uint256 public frozenFinalCount;
    bytes32 public frozenHeaderHash;
    uint64 public frozenCursor;
    uint64 public frozenModelCursor;
    /// @notice DepositRefunded events seen; those of a deposit the final state had processed
    ///         (nonce below the final cursor), or not a deposit; refunds above a non-zero cursor.
    uint256 public refundsSeen;
    uint256 public refundsOfCredited;
    uint256 public refundsAboveCreditedDeposits;

    constructor(
        Rollup rollup_,
        MockUSDC token_,
        address poster_,
        uint256[] memory guardianKeys_,
        uint256 threshold_,
        address[] memory actors_,
        uint8 bug_
    ) {
        _useSystem(rollup_, poster_, guardianKeys_, threshold_);
        token = token_;
        bug = bug_;
        actors = actors_;
        balances = new uint256[](actors_.length);
        nextNonce = new uint64[](actors_.length);
        genesis = genesisHeader(actors_);
        tipHash = Spec.headerHash(genesis);
    }

    // ==========================================================================================
    // Actions
    // ==========================================================================================

    /// @dev After every action: batches seen final are still final, with the same header hash
    ///      (so finalizedBatchCount() never goes back: a rejection or a freeze only drops
    ///      non-final batches), and newly final batches are recorded. The recorded hashes are
    ///      compared whenever batchCount has changed (a submission, rejection or freeze: what
    ///      may rewrite batches); the count after every action.
    modifier tracked() {
        _;
        _trackFinality();
    }

    /// @notice An actor deposits for an actor (L1 message, kind 0).
    function deposit(uint256 fromSeed, uint256 toSeed, uint256 amount) external tracked {
        address from = actors[fromSeed % actors.length];
        address to = actors[toSeed % actors.length];
        amount = bound(amount, 1, MAX_AMOUNT);
        token.mint(from, amount);
        vm.prank(from);
        token.approve(address(bridge), amount);
        vm.prank(from);
        try bridge.deposit(amount, to) returns (uint256 nonce) {
            require(nonce == messages.length, "handler: message nonce");
            messages.push(Message(KIND_DEPOSIT, from, to, amount, false));
            totalDeposited += amount;
            calls["deposit"]++;
        } catch {}
    }

    /// @notice An actor forces a withdrawal of its L2 collateral through L1 (message, kind 1):
    ///         any amount; the L2 pays it only if the balance covers it when processed.
    function forceWithdrawal(uint256 actorSeed, uint256 recipientSeed, uint256 amount) external tracked {
        address account = actors[actorSeed % actors.length];
        address recipient = actors[recipientSeed % actors.length];
        amount = bound(amount, 1, MAX_AMOUNT);
        vm.prank(account);
        try bridge.requestWithdrawal(amount, recipient) returns (uint256 nonce) {
            require(nonce == messages.length, "handler: message nonce");
            messages.push(Message(KIND_FORCED, account, recipient, amount, false));
            calls["forceWithdrawal"]++;
        } catch {}
    }

    /// @notice A signed L2 Withdraw (model only): debited now, its leaf goes in the next batch.
    function l2Withdraw(uint256 actorSeed, uint256 recipientSeed, uint256 amount) external tracked {
        if (_frozen()) return;
        uint256 a = actorSeed % actors.length;
        if (balances[a] == 0) return;
        amount = bound(amount, 1, balances[a]);
        balances[a] -= amount;
        pending.push(Request(actors[a], actors[recipientSeed % actors.length], amount, nextNonce[a]++));
        calls["l2Withdraw"]++;
    }

    /// @notice A batch being built by the test poster.
    struct Draft {
        uint256 nBlocks;
        uint64 newCursor;
        uint256[] newBalances;
        Request[] leavesInOrder; // pending L2 withdrawals, then the forced ones processed now
        bytes32 stateRoot;
        bytes32[][] leaves; // per block
        bytes32[] roots; // per block
        Encoding.BlockHeader last;
        bytes32 lastHash;
    }

    /// @notice The test poster commits the current L2 state in a batch of 1-3 blocks.
    function postBatch(uint256 seed) external tracked {
        Draft memory d = _draft(seed);
        if (!_submitBatch(l2Block + 1, tipHash, d.last, d.roots)) return;

        // accepted: commit the model
        uint256 batchIndex = snapshots.length;
        uint256 postId = ++postCount;
        for (uint256 b; b < d.nBlocks; ++b) blockLeaves[postId][b] = d.leaves[b];
        blockRoots[postId] = d.roots;
        for (uint256 k; k < d.leavesInOrder.length; ++k) {
            Request memory r = d.leavesInOrder[k];
            posted.push(
                Posted({
                    account: r.account,
                    recipient: r.recipient,
                    amount: r.amount,
                    nonce: r.nonce,
                    batchIndex: batchIndex,
                    postId: postId,
                    blockOffset: k % d.nBlocks,
                    leafIndex: k / d.nBlocks,
                    live: true
                })
            );
        }
        delete pending;
        balances = d.newBalances;
        cursor = d.newCursor;
        l2Block = d.last.number;
        tipHash = d.lastHash;
        snapshots.push(Snapshot(d.newBalances, nextNonce, d.newCursor, d.last, postId));
        calls["postBatch"]++;
    }

    function _draft(uint256 seed) internal view returns (Draft memory d) {
        d.nBlocks = 1 + seed % 3;
        // process the queued L1 messages in nonce order: all of them, or (one time in 8) only
        // some, so that some stay unprocessed (refundable, or overdue: freeze reason 2)
        uint256 waiting = messages.length - cursor;
        d.newCursor = cursor + uint64((seed >> 4) % 8 == 0 ? (seed >> 8) % (waiting + 1) : waiting);
        d.newBalances = balances;
        d.leavesInOrder = new Request[](pending.length + (d.newCursor - cursor));
        uint256 nLeaves;
        for (uint256 k; k < pending.length; ++k) d.leavesInOrder[nLeaves++] = pending[k];
        for (uint256 n = cursor; n < d.newCursor; ++n) {
            Message storage m = messages[n];
            if (m.kind == KIND_DEPOSIT) {
                d.newBalances[_actorIndex(m.to)] += m.amount;
            } else {
                uint256 a = _actorIndex(m.from);
                if (d.newBalances[a] < m.amount) continue; // refused on L2
                d.newBalances[a] -= m.amount;
                d.leavesInOrder[nLeaves++] = Request(m.from, m.to, m.amount, FORCED_NONCE_BASE + uint64(n));
            }
        }
        Request[] memory inOrder = d.leavesInOrder;
        assembly ("memory-safe") {
            mstore(inOrder, nLeaves) // shrink to the leaves actually made
        }
        (d.stateRoot,) = Spec.stateTree(actors, d.newBalances, 0);

        // withdrawal leaves: leaf k goes to block k % nBlocks, position k / nBlocks
        d.leaves = new bytes32[][](d.nBlocks);
        for (uint256 b; b < d.nBlocks; ++b) {
            d.leaves[b] = new bytes32[]((nLeaves + d.nBlocks - 1 - b) / d.nBlocks);
        }
        for (uint256 k; k < nLeaves; ++k) {
            Request memory r = inOrder[k];
            d.leaves[k % d.nBlocks][k / d.nBlocks] = Spec.withdrawalLeaf(r.account, r.recipient, r.amount, r.nonce);
        }
        d.roots = new bytes32[](d.nBlocks);
        d.lastHash = tipHash;
        for (uint256 b; b < d.nBlocks; ++b) {
            d.roots[b] = Spec.root(d.leaves[b]);
            d.last = Encoding.BlockHeader({
                number: l2Block + 1 + uint64(b),
                parentHash: d.lastHash,
                timestamp: uint64(block.timestamp),
                txRoot: bytes32(0),
                stateRoot: d.stateRoot,
                withdrawalRoot: d.roots[b],
                l1MessageCursor: d.newCursor
            });
            d.lastHash = Spec.headerHash(d.last);
        }
    }

    /// @notice Time passes: mostly up to 2 hours (the window is 1 hour), one time in 16 up to
    ///         2 days (the escape delay is 1 day: the freeze should come late in a run).
    function warp(uint256 seed) external tracked {
        uint256 dt = seed % 16 == 0 ? bound(seed >> 4, 0, 2 days) : bound(seed >> 4, 0, 2 hours);
        vm.warp(block.timestamp + dt);
        calls["warp"]++;
    }

    /// @notice Pays a posted withdrawal: half the time the next payable one, else any (paid,
    ///         rejected or not yet final ones included: those must fail).
    function finalizeWithdrawal(uint256 seed) external tracked {
        uint256 n = posted.length;
        if (n == 0) return;
        uint256 i = (seed >> 1) % n;
        if (seed % 2 == 0) {
            uint256 finalCount = _finalCount();
            for (uint256 k; k < n; ++k) {
                Posted storage c = posted[(i + k) % n];
                if (c.live && c.batchIndex < finalCount && paidCount[c.account][c.nonce] == 0) {
                    i = (i + k) % n;
                    break;
                }
            }
        }
        Posted memory w = posted[i];
        bool legit = _payable(i);
        bytes32[] memory leaves = blockLeaves[w.postId][w.blockOffset];
        bytes32[] memory roots = blockRoots[w.postId];
        Bridge.WithdrawalProof memory p = Bridge.WithdrawalProof({
            batchIndex: w.batchIndex,
            blockOffset: w.blockOffset,
            blockWithdrawalRoot: roots[w.blockOffset],
            blockProof: Spec.proof(roots, w.blockOffset),
            leafIndex: w.leafIndex,
            leafProof: Spec.proof(leaves, w.leafIndex)
        });
        bool finalBefore = _isFinal(w.batchIndex);
        bool mocked = bug == BUG_PAY_NON_FINAL && !finalBefore && w.batchIndex < _batchCount();
        if (mocked) _mockFinalWithdrawalsRoot(w.batchIndex);
        vm.recordLogs();
        bool paid;
        try bridge.finalizeWithdrawal(Bridge.Withdrawal(w.account, w.recipient, w.amount, w.nonce), p) {
            paid = true;
        } catch {}
        Vm.Log[] memory logs = vm.getRecordedLogs();
        if (mocked) _clearMocks();
        if (!paid) return;
        _checkPayouts(logs, w.batchIndex, finalBefore);
        paidCount[w.account][w.nonce]++;
        totalPaidOut += w.amount;
        if (!legit) unexpectedPayouts++;
        calls["finalizeWithdrawal"]++;
        if (w.nonce >= FORCED_NONCE_BASE) calls["finalizeForcedWithdrawal"]++;
        if (bug == BUG_FORGET_PAID) _forgetPaid(w.account, w.nonce);
    }

    /// @notice Guardians unpause when paused; otherwise pause one time in 4 (a pause blocks
    ///         most actions, so pauses are kept short and rare).
    function guardianPauseOrUnpause(uint256 seed) external tracked {
        if (_paused()) {
            if (_unpause()) calls["unpause"]++;
        } else if (seed % 4 == 0) {
            if (_pause()) calls["pause"]++;
        }
    }

    /// @notice Guardians reject one of the non-final batches (and every later one), one time in 4
    ///         (rejections undo the runs' progress towards payouts); one time in 4 of those they
    ///         try any batch, final ones included (a valid quorum, which must be refused).
    function guardianReject(uint256 seed) external tracked {
        uint256 count = _batchCount();
        uint256 finalCount = _finalCount();
        if (count == 0 || seed % 4 != 0) return;
        uint256 index;
        if ((seed >> 8) % 4 == 3) {
            index = (seed >> 10) % count;
        } else {
            if (count == finalCount) return;
            index = finalCount + (seed >> 2) % (count - finalCount);
        }
        bool wasFinal = _isFinal(index);
        if (!_reject(index, Spec.headerHash(snapshots[index].lastHeader))) return;
        if (wasFinal) finalityViolations++;
        _truncate(index);
        calls["reject"]++;
    }

    /// @notice Anyone freezes. It must succeed iff freezeReason() != 0 just before (same block).
    function freeze() external tracked {
        FreezeView memory pre = _freezeView();
        vm.recordLogs();
        bool ok = _freeze();
        Vm.Log[] memory logs = vm.getRecordedLogs();
        if (ok != (pre.reason != 0)) freezeViolations++;
        if (!ok) return;
        _truncate(_batchCount());
        if (_checkFreezes(logs, pre) != 1) freezeViolations++;
        calls["freeze"]++;
    }

    /// @notice An actor escapes with its collateral in the last final state (no positions;
    ///         freezes first when allowed, as the Bridge does).
    function escape(uint256 actorSeed) external tracked {
        uint256 a = actorSeed % actors.length;
        if (!_frozen() && !_canFreeze()) return;
        uint256 finalCount = _finalCount(); // what freeze() keeps, in this same block
        uint256[] memory bal = new uint256[](actors.length);
        if (finalCount != 0) bal = snapshots[finalCount - 1].balances;
        (Encoding.BlockHeader memory header,) = _finalHeader();
        (, bytes32[] memory proof) = Spec.stateTree(actors, bal, a);
        Bridge.EscapeClaim memory claim = Bridge.EscapeClaim({
            account: actors[a],
            collateral: bal[a],
            accountIndex: a,
            accountProof: proof,
            positions: new Bridge.Position[](0)
        });
        uint256 held = token.balanceOf(address(bridge));
        FreezeView memory pre = _freezeView();
        vm.recordLogs();
        try bridge.escape(header, claim, address(0), "") {
            Vm.Log[] memory logs = vm.getRecordedLogs();
            uint256 paid = held - token.balanceOf(address(bridge));
            if (escapeCount[actors[a]]++ != 0 || paid != bal[a]) unexpectedPayouts++;
            totalPaidOut += paid;
            _truncate(_batchCount());
            // the first escape freezes (in this same call): the same checks as freeze()
            if (_checkFreezes(logs, pre) != (pre.frozen ? 0 : 1)) freezeViolations++;
            calls["escape"]++;
        } catch {}
    }

    /// @notice After the freeze, returns a deposit (any message: processed, refunded or forced
    ///         ones must fail).
    function refundDeposit(uint256 seed) external tracked {
        if (!_frozen() || messages.length == 0) return;
        uint256 n = seed % messages.length;
        Message storage m = messages[n];
        (Encoding.BlockHeader memory header, uint64 finalCursor) = _finalHeader();
        vm.recordLogs();
        try bridge.refundDeposit(n, m.from, m.to, m.amount, header, address(0), "") {
            _checkRefunds(vm.getRecordedLogs());
            if (m.kind != KIND_DEPOSIT || m.refunded || n < finalCursor) unexpectedPayouts++;
            m.refunded = true;
            totalPaidOut += m.amount;
            calls["refundDeposit"]++;
        } catch {}
    }

    // ==========================================================================================
    // Views for the invariants
    // ==========================================================================================

    /// @notice What the Bridge owes now, by the model, if everything claimable were claimed:
    ///         unpaid withdrawals of final batches, the collateral of the last final state's
    ///         accounts that have not escaped, and deposits that state has not processed (not
    ///         refunded). Non-final batches are not counted: they become final (then their
    ///         debits and credits are inside the final state) or are dropped. Forced withdrawals
    ///         not processed owe nothing extra: their amount is still in the account's balance.
    function owed() external view returns (uint256 total) {
        uint256 finalCount = _finalCount();
        uint256 finalCursor;
        if (finalCount != 0) {
            Snapshot storage s = snapshots[finalCount - 1];
            finalCursor = s.cursor;
            for (uint256 a; a < actors.length; ++a) {
                if (escapeCount[actors[a]] == 0) total += s.balances[a];
            }
        }
        for (uint256 i; i < posted.length; ++i) {
            Posted storage w = posted[i];
            if (w.live && w.batchIndex < finalCount && paidCount[w.account][w.nonce] == 0) total += w.amount;
        }
        for (uint256 n = finalCursor; n < messages.length; ++n) {
            if (messages[n].kind == KIND_DEPOSIT && !messages[n].refunded) total += messages[n].amount;
        }
    }

    /// @notice The largest number of payouts of one (account, nonce), over every posted withdrawal.
    function maxPaidCount() external view returns (uint256 m) {
        for (uint256 i; i < posted.length; ++i) {
            uint256 c = paidCount[posted[i].account][posted[i].nonce];
            if (c > m) m = c;
        }
    }

    /// @notice True iff the model's batches and tip are those the Rollup holds.
    function inSync() external view returns (bool) {
        if (snapshots.length != _batchCount()) return false;
        (uint64 tipBlock, bytes32 tipHeaderHash) = _tip();
        return tipBlock == l2Block && tipHeaderHash == tipHash;
    }

    function postedCount() external view returns (uint256) {
        return posted.length;
    }

    /// @notice True iff isFinal(i) == (i < finalizedBatchCount()) for every i <= batchCount
    ///         (final batches are exactly a prefix; one past the end is never final).
    function finalIsAPrefix() external view returns (bool) {
        uint256 count = _batchCount();
        uint256 k = _finalCount();
        if (k > count) return false;
        for (uint256 i; i <= count; ++i) {
            if (_isFinal(i) != (i < k)) return false;
        }
        return true;
    }

    /// @notice After the freeze: the Rollup still holds exactly the batches final at the freeze,
    ///         all final, and the last final header is the one recorded then. True before it.
    function frozenStateKept() external view returns (bool) {
        if (!_frozen()) return freezes == 0;
        (uint256 k, bytes32 headerHash,,) = _lastFinalState();
        return freezes == 1 && _batchCount() == frozenFinalCount && k == frozenFinalCount
            && headerHash == frozenHeaderHash;
    }

    /// @notice Messages the model saw refunded below the final cursor recorded at the freeze.
    function refundedBelowFinalCursor() external view returns (uint256 bad) {
        for (uint256 n; n < messages.length; ++n) {
            if (messages[n].refunded && (n < frozenCursor || n < frozenModelCursor)) bad++;
        }
    }

    // ==========================================================================================
    // Internals
    // ==========================================================================================

    /// @dev Posted withdrawal `i` may be paid now: live, in a final batch, never paid. A dead
    ///      entry (its batch was rejected) may also be paid when the re-posted batch at the same
    ///      index holds the same leaf, live: the proof may then verify even with another
    ///      (block, position) split, since a block with one withdrawal has that leaf as its root
    ///      (the two-level proof is not unique; it pays the same leaf, once).
    function _payable(uint256 i) internal view returns (bool) {
        Posted storage w = posted[i];
        if (paidCount[w.account][w.nonce] != 0 || w.batchIndex >= _finalCount()) return false;
        if (w.live) return true;
        for (uint256 k; k < posted.length; ++k) {
            Posted storage t = posted[k];
            if (
                t.live && t.batchIndex == w.batchIndex && t.account == w.account && t.recipient == w.recipient
                    && t.amount == w.amount && t.nonce == w.nonce
            ) return true;
        }
        return false;
    }

    /// @dev Batches `from..` are gone (rejected or dropped by the freeze): roll the model back.
    function _truncate(uint256 from) internal {
        if (snapshots.length <= from && pending.length == 0) return;
        for (uint256 i; i < posted.length; ++i) {
            if (posted[i].batchIndex >= from) posted[i].live = false;
        }
        while (snapshots.length > from) snapshots.pop();
        delete pending;
        if (from == 0) {
            balances = new uint256[](actors.length);
            nextNonce = new uint64[](actors.length);
            cursor = 0;
            l2Block = 0;
            tipHash = Spec.headerHash(genesis);
        } else {
            Snapshot storage s = snapshots[from - 1];
            balances = s.balances;
            nextNonce = s.nextNonce;
            cursor = s.cursor;
            l2Block = s.lastHeader.number;
            tipHash = Spec.headerHash(s.lastHeader);
        }
    }

    /// @dev See `tracked`.
    function _trackFinality() internal {
        uint256 count = _batchCount();
        uint256 k = _finalCount();
        uint256 seen = finalHashes.length;
        if (k < seen) finalityViolations++;
        if (count != trackedBatchCount) {
            trackedBatchCount = count;
            for (uint256 i; i < seen && i < k; ++i) {
                if (_batchHeaderHash(i) != finalHashes[i]) finalityViolations++;
            }
        }
        for (uint256 i = seen; i < k; ++i) finalHashes.push(_batchHeaderHash(i));
    }

    /// @dev Every WithdrawalFinalized in `logs` (one successful finalizeWithdrawal, for batch
    ///      `batchIndex`, final before the call iff `finalBefore`): its batch is final now (same
    ///      block as the payout), was final before, and the Rollup is not paused unless frozen.
    function _checkPayouts(Vm.Log[] memory logs, uint256 batchIndex, bool finalBefore) internal {
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory l = logs[i];
            if (l.emitter != address(bridge) || l.topics[0] != Bridge.WithdrawalFinalized.selector) continue;
            (, uint256 paidFrom) = abi.decode(l.data, (uint256, uint256));
            payoutsSeen++;
            if (paidFrom != batchIndex || !finalBefore || !_isFinal(paidFrom) || paidFrom >= _finalCount()) {
                payoutsFromNonFinal++;
            }
            if (_paused() && !_frozen()) payoutsWhilePaused++;
        }
    }

    /// @notice The Rollup's finality/freeze view at one moment (taken just before a freeze call).
    struct FreezeView {
        bool frozen;
        uint8 reason;
        uint256 batchCount;
        uint256 finalCount;
        bytes32 headerHash;
        bytes32 stateRoot;
        bytes32 marksRoot;
    }

    function _freezeView() internal view returns (FreezeView memory v) {
        v.frozen = _frozen();
        v.reason = _freezeReason();
        v.batchCount = _batchCount();
        (v.finalCount, v.headerHash, v.stateRoot, v.marksRoot) = _lastFinalState();
    }

    /// @dev Checks every RollupFrozen in `logs` (one successful call, same block as `pre`, the
    ///      model already rolled back) and returns how many there were. A freeze keeps exactly
    ///      the final prefix: the event and the Rollup report the final count and last final
    ///      state of just before; batchCount is that count; batches below it are final, none
    ///      above; the reason is the one freezeReason() gave.
    function _checkFreezes(Vm.Log[] memory logs, FreezeView memory pre) internal returns (uint256 found) {
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory l = logs[i];
            if (l.emitter != address(rollup) || l.topics[0] != Rollup.RollupFrozen.selector) continue;
            ++found;
            freezes++;
            (uint256 k, bytes32 headerHash, bytes32 stateRoot, uint8 reason) =
                abi.decode(l.data, (uint256, bytes32, bytes32, uint8));
            if (pre.batchCount > pre.finalCount) freezesDroppingBatches++;
            bool bad = pre.frozen || k != pre.finalCount || headerHash != pre.headerHash
                || stateRoot != pre.stateRoot || reason == 0 || reason > 4 || reason != pre.reason;
            FreezeView memory post = _freezeView();
            bad = bad || !post.frozen || post.reason != 0 || post.batchCount != k || post.finalCount != k
                || post.headerHash != pre.headerHash || post.stateRoot != pre.stateRoot
                || post.marksRoot != pre.marksRoot;
            for (uint256 j; j < k; ++j) {
                if (!_isFinal(j)) bad = true;
            }
            if (_isFinal(k)) bad = true;
            if (bad) freezeViolations++;
            frozenFinalCount = k;
            frozenHeaderHash = headerHash;
            frozenCursor = k == 0 ? 0 : _batchCursor(k - 1);
            frozenModelCursor = cursor; // the model was rolled back to the final state
        }
    }

    /// @dev Every DepositRefunded in `logs`: after a freeze, of a deposit (not a forced
    ///      withdrawal) at or past the final header's l1MessageCursor, by the Rollup's record and
    ///      by the model (whose final balances credit exactly the deposits below its cursor).
    function _checkRefunds(Vm.Log[] memory logs) internal {
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory l = logs[i];
            if (l.emitter != address(bridge) || l.topics[0] != Bridge.DepositRefunded.selector) continue;
            uint256 nonce = uint256(l.topics[1]);
            refundsSeen++;
            if (
                !_frozen() || freezes == 0 || nonce < frozenCursor || nonce < frozenModelCursor
                    || nonce >= messages.length || messages[nonce].kind != KIND_DEPOSIT
            ) refundsOfCredited++;
            if (frozenCursor > 0) refundsAboveCreditedDeposits++;
        }
    }

    function _actorIndex(address account) internal view returns (uint256) {
        for (uint256 a; a < actors.length; ++a) {
            if (actors[a] == account) return a;
        }
        revert("handler: not an actor");
    }

    function _finalHeader() internal view returns (Encoding.BlockHeader memory header, uint64 finalCursor) {
        uint256 finalCount = _finalCount();
        if (finalCount == 0) return (genesis, 0);
        Snapshot storage s = snapshots[finalCount - 1];
        return (s.lastHeader, s.cursor);
    }

    /// @dev Canary: clears the Bridge's paid flag of (account, nonce). The flag's slot is found
    ///      by probing `keccak(nonce, keccak(account, slot))` for the mapping's slot number, so
    ///      no storage layout is hard-coded.
    function _forgetPaid(address account, uint64 nonce) internal {
        for (uint256 slot; slot < 32; ++slot) {
            bytes32 flagSlot = keccak256(abi.encode(uint256(nonce), keccak256(abi.encode(account, slot))));
            if (vm.load(address(bridge), flagSlot) == bytes32(uint256(1))) {
                vm.store(address(bridge), flagSlot, bytes32(0));
                require(!bridge.isWithdrawalPaid(account, nonce), "canary: wrong slot");
                return;
            }
        }
        revert("canary: paid flag not found");
    }
}
