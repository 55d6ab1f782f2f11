// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {RollupFinalitySetup} from "./RollupFinalityProofs.t.sol";

/// @notice A symbolic history for the freeze proofs, with the spec's own wall-clock bookkeeping:
///         batch 0 posted, a pause, then either still paused, or unpaused with batch 1 posted
///         after it; time passing in between. No L1 message is ever queued (freeze reason 2 is
///         out of scope here: the invariant suite exercises it).
abstract contract RollupFreezeSetup is RollupFinalitySetup {
    uint64 internal constant E = ESCAPE_DELAY;

    struct History {
        uint256[2] s; // wall time of each submission
        uint256[2] l; // live time of each submission (wall minus time paused before it)
        uint256 posted; // batches posted (1 or 2)
        uint256 pausedAt; // wall time of the pause
        bool lifted; // unpaused since
        uint256 held; // wall seconds the (lifted) pause lasted
    }

    function _history(uint32 d0, uint32 dPause, uint32 dHeld, bool lift, uint32 dAfter, uint32 dNow)
        internal
        returns (History memory h)
    {
        _later(d0);
        h.s[0] = h.l[0] = block.timestamp;
        _post(0);
        h.posted = 1;
        _later(dPause);
        vm.assume(_pause());
        h.pausedAt = block.timestamp;
        _later(dHeld);
        if (lift) {
            vm.assume(_unpause());
            h.lifted = true;
            h.held = dHeld;
            _later(dAfter);
            h.s[1] = block.timestamp;
            h.l[1] = block.timestamp - dHeld;
            _post(1);
            h.posted = 2;
        }
        _later(dNow);
    }

    /// @dev The spec's live clock now: wall time minus time paused (stopped while paused).
    function _live(History memory h) internal view returns (uint256) {
        return h.lifted ? block.timestamp - h.held : h.pausedAt;
    }

    /// @dev The spec of the escape hatch without L1 messages: freeze is allowed iff no batch
    ///      became final for more than escapeDelay live seconds, or the current pause has
    ///      lasted more than escapeDelay, or no batch became final for more than 2·escapeDelay
    ///      wall seconds (measured from submission + challengeWindow, a lower bound of the wall
    ///      time it became final: live time never runs faster than wall time). Written without
    ///      branches on symbolic values (`_and`/`_or`), so that it adds no paths: "the newest
    ///      final batch is i" is spelled out for each i (batches are final in order).
    function _specMayFreeze(History memory h) internal view returns (bool) {
        uint256 live = _live(h);
        uint256 e = E;
        bool none = !(h.l[0] + WINDOW <= live);
        bool r1 = _and(none, live > START + e);
        bool r4 = _and(none, block.timestamp > START + 2 * e);
        for (uint256 i; i < h.posted; ++i) {
            bool newest = _and(h.l[i] + WINDOW <= live, i + 1 == h.posted ? true : !(h.l[i + 1] + WINDOW <= live));
            r1 = _or(r1, _and(newest, live > h.l[i] + WINDOW + e));
            r4 = _or(r4, _and(newest, block.timestamp > h.s[i] + WINDOW + 2 * e));
        }
        bool r3 = _and(!h.lifted, block.timestamp > h.pausedAt + e);
        return _or(_or(r1, r3), r4);
    }

    function _and(bool a, bool b) internal pure returns (bool r) {
        assembly ("memory-safe") {
            r := and(a, b)
        }
    }

    function _or(bool a, bool b) internal pure returns (bool r) {
        assembly ("memory-safe") {
            r := or(a, b)
        }
    }
}

