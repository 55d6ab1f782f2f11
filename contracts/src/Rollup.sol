// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {MerkleLib} from "./MerkleLib.sol";
import {Bridge} from "./Bridge.sol";

/// @title Rollup: optrollup's L1 commitments (batches of L2 blocks), finality, guardians, freeze.
/// @notice Life of a batch (docs/encoding.md, "Batches on L1"):
///   1. The poster (one fixed key) submits L2 blocks `firstBlock..lastBlock`. The batch must
///      extend the current tip: `firstBlock` = tip block + 1 and `prevHeaderHash` = tip header
///      hash (the genesis header at first). The batch data (compressed block bodies) travels in
///      the same transaction's calldata; only its hash is stored.
///   2. It is final `challengeWindow` seconds after its L1 timestamp. Until then a guardian
///      quorum (M-of-N ECDSA signatures, EIP-712, checked here) may reject it, which drops it
///      and every later batch; the poster then re-posts from the new tip.
///   3. Withdrawals are paid by the Bridge against final batches only.
/// Guardians may also pause the rollup (no batches, deposits or withdrawals). While paused the
/// finality clock stops at the pause time, so a batch cannot become final behind the guardians'
/// back; it resumes on unpause (batches whose window elapsed during the pause are then final).
///
/// Escape hatch: if no batch has become final for `escapeDelay` seconds (operator gone, every
/// batch rejected, or a pause lasting that long) anyone may call `freeze()`. Freezing is
/// permanent: non-final batches are dropped, no batch is accepted any more, and the last final
/// state becomes the basis of the Bridge's escape withdrawals (see Bridge.sol).
///
/// Everything a replay verifier needs is readable from this contract alone: the L2 chain id,
/// genesis header hash and state root, the Bridge and collateral token, the deployment block,
/// and (in the RollupDeployed event of that block) the canonical genesis configuration bytes.
contract Rollup {
    // ------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------

    /// @notice What L1 keeps per batch. The first slot is packed (4 x uint64).
    struct Batch {
        uint64 firstBlock; // first L2 block of the batch
        uint64 lastBlock; // last L2 block of the batch
        uint64 submittedAt; // L1 timestamp of the submitting block (finality starts here)
        uint64 l1BlockNumber; // L1 block that carries the batch data in its calldata
        bytes32 lastHeaderHash; // header hash of `lastBlock`
        bytes32 stateRoot; // state root after `lastBlock`
        bytes32 withdrawalsRoot; // Merkle root over the blocks' withdrawalRoots, in block order
        bytes32 dataHash; // keccak256 of the batch data (calldata `data`)
    }

    // ------------------------------------------------------------------------------------------
    // Constants
    // ------------------------------------------------------------------------------------------

    /// @notice Upper bound on the guardian set (bounds every signature loop).
    uint256 public constant MAX_GUARDIANS = 32;

    /// @notice EIP-712 domain of guardian actions. Deliberately NOT the L2 order domain
    ///         ("optrollup"), so an L2 signature can never pass as a guardian signature.
    string public constant GUARDIAN_DOMAIN_NAME = "optrollup.guardians";
    string public constant GUARDIAN_DOMAIN_VERSION = "1";
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// @notice Guardian action types. `nonce` is `guardianNonce` (one use per signature set).
    bytes32 public constant REJECT_TYPEHASH =
        keccak256("Reject(uint256 batchIndex,bytes32 lastHeaderHash,uint256 nonce)");
    bytes32 public constant PAUSE_TYPEHASH = keccak256("Pause(uint256 nonce)");
    bytes32 public constant UNPAUSE_TYPEHASH = keccak256("Unpause(uint256 nonce)");

    /// @dev secp256k1 n / 2: signatures with a larger `s` are malleable and rejected.
    uint256 private constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    // ------------------------------------------------------------------------------------------
    // Configuration (immutable)
    // ------------------------------------------------------------------------------------------

    address public immutable poster;
    address public immutable bridge; // deployed by this constructor
    address public immutable collateralToken;
    uint256 public immutable l2ChainId;
    bytes32 public immutable genesisHeaderHash; // header hash of L2 block 0
    bytes32 public immutable genesisStateRoot; // state root of L2 block 0
    uint64 public immutable challengeWindow; // seconds
    uint64 public immutable escapeDelay; // seconds without a new final batch before freeze() is allowed
    uint64 public immutable deploymentBlock; // L1 block of this deployment (log scans start here)
    uint64 public immutable deployedAt; // L1 timestamp of this deployment
    uint256 public immutable guardianThreshold; // M of the M-of-N guardian quorum

    // ------------------------------------------------------------------------------------------
    // State
    // ------------------------------------------------------------------------------------------

    address[] private _guardians;
    mapping(address => bool) public isGuardian;

    /// @dev Batches 0..batchCount-1 are live. Entries at or past batchCount are stale (left by
    ///      a rejection) and are overwritten by later submissions; every reader checks the index.
    mapping(uint256 => Batch) private _batches;
    uint256 public batchCount;

    /// @notice Nonce of the next guardian action (replay protection).
    uint256 public guardianNonce;

    bool public paused;
    uint64 public pausedAt; // L1 timestamp of the current pause (meaningful while paused)
    bool public frozen;
    uint64 public frozenAt;

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
        bytes32 dataHash
    );
    /// @notice Batches `fromBatchIndex .. fromBatchIndex + count - 1` were dropped.
    event BatchesRejected(uint256 indexed fromBatchIndex, uint256 count, uint256 guardianNonce);
    event RollupPaused(uint256 guardianNonce);
    event RollupUnpaused(uint256 guardianNonce);
    /// @notice The escape hatch opened; `finalBatchCount` final batches remain (the last one's
    ///         state, or genesis when 0, is the escape state).
    event RollupFrozen(uint256 finalBatchCount, bytes32 headerHash, bytes32 stateRoot);

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    // constructor
    error ZeroAddress();
    error NotAContract(address account);
    error InvalidGuardianSet(uint256 count);
    error DuplicateGuardian(address guardian);
    error InvalidThreshold(uint256 threshold, uint256 guardians);
    error InvalidEscapeDelay(uint64 challengeWindow, uint64 escapeDelay);
    // submitBatch
    error NotPoster(address caller);
    error RollupIsPaused();
    error RollupIsFrozen();
    error BadBlockRange(uint64 firstBlock, uint64 lastBlock);
    error BlockGap(uint64 expectedFirstBlock, uint64 firstBlock);
    error PrevHeaderMismatch(bytes32 expected, bytes32 actual);
    error WithdrawalRootsLength(uint256 expected, uint256 actual);
    error ZeroHeaderHash();
    // batches, guardians, freeze
    error UnknownBatch(uint256 batchIndex, uint256 batchCount);
    error BatchAlreadyFinal(uint256 batchIndex);
    error BatchNotFinal(uint256 batchIndex);
    error BatchMismatch(uint256 batchIndex, bytes32 storedHeaderHash, bytes32 signedHeaderHash);
    error RollupNotPaused();
    error TooManySignatures(uint256 count, uint256 max);
    error InsufficientSignatures(uint256 count, uint256 threshold);
    error InvalidSignature(uint256 index);
    error NotGuardian(uint256 index, address signer);
    error DuplicateSigner(uint256 index, address signer);
    error SignersNotSorted(uint256 index);
    error FreezeNotAllowed(uint256 lastFinalizedAt, uint256 freezableAfter);

    // ------------------------------------------------------------------------------------------
    // Construction
    // ------------------------------------------------------------------------------------------

    /// @param poster_ the only key allowed to submit batches.
    /// @param guardians_ the guardian set (1..MAX_GUARDIANS distinct non-zero addresses).
    /// @param threshold_ signatures needed for a guardian action (1..guardians_.length).
    /// @param challengeWindow_ seconds from submission to finality.
    /// @param escapeDelay_ seconds without a newly final batch after which anyone may freeze;
    ///        must exceed the challenge window (else the system could freeze while healthy).
    /// @param l2ChainId_ the L2 chain id (EIP-712 domain of L2 orders).
    /// @param genesisHeaderHash_ header hash of L2 block 0; the first batch chains from it.
    /// @param genesisStateRoot_ state root of L2 block 0 (the escape state if nothing is final).
    /// @param collateralToken_ the ERC-20 collateral held by the Bridge.
    /// @param genesisConfig_ the canonical genesis bytes (`Genesis.to_bytes()` in
    ///        sequencer/core/chainspec.py): emitted in RollupDeployed, not stored, so a verifier
    ///        rebuilds block 0 from L1 alone and checks it against `genesisHeaderHash`.
    constructor(
        address poster_,
        address[] memory guardians_,
        uint256 threshold_,
        uint64 challengeWindow_,
        uint64 escapeDelay_,
        uint256 l2ChainId_,
        bytes32 genesisHeaderHash_,
        bytes32 genesisStateRoot_,
        address collateralToken_,
        bytes memory genesisConfig_
    ) {
        if (poster_ == address(0) || collateralToken_ == address(0)) revert ZeroAddress();
        if (collateralToken_.code.length == 0) revert NotAContract(collateralToken_);
        if (genesisHeaderHash_ == bytes32(0)) revert ZeroHeaderHash();
        uint256 n = guardians_.length;
        if (n == 0 || n > MAX_GUARDIANS) revert InvalidGuardianSet(n);
        if (threshold_ == 0 || threshold_ > n) revert InvalidThreshold(threshold_, n);
        if (escapeDelay_ <= challengeWindow_) revert InvalidEscapeDelay(challengeWindow_, escapeDelay_);
        for (uint256 i; i < n; ++i) {
            address g = guardians_[i];
            if (g == address(0)) revert ZeroAddress();
            if (isGuardian[g]) revert DuplicateGuardian(g);
            isGuardian[g] = true;
        }
        _guardians = guardians_;

        poster = poster_;
        guardianThreshold = threshold_;
        challengeWindow = challengeWindow_;
        escapeDelay = escapeDelay_;
        l2ChainId = l2ChainId_;
        genesisHeaderHash = genesisHeaderHash_;
        genesisStateRoot = genesisStateRoot_;
        collateralToken = collateralToken_;
        deploymentBlock = uint64(block.number);
        deployedAt = uint64(block.timestamp);

        // The Bridge is created here so that `bridge` is provably the Bridge of this Rollup.
        address b = address(new Bridge(address(this), collateralToken_));
        bridge = b;
        emit RollupDeployed(b, collateralToken_, l2ChainId_, genesisHeaderHash_, genesisStateRoot_, genesisConfig_);
    }

    // ------------------------------------------------------------------------------------------
    // Batches
    // ------------------------------------------------------------------------------------------

    /// @notice Commits L2 blocks `firstBlock..lastBlock` (docs/encoding.md, "Batches on L1").
    /// @param prevHeaderHash header hash of block `firstBlock - 1` (must be the current tip).
    /// @param lastHeaderHash header hash of `lastBlock`.
    /// @param stateRoot state root after `lastBlock`.
    /// @param withdrawalRoots `withdrawalRoots[k]` = withdrawalRoot of block `firstBlock + k`.
    /// @param data the batch data; only keccak256(data) is stored, the bytes stay in calldata.
    function submitBatch(
        uint64 firstBlock,
        uint64 lastBlock,
        bytes32 prevHeaderHash,
        bytes32 lastHeaderHash,
        bytes32 stateRoot,
        bytes32[] calldata withdrawalRoots,
        bytes calldata data
    ) external {
        if (msg.sender != poster) revert NotPoster(msg.sender);
        if (frozen) revert RollupIsFrozen();
        if (paused) revert RollupIsPaused();
        _checkExtendsTip(firstBlock, lastBlock, prevHeaderHash, withdrawalRoots.length);
        if (lastHeaderHash == bytes32(0)) revert ZeroHeaderHash();
        _record(
            firstBlock,
            lastBlock,
            lastHeaderHash,
            stateRoot,
            MerkleLib.root(withdrawalRoots), // calldata -> memory copy, overwritten by root()
            keccak256(data)
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

    /// @dev Appends a checked batch and emits BatchSubmitted.
    function _record(
        uint64 firstBlock,
        uint64 lastBlock,
        bytes32 lastHeaderHash,
        bytes32 stateRoot,
        bytes32 withdrawalsRoot,
        bytes32 dataHash
    ) internal {
        uint256 index = batchCount;
        _batches[index] = Batch({
            firstBlock: firstBlock,
            lastBlock: lastBlock,
            submittedAt: uint64(block.timestamp),
            l1BlockNumber: uint64(block.number),
            lastHeaderHash: lastHeaderHash,
            stateRoot: stateRoot,
            withdrawalsRoot: withdrawalsRoot,
            dataHash: dataHash
        });
        batchCount = index + 1;
        emit BatchSubmitted(index, firstBlock, lastBlock, lastHeaderHash, stateRoot, withdrawalsRoot, dataHash);
    }

    /// @notice The chain tip the next batch must extend: (last L2 block, its header hash).
    function tip() public view returns (uint64 lastBlock, bytes32 lastHeaderHash) {
        uint256 n = batchCount;
        if (n == 0) return (0, genesisHeaderHash);
        Batch storage b = _batches[n - 1];
        return (b.lastBlock, b.lastHeaderHash);
    }

    /// @notice Batch `batchIndex` (reverts UnknownBatch if it does not exist).
    function getBatch(uint256 batchIndex) external view returns (Batch memory) {
        _requireBatch(batchIndex);
        return _batches[batchIndex];
    }

    /// @notice True iff batch `batchIndex` exists and its challenge window has passed
    ///         (measured on the finality clock, which stops while paused).
    function isFinal(uint256 batchIndex) public view returns (bool) {
        if (batchIndex >= batchCount) return false;
        if (frozen) return true; // freeze() kept exactly the final batches
        return _batches[batchIndex].submittedAt + uint256(challengeWindow) <= _finalityClock();
    }

    /// @notice Number of final batches (they are always a prefix: 0..n-1). O(log batchCount).
    function finalizedBatchCount() public view returns (uint256) {
        uint256 hi = batchCount;
        if (frozen || hi == 0) return hi;
        uint256 clock = _finalityClock();
        uint256 window = challengeWindow;
        // Submission times never decrease, so finality is monotone in the index.
        if (_batches[hi - 1].submittedAt + window <= clock) return hi;
        uint256 lo;
        while (lo < hi) {
            uint256 mid = (lo + hi) >> 1;
            if (_batches[mid].submittedAt + window <= clock) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// @notice When the newest final batch became final (deployment time if none is).
    function lastFinalizedAt() public view returns (uint256) {
        uint256 k = finalizedBatchCount();
        if (k == 0) return deployedAt;
        return _batches[k - 1].submittedAt + uint256(challengeWindow);
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
    function lastFinalState() public view returns (uint256 finalCount, bytes32 headerHash, bytes32 stateRoot) {
        finalCount = finalizedBatchCount();
        if (finalCount == 0) return (0, genesisHeaderHash, genesisStateRoot);
        Batch storage b = _batches[finalCount - 1];
        return (finalCount, b.lastHeaderHash, b.stateRoot);
    }

    // ------------------------------------------------------------------------------------------
    // Escape hatch
    // ------------------------------------------------------------------------------------------

    /// @notice True iff `freeze()` would succeed now.
    function canFreeze() public view returns (bool) {
        return !frozen && block.timestamp > lastFinalizedAt() + uint256(escapeDelay);
    }

    /// @notice Opens the escape hatch (anyone; the Bridge calls it on the first escape).
    ///         Allowed once no batch has become final for more than `escapeDelay` seconds.
    ///         Permanent: drops the non-final batches and refuses every later batch.
    function freeze() external {
        if (frozen) revert RollupIsFrozen();
        uint256 last = lastFinalizedAt();
        if (block.timestamp <= last + uint256(escapeDelay)) {
            revert FreezeNotAllowed(last, last + uint256(escapeDelay));
        }
        (uint256 k, bytes32 headerHash, bytes32 stateRoot) = lastFinalState();
        batchCount = k;
        frozen = true;
        frozenAt = uint64(block.timestamp);
        emit RollupFrozen(k, headerHash, stateRoot);
    }

    // ------------------------------------------------------------------------------------------
    // Guardians
    // ------------------------------------------------------------------------------------------

    /// @notice Drops batch `batchIndex` and every later batch. Needs a guardian quorum over
    ///         Reject(batchIndex, lastHeaderHash, guardianNonce). Works while paused, not once
    ///         the batch is final.
    /// @param lastHeaderHash the rejected batch's lastHeaderHash, as signed by the guardians.
    /// @param signatures 65-byte (r, s, v) signatures, sorted by signer address, ascending.
    function reject(uint256 batchIndex, bytes32 lastHeaderHash, bytes[] calldata signatures) external {
        if (frozen) revert RollupIsFrozen();
        _requireBatch(batchIndex);
        if (isFinal(batchIndex)) revert BatchAlreadyFinal(batchIndex);
        bytes32 stored = _batches[batchIndex].lastHeaderHash;
        if (stored != lastHeaderHash) revert BatchMismatch(batchIndex, stored, lastHeaderHash);
        uint256 nonce = guardianNonce;
        _checkGuardians(keccak256(abi.encode(REJECT_TYPEHASH, batchIndex, lastHeaderHash, nonce)), signatures);
        guardianNonce = nonce + 1;
        uint256 dropped = batchCount - batchIndex;
        batchCount = batchIndex;
        emit BatchesRejected(batchIndex, dropped, nonce);
    }

    /// @notice Pauses batches, deposits and withdrawals and stops the finality clock.
    function pause(bytes[] calldata signatures) external {
        if (frozen) revert RollupIsFrozen();
        if (paused) revert RollupIsPaused();
        uint256 nonce = guardianNonce;
        _checkGuardians(keccak256(abi.encode(PAUSE_TYPEHASH, nonce)), signatures);
        guardianNonce = nonce + 1;
        paused = true;
        pausedAt = uint64(block.timestamp);
        emit RollupPaused(nonce);
    }

    /// @notice Lifts a pause; the finality clock resumes at the current time.
    function unpause(bytes[] calldata signatures) external {
        if (frozen) revert RollupIsFrozen();
        if (!paused) revert RollupNotPaused();
        uint256 nonce = guardianNonce;
        _checkGuardians(keccak256(abi.encode(UNPAUSE_TYPEHASH, nonce)), signatures);
        guardianNonce = nonce + 1;
        paused = false;
        emit RollupUnpaused(nonce);
    }

    /// @notice The guardian set, in construction order.
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
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    /// @dev Time used for finality: frozen at the pause time while paused.
    function _finalityClock() internal view returns (uint256) {
        return paused ? pausedAt : block.timestamp;
    }

    function _requireBatch(uint256 batchIndex) internal view {
        if (batchIndex >= batchCount) revert UnknownBatch(batchIndex, batchCount);
    }

    /// @dev Reverts unless `signatures` holds at least `guardianThreshold` valid signatures by
    ///      distinct guardians over the EIP-712 digest of `structHash`, sorted by signer
    ///      (strictly ascending, which also rules out duplicates). Loop bounded by MAX_GUARDIANS.
    function _checkGuardians(bytes32 structHash, bytes[] calldata signatures) internal view {
        uint256 n = signatures.length;
        uint256 max = _guardians.length;
        if (n > max) revert TooManySignatures(n, max);
        if (n < guardianThreshold) revert InsufficientSignatures(n, guardianThreshold);
        bytes32 digest = guardianDigest(structHash);
        address prev;
        for (uint256 i; i < n; ++i) {
            address signer = _recover(digest, signatures[i], i);
            if (!isGuardian[signer]) revert NotGuardian(i, signer);
            if (signer == prev) revert DuplicateSigner(i, signer);
            if (signer < prev) revert SignersNotSorted(i);
            prev = signer;
        }
    }

    /// @dev ecrecover of a 65-byte (r, s, v) signature; v in {27, 28} or {0, 1}; low s only.
    function _recover(bytes32 digest, bytes calldata sig, uint256 index) internal pure returns (address signer) {
        if (sig.length != 65) revert InvalidSignature(index);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (v < 27) v += 27;
        if ((v != 27 && v != 28) || uint256(s) > HALF_N) revert InvalidSignature(index);
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature(index);
    }
}
