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

    function _canary() internal pure virtual returns (bool) {
        return false;
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
        handler = new BridgeHandler(rollup, token, poster, keys, 2, actors, _canary());

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
    }
}

/// @title BridgeInvariants: handler-based invariant suite over the real Rollup + Bridge.
/// @notice Run: `forge test --root contracts/forge --match-contract '^BridgeInvariants$'`
///         (the canary below must be run on its own and must FAIL).
contract BridgeInvariants is BridgeSystem {
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

/// @title BridgeInvariantsCanary: the same suite with a planted bug (the Bridge forgets that a
///        withdrawal was paid). MUST FAIL: if it passes, the fuzzer never paid a withdrawal twice
///        with these runs/depth, and the passing suite above proves little.
contract BridgeInvariantsCanary is BridgeInvariants {
    function _canary() internal pure override returns (bool) {
        return true;
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
}
