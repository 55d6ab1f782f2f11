// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Rollup} from "optrollup/Rollup.sol";
import {Bridge} from "optrollup/Bridge.sol";
import {Encoding} from "optrollup/Encoding.sol";
import {TestBase} from "./TestBase.sol";
import {VM} from "./Vm.sol";

/// @title RollupDriver: every use of the Rollup's ABI by the analysis tests, in one place.
/// @dev When the Rollup's ABI changes (constructor, submitBatch, guardian actions), this file is
///      the one to adapt; the handler, the invariants and the halmos proofs only call the
///      functions below. Written against the Rollup of commit 69368cd (issue 11: live clock,
///      L1 message queue, per-action guardian deadlines).

/// @notice What a test system is made of.
struct SystemParams {
    address poster;
    uint256[] guardianKeys; // private keys (vm.sign); the Rollup gets their addresses
    uint256 threshold;
    uint64 challengeWindow;
    uint64 postingInterval;
    uint64 inclusionDelay;
    uint64 escapeDelay;
    uint64 rotationDelay;
    bytes32 genesisHeaderHash;
    bytes32 genesisStateRoot;
    address token;
}

/// @notice Deploys a Rollup (which creates its Bridge) with `p`.
function deploySystem(SystemParams memory p) returns (Rollup rollup, Bridge bridge) {
    address[] memory guardians = new address[](p.guardianKeys.length);
    for (uint256 i; i < guardians.length; ++i) guardians[i] = VM.addr(p.guardianKeys[i]);
    rollup = new Rollup(
        Rollup.Config({
            poster: p.poster,
            guardians: guardians,
            threshold: p.threshold,
            challengeWindow: p.challengeWindow,
            postingInterval: p.postingInterval,
            inclusionDelay: p.inclusionDelay,
            escapeDelay: p.escapeDelay,
            rotationDelay: p.rotationDelay,
            l2ChainId: 1337,
            genesisHeaderHash: p.genesisHeaderHash,
            genesisStateRoot: p.genesisStateRoot,
            collateralToken: p.token
        }),
        hex"00" // genesis config bytes (only emitted)
    );
    bridge = Bridge(rollup.bridge());
}

