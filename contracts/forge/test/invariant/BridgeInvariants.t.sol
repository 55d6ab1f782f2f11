// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Rollup} from "optrollup/Rollup.sol";
import {Bridge} from "optrollup/Bridge.sol";
import {MockUSDC} from "optrollup/MockUSDC.sol";
import {TestBase} from "../base/TestBase.sol";
import {SystemParams, deploySystem} from "../base/RollupDriver.sol";
import {Spec} from "../base/Spec.sol";
import {BridgeHandler, genesisHeader} from "./BridgeHandler.sol";

/// @title BridgeSystem: a Rollup + Bridge + MockUSDC and the handler that drives them.
abstract contract BridgeSystem is TestBase {
    uint64 internal constant WINDOW = 1 hours;
    uint64 internal constant ESCAPE_DELAY = 1 days;

    MockUSDC internal token;
    Rollup internal rollup;
    Bridge internal bridge;
    BridgeHandler internal handler;

    /// @dev The planted bug of a canary (BridgeHandler.BUG_*), none by default.
    function _bug() internal pure virtual returns (uint8) {
        return 0;
    }

    function setUp() public {
        vm.warp(1_700_000_000);
        token = new MockUSDC();
        address[] memory actors = new address[](4);
        for (uint256 i; i < actors.length; ++i) actors[i] = vm.addr(0xA11CE + i);
        uint256[] memory keys = new uint256[](3);
        for (uint256 i; i < keys.length; ++i) keys[i] = 0x6A4D + i;
        address poster = vm.addr(0x9057);

        (rollup, bridge) = deploySystem(
            SystemParams({
                poster: poster,
                guardianKeys: keys,
                threshold: 2,
                challengeWindow: WINDOW,
                postingInterval: 1 hours,
                inclusionDelay: 2 hours,
                escapeDelay: ESCAPE_DELAY,
                rotationDelay: 3 hours,
                genesisHeaderHash: Spec.headerHash(genesisHeader(actors)),
                genesisStateRoot: genesisHeader(actors).stateRoot,
                token: address(token)
            })
        );
        handler = new BridgeHandler(rollup, token, poster, keys, 2, actors, _bug());

        bytes4[] memory selectors = new bytes4[](11);
        selectors[0] = BridgeHandler.deposit.selector;
        selectors[1] = BridgeHandler.forceWithdrawal.selector;
        selectors[2] = BridgeHandler.l2Withdraw.selector;
        selectors[3] = BridgeHandler.postBatch.selector;
        selectors[4] = BridgeHandler.warp.selector;
        selectors[5] = BridgeHandler.finalizeWithdrawal.selector;
        selectors[6] = BridgeHandler.guardianPauseOrUnpause.selector;
        selectors[7] = BridgeHandler.guardianReject.selector;
        selectors[8] = BridgeHandler.freeze.selector;
        selectors[9] = BridgeHandler.escape.selector;
        selectors[10] = BridgeHandler.refundDeposit.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    /// @dev Every invariant at once (for the scripted tests).
    function _checkAll() internal view {
        vm.assertLe(handler.maxPaidCount(), 1, "a withdrawal was paid twice");
        vm.assertEq(handler.unexpectedPayouts(), 0, "unexpected payout");
        uint256 balance = token.balanceOf(address(bridge));
        vm.assertEq(balance, handler.totalDeposited() - handler.totalPaidOut(), "Bridge balance vs ghost ledger");
        vm.assertEq(balance, handler.owed(), "Bridge balance vs liabilities");
        vm.assertTrue(handler.inSync(), "handler model out of sync with the Rollup");
        _checkPayoutsFinal();
        _checkFinalityPrefix();
        _checkFreezeKeepsPrefix();
        _checkRefunds();
    }

    function _checkPayoutsFinal() internal view {
        vm.assertEq(handler.payoutsFromNonFinal(), 0, "a withdrawal was paid from a non-final batch");
        vm.assertEq(handler.payoutsWhilePaused(), 0, "a withdrawal was paid while paused (not frozen)");
    }

    function _checkFinalityPrefix() internal view {
        vm.assertEq(handler.finalityViolations(), 0, "a final batch was lost or changed");
        vm.assertTrue(handler.finalIsAPrefix(), "final batches are not a prefix");
    }

    function _checkFreezeKeepsPrefix() internal view {
        vm.assertEq(handler.freezeViolations(), 0, "a freeze did not keep exactly the final prefix");
        vm.assertTrue(handler.frozenStateKept(), "the frozen Rollup changed");
    }

    function _checkRefunds() internal view {
        vm.assertEq(handler.refundsOfCredited(), 0, "a refund covered a credited deposit");
        vm.assertEq(handler.refundedBelowFinalCursor(), 0, "a deposit below the final cursor is refunded");
    }
}

/// @title BridgePayoutInvariants: the payout and accounting invariants (the planted-bug canary
///        BridgeInvariantsCanary runs exactly these).
abstract contract BridgePayoutInvariants is BridgeSystem {
    /// @notice Each (account, nonce) withdrawal is paid at most once, whatever batch proves it.
    function invariant_withdrawalPaidAtMostOnce() public view {
        vm.assertLe(handler.maxPaidCount(), 1, "a withdrawal was paid twice");
    }

    /// @notice The Bridge holds at least what it still owes (final-state view).
    function invariant_bridgeCoversWhatItOwes() public view {
        vm.assertGe(token.balanceOf(address(bridge)), handler.owed(), "Bridge balance below what it owes");
    }

    /// @notice Nothing is paid that the model says is not payable (non-final or dropped
    ///         withdrawal, second escape, refund of a credited or refunded deposit).
    function invariant_noUnexpectedPayout() public view {
        vm.assertEq(handler.unexpectedPayouts(), 0, "unexpected payout");
    }

    /// @notice The Bridge's balance is exactly deposits minus the payouts the handler saw, and,
    ///         with an honest poster, exactly what it owes (no funds stuck, none missing).
    function invariant_accountingCloses() public view {
        uint256 balance = token.balanceOf(address(bridge));
        vm.assertEq(balance, handler.totalDeposited() - handler.totalPaidOut(), "Bridge balance vs ghost ledger");
        vm.assertEq(balance, handler.owed(), "Bridge balance vs liabilities");
    }

    /// @notice The handler's model follows the Rollup (rejections and the freeze included).
    function invariant_modelInSync() public view {
        vm.assertTrue(handler.inSync(), "handler model out of sync with the Rollup");
    }
}

/// @title BridgeInvariants: handler-based invariant suite over the real Rollup + Bridge: the
///        payout invariants above, and the Rollup's finality and freeze as the Bridge relies on
///        them.
/// @notice Run: `forge test --root contracts/forge --match-contract '^BridgeInvariants$'`
///         (the canaries below must be run on their own and must FAIL).
contract BridgeInvariants is BridgePayoutInvariants {
    /// @notice Forge runs one campaign per invariant and calls this at the end of every run of
    ///         each: the handler's records for the four invariants below (counters that stay
    ///         raised once a violation is seen) are thus checked over the runs of all nine
    ///         campaigns, which lets those four run shorter campaigns of their own (inline
    ///         config below) for their per-call checks.
    function afterInvariant() public view {
        _checkPayoutsFinal();
        _checkFinalityPrefix();
        _checkFreezeKeepsPrefix();
        _checkRefunds();
    }

    /// @notice Every WithdrawalFinalized the handler saw was against a batch final at that
    ///         moment (checked before and after the call, same block), never while paused
    ///         (unless frozen).
    /// forge-config: default.invariant.runs = 32
    function invariant_payoutsOnlyFromFinalBatches() public view {
        _checkPayoutsFinal();
    }

    /// @notice Finality is a monotone prefix: isFinal(i) iff i < finalizedBatchCount(); a batch
    ///         seen final stays final with the same header hash (finalizedBatchCount() never
    ///         goes back: rejections and the freeze drop only non-final batches; guardians
    ///         trying to reject a final batch are refused).
    /// forge-config: default.invariant.runs = 32
    function invariant_finalityIsAMonotonePrefix() public view {
        _checkFinalityPrefix();
    }

    /// @notice A freeze succeeds iff freezeReason() != 0 and keeps exactly the final prefix:
    ///         batchCount becomes the finalizedBatchCount() of just before (same block), those
    ///         batches stay final, lastFinalState() is unchanged, and stays so afterwards.
    /// forge-config: default.invariant.runs = 32
    function invariant_freezeKeepsExactlyTheFinalPrefix() public view {
        _checkFreezeKeepsPrefix();
    }

    /// @notice Every DepositRefunded is of a deposit at or past the final header's
    ///         l1MessageCursor at the freeze (by the Rollup's record and by the model): never a
    ///         deposit the final state credited.
    /// forge-config: default.invariant.runs = 32
    function invariant_refundNeverCoversACreditedDeposit() public view {
        _checkRefunds();
    }
}

/// @title BridgeInvariantsCanary: the same suite with a planted bug (the Bridge forgets that a
///        withdrawal was paid). MUST FAIL: if it passes, the fuzzer never paid a withdrawal twice
///        with these runs/depth, and the passing suite above proves little.
contract BridgeInvariantsCanary is BridgePayoutInvariants {
    function _bug() internal pure override returns (uint8) {
        return 1; // BUG_FORGET_PAID
    }
}

/// @title BridgeFinalityCanary: a planted bug in the Rollup's finality check (the handler mocks
///        `finalWithdrawalsRoot` to answer for non-final batches). MUST FAIL on
///        `invariant_payoutsOnlyFromFinalBatches` with "paid from a non-final batch": the fuzzer
///        does try to pay withdrawals of non-final batches, and the invariant catches a payout.
contract BridgeFinalityCanary is BridgeSystem {
    function _bug() internal pure override returns (uint8) {
        return 2; // BUG_PAY_NON_FINAL
    }

    function invariant_payoutsOnlyFromFinalBatches() public view {
        _checkPayoutsFinal();
    }
}

/// @title BridgeHandlerTest: scripted walks through the handler, so that the plumbing the fuzzer
///        relies on (proofs, state roots, headers, rollbacks) is known to reach every payout.
contract BridgeHandlerTest is BridgeSystem {
    function test_withdrawalIsPaidOnce() public {
        handler.deposit(0, 1, 500e6); // actor 0 deposits for actor 1
        handler.postBatch(17); // 3 blocks, processes the deposit
        handler.l2Withdraw(1, 2, 200e6);
        handler.postBatch(0); // 1 block with the withdrawal
        vm.assertEq(handler.calls("postBatch"), 2, "batches posted");
        handler.finalizeWithdrawal(0);
        vm.assertEq(handler.calls("finalizeWithdrawal"), 0, "paid before the window");
        vm.warp(block.timestamp + 1 hours);
        handler.finalizeWithdrawal(0);
        vm.assertEq(handler.calls("finalizeWithdrawal"), 1, "not paid once final");
        vm.assertEq(token.balanceOf(vm.addr(0xA11CE + 2)), 200e6, "recipient");
        handler.finalizeWithdrawal(1); // the same one again
        vm.assertEq(handler.calls("finalizeWithdrawal"), 1, "paid twice");
        _checkAll();
    }

    function test_forcedWithdrawalIsProcessedAndPaid() public {
        handler.deposit(0, 1, 500e6);
        handler.forceWithdrawal(1, 3, 120e6); // actor 1 forces 120 to actor 3
        handler.forceWithdrawal(2, 3, 1e6); // actor 2 has nothing: refused on L2
        vm.assertEq(handler.calls("forceWithdrawal"), 2, "queued");
        handler.postBatch(16); // 1 block, processes the three messages
        vm.assertEq(handler.postedCount(), 1, "one forced withdrawal leaf");
        vm.warp(block.timestamp + 1 hours);
        handler.finalizeWithdrawal(0);
        vm.assertEq(handler.calls("finalizeWithdrawal"), 1, "forced withdrawal paid");
        vm.assertEq(token.balanceOf(vm.addr(0xA11CE + 3)), 120e6, "recipient");
        vm.assertTrue(bridge.isWithdrawalPaid(vm.addr(0xA11CE + 1), (uint64(1) << 63) + 1), "nonce 2^63 + 1");
        _checkAll();
    }

    function test_rejectRollsBackAndEscapeAndRefundPayEverything() public {
        handler.deposit(0, 1, 500e6);
        handler.postBatch(17); // batch 0 credits deposit 0
        handler.l2Withdraw(1, 1, 100e6);
        handler.postBatch(0); // batch 1 holds the withdrawal
        handler.guardianReject(4); // batch 1 dropped
        vm.assertEq(handler.calls("reject"), 1, "reject");
        _checkAll();
        handler.l2Withdraw(1, 3, 50e6);
        handler.postBatch(0); // batch 1 again, another withdrawal
        handler.deposit(2, 2, 300e6); // never credited
        vm.warp(block.timestamp + 1 hours);
        handler.finalizeWithdrawal(0);
        handler.finalizeWithdrawal(2);
        vm.assertEq(handler.calls("finalizeWithdrawal"), 1, "withdrawal");
        _checkAll();
        vm.warp(block.timestamp + 1 days + 1); // nothing new final for > escapeDelay
        handler.escape(1);
        vm.assertEq(handler.calls("escape"), 1, "escape");
        vm.assertTrue(rollup.frozen(), "escape froze");
        handler.escape(1);
        vm.assertEq(handler.calls("escape"), 1, "escaped twice");
        handler.refundDeposit(0); // credited: refused
        handler.refundDeposit(1);
        vm.assertEq(handler.calls("refundDeposit"), 1, "refund");
        _checkAll();
        vm.assertEq(token.balanceOf(address(bridge)), 0, "everything paid out");
        vm.assertEq(handler.payoutsSeen(), 1, "payout events checked");
    }

    function test_freezeKeepsTheFinalPrefixAndRefundsOnlyUncredited() public {
        handler.deposit(0, 1, 500e6); // nonce 0
        handler.postBatch(17); // batch 0 credits it
        vm.warp(block.timestamp + 1 hours); // batch 0 final
        handler.deposit(2, 2, 300e6); // nonce 1, never processed
        handler.freeze(); // nothing overdue yet: refused
        vm.assertEq(handler.freezes(), 0, "frozen too early");
        vm.warp(block.timestamp + 2 hours + 1); // nonce 1 overdue: freeze reason 2
        handler.postBatch(0); // batch 1: one block, processes no message, not final
        vm.assertEq(rollup.batchCount(), 2, "batch 1 posted");
        vm.assertEq(rollup.freezeReason(), 2, "reason 2");
        handler.freeze();
        vm.assertEq(handler.freezes(), 1, "frozen");
        vm.assertEq(handler.freezesDroppingBatches(), 1, "batch 1 dropped");
        vm.assertEq(rollup.batchCount(), 1, "final prefix kept");
        vm.assertEq(handler.frozenFinalCount(), 1, "final count recorded");
        vm.assertEq(uint256(handler.frozenCursor()), 1, "final cursor recorded");
        handler.freeze(); // again: refused
        handler.refundDeposit(0); // credited: refused
        handler.refundDeposit(1);
        vm.assertEq(handler.calls("refundDeposit"), 1, "refund");
        vm.assertEq(handler.refundsSeen(), 1, "refund events checked");
        vm.assertEq(handler.refundsAboveCreditedDeposits(), 1, "refund above a credited deposit");
        _checkAll();
    }
}

/// @title BridgeReachabilityCanary: probes that MUST FAIL, each as soon as the fuzzer has made
///        one kind of payout (or rejection) happen with the configured runs/depth. A probe that
///        passes means the invariants above were never exercised on that path.
contract BridgeReachabilityCanary is BridgeSystem {
    function invariant_probeWithdrawalNeverPaid() public view {
        vm.assertEq(handler.calls("finalizeWithdrawal"), 0, "probe: a withdrawal was paid");
    }

    function invariant_probeForcedWithdrawalNeverPaid() public view {
        vm.assertEq(handler.calls("finalizeForcedWithdrawal"), 0, "probe: a forced withdrawal was paid");
    }

    function invariant_probeNoEscape() public view {
        vm.assertEq(handler.calls("escape"), 0, "probe: an account escaped");
    }

    function invariant_probeNoRefund() public view {
        vm.assertEq(handler.calls("refundDeposit"), 0, "probe: a deposit was refunded");
    }

    function invariant_probeNoReject() public view {
        vm.assertEq(handler.calls("reject"), 0, "probe: a batch was rejected");
    }

    function invariant_probeNoFreeze() public view {
        vm.assertEq(handler.freezes(), 0, "probe: the Rollup was frozen");
    }

    /// @dev The freeze invariant is exercised where it matters: non-final batches dropped.
    function invariant_probeNoFreezeDroppingBatches() public view {
        vm.assertEq(handler.freezesDroppingBatches(), 0, "probe: a freeze dropped non-final batches");
    }

    /// @dev The refund invariant is exercised where it matters: a refund after a freeze whose
    ///      final state had credited deposits (cursor > 0).
    function invariant_probeNoRefundAboveCreditedDeposits() public view {
        vm.assertEq(handler.refundsAboveCreditedDeposits(), 0, "probe: a refund past credited deposits");
    }
}