/// @title RollupFreezeProofs: halmos proofs about `Rollup.freeze` over symbolic submission, pause,
///        unpause and clock times (up to two batches, one pause; two pause cycles where said).
/// @notice Run: `halmos --root contracts/forge --contract RollupFreezeProofs --function check_ --loop 32`.
/// @dev Through RollupDriver, as RollupFinalityProofs. Guardian signatures are symbolic (halmos'
///      ecrecover model): the paths are those where the pause/unpause quorum is valid and the
///      cooldown allows it (`vm.assume`); RollupFreezeControls shows those paths exist.
contract RollupFreezeProofs is RollupFreezeSetup {
    /// @notice `freeze()` succeeds iff freezeReason() != 0, iff the spec's condition holds
    ///         (`_specMayFreeze`, over the spec's own live and wall clocks), whether the pause
    ///         still runs or was lifted; and a freeze keeps exactly the final prefix: after it,
    ///         batchCount is the finalizedBatchCount() of just before, those batches are still
    ///         final (and stay so, whatever time passes), the others are gone, lastFinalState()
    ///         and the tip are unchanged. A refused freeze changes nothing.
    function check_freeze_iff_spec_and_keeps_exactly_the_final_prefix(
        uint32 d0,
        uint32 dPause,
        uint32 dHeld,
        bool lift,
        uint32 dAfter,
        uint32 dNow,
        uint32 dLater
    ) public {
        History memory h = _history(d0, dPause, dHeld, lift, dAfter, dNow);
        bool spec = _specMayFreeze(h);
        uint256 n = _batchCount();
        uint256 k = _finalCount();
        bool[3] memory wasFinal;
        for (uint256 i; i < 3; ++i) wasFinal[i] = _isFinal(i);
        (, bytes32 headerHash, bytes32 stateRoot,) = _lastFinalState();
        uint8 reason = _freezeReason();
        bool ok = _freeze();
        assert(ok == (reason != 0)); // freeze() reverts iff freezeReason() == 0
        assert(ok == spec); // iff the spec's condition holds
        if (!ok) {
            assert(!_frozen() && _batchCount() == n && _finalCount() == k);
            return;
        }
        assert(_frozen());
        assert(_batchCount() == k && _finalCount() == k);
        for (uint256 i; i < 3; ++i) {
            assert(_isFinal(i) == (i < k));
            if (i < k) assert(wasFinal[i]);
        }
        (uint256 k2, bytes32 h2, bytes32 r2,) = _lastFinalState();
        assert(k2 == k && h2 == headerHash && r2 == stateRoot);
        (, bytes32 tipHash_) = _tip();
        assert(tipHash_ == headerHash);
        _later(dLater);
        assert(_batchCount() == k && _finalCount() == k && !_canFreeze() && !_freeze());
        for (uint256 i; i < 3; ++i) {
            assert(_isFinal(i) == (i < k));
        }
    }

    /// @notice Reason 3: a pause longer than escapeDelay wall seconds lets anyone freeze,
    ///         whatever batches exist and whatever pause cycle came before.
    function check_pause_longer_than_escape_delay_allows_freeze(
        uint32 d0,
        uint32 d1,
        bool cycle,
        uint32 dHeld1,
        uint32 dGap,
        uint32 dHeld
    ) public {
        _later(d0);
        _post(0);
        _later(d1);
        if (cycle) {
            vm.assume(_pause());
            _later(dHeld1);
            vm.assume(_unpause());
            _later(dGap);
        }
        vm.assume(_pause());
        vm.assume(dHeld > E);
        _later(dHeld);
        assert(_freezeReason() != 0);
        assert(_freeze());
    }

    /// @notice Reason 4 bounds every pause pattern: whatever guardians do (a pause and unpause,
    ///         then a second pause, lifted or not, all of any length), once more than
    ///         challengeWindow + 2·escapeDelay wall seconds have passed since the last batch was
    ///         submitted, anyone may freeze. Pauses delay an escape by at most escapeDelay.
    function check_pauses_delay_the_escape_by_at_most_escape_delay(
        uint32 d0,
        uint32 d1,
        uint32 dHeld1,
        uint32 dGap,
        uint32 dHeld2,
        bool lift2,
        uint32 dNow
    ) public {
        _later(d0);
        _post(0);
        uint256 last = block.timestamp;
        _later(d1);
        vm.assume(_pause());
        _later(dHeld1);
        vm.assume(_unpause());
        _later(dGap);
        vm.assume(_pause());
        _later(dHeld2);
        if (lift2) vm.assume(_unpause());
        _later(dNow);
        vm.assume(block.timestamp > last + WINDOW + 2 * uint256(E));
        assert(_freeze());
    }

    /// @notice A batch submitted before a pause cannot become final during it: finality is
    ///         frozen at the pause (isFinal and finalizedBatchCount unchanged at any time in the
    ///         pause), the Rollup hands the Bridge no withdrawals root, and a freeze during the
    ///         pause keeps only the batches final when it began (the others are dropped).
    function check_batch_submitted_before_a_pause_cannot_become_final_during_it(
        uint32 d0,
        uint32 d1,
        uint32 dPause,
        uint32 dHeld1,
        uint32 dHeld2
    ) public {
        _later(d0);
        _post(0);
        _later(d1);
        _post(1);
        _later(dPause);
        bool f0 = _isFinal(0);
        bool f1 = _isFinal(1);
        uint256 k = _finalCount();
        vm.assume(_pause());
        _later(dHeld1);
        assert(_isFinal(0) == f0 && _isFinal(1) == f1 && _finalCount() == k);
        assert(!_rootAvailable(0) && !_rootAvailable(1));
        _later(dHeld2);
        _freeze(); // allowed or not
        assert(_isFinal(0) == f0 && _isFinal(1) == f1 && _finalCount() == k);
    }
}

/// @title RollupFreezeControls: checks that MUST FAIL, showing the proofs above reach the states
///        they talk about (a freeze is refused; a freeze succeeds after an unpause; a second
///        pause succeeds; a freeze during a pause drops a non-final batch). One counterexample
///        each is enough.
/// @custom:halmos --early-exit
contract RollupFreezeControls is RollupFreezeSetup {
    function check_control_freeze_refused(uint32 d0, uint32 dPause, uint32 dHeld, bool lift, uint32 dAfter) public {
        _history(d0, dPause, dHeld, lift, dAfter, 0);
        assert(_freeze());
    }

    function check_control_freeze_after_unpause(uint32 dHeld, uint32 dNow) public {
        _post(0);
        vm.assume(_pause());
        _later(dHeld);
        vm.assume(_unpause());
        _later(dNow);
        assert(!_freeze());
    }

    /// @dev The two-cycle histories of the proofs exist (the cooldown lets a second pause in).
    function check_control_second_pause_succeeds(uint32 dHeld, uint32 dGap) public {
        _post(0);
        vm.assume(_pause());
        _later(dHeld);
        vm.assume(_unpause());
        _later(dGap);
        assert(!_pause());
    }

    function check_control_freeze_drops_a_batch(uint32 d0, uint32 dPause, uint32 dHeld) public {
        _history(d0, dPause, dHeld, false, 0, 0);
        uint256 n = _batchCount();
        if (_freeze()) assert(_batchCount() == n);
    }
}