abstract contract RollupDriver is TestBase {
    Rollup internal rollup;
    Bridge internal bridge;
    address internal poster;
    uint256[] internal guardianKeys; // sorted by address, ascending (the Rollup's signature order)
    uint256 internal threshold;
    uint256 private _actions; // makes every signed action's deadline (so its digest) unique

    function _useSystem(Rollup rollup_, address poster_, uint256[] memory keys, uint256 threshold_) internal {
        rollup = rollup_;
        bridge = Bridge(rollup_.bridge());
        poster = poster_;
        threshold = threshold_;
        // insertion sort by address
        for (uint256 i; i < keys.length; ++i) {
            uint256 k = keys[i];
            uint256 j = i;
            guardianKeys.push(k);
            while (j > 0 && vm.addr(guardianKeys[j - 1]) > vm.addr(k)) {
                guardianKeys[j] = guardianKeys[j - 1];
                --j;
            }
            guardianKeys[j] = k;
        }
    }

    // ---------------------------------------------------------------- batches (poster)

    /// @notice Posts blocks `firstBlock..lastHeader.number`; false if the Rollup refused.
    function _submitBatch(
        uint64 firstBlock,
        bytes32 prevHeaderHash,
        Encoding.BlockHeader memory lastHeader,
        bytes32[] memory withdrawalRoots
    ) internal returns (bool ok) {
        vm.prank(poster);
        try rollup.submitBatch(firstBlock, prevHeaderHash, lastHeader, withdrawalRoots, bytes32(0), hex"") {
            ok = true;
        } catch {}
    }

    // ---------------------------------------------------------------- guardian actions

    /// @dev Far in the future (2^40 s, beyond any time the tests reach) and concrete, so that
    ///      under halmos the signed digests are concrete even when the clock is symbolic (with
    ///      symbolic deadlines every guardian action's digest, its `actionUsed` slot and its
    ///      recovered signer are symbolic, and a second pause multiplies the paths ~50x).
    ///      Deadlines themselves are not what these tests are about.
    function _deadline() internal returns (uint256) {
        return (uint256(1) << 40) + ++_actions;
    }

    function _quorum(bytes32 structHash) internal view returns (bytes[] memory sigs) {
        bytes32 digest = rollup.guardianDigest(structHash);
        sigs = new bytes[](threshold);
        for (uint256 i; i < threshold; ++i) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(guardianKeys[i], digest);
            _signatureShape(v, s);
            sigs[i] = abi.encodePacked(r, s, v);
        }
    }

    /// @dev Hook on every signature made: nothing by default (forge's vm.sign gives canonical
    ///      low-s signatures). The halmos proofs override it to assume one shape (v = 27, low s):
    ///      halmos' symbolic signatures otherwise fork every guardian action on v (27 or 28) and
    ///      on s (high s: refused), which multiplies the paths of a history with several pauses.
    function _signatureShape(uint8 v, bytes32 s) internal view virtual {}

    function _pause() internal returns (bool ok) {
        uint256 deadline = _deadline();
        bytes[] memory sigs = _quorum(keccak256(abi.encode(rollup.PAUSE_TYPEHASH(), deadline)));
        try rollup.pause(deadline, sigs) {
            ok = true;
        } catch {}
    }

    function _unpause() internal returns (bool ok) {
        uint256 deadline = _deadline();
        bytes[] memory sigs = _quorum(keccak256(abi.encode(rollup.UNPAUSE_TYPEHASH(), deadline)));
        try rollup.unpause(deadline, sigs) {
            ok = true;
        } catch {}
    }

    /// @notice Guardians reject batch `index` (and every later one).
    function _reject(uint256 index, bytes32 lastHeaderHash) internal returns (bool ok) {
        uint256 deadline = _deadline();
        bytes[] memory sigs =
            _quorum(keccak256(abi.encode(rollup.REJECT_TYPEHASH(), index, lastHeaderHash, deadline)));
        try rollup.reject(index, lastHeaderHash, deadline, sigs) {
            ok = true;
        } catch {}
    }

    function _freeze() internal returns (bool ok) {
        try rollup.freeze() {
            ok = true;
        } catch {}
    }

    // ---------------------------------------------------------------- views

    function _batchCount() internal view returns (uint256) {
        return rollup.batchCount();
    }

    function _finalCount() internal view returns (uint256) {
        return rollup.finalizedBatchCount();
    }

    function _isFinal(uint256 index) internal view returns (bool) {
        return rollup.isFinal(index);
    }

    function _paused() internal view returns (bool) {
        return rollup.paused();
    }

    function _frozen() internal view returns (bool) {
        return rollup.frozen();
    }

    function _canFreeze() internal view returns (bool) {
        return rollup.canFreeze();
    }

    function _freezeReason() internal view returns (uint8) {
        return rollup.freezeReason();
    }

    /// @notice (final batch count, last final header hash, its state root, its marks root).
    function _lastFinalState() internal view returns (uint256, bytes32, bytes32, bytes32) {
        return rollup.lastFinalState();
    }

    function _batchHeaderHash(uint256 index) internal view returns (bytes32) {
        return rollup.getBatch(index).lastHeaderHash;
    }

    /// @notice The L1 message cursor of batch `index`'s last header.
    function _batchCursor(uint256 index) internal view returns (uint64) {
        return rollup.getBatch(index).messageCursor;
    }

    /// @notice True iff the Rollup would hand the Bridge batch `index`'s withdrawals root now.
    function _rootAvailable(uint256 index) internal view returns (bool ok) {
        try rollup.finalWithdrawalsRoot(index) returns (bytes32) {
            ok = true;
        } catch {}
    }

    // ---------------------------------------------------------------- planted bugs (forge only)

    /// @notice Canary: from now on the Rollup hands the Bridge batch `index`'s withdrawals root
    ///         whether or not the batch is final (or the Rollup paused): a Rollup that forgot its
    ///         finality check. Undo with `_clearMocks`.
    function _mockFinalWithdrawalsRoot(uint256 index) internal {
        vm.mockCall(
            address(rollup),
            abi.encodeCall(Rollup.finalWithdrawalsRoot, (index)),
            abi.encode(rollup.getBatch(index).withdrawalsRoot)
        );
    }

    function _clearMocks() internal {
        vm.clearMockedCalls();
    }

    function _tip() internal view returns (uint64 lastBlock, bytes32 lastHeaderHash) {
        return rollup.tip();
    }
}
