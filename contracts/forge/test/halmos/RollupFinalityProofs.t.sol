// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {MockUSDC} from "optrollup/MockUSDC.sol";
import {Rollup} from "optrollup/Rollup.sol";
import {Encoding} from "optrollup/Encoding.sol";
import {RollupDriver, SystemParams, deploySystem} from "../base/RollupDriver.sol";
import {Spec} from "../base/Spec.sol";

/// @notice A Rollup with one guardian (threshold 1) and helpers to post one-block batches.
abstract contract RollupFinalitySetup is RollupDriver {
    uint64 internal constant WINDOW = 1 hours;
    uint64 internal constant ESCAPE_DELAY = 1 days;
    uint256 internal constant START = 1_700_000_000;

    function setUp() public {
        vm.warp(START);
        MockUSDC token = new MockUSDC();
        uint256[] memory keys = new uint256[](1);
        keys[0] = 0x6A4D;
        address poster_ = address(0x9057);
        (Rollup r,) = deploySystem(
            SystemParams({
                poster: poster_,
                guardianKeys: keys,
                threshold: 1,
                challengeWindow: WINDOW,
                postingInterval: 1 hours,
                inclusionDelay: 2 hours,
                escapeDelay: ESCAPE_DELAY,
                rotationDelay: 3 hours,
                genesisHeaderHash: keccak256("genesis"),
                genesisStateRoot: bytes32(0),
                token: address(token)
            })
        );
        _useSystem(r, poster_, keys, 1);
    }

    bytes32 internal tipHash = keccak256("genesis");

    /// @dev secp256k1 n / 2 (Signatures.HALF_N).
    uint256 internal constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    /// @dev Guardian signatures are symbolic; only their validity matters here, not their
    ///      encoding: one shape (v = 27, low s), so that a guardian action is one path, not four.
    function _signatureShape(uint8 v, bytes32 s) internal pure override {
        vm.assume(v == 27 && uint256(s) <= HALF_N);
    }

    function _later(uint32 dt) internal {
        vm.warp(block.timestamp + dt);
    }

    /// @dev Appends batch number `i` (one block, L2 block i + 1) and requires that it was accepted.
    function _post(uint64 i) internal {
        Encoding.BlockHeader memory h;
        h.number = i + 1;
        h.parentHash = tipHash;
        assert(_submitBatch(i + 1, tipHash, h, new bytes32[](1)));
        tipHash = Spec.headerHash(h);
    }

    function _assertPrefix() internal view {
        uint256 k = _finalCount();
        for (uint256 i; i < 4; ++i) {
            assert(_isFinal(i) == (i < k)); // also: index 3 does not exist, never final
        }
    }
}

/// @title RollupFinalityProofs: halmos proofs about `Rollup.isFinal` / `finalizedBatchCount` over
///        symbolic submission times, pause times and clock readings (up to three batches).
/// @notice Run: `halmos --root contracts/forge --contract RollupFinalityProofs --function check_ --loop 32`.
/// @dev Written against the Rollup of commit 69368cd (live clock), through RollupDriver: when the
///      Rollup's ABI changes, only RollupDriver should need changing; when its finality rule
///      changes, these statements are the ones to revisit.
///      Every time step is a symbolic uint32 (so sums cannot overflow uint64 timestamps). Guardian
///      signatures are symbolic too (halmos models ecrecover as an uninterpreted function tied to
///      vm.sign), so the pause/unpause paths are those where a valid quorum is given.
contract RollupFinalityProofs is RollupFinalitySetup {
    /// @notice Final batches are exactly the prefix 0..finalizedBatchCount()-1, for any
    ///         submission times and any clock reading.
    function check_final_batches_are_a_prefix(uint32 d0, uint32 d1, uint32 d2, uint32 dNow) public {
        _later(d0);
        _post(0);
        _later(d1);
        _post(1);
        _later(d2);
        _post(2);
        _later(dNow);
        _assertPrefix();
    }

    /// @notice Batch i is final iff challengeWindow seconds have passed since its submission.
    function check_final_exactly_after_the_window(uint32 d0, uint32 d1, uint32 dNow) public {
        _later(d0);
        uint256 t0 = block.timestamp;
        _post(0);
        _later(d1);
        uint256 t1 = block.timestamp;
        _post(1);
        _later(dNow);
        assert(_isFinal(0) == (block.timestamp >= t0 + WINDOW));
        assert(_isFinal(1) == (block.timestamp >= t1 + WINDOW));
    }

    /// @notice A pause stops the live clock (nothing becomes final while paused) and gives its
    ///         time back: after the unpause, a batch is final iff challengeWindow seconds of
    ///         UNPAUSED time have passed since its submission. Finality is never lost.
    function check_pause_gives_time_back(uint32 d0, uint32 dPause, uint32 dHeld, uint32 dAfter) public {
        _later(d0);
        uint256 s = block.timestamp;
        _post(0);
        _later(dPause);
        uint256 before = _finalCount();
        vm.assume(_pause());
        uint256 tp = block.timestamp;
        assert(_finalCount() == before);
        _later(dHeld);
        assert(_finalCount() == before); // the clock is stopped
        vm.assume(_unpause());
        uint256 held = block.timestamp - tp;
        assert(_finalCount() == before); // no batch becomes final at the unpause itself
        _later(dAfter);
        assert(_finalCount() >= before);
        assert(_isFinal(0) == (block.timestamp - s - held >= WINDOW));
        _assertPrefix();
    }
}

/// @title RollupFinalityControls: checks that MUST FAIL, showing that the proofs above reach the
///        states they talk about (a pause succeeds; a batch does become final).
contract RollupFinalityControls is RollupFinalitySetup {
    function check_control_pause_succeeds() public {
        _post(0);
        assert(!_pause());
    }

    function check_control_batch_becomes_final(uint32 d) public {
        _post(0);
        _later(d);
        assert(!_isFinal(0));
    }
}
