// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {MerkleLib} from "./MerkleLib.sol";
import {Encoding} from "./Encoding.sol";
import {Bridge} from "./Bridge.sol";
import {Adjudicator} from "./Adjudicator.sol";
import {Signatures} from "./Signatures.sol";

/// @notice What the Rollup reads of its Bridge's L1 message queue.
interface IBridgeQueue {
    function messageCount() external view returns (uint256);
    function messageQueuedLive(uint256 nonce) external view returns (uint64);
}

/// @title Rollup: optrollup's L1 commitments (batches of L2 blocks), finality, guardians, freeze.
/// @notice Life of a batch (docs/encoding.md, "Batches on L1"):
///   1. The poster submits L2 blocks `firstBlock..lastHeader.number` with the full last header
///      (its hash, state root and L1 message cursor are taken from it) and the batch's marks
///      root. The batch must extend the tip and may not move the message cursor backwards or
///      past the Bridge's queue.
///   2. It is final once `challengeWindow` seconds of the LIVE clock (wall time minus time spent
///      paused) have passed since its submission. Until then a guardian quorum may reject it
///      (dropping it and every later batch).
///   3. Withdrawals are paid by the Bridge against final batches only.
///
/// Escape hatch: `freeze()` (anyone) is allowed when
///   (a) no batch has become final for `escapeDelay` live seconds (operator gone, or every batch
///       rejected), or
///   (b) the oldest L1 message the tip has not included (a deposit or a forced withdrawal) was
///       queued more than `inclusionDelay` live seconds ago (an operator that censors), or
///   (c) a pause has lasted more than `escapeDelay` wall seconds, or
///   (d) no batch has become final for `2·escapeDelay` wall seconds (pauses, however cycled,
///       delay an escape by at most `escapeDelay` in total: guardians cannot hold funds).
/// Freezing is permanent: non-final batches are dropped, no batch is accepted any more, and the
/// last final state becomes the basis of the Bridge's escape withdrawals (see Bridge.sol).
///
/// The constructor creates the Bridge and the state channels' Adjudicator, so both are provably
/// this Rollup's (`bridge()`, `adjudicator()`): the Bridge pays out channels still open at the
/// freeze by the Adjudicator's conclusions, and a verifier finds the one Adjudicator whose
/// conclusions the L2 must apply.
///
/// Guardian actions (reject, pause, unpause, rotation) are EIP-712 messages, each with its own
/// deadline and usable once (the digest is recorded), so parallel quorums do not interfere and
/// an unused quorum expires. The poster and the guardian set can be rotated by a guardian quorum
/// after `rotationDelay` live seconds (a pause does not shorten it), long enough for any user to
/// force a withdrawal out first.
contract Rollup {
    // ------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------

    /// @notice What L1 keeps per batch. The first two slots are packed.
    struct Batch {
        uint64 firstBlock; // first L2 block of the batch
        uint64 lastBlock; // last L2 block of the batch
        uint64 submittedAt; // L1 timestamp of the submitting block (wall clock)
        uint64 l1BlockNumber; // L1 block that carries the batch data in its calldata
        uint64 submittedLive; // live clock at submission (finality counts from here)
        uint64 messageCursor; // l1MessageCursor of the last header: L1 messages included so far
        bytes32 lastHeaderHash; // header hash of `lastBlock`
        bytes32 stateRoot; // state root after `lastBlock`
        bytes32 withdrawalsRoot; // Merkle root over the blocks' withdrawalRoots, in block order
        bytes32 dataHash; // keccak256 of the batch data (calldata `data`)
        bytes32 marksRoot; // root of (instrument, markLo, markHi) after `lastBlock` (escape values)
    }

    /// @notice Deployment parameters (see the constructor for the checks).
    struct Config {
        address poster;
        address[] guardians;
        uint256 threshold;
        uint64 challengeWindow; // live seconds from submission to finality
        uint64 postingInterval; // longest gap between batches the operator commits to (seconds)
        uint64 inclusionDelay; // live seconds a queued L1 message may wait for a batch
        uint64 escapeDelay; // live seconds without a new final batch before freeze() is allowed
        uint64 rotationDelay; // seconds between a rotation's approval and its execution
        uint256 l2ChainId;
        bytes32 genesisHeaderHash;
        bytes32 genesisStateRoot;
        address collateralToken;
    }

    // ------------------------------------------------------------------------------------------
    // Constants
    // ------------------------------------------------------------------------------------------

    /// @notice Upper bound on the guardian set (bounds every signature loop).
    uint256 public constant MAX_GUARDIANS = 32;
    /// @notice Slack for L1 congestion and operator restarts in the timing rules (seconds).
    uint64 public constant ALLOWANCE = 1 hours;

    /// @notice EIP-712 domain of guardian actions. Deliberately NOT the L2 order domain
    ///         ("optrollup"), so an L2 signature can never pass as a guardian signature.
    string public constant GUARDIAN_DOMAIN_NAME = "optrollup.guardians";
    string public constant GUARDIAN_DOMAIN_VERSION = "2";
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// @notice Guardian action types. Each signed action is usable once and until `deadline`
    ///         (unix seconds, inclusive).
    bytes32 public constant REJECT_TYPEHASH =
        keccak256("Reject(uint256 batchIndex,bytes32 lastHeaderHash,uint256 deadline)");
    bytes32 public constant PAUSE_TYPEHASH = keccak256("Pause(uint256 deadline)");
    bytes32 public constant UNPAUSE_TYPEHASH = keccak256("Unpause(uint256 deadline)");
    bytes32 public constant ROTATE_TYPEHASH =
        keccak256("Rotate(address poster,address[] guardians,uint256 threshold,uint256 deadline)");

    // ------------------------------------------------------------------------------------------
    // Configuration (immutable)
    // ------------------------------------------------------------------------------------------

    address public immutable bridge; // deployed by this constructor
    address public immutable adjudicator; // deployed by this constructor (state channels)
    address public immutable collateralToken;
    uint256 public immutable l2ChainId;
    bytes32 public immutable genesisHeaderHash; // header hash of L2 block 0
    bytes32 public immutable genesisStateRoot; // state root of L2 block 0
    uint64 public immutable challengeWindow;
    uint64 public immutable postingInterval;
    uint64 public immutable inclusionDelay;
    uint64 public immutable escapeDelay;
    uint64 public immutable rotationDelay; // live seconds
    uint64 public immutable deploymentBlock; // L1 block of this deployment (log scans start here)
    uint64 public immutable deployedAt; // L1 timestamp of this deployment

    // ------------------------------------------------------------------------------------------
    // State
    // ------------------------------------------------------------------------------------------

    /// @notice The only sender of `submitBatch` (rotatable).
    address public poster;
    address[] private _guardians;
    mapping(address => bool) public isGuardian;
    uint256 public guardianThreshold;

    /// @dev Batches 0..batchCount-1 are live. Entries at or past batchCount are stale (left by
    ///      a rejection) and are overwritten by later submissions; every reader checks the index.
    mapping(uint256 => Batch) private _batches;
    uint256 public batchCount;

    /// @notice EIP-712 digests of guardian actions already carried out (each works once).
    mapping(bytes32 => bool) public actionUsed;

    bool public paused;
    uint64 public pausedAt; // L1 timestamp of the current pause (meaningful while paused)
    uint64 public unpausedAt; // L1 timestamp of the last unpause (0 before any)
    uint64 public pausedTotal; // seconds spent paused in pauses that have ended
    bool public frozen;
    uint64 public frozenAt;

    /// @notice keccak256(abi.encode(poster, guardians, threshold)) of the approved rotation
    ///         (zero if none) and the live-clock time from which it may be executed.
    bytes32 public pendingRotation;
    uint64 public rotationEta;

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    event RollupDeployed(
        address indexed bridge,
        address indexed collateralToken,
        uint256 l2ChainId,
        bytes32 genesisHeaderHash,
        bytes32 genesisStateRoot,
        bytes genesisConfig
    );
    event BatchSubmitted(
        uint256 indexed batchIndex,
        uint64 firstBlock,
        uint64 lastBlock,
        bytes32 lastHeaderHash,
        bytes32 stateRoot,
        bytes32 withdrawalsRoot,
        bytes32 dataHash,
        uint64 messageCursor,
        bytes32 marksRoot
    );
    /// @notice Batches `fromBatchIndex .. fromBatchIndex + count - 1` were dropped.
    event BatchesRejected(uint256 indexed fromBatchIndex, uint256 count, bytes32 action);
    event RollupPaused(bytes32 action);
    event RollupUnpaused(bytes32 action, uint64 pausedFor);
    event RotationApproved(address poster, address[] guardians, uint256 threshold, uint64 eta, bytes32 action);
    event Rotated(address poster, address[] guardians, uint256 threshold);
    /// @notice The escape hatch opened (`reason` 1 = no finality for escapeDelay live seconds,
    ///         2 = overdue L1 message, 3 = pause too long, 4 = no finality for 2·escapeDelay wall
    ///         seconds); `finalBatchCount` final batches remain.
    event RollupFrozen(uint256 finalBatchCount, bytes32 headerHash, bytes32 stateRoot, uint8 reason);

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    // constructor, rotation
    error ZeroAddress();
    error NotAContract(address account);
    error InvalidGuardianSet(uint256 count);
    error DuplicateGuardian(address guardian);
    error InvalidThreshold(uint256 threshold, uint256 guardians);
    error InvalidTiming(string rule);
    error ZeroHeaderHash();
    // submitBatch
    error NotPoster(address caller);
    error RollupIsPaused();
    error RollupIsFrozen();
    error BadBlockRange(uint64 firstBlock, uint64 lastBlock);
    error BlockGap(uint64 expectedFirstBlock, uint64 firstBlock);
    error PrevHeaderMismatch(bytes32 expected, bytes32 actual);
    error WithdrawalRootsLength(uint256 expected, uint256 actual);
    error LastWithdrawalRootMismatch(bytes32 header, bytes32 given);
    error MessageCursorBackwards(uint64 tipCursor, uint64 cursor);
    error MessageCursorAhead(uint64 cursor, uint256 messageCount);
    // batches, guardians, freeze
    error UnknownBatch(uint256 batchIndex, uint256 batchCount);
    error BatchAlreadyFinal(uint256 batchIndex);
    error BatchNotFinal(uint256 batchIndex);
    error BatchMismatch(uint256 batchIndex, bytes32 storedHeaderHash, bytes32 signedHeaderHash);
    error RollupNotPaused();
    error PauseCooldown(uint256 allowedAt);
    error ActionExpired(uint256 deadline, uint256 nowTs);
    error ActionAlreadyUsed(bytes32 digest);
    error TooManySignatures(uint256 count, uint256 max);
    error InsufficientSignatures(uint256 count, uint256 threshold);
    error InvalidSignature(uint256 index);
    error NotGuardian(uint256 index, address signer);
    error DuplicateSigner(uint256 index, address signer);
    error SignersNotSorted(uint256 index);
    error NoPendingRotation();
    error RotationMismatch(bytes32 pending, bytes32 given);
    error RotationNotDue(uint256 eta);
    error FreezeNotAllowed(uint256 lastFinalizedLive, uint256 liveClock);

    // ------------------------------------------------------------------------------------------
    // Construction
    // ------------------------------------------------------------------------------------------

    /// @param c the configuration. Timing rules (seconds), checked here:
    ///   escapeDelay   >= 2·challengeWindow + postingInterval + ALLOWANCE (a live rollup whose
    ///                    last batch was rejected late still finalizes a batch in time);
    ///   inclusionDelay >= postingInterval + ALLOWANCE (an honest poster includes a message in
    ///                    its next batch);
    ///   rotationDelay  >= inclusionDelay + challengeWindow (a user who distrusts an approved
    ///                    rotation can force a withdrawal and have it final before it applies).
    /// @param genesisConfig_ the canonical genesis bytes (`Genesis.to_bytes()`): emitted in
    ///        RollupDeployed, not stored; block 0's txRoot commits to them.
    constructor(Config memory c, bytes memory genesisConfig_) {
        if (c.poster == address(0) || c.collateralToken == address(0)) revert ZeroAddress();
        if (c.collateralToken.code.length == 0) revert NotAContract(c.collateralToken);
        if (c.genesisHeaderHash == bytes32(0)) revert ZeroHeaderHash();
        if (c.challengeWindow == 0) revert InvalidTiming("challengeWindow > 0");
        if (uint256(c.escapeDelay) < 2 * uint256(c.challengeWindow) + c.postingInterval + ALLOWANCE) {
            revert InvalidTiming("escapeDelay >= 2*challengeWindow + postingInterval + ALLOWANCE");
        }
        if (uint256(c.inclusionDelay) < uint256(c.postingInterval) + ALLOWANCE) {
            revert InvalidTiming("inclusionDelay >= postingInterval + ALLOWANCE");
        }
        if (uint256(c.rotationDelay) < uint256(c.inclusionDelay) + c.challengeWindow) {
            revert InvalidTiming("rotationDelay >= inclusionDelay + challengeWindow");
        }
        _setGuardians(c.guardians, c.threshold);
        poster = c.poster;
        challengeWindow = c.challengeWindow;
        postingInterval = c.postingInterval;
        inclusionDelay = c.inclusionDelay;
        escapeDelay = c.escapeDelay;
        rotationDelay = c.rotationDelay;
        l2ChainId = c.l2ChainId;
        genesisHeaderHash = c.genesisHeaderHash;
        genesisStateRoot = c.genesisStateRoot;
        collateralToken = c.collateralToken;
        deploymentBlock = uint64(block.number);
        deployedAt = uint64(block.timestamp);

        // The Adjudicator and the Bridge are created here so that `adjudicator` and `bridge` are
        // provably this Rollup's (the Bridge pays channels out by this Adjudicator's conclusions).
        address adj = address(new Adjudicator(c.l2ChainId, address(this)));
        adjudicator = adj;
        address b = address(new Bridge(address(this), c.collateralToken, adj));
        bridge = b;
        emit RollupDeployed(b, c.collateralToken, c.l2ChainId, c.genesisHeaderHash, c.genesisStateRoot, genesisConfig_);
    }

    // ------------------------------------------------------------------------------------------
    // Batches
    // ------------------------------------------------------------------------------------------

    /// @notice Commits L2 blocks `firstBlock..lastHeader.number` (docs/encoding.md).
    /// @param prevHeaderHash header hash of block `firstBlock - 1` (must be the current tip).
    /// @param lastHeader the full header of the last block: its hash, `stateRoot` and
    ///        `l1MessageCursor` are recorded.
    /// @param withdrawalRoots `withdrawalRoots[k]` = withdrawalRoot of block `firstBlock + k`.
    /// @param marksRoot root of the consensus marks after the last block (escape valuation).
    /// @param data the batch data; only keccak256(data) is stored, the bytes stay in calldata.
    function submitBatch(
        uint64 firstBlock,
        bytes32 prevHeaderHash,
        Encoding.BlockHeader calldata lastHeader,
        bytes32[] calldata withdrawalRoots,
        bytes32 marksRoot,
        bytes calldata data
    ) external {
        if (msg.sender != poster) revert NotPoster(msg.sender);
        if (frozen) revert RollupIsFrozen();
        if (paused) revert RollupIsPaused();
        uint64 lastBlock = lastHeader.number;
        _checkExtendsTip(firstBlock, lastBlock, prevHeaderHash, withdrawalRoots.length);
        bytes32 lastRoot = withdrawalRoots[withdrawalRoots.length - 1];
        if (lastRoot != lastHeader.withdrawalRoot) revert LastWithdrawalRootMismatch(lastHeader.withdrawalRoot, lastRoot);
        _checkCursor(lastHeader.l1MessageCursor);

        uint256 index = batchCount;
        Batch storage b = _batches[index];
        b.firstBlock = firstBlock;
        b.lastBlock = lastBlock;
        b.submittedAt = uint64(block.timestamp);
        b.l1BlockNumber = uint64(block.number);
        b.submittedLive = uint64(liveClock());
        b.messageCursor = lastHeader.l1MessageCursor;
        b.lastHeaderHash = Encoding.headerHash(lastHeader);
        b.stateRoot = lastHeader.stateRoot;
        b.withdrawalsRoot = MerkleLib.root(withdrawalRoots); // calldata -> memory copy
        b.dataHash = keccak256(data);
        b.marksRoot = marksRoot;
        batchCount = index + 1;
        _emitSubmitted(index, b);
    }

    /// @dev The message cursor never moves back and never passes the Bridge's queue.
    function _checkCursor(uint64 cursor) internal view {
        uint64 tipCursor = tipMessageCursor();
        if (cursor < tipCursor) revert MessageCursorBackwards(tipCursor, cursor);
        uint256 queued = IBridgeQueue(bridge).messageCount();
        if (cursor > queued) revert MessageCursorAhead(cursor, queued);
    }

    function _emitSubmitted(uint256 index, Batch storage b) internal {
        emit BatchSubmitted(
            index,
            b.firstBlock,
            b.lastBlock,
            b.lastHeaderHash,
            b.stateRoot,
            b.withdrawalsRoot,
            b.dataHash,
            b.messageCursor,
            b.marksRoot
        );
    }

    /// @dev The batch `firstBlock..lastBlock` must extend the tip and carry one withdrawal root
    ///      per block.
    function _checkExtendsTip(uint64 firstBlock, uint64 lastBlock, bytes32 prevHeaderHash, uint256 rootCount)
        internal
        view
    {
        if (lastBlock < firstBlock) revert BadBlockRange(firstBlock, lastBlock);
        (uint64 tipBlock, bytes32 tipHash) = tip();
        if (firstBlock != tipBlock + 1) revert BlockGap(tipBlock + 1, firstBlock);
        if (prevHeaderHash != tipHash) revert PrevHeaderMismatch(tipHash, prevHeaderHash);
        uint256 blocks = uint256(lastBlock - firstBlock) + 1;
        if (rootCount != blocks) revert WithdrawalRootsLength(blocks, rootCount);
    }

    /// @notice The chain tip the next batch must extend: (last L2 block, its header hash).
    function tip() public view returns (uint64 lastBlock, bytes32 lastHeaderHash) {
        uint256 n = batchCount;
        if (n == 0) return (0, genesisHeaderHash);
        Batch storage b = _batches[n - 1];
        return (b.lastBlock, b.lastHeaderHash);
    }

    /// @notice L1 messages the tip has included (genesis: 0).
    function tipMessageCursor() public view returns (uint64) {
        uint256 n = batchCount;
        return n == 0 ? 0 : _batches[n - 1].messageCursor;
    }

    /// @notice Batch `batchIndex` (reverts UnknownBatch if it does not exist).
    function getBatch(uint256 batchIndex) external view returns (Batch memory) {
        _requireBatch(batchIndex);
        return _batches[batchIndex];
    }

    /// @notice The live clock: L1 time minus all time spent paused (stopped while paused).
    ///         Finality, inclusion deadlines and the escape delay are measured on it.
    function liveClock() public view returns (uint256) {
        return (paused ? uint256(pausedAt) : block.timestamp) - pausedTotal;
    }

    /// @notice True iff batch `batchIndex` exists and `challengeWindow` live seconds have
    ///         passed since its submission (paused time is given back to every window).
    function isFinal(uint256 batchIndex) public view returns (bool) {
        if (batchIndex >= batchCount) return false;
        if (frozen) return true; // freeze() kept exactly the final batches
        return uint256(_batches[batchIndex].submittedLive) + challengeWindow <= liveClock();
    }

    /// @notice Number of final batches (always a prefix: 0..n-1). O(log batchCount).
    function finalizedBatchCount() public view returns (uint256) {
        uint256 hi = batchCount;
        if (frozen || hi == 0) return hi;
        uint256 clock = liveClock();
        uint256 window = challengeWindow;
        // The live clock never decreases, so submission times never decrease and finality is
        // monotone in the index.
        if (uint256(_batches[hi - 1].submittedLive) + window <= clock) return hi;
        uint256 lo;
        while (lo < hi) {
            uint256 mid = (lo + hi) >> 1;
            if (uint256(_batches[mid].submittedLive) + window <= clock) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// @notice Live-clock time at which the newest final batch became final (the deployment
    ///         time if none is; the live clock equals wall time until the first pause).
    function lastFinalizedLive() public view returns (uint256) {
        uint256 k = finalizedBatchCount();
        if (k == 0) return deployedAt;
        return uint256(_batches[k - 1].submittedLive) + challengeWindow;
    }

    /// @notice A lower bound on the wall time at which the newest final batch became final
    ///         (its submission + `challengeWindow`: live time never runs faster than wall time),
    ///         or the deployment time if none is final.
    function lastFinalizedWallBound() public view returns (uint256) {
        uint256 k = finalizedBatchCount();
        if (k == 0) return deployedAt;
        return uint256(_batches[k - 1].submittedAt) + challengeWindow;
    }

    /// @notice For the Bridge: the withdrawalsRoot of a final batch. Reverts RollupIsPaused while
    ///         paused (unless frozen: a pause cannot block payouts after the freeze),
    ///         UnknownBatch / BatchNotFinal otherwise.
    function finalWithdrawalsRoot(uint256 batchIndex) external view returns (bytes32) {
        if (paused && !frozen) revert RollupIsPaused();
        _requireBatch(batchIndex);
        if (!isFinal(batchIndex)) revert BatchNotFinal(batchIndex);
        return _batches[batchIndex].withdrawalsRoot;
    }

    /// @notice (paused, frozen) in one call, for the Bridge.
    function status() external view returns (bool isPaused, bool isFrozen) {
        return (paused, frozen);
    }

    /// @notice The state escapes are paid from: the last final batch, or genesis if none.
    /// @return finalCount number of final batches
    /// @return headerHash header hash of the last final L2 block
    /// @return stateRoot state root after that block
    /// @return marksRoot marks root of that batch (zero at genesis, which has no positions)
    function lastFinalState()
        public
        view
        returns (uint256 finalCount, bytes32 headerHash, bytes32 stateRoot, bytes32 marksRoot)
    {
        finalCount = finalizedBatchCount();
        if (finalCount == 0) return (0, genesisHeaderHash, genesisStateRoot, bytes32(0));
        Batch storage b = _batches[finalCount - 1];
        return (finalCount, b.lastHeaderHash, b.stateRoot, b.marksRoot);
    }

    // ------------------------------------------------------------------------------------------
    // Escape hatch
    // ------------------------------------------------------------------------------------------

    /// @notice Why `freeze()` would succeed now: 0 = it would not, 1 = no batch became final
    ///         for `escapeDelay` live seconds, 2 = an L1 message is overdue, 3 = a pause outlasted
    ///         `escapeDelay`, 4 = no batch became final for `2·escapeDelay` wall seconds.
    function freezeReason() public view returns (uint8) {
        if (frozen) return 0;
        uint256 live = liveClock();
        if (live > lastFinalizedLive() + escapeDelay) return 1;
        uint64 head = tipMessageCursor();
        if (head < IBridgeQueue(bridge).messageCount()) {
            if (live > uint256(IBridgeQueue(bridge).messageQueuedLive(head)) + inclusionDelay) return 2;
        }
        if (paused && block.timestamp > uint256(pausedAt) + escapeDelay) return 3;
        if (block.timestamp > lastFinalizedWallBound() + 2 * uint256(escapeDelay)) return 4;
        return 0;
    }

    /// @notice True iff `freeze()` would succeed now.
    function canFreeze() external view returns (bool) {
        return freezeReason() != 0;
    }

    /// @notice Opens the escape hatch (anyone; the Bridge calls it on the first escape) when
    ///         `freezeReason()` is non-zero. Permanent: drops the non-final batches and refuses
    ///         every later batch and guardian action.
    function freeze() external {
        if (frozen) revert RollupIsFrozen();
        uint8 reason = freezeReason();
        if (reason == 0) revert FreezeNotAllowed(lastFinalizedLive(), liveClock());
        (uint256 k, bytes32 headerHash, bytes32 stateRoot,) = lastFinalState();
        batchCount = k;
        frozen = true;
        frozenAt = uint64(block.timestamp);
        emit RollupFrozen(k, headerHash, stateRoot, reason);
    }

    // ------------------------------------------------------------------------------------------
    // Guardians
    // ------------------------------------------------------------------------------------------

    /// @notice Drops batch `batchIndex` and every later batch, given a guardian quorum over
    ///         Reject(batchIndex, lastHeaderHash, deadline). Works while paused, not once the
    ///         batch is final.
    /// @param signatures 65-byte (r, s, v) signatures, sorted by signer address, ascending.
    function reject(uint256 batchIndex, bytes32 lastHeaderHash, uint256 deadline, bytes[] calldata signatures)
        external
    {
        if (frozen) revert RollupIsFrozen();
        _requireBatch(batchIndex);
        if (isFinal(batchIndex)) revert BatchAlreadyFinal(batchIndex);
        bytes32 stored = _batches[batchIndex].lastHeaderHash;
        if (stored != lastHeaderHash) revert BatchMismatch(batchIndex, stored, lastHeaderHash);
        bytes32 action =
            _useAction(keccak256(abi.encode(REJECT_TYPEHASH, batchIndex, lastHeaderHash, deadline)), deadline, signatures);
        uint256 dropped = batchCount - batchIndex;
        batchCount = batchIndex;
        emit BatchesRejected(batchIndex, dropped, action);
    }

    /// @notice Pauses batches, deposits and withdrawals and stops the live clock. A new pause
    ///         needs `challengeWindow` seconds since the last unpause, so batches keep finalizing
    ///         between pauses; a pause longer than `escapeDelay` lets anyone freeze.
    function pause(uint256 deadline, bytes[] calldata signatures) external {
        if (frozen) revert RollupIsFrozen();
        if (paused) revert RollupIsPaused();
        uint256 allowed = unpausedAt == 0 ? 0 : uint256(unpausedAt) + challengeWindow;
        if (block.timestamp < allowed) revert PauseCooldown(allowed);
        bytes32 action = _useAction(keccak256(abi.encode(PAUSE_TYPEHASH, deadline)), deadline, signatures);
        paused = true;
        pausedAt = uint64(block.timestamp);
        emit RollupPaused(action);
    }

    /// @notice Lifts a pause; the paused time is given back to every running window and deadline.
    function unpause(uint256 deadline, bytes[] calldata signatures) external {
        if (frozen) revert RollupIsFrozen();
        if (!paused) revert RollupNotPaused();
        bytes32 action = _useAction(keccak256(abi.encode(UNPAUSE_TYPEHASH, deadline)), deadline, signatures);
        uint64 pausedFor = uint64(block.timestamp) - pausedAt;
        pausedTotal += pausedFor;
        paused = false;
        unpausedAt = uint64(block.timestamp);
        emit RollupUnpaused(action, pausedFor);
    }

    /// @notice Approves replacing the poster and the guardian set; `executeRotation` applies it
    ///         after `rotationDelay` live seconds (the wait stops while paused). A later approval
    ///         replaces a pending one.
    function approveRotation(
        address newPoster,
        address[] calldata newGuardians,
        uint256 newThreshold,
        uint256 deadline,
        bytes[] calldata signatures
    ) external {
        if (frozen) revert RollupIsFrozen();
        if (newPoster == address(0)) revert ZeroAddress();
        _checkGuardianSet(newGuardians, newThreshold);
        bytes32 structHash = keccak256(
            abi.encode(
                ROTATE_TYPEHASH, newPoster, keccak256(abi.encodePacked(newGuardians)), newThreshold, deadline
            )
        );
        bytes32 action = _useAction(structHash, deadline, signatures);
        pendingRotation = keccak256(abi.encode(newPoster, newGuardians, newThreshold));
        uint64 eta = uint64(liveClock()) + rotationDelay;
        rotationEta = eta;
        emit RotationApproved(newPoster, newGuardians, newThreshold, eta, action);
    }

    /// @notice Applies the approved rotation once due on the live clock (anyone; never while
    ///         paused, since the live clock is stopped).
    function executeRotation(address newPoster, address[] calldata newGuardians, uint256 newThreshold) external {
        if (frozen) revert RollupIsFrozen();
        bytes32 pending = pendingRotation;
        if (pending == bytes32(0)) revert NoPendingRotation();
        bytes32 given = keccak256(abi.encode(newPoster, newGuardians, newThreshold));
        if (given != pending) revert RotationMismatch(pending, given);
        if (paused) revert RollupIsPaused();
        if (liveClock() < rotationEta) revert RotationNotDue(rotationEta);
        pendingRotation = bytes32(0);
        rotationEta = 0;
        address[] memory old = _guardians;
        for (uint256 i; i < old.length; ++i) {
            isGuardian[old[i]] = false;
        }
        _setGuardians(newGuardians, newThreshold);
        poster = newPoster;
        emit Rotated(newPoster, newGuardians, newThreshold);
    }

    /// @notice The guardian set, in construction (or rotation) order.
    function guardians() external view returns (address[] memory) {
        return _guardians;
    }

    /// @notice EIP-712 domain separator of guardian actions (recomputed: survives chain forks).
    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH,
                keccak256(bytes(GUARDIAN_DOMAIN_NAME)),
                keccak256(bytes(GUARDIAN_DOMAIN_VERSION)),
                block.chainid,
                address(this)
            )
        );
    }

    /// @notice The EIP-712 digest guardians sign for a struct hash (helper for tooling).
    function guardianDigest(bytes32 structHash) public view returns (bytes32) {
        return Signatures.typedDigest(domainSeparator(), structHash);
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    function _requireBatch(uint256 batchIndex) internal view {
        if (batchIndex >= batchCount) revert UnknownBatch(batchIndex, batchCount);
    }

    function _checkGuardianSet(address[] memory set, uint256 threshold) internal pure {
        uint256 n = set.length;
        if (n == 0 || n > MAX_GUARDIANS) revert InvalidGuardianSet(n);
        if (threshold == 0 || threshold > n) revert InvalidThreshold(threshold, n);
        for (uint256 i; i < n; ++i) {
            if (set[i] == address(0)) revert ZeroAddress();
            for (uint256 j; j < i; ++j) {
                if (set[j] == set[i]) revert DuplicateGuardian(set[i]);
            }
        }
    }

    function _setGuardians(address[] memory set, uint256 threshold) internal {
        _checkGuardianSet(set, threshold);
        for (uint256 i; i < set.length; ++i) {
            isGuardian[set[i]] = true;
        }
        _guardians = set;
        guardianThreshold = threshold;
    }

    /// @dev Checks the deadline and the quorum over `structHash`, marks the action used and
    ///      returns its digest.
    function _useAction(bytes32 structHash, uint256 deadline, bytes[] calldata signatures)
        internal
        returns (bytes32 digest)
    {
        if (block.timestamp > deadline) revert ActionExpired(deadline, block.timestamp);
        digest = guardianDigest(structHash);
        if (actionUsed[digest]) revert ActionAlreadyUsed(digest);
        _checkGuardians(digest, signatures);
        actionUsed[digest] = true;
    }

    /// @dev Reverts unless `signatures` holds at least `guardianThreshold` valid signatures by
    ///      distinct guardians over `digest`, sorted by signer (strictly ascending, which also
    ///      rules out duplicates). Loop bounded by MAX_GUARDIANS.
    function _checkGuardians(bytes32 digest, bytes[] calldata signatures) internal view {
        uint256 n = signatures.length;
        uint256 max = _guardians.length;
        if (n > max) revert TooManySignatures(n, max);
        if (n < guardianThreshold) revert InsufficientSignatures(n, guardianThreshold);
        address prev;
        for (uint256 i; i < n; ++i) {
            address signer = Signatures.recover(digest, signatures[i]);
            if (signer == address(0)) revert InvalidSignature(i);
            if (!isGuardian[signer]) revert NotGuardian(i, signer);
            if (signer == prev) revert DuplicateSigner(i, signer);
            if (signer < prev) revert SignersNotSorted(i);
            prev = signer;
        }
    }
}
