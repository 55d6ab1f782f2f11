// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Rollup} from "optrollup/Rollup.sol";
import {Bridge} from "optrollup/Bridge.sol";
import {Encoding} from "optrollup/Encoding.sol";
import {MockUSDC} from "optrollup/MockUSDC.sol";
import {RollupDriver} from "../base/RollupDriver.sol";
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
/// @dev Canary (`forgetPaidFlag`): after each successful withdrawal payout the Bridge's "paid"
///      flag is wiped with vm.store, simulating a Bridge that forgets it. The invariants must then
///      fail: that shows the fuzzer reaches payouts (and a second payout of the same withdrawal).
contract BridgeHandler is RollupDriver {
    uint256 internal constant MAX_AMOUNT = 1_000_000e6;

    uint8 internal constant KIND_DEPOSIT = 0;
    uint8 internal constant KIND_FORCED = 1;
    /// @notice Forced withdrawals are paid with nonce FORCED_NONCE_BASE + message nonce.
    uint64 internal constant FORCED_NONCE_BASE = uint64(1) << 63;

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
    bool public immutable forgetPaidFlag;
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

    constructor(
        Rollup rollup_,
        MockUSDC token_,
        address poster_,
        uint256[] memory guardianKeys_,
        uint256 threshold_,
        address[] memory actors_,
        bool forgetPaidFlag_
    ) {
        _useSystem(rollup_, poster_, guardianKeys_, threshold_);
        token = token_;
        forgetPaidFlag = forgetPaidFlag_;
        actors = actors_;
        balances = new uint256[](actors_.length);
        nextNonce = new uint64[](actors_.length);
        genesis = genesisHeader(actors_);
        tipHash = Spec.headerHash(genesis);
    }

    // ==========================================================================================
    // Actions
    // ==========================================================================================

    /// @notice An actor deposits for an actor (L1 message, kind 0).
    function deposit(uint256 fromSeed, uint256 toSeed, uint256 amount) external {
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
    function forceWithdrawal(uint256 actorSeed, uint256 recipientSeed, uint256 amount) external {
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
    function l2Withdraw(uint256 actorSeed, uint256 recipientSeed, uint256 amount) external {
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
    function postBatch(uint256 seed) external {
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
    function warp(uint256 seed) external {
        uint256 dt = seed % 16 == 0 ? bound(seed >> 4, 0, 2 days) : bound(seed >> 4, 0, 2 hours);
        vm.warp(block.timestamp + dt);
        calls["warp"]++;
    }

    /// @notice Pays a posted withdrawal: half the time the next payable one, else any (paid,
    ///         rejected or not yet final ones included: those must fail).
    function finalizeWithdrawal(uint256 seed) external {
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
        try bridge.finalizeWithdrawal(Bridge.Withdrawal(w.account, w.recipient, w.amount, w.nonce), p) {
            paidCount[w.account][w.nonce]++;
            totalPaidOut += w.amount;
            if (!legit) unexpectedPayouts++;
            calls["finalizeWithdrawal"]++;
            if (w.nonce >= FORCED_NONCE_BASE) calls["finalizeForcedWithdrawal"]++;
            if (forgetPaidFlag) _forgetPaid(w.account, w.nonce);
        } catch {}
    }

    /// @notice Guardians unpause when paused; otherwise pause one time in 4 (a pause blocks
    ///         most actions, so pauses are kept short and rare).
    function guardianPauseOrUnpause(uint256 seed) external {
        if (_paused()) {
            if (_unpause()) calls["unpause"]++;
        } else if (seed % 4 == 0) {
            if (_pause()) calls["pause"]++;
        }
    }

    /// @notice Guardians reject one of the non-final batches (and every later one), one time in 4
    ///         (rejections undo the runs' progress towards payouts).
    function guardianReject(uint256 seed) external {
        uint256 count = _batchCount();
        uint256 finalCount = _finalCount();
        if (count == finalCount || seed % 4 != 0) return;
        uint256 index = finalCount + (seed >> 2) % (count - finalCount);
        if (!_reject(index, Spec.headerHash(snapshots[index].lastHeader))) return;
        _truncate(index);
        calls["reject"]++;
    }

    function freeze() external {
        if (!_freeze()) return;
        _truncate(_batchCount());
        calls["freeze"]++;
    }

    /// @notice An actor escapes with its collateral in the last final state (no positions;
    ///         freezes first when allowed, as the Bridge does).
    function escape(uint256 actorSeed) external {
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
        try bridge.escape(header, claim, address(0), "") {
            uint256 paid = held - token.balanceOf(address(bridge));
            if (escapeCount[actors[a]]++ != 0 || paid != bal[a]) unexpectedPayouts++;
            totalPaidOut += paid;
            _truncate(_batchCount());
            calls["escape"]++;
        } catch {}
    }

    /// @notice After the freeze, returns a deposit (any message: processed, refunded or forced
    ///         ones must fail).
    function refundDeposit(uint256 seed) external {
        if (!_frozen() || messages.length == 0) return;
        uint256 n = seed % messages.length;
        Message storage m = messages[n];
        (Encoding.BlockHeader memory header, uint64 finalCursor) = _finalHeader();
        try bridge.refundDeposit(n, m.from, m.to, m.amount, header, address(0), "") {
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
