// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {MerkleLib} from "./MerkleLib.sol";
import {Encoding} from "./Encoding.sol";

/// @notice What the Bridge reads from (and asks of) its Rollup.
interface IRollupForBridge {
    function status() external view returns (bool isPaused, bool isFrozen);
    function finalWithdrawalsRoot(uint256 batchIndex) external view returns (bytes32);
    function lastFinalState() external view returns (uint256 finalCount, bytes32 headerHash, bytes32 stateRoot);
    function freeze() external;
}

/// @notice The subset of ERC-20 the Bridge uses.
interface IERC20Minimal {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title Bridge: collateral in (deposits) and out (withdrawals, escape) of optrollup.
/// @notice Created by the Rollup constructor; `rollup` and `token` never change.
///
/// Deposits: `deposit` pulls `amount` of the collateral token from the caller and emits
/// `Deposited` with a nonce counting from 0. The sequencer credits deposits in nonce order; a
/// block header's `l1MessageCursor` is the number of deposits credited so far. Each deposit's
/// (depositor, l2Account, amount) is committed in storage so that it can be refunded if the
/// escape hatch opens before the deposit reaches a final L2 state.
///
/// Withdrawals: an L2 `Withdraw` transaction yields a withdrawal leaf in its block's
/// withdrawalRoot; once the batch holding that block is final, `finalizeWithdrawal` pays
/// `amount` to `recipient` given the two-level proof of docs/encoding.md. Each (account, nonce)
/// is paid at most once, whichever batch proves it.
///
/// Escape hatch (after `Rollup.freeze()`, which the first escape triggers when allowed):
///   * `escape`: each account may withdraw, once, the `collateral` of its account leaf in the
///     last final state (proof against that state's depth-32 stateRoot).
///   * `refundDeposit`: a deposit not yet credited in the last final state (nonce >= that
///     block's l1MessageCursor) is returned to its depositor, once.
///   * `finalizeWithdrawal` keeps working for withdrawals in final batches (their amounts were
///     already debited from the account leaves, so nothing is paid twice).
///
/// OPEN POSITIONS in an escape: only the account's collateral (its cash balance, which already
/// includes every premium paid or received, every settled expiry and every withdrawal debit) is
/// paid. Open option positions (`positionsHash`) are NOT valued: L1 has no oracle and no
/// margin engine, so they are treated as closed at zero value. A holder forfeits the remaining
/// time/intrinsic value of a long option; a writer is released from the obligation and keeps
/// the premium already received. This keeps the escape exactly solvent: collateral is
/// conserved by every L2 transaction, so the sum of final-state collateral, unpaid final
/// withdrawals and uncredited deposits equals the Bridge's token balance.
///
/// Transfers follow checks-effects-interactions; a transient-storage guard blocks reentrancy
/// (defence in depth against token hooks). No function loops over stored user data.
contract Bridge {
    // ------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------

    /// @notice A withdrawal as signed on L2 (the fields of its leaf).
    struct Withdrawal {
        address account;
        address recipient;
        uint256 amount;
        uint64 nonce;
    }

    /// @notice Two-level proof (docs/encoding.md): leaf -> its block's withdrawalRoot, then that
    ///         root -> the batch's withdrawalsRoot.
    struct WithdrawalProof {
        uint256 batchIndex; // batch holding the block
        uint256 blockOffset; // block number - batch.firstBlock
        bytes32 blockWithdrawalRoot; // withdrawalRoot of that block (the intermediate node)
        bytes32[] blockProof; // siblings: blockWithdrawalRoot -> batch withdrawalsRoot
        uint256 leafIndex; // index of the Withdraw among the block's withdrawals
        bytes32[] leafProof; // siblings: leaf -> blockWithdrawalRoot
    }

    // ------------------------------------------------------------------------------------------
    // Constants, configuration, state
    // ------------------------------------------------------------------------------------------

    /// @notice Longest withdrawal proof accepted at either level (2^32 items per tree).
    uint256 public constant MAX_PROOF_LENGTH = 32;
    /// @dev Marks a refunded deposit in `depositCommitment`.
    bytes32 private constant REFUNDED = bytes32(uint256(1));

    IRollupForBridge public immutable rollup;
    IERC20Minimal public immutable token;

    /// @notice Nonce of the next deposit = number of deposits so far.
    uint256 public depositCount;
    /// @notice keccak256(abi.encode(depositor, l2Account, amount)) per deposit nonce
    ///         (REFUNDED = bytes32(uint256(1)) once refunded).
    mapping(uint256 => bytes32) public depositCommitment;
    mapping(address => mapping(uint64 => bool)) private _withdrawalPaid;
    /// @notice Accounts that already escaped.
    mapping(address => bool) public escaped;

    bool private transient _entered;

    // ------------------------------------------------------------------------------------------
    // Events and errors
    // ------------------------------------------------------------------------------------------

    event Deposited(uint256 indexed nonce, address indexed depositor, address indexed l2Account, uint256 amount);
    event WithdrawalFinalized(
        address indexed account, uint64 indexed nonce, address indexed recipient, uint256 amount, uint256 batchIndex
    );
    event Escaped(address indexed account, uint256 collateral, uint256 accountIndex, bytes32 stateRoot);
    event DepositRefunded(uint256 indexed nonce, address indexed depositor, uint256 amount);

    error ZeroAmount();
    error ZeroAddress();
    error Reentrancy();
    error DepositsClosed(bool isPaused, bool isFrozen);
    error WithdrawalAlreadyPaid(address account, uint64 nonce);
    error ProofTooLong(uint256 length, uint256 max);
    error InvalidLeafProof();
    error InvalidBlockProof();
    error AlreadyEscaped(address account);
    error BadAccountProofLength(uint256 length, uint256 expected);
    error InvalidAccountProof();
    error NotFrozen();
    error HeaderMismatch(bytes32 lastFinalHeaderHash, bytes32 givenHeaderHash);
    error DepositAlreadyCredited(uint256 nonce, uint64 l1MessageCursor);
    error UnknownDeposit(uint256 nonce);
    error DepositAlreadyRefunded(uint256 nonce);
    error TokenTransferFailed();

    modifier nonReentrant() {
        if (_entered) revert Reentrancy();
        _entered = true;
        _;
        _entered = false;
    }

    /// @param rollup_ the Rollup (the deployer: see Rollup's constructor).
    /// @param token_ the collateral ERC-20.
    constructor(address rollup_, address token_) {
        if (rollup_ == address(0) || token_ == address(0)) revert ZeroAddress();
        rollup = IRollupForBridge(rollup_);
        token = IERC20Minimal(token_);
    }

    // ------------------------------------------------------------------------------------------
    // Deposits
    // ------------------------------------------------------------------------------------------

    /// @notice Pulls `amount` collateral from the caller (approve first) and credits it to
    ///         `l2Account` on L2 once the sequencer sees the event.
    /// @return nonce the deposit's nonce (position in the sequencer's credit order).
    function deposit(uint256 amount, address l2Account) external nonReentrant returns (uint256 nonce) {
        if (amount == 0) revert ZeroAmount();
        if (l2Account == address(0)) revert ZeroAddress();
        (bool isPaused, bool isFrozen) = rollup.status();
        if (isPaused || isFrozen) revert DepositsClosed(isPaused, isFrozen);
        nonce = depositCount;
        depositCount = nonce + 1;
        depositCommitment[nonce] = keccak256(abi.encode(msg.sender, l2Account, amount));
        emit Deposited(nonce, msg.sender, l2Account, amount);
        _safeTransferFrom(msg.sender, amount);
    }

    // ------------------------------------------------------------------------------------------
    // Withdrawals
    // ------------------------------------------------------------------------------------------

    /// @notice Pays withdrawal `w` once, given its two-level proof against final batch
    ///         `p.batchIndex`. Anyone may call; the funds go to `w.recipient`.
    function finalizeWithdrawal(Withdrawal calldata w, WithdrawalProof calldata p) external nonReentrant {
        if (w.recipient == address(0)) revert ZeroAddress();
        if (_withdrawalPaid[w.account][w.nonce]) revert WithdrawalAlreadyPaid(w.account, w.nonce);
        if (p.leafProof.length > MAX_PROOF_LENGTH) revert ProofTooLong(p.leafProof.length, MAX_PROOF_LENGTH);
        if (p.blockProof.length > MAX_PROOF_LENGTH) revert ProofTooLong(p.blockProof.length, MAX_PROOF_LENGTH);
        // Reverts (RollupIsPaused / UnknownBatch / BatchNotFinal) unless the batch is payable.
        bytes32 withdrawalsRoot = rollup.finalWithdrawalsRoot(p.batchIndex);

        bytes32 leaf = Encoding.withdrawalLeaf(w.account, w.recipient, w.amount, w.nonce);
        if (!MerkleLib.verify(p.blockWithdrawalRoot, leaf, p.leafIndex, p.leafProof)) revert InvalidLeafProof();
        if (!MerkleLib.verify(withdrawalsRoot, p.blockWithdrawalRoot, p.blockOffset, p.blockProof)) {
            revert InvalidBlockProof();
        }

        _withdrawalPaid[w.account][w.nonce] = true;
        emit WithdrawalFinalized(w.account, w.nonce, w.recipient, w.amount, p.batchIndex);
        _safeTransfer(w.recipient, w.amount);
    }

    /// @notice True iff the withdrawal (account, nonce) was paid.
    function isWithdrawalPaid(address account, uint64 nonce) external view returns (bool) {
        return _withdrawalPaid[account][nonce];
    }

    // ------------------------------------------------------------------------------------------
    // Escape hatch
    // ------------------------------------------------------------------------------------------

    /// @notice Pays `account` the collateral of its account leaf in the last final state, once.
    ///         Freezes the Rollup first if it is not frozen (reverts FreezeNotAllowed if the
    ///         escape delay has not passed). Anyone may call; the funds go to `account`.
    /// @param positionsHash the leaf's positionsHash (open positions are not paid, see above).
    /// @param accountIndex the account's index in the state tree (< 2^32).
    /// @param proof exactly 32 sibling hashes (the state tree has fixed depth 32).
    function escape(
        address account,
        uint256 collateral,
        bytes32 positionsHash,
        uint256 accountIndex,
        bytes32[] calldata proof
    ) external nonReentrant {
        if (account == address(0)) revert ZeroAddress();
        if (escaped[account]) revert AlreadyEscaped(account);
        if (proof.length != Encoding.STATE_TREE_DEPTH) {
            revert BadAccountProofLength(proof.length, Encoding.STATE_TREE_DEPTH);
        }
        _ensureFrozen();
        (,, bytes32 stateRoot) = rollup.lastFinalState();
        bytes32 leaf = Encoding.accountLeaf(account, collateral, positionsHash);
        if (!MerkleLib.verify(stateRoot, leaf, accountIndex, proof)) revert InvalidAccountProof();

        escaped[account] = true;
        emit Escaped(account, collateral, accountIndex, stateRoot);
        if (collateral != 0) _safeTransfer(account, collateral);
    }

    /// @notice After the freeze, returns a deposit that the last final state had not credited
    ///         (nonce >= the last final header's l1MessageCursor) to its depositor, once.
    /// @param lastFinalHeader the full header of the last final L2 block (its hash must match
    ///        the Rollup's last final header hash); it proves the deposit cursor.
    function refundDeposit(
        uint256 nonce,
        address depositor,
        address l2Account,
        uint256 amount,
        Encoding.BlockHeader calldata lastFinalHeader
    ) external nonReentrant {
        (, bool isFrozen) = rollup.status();
        if (!isFrozen) revert NotFrozen();
        (, bytes32 finalHeaderHash,) = rollup.lastFinalState();
        bytes32 given = Encoding.headerHash(lastFinalHeader);
        if (given != finalHeaderHash) revert HeaderMismatch(finalHeaderHash, given);
        if (nonce < lastFinalHeader.l1MessageCursor) revert DepositAlreadyCredited(nonce, lastFinalHeader.l1MessageCursor);
        bytes32 c = depositCommitment[nonce];
        if (c == REFUNDED) revert DepositAlreadyRefunded(nonce);
        if (c == bytes32(0) || c != keccak256(abi.encode(depositor, l2Account, amount))) revert UnknownDeposit(nonce);

        depositCommitment[nonce] = REFUNDED;
        emit DepositRefunded(nonce, depositor, amount);
        _safeTransfer(depositor, amount);
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    function _ensureFrozen() internal {
        (, bool isFrozen) = rollup.status();
        if (!isFrozen) rollup.freeze(); // reverts FreezeNotAllowed before the escape delay
    }

    /// @dev ERC-20 transfer accepting tokens that return nothing; reverts on failure.
    function _safeTransfer(address to, uint256 amount) internal {
        (bool ok, bytes memory ret) = address(token).call(abi.encodeCall(IERC20Minimal.transfer, (to, amount)));
        _checkTokenCall(ok, ret);
    }

    /// @dev Pulls `amount` from `from` into the Bridge; reverts on failure.
    function _safeTransferFrom(address from, uint256 amount) internal {
        (bool ok, bytes memory ret) =
            address(token).call(abi.encodeCall(IERC20Minimal.transferFrom, (from, address(this), amount)));
        _checkTokenCall(ok, ret);
    }

    /// @dev A failed token call re-raises the token's own revert data (e.g. its
    ///      InsufficientAllowance error); a call that returns `false` raises TokenTransferFailed.
    function _checkTokenCall(bool ok, bytes memory ret) private pure {
        if (!ok) {
            if (ret.length == 0) revert TokenTransferFailed();
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        if (ret.length != 0 && (ret.length != 32 || !abi.decode(ret, (bool)))) revert TokenTransferFailed();
    }
}
