// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {MerkleLib} from "./MerkleLib.sol";
import {Encoding} from "./Encoding.sol";
import {Signatures} from "./Signatures.sol";
import {Adjudicator} from "./Adjudicator.sol";

/// @notice What the Bridge reads from (and asks of) its Rollup.
interface IRollupForBridge {
    function status() external view returns (bool isPaused, bool isFrozen);
    function finalWithdrawalsRoot(uint256 batchIndex) external view returns (bytes32);
    function lastFinalState()
        external
        view
        returns (uint256 finalCount, bytes32 headerHash, bytes32 stateRoot, bytes32 marksRoot);
    function liveClock() external view returns (uint256);
    function freeze() external;
}

/// @notice The subset of ERC-20 the Bridge uses.
interface IERC20Minimal {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address account) external view returns (uint256);
    function decimals() external view returns (uint8);
}

/// @title Bridge: collateral in (deposits) and out (withdrawals, escape) of optrollup, and the
///        L1 message queue the L2 must process.
/// @notice Created by the Rollup constructor; `rollup`, `token` and `adjudicator` (the state
///         channels' Adjudicator, created by the same constructor) never change.
///
/// L1 messages (docs/encoding.md, "L1 messages"): `deposit` and `requestWithdrawal` append to one
/// queue numbered from 0 (`messageCount`). The L2 processes them in order; a header's
/// `l1MessageCursor` counts those processed. Each message's commitment and its queue time on the
/// Rollup's live clock are stored: the Rollup lets anyone freeze once the oldest message the tip
/// has not included is `inclusionDelay` old, so an operator cannot censor a deposit or a forced
/// withdrawal. A deposit the L2 cannot credit is refunded on L2 (a withdrawal leaf paying the
/// depositor), never stalls the queue.
///
/// Withdrawals: an L2 withdrawal (signed `Withdraw`, forced withdrawal or deposit refund) yields a
/// leaf in its block's withdrawalRoot; once its batch is final, `finalizeWithdrawal` pays it given
/// the two-level proof of docs/encoding.md. Each (account, nonce) is paid at most once.
///
/// Escape hatch (after `Rollup.freeze()`, which the first escape triggers when allowed):
///   * `escape`: each account is paid, once, the value of its leaf in the last final state:
///     `collateral + Σ value(q)` over its positions at the batch's committed marks (rounded
///     against the account, as the L2 margin engine does), or zero if that is negative; capped
///     by what the Bridge still holds (see contracts/README.md on a shortfall).
///   * `escapeChannel`: the funds of a state channel still open in the last final state (moved
///     out of both accounts at open, so in neither account leaf) are paid out, once per
///     channel, by the state the Adjudicator concluded it with: A gets balanceA plus the value
///     of A's channel positions at the committed marks, clamped to [0, depositA + depositB],
///     B the rest.
///   * `refundDeposit`: a deposit the last final state had not processed (nonce >= its
///     l1MessageCursor) is returned to its depositor, once.
///   * `finalizeWithdrawal` keeps working for withdrawals in final batches.
/// A holder whose address the token refuses (e.g. a blacklist) may name another recipient for
/// its escape or refund with an EIP-712 signature (domain "optrollup.bridge").
///
/// Transfers follow checks-effects-interactions; a transient-storage guard blocks reentrancy.
/// No function loops over stored user data.
contract Bridge {
    // ------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------

    /// @notice A withdrawal leaf's fields.
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
        uint256 leafIndex; // index of the leaf among the block's withdrawal leaves
        bytes32[] leafProof; // siblings: leaf -> blockWithdrawalRoot
    }

    /// @notice One open position of an escaping account, with its mark and the mark's proof
    ///         against the final batch's marks root.
    struct Position {
        string instrument;
        int256 amount; // contracts x 10^6, signed (short < 0)
        uint256 markLo; // base units per contract
        uint256 markHi;
        uint256 markIndex;
        bytes32[] markProof;
    }

    /// @notice An account's leaf in the last final state, with its proof and positions (in the
    ///         leaf's order: sorted by instrument name).
    struct EscapeClaim {
        address account;
        uint256 collateral;
        uint256 accountIndex; // < 2^32
        bytes32[] accountProof; // exactly 32 siblings
        Position[] positions;
    }

    /// @notice A state channel's leaf in the last final state (docs/encoding.md, "Channel
    ///         leaf"), with its proof: the same depth-32 tree and index space as accounts.
    struct ChannelClaim {
        bytes32 channelId;
        address a;
        address b;
        uint256 depositA;
        uint256 depositB;
        uint256 status; // 0 open, 1 closed, 2 concluded: only an open channel escapes
        uint256 closedTurnNum; // 0 while open
        bytes32 closedStateHash; // 0 while open
        uint256 channelIndex; // < 2^32
        bytes32[] channelProof; // exactly 32 siblings
    }

    /// @notice One leaf of the final marks tree next to an instrument that is not in it: a mark
    ///         leaf `(instrument, markLo, markHi)`, or (`padding`) the zero leaf that pads the
    ///         tree after its last instrument (`instrument`, `markLo`, `markHi` then unused).
    struct MarkNeighbour {
        bool padding;
        string instrument;
        uint256 markLo;
        uint256 markHi;
        uint256 index;
        bytes32[] proof;
    }

    /// @notice The mark of one channel position, in the state's position order. `listed`: the
    ///         instrument's mark and its proof against the final marks root, exactly as for
    ///         an account's position. Otherwise the instrument has no leaf in that tree
    ///         (settled or delisted before the final state, or never listed) and the position
    ///         counts zero: `neighbours` proves the absence with the adjacent leaves of the
    ///         sorted tree, each proven with the same proof length: [leaf g-1, leaf g] around
    ///         the gap g where the instrument would be, or only [leaf 0] (g = 0: before the
    ///         first instrument; a padding leaf 0 only for the empty tree), or only [the last
    ///         slot, 2^depth - 1] (after the last instrument of a full tree).
    struct PositionMark {
        bool listed;
        uint256 markLo;
        uint256 markHi;
        uint256 markIndex;
        bytes32[] markProof;
        MarkNeighbour[] neighbours;
    }

    /// @notice Where a channel's two shares go: each party's account (recipient zero or the
    ///         account) or a recipient it signed ChannelEscapeTo(channelId, account, recipient) for.
    struct ChannelPayees {
        address recipientA;
        bytes signatureA;
        address recipientB;
        bytes signatureB;
    }

    // ------------------------------------------------------------------------------------------
    // Constants, configuration, state
    // ------------------------------------------------------------------------------------------

    /// @notice Longest Merkle proof accepted (2^32 items per tree).
    uint256 public constant MAX_PROOF_LENGTH = 32;
    /// @notice Largest amount of one deposit or forced withdrawal: L2 amounts are uint64.
    uint256 public constant MAX_AMOUNT = type(uint64).max;
    /// @notice The L2 prices everything in base units of a 6-decimal collateral.
    uint8 public constant COLLATERAL_DECIMALS = 6;
    /// @notice L1 message kinds.
    uint8 public constant KIND_DEPOSIT = 0;
    uint8 public constant KIND_FORCED_WITHDRAWAL = 1;
    /// @notice Contracts x 10^6: the unit of position amounts.
    int256 private constant UNIT = 1e6;
    /// @dev Marks a refunded deposit in `messageCommitment`.
    bytes32 private constant REFUNDED = bytes32(uint256(1));

    string public constant DOMAIN_NAME = "optrollup.bridge";
    string public constant DOMAIN_VERSION = "1";
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// @notice Signed by an account to have its escape paid to `recipient`.
    bytes32 public constant ESCAPE_TO_TYPEHASH = keccak256("EscapeTo(address account,address recipient)");
    /// @notice Signed by a depositor to have deposit `nonce` refunded to `recipient`.
    bytes32 public constant REFUND_TO_TYPEHASH = keccak256("RefundTo(uint256 nonce,address recipient)");
    /// @notice Signed by a channel party to have its share of `channelId` paid to `recipient`.
    bytes32 public constant CHANNEL_ESCAPE_TO_TYPEHASH =
        keccak256("ChannelEscapeTo(bytes32 channelId,address account,address recipient)");
    /// @dev |value| of one channel position beyond which it saturates (only for amounts or marks
    ///      no L2 state holds: both are < 2^64 there), so that no co-signed state can overflow.
    int256 private constant VALUE_BOUND = 2 ** 200;

    IRollupForBridge public immutable rollup;
    IERC20Minimal public immutable token;
    /// @notice The state channels' Adjudicator of this Rollup (whose conclusions
    ///         `escapeChannel` pays out).
    Adjudicator public immutable adjudicator;

    /// @notice Nonce of the next L1 message = number of messages so far.
    uint256 public messageCount;
    /// @notice keccak256(abi.encode(uint8 kind, address from, address to, uint256 amount)) per
    ///         message nonce (REFUNDED = bytes32(uint256(1)) once a deposit is refunded on L1).
    mapping(uint256 => bytes32) public messageCommitment;
    /// @notice The Rollup's live clock when each message was queued (its inclusion deadline
    ///         runs from here).
    mapping(uint256 => uint64) public messageQueuedLive;
    mapping(address => mapping(uint64 => bool)) private _withdrawalPaid;
    /// @notice Accounts that already escaped.
    mapping(address => bool) public escaped;
    /// @notice State channels whose funds were already paid out by `escapeChannel`.
    mapping(bytes32 => bool) public channelEscaped;

    bool private transient _entered;

    // ------------------------------------------------------------------------------------------
    // Events and errors
    // ------------------------------------------------------------------------------------------

    event Deposited(uint256 indexed nonce, address indexed depositor, address indexed l2Account, uint256 amount);
    event WithdrawalRequested(
        uint256 indexed nonce, address indexed account, address indexed recipient, uint256 amount
    );
    event WithdrawalFinalized(
        address indexed account, uint64 indexed nonce, address indexed recipient, uint256 amount, uint256 batchIndex
    );
    event Escaped(address indexed account, address indexed recipient, uint256 value, uint256 paid, bytes32 stateRoot);
    event DepositRefunded(uint256 indexed nonce, address indexed depositor, address recipient, uint256 amount);
    /// @notice A channel's funds were paid out: `valueA` + `valueB` = depositA + depositB by
    ///         the concluded state `stateHash`; `paidA`/`paidB` what the Bridge's balance allowed.
    event ChannelEscaped(
        bytes32 indexed channelId,
        address indexed recipientA,
        address indexed recipientB,
        uint256 valueA,
        uint256 valueB,
        uint256 paidA,
        uint256 paidB,
        bytes32 stateHash
    );

    error ZeroAmount();
    error AmountTooLarge(uint256 amount, uint256 max);
    error ZeroAddress();
    error BadRecipient(address recipient);
    error BadDecimals(uint8 decimals, uint8 expected);
    error Reentrancy();
    error QueueClosed(bool isPaused, bool isFrozen);
    error WithdrawalAlreadyPaid(address account, uint64 nonce);
    error ProofTooLong(uint256 length, uint256 max);
    error InvalidLeafProof();
    error InvalidBlockProof();
    error AlreadyEscaped(address account);
    error BadAccountProofLength(uint256 length, uint256 expected);
    error InvalidAccountProof();
    error InvalidMarkProof(uint256 position);
    error BadOwnerSignature(address expected, address recovered);
    error NotFrozen();
    error HeaderMismatch(bytes32 lastFinalHeaderHash, bytes32 givenHeaderHash);
    error DepositAlreadyProcessed(uint256 nonce, uint64 l1MessageCursor);
    error UnknownDeposit(uint256 nonce);
    error DepositAlreadyRefunded(uint256 nonce);
    error TokenTransferFailed();
    error ChannelAlreadyEscaped(bytes32 channelId);
    error BadChannelProofLength(uint256 length, uint256 expected);
    error InvalidChannelProof();
    /// @dev The channel was closed or concluded on L2 in the final state: its funds are in the
    ///      two account leaves (escape the accounts).
    error ChannelNotOpen(bytes32 channelId, uint256 status);
    error StateChannelMismatch(bytes32 channelId, bytes32 stateChannelId);
    /// @dev Conclude the channel on the Adjudicator first (it works while the Rollup is frozen).
    error ChannelNotConcluded(bytes32 channelId);
    error NotConcludedState(bytes32 channelId, bytes32 concludedStateHash, bytes32 givenStateHash);
    error MarksLengthMismatch(uint256 positions, uint256 marks);
    error InvalidAbsenceProof(uint256 position);

    modifier nonReentrant() {
        if (_entered) revert Reentrancy();
        _entered = true;
        _;
        _entered = false;
    }

    /// @param rollup_ the Rollup (the deployer: see Rollup's constructor).
    /// @param token_ the collateral ERC-20; must report COLLATERAL_DECIMALS decimals.
    /// @param adjudicator_ the Rollup's state-channel Adjudicator (created by the same constructor).
    constructor(address rollup_, address token_, address adjudicator_) {
        if (rollup_ == address(0) || token_ == address(0) || adjudicator_ == address(0)) revert ZeroAddress();
        (bool ok, bytes memory ret) = token_.staticcall(abi.encodeCall(IERC20Minimal.decimals, ()));
        uint8 d = ok && ret.length == 32 ? abi.decode(ret, (uint8)) : type(uint8).max;
        if (d != COLLATERAL_DECIMALS) revert BadDecimals(d, COLLATERAL_DECIMALS);
        rollup = IRollupForBridge(rollup_);
        token = IERC20Minimal(token_);
        adjudicator = Adjudicator(adjudicator_);
    }

    // ------------------------------------------------------------------------------------------
    // L1 messages
    // ------------------------------------------------------------------------------------------

    /// @notice Pulls `amount` (0 < amount <= MAX_AMOUNT) collateral from the caller (approve
    ///         first) for `l2Account`; the L2 credits it, or refunds it if it cannot.
    /// @return nonce the message nonce (position in the L2's processing order).
    function deposit(uint256 amount, address l2Account) external nonReentrant returns (uint256 nonce) {
        if (l2Account == address(0)) revert ZeroAddress();
        nonce = _enqueue(KIND_DEPOSIT, msg.sender, l2Account, amount);
        emit Deposited(nonce, msg.sender, l2Account, amount);
        _safeTransferFrom(msg.sender, amount);
    }

    /// @notice Asks the L2 to withdraw `amount` of the caller's L2 collateral to `recipient` on
    ///         L1. The L2 must process it within the inclusion delay (or anyone may freeze);
    ///         once included it is paid by `finalizeWithdrawal` with nonce FORCED_NONCE_BASE +
    ///         the message nonce (or refused on L2 if the account cannot afford it).
    function requestWithdrawal(uint256 amount, address recipient) external nonReentrant returns (uint256 nonce) {
        if (recipient == address(0) || recipient == address(this) || recipient == address(rollup)
                || recipient == address(token)) revert BadRecipient(recipient);
        nonce = _enqueue(KIND_FORCED_WITHDRAWAL, msg.sender, recipient, amount);
        emit WithdrawalRequested(nonce, msg.sender, recipient, amount);
    }

    function _enqueue(uint8 kind, address from, address to, uint256 amount) internal returns (uint256 nonce) {
        if (amount == 0) revert ZeroAmount();
        if (amount > MAX_AMOUNT) revert AmountTooLarge(amount, MAX_AMOUNT);
        (bool isPaused, bool isFrozen) = rollup.status();
        if (isPaused || isFrozen) revert QueueClosed(isPaused, isFrozen);
        nonce = messageCount;
        messageCount = nonce + 1;
        messageCommitment[nonce] = keccak256(abi.encode(kind, from, to, amount));
        messageQueuedLive[nonce] = uint64(rollup.liveClock());
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

    /// @notice Pays an account, once, the value of its leaf in the last final state (freezing
    ///         the Rollup first if allowed). Anyone may call; the funds go to the account, or to
    ///         `recipient` if the account signed EscapeTo(account, recipient).
    /// @param lastFinalHeader the full header of the last final L2 block (hash checked against
    ///        the Rollup); the account proof is checked against its stateRoot.
    /// @param recipient address(0) or the account itself to pay the account.
    /// @param ownerSignature the account's EIP-712 EscapeTo signature (empty when paying the account).
    function escape(
        Encoding.BlockHeader calldata lastFinalHeader,
        EscapeClaim calldata c,
        address recipient,
        bytes calldata ownerSignature
    ) external nonReentrant {
        if (c.account == address(0)) revert ZeroAddress();
        if (escaped[c.account]) revert AlreadyEscaped(c.account);
        if (c.accountProof.length != Encoding.STATE_TREE_DEPTH) {
            revert BadAccountProofLength(c.accountProof.length, Encoding.STATE_TREE_DEPTH);
        }
        address to = _payee(c.account, recipient, keccak256(abi.encode(ESCAPE_TO_TYPEHASH, c.account, recipient)), ownerSignature);
        _ensureFrozen();
        uint256 value = _claimValue(lastFinalHeader, c);
        uint256 held = token.balanceOf(address(this));
        uint256 paid = value < held ? value : held;

        escaped[c.account] = true;
        emit Escaped(c.account, to, value, paid, lastFinalHeader.stateRoot);
        if (paid != 0) _safeTransfer(to, paid);
    }

    /// @dev max(0, collateral + Σ value(q)) of the claim, after checking the header against the
    ///      Rollup's last final state and the account leaf against its stateRoot.
    function _claimValue(Encoding.BlockHeader calldata lastFinalHeader, EscapeClaim calldata c)
        internal
        view
        returns (uint256)
    {
        (, bytes32 finalHash,, bytes32 marksRoot) = rollup.lastFinalState();
        bytes32 given = Encoding.headerHash(lastFinalHeader);
        if (given != finalHash) revert HeaderMismatch(finalHash, given);
        (int256 positionsValue, bytes32 positionsHash) = _valuePositions(marksRoot, c.positions);
        bytes32 leaf = Encoding.accountLeaf(c.account, c.collateral, positionsHash);
        if (!MerkleLib.verify(lastFinalHeader.stateRoot, leaf, c.accountIndex, c.accountProof)) {
            revert InvalidAccountProof();
        }
        int256 total = int256(c.collateral) + positionsValue; // collateral < 2^64 on L2
        return total > 0 ? uint256(total) : 0;
    }

    /// @dev Σ value(q) over `ps` at marks proven against `marksRoot`, and the positionsHash of
    ///      the account leaf (H(abi.encode(string[] instruments, int256[] amounts)), zero when empty).
    function _valuePositions(bytes32 marksRoot, Position[] calldata ps)
        internal
        pure
        returns (int256 v, bytes32 positionsHash)
    {
        uint256 n = ps.length;
        if (n == 0) return (0, bytes32(0));
        string[] memory names = new string[](n);
        int256[] memory amounts = new int256[](n);
        for (uint256 i; i < n; ++i) {
            Position calldata p = ps[i];
            if (p.markProof.length > MAX_PROOF_LENGTH) revert ProofTooLong(p.markProof.length, MAX_PROOF_LENGTH);
            bytes32 leaf = Encoding.markLeaf(p.instrument, p.markLo, p.markHi);
            if (!MerkleLib.verify(marksRoot, leaf, p.markIndex, p.markProof)) revert InvalidMarkProof(i);
            names[i] = p.instrument;
            amounts[i] = p.amount;
            v += _positionValue(p.amount, p.markLo, p.markHi);
        }
        positionsHash = keccak256(abi.encode(names, amounts));
    }

    // ------------------------------------------------------------------------------------------
    // Escape hatch: state channels
    // ------------------------------------------------------------------------------------------

    /// @notice Pays out, once, the funds of state channel `c.channelId`, open in the last final
    ///         state (freezing the Rollup first if allowed), by the state `s` the Adjudicator
    ///         concluded it with: A gets `balanceA + Σ value(q)` over A's positions at the final
    ///         marks (rounded against A as the account escape rounds), clamped to
    ///         [0, depositA + depositB]; B gets the rest. Anyone may call; each share goes to
    ///         its account or to the recipient its owner signed for (`payees`).
    /// @param lastFinalHeader the full header of the last final L2 block (hash checked against
    ///        the Rollup); the channel proof is checked against its stateRoot.
    /// @param c the channel's leaf (status must be open) and its depth-32 proof.
    /// @param s the concluded state (its EIP-712 digest must be the Adjudicator's stateHash).
    /// @param marks one per position of `s`, in order: its mark or the proof it has none.
    /// @param payees each party's recipient (zero or the account itself: the account) and, for
    ///        another one, the account's ChannelEscapeTo signature (empty otherwise).
    function escapeChannel(
        Encoding.BlockHeader calldata lastFinalHeader,
        ChannelClaim calldata c,
        Adjudicator.State calldata s,
        PositionMark[] calldata marks,
        ChannelPayees calldata payees
    ) external nonReentrant {
        bytes32 id = c.channelId;
        if (channelEscaped[id]) revert ChannelAlreadyEscaped(id);
        if (c.channelProof.length != Encoding.STATE_TREE_DEPTH) {
            revert BadChannelProofLength(c.channelProof.length, Encoding.STATE_TREE_DEPTH);
        }
        address toA = _payee(
            c.a, payees.recipientA, keccak256(abi.encode(CHANNEL_ESCAPE_TO_TYPEHASH, id, c.a, payees.recipientA)),
            payees.signatureA
        );
        address toB = _payee(
            c.b, payees.recipientB, keccak256(abi.encode(CHANNEL_ESCAPE_TO_TYPEHASH, id, c.b, payees.recipientB)),
            payees.signatureB
        );
        _ensureFrozen();
        bytes32 marksRoot = _checkOpenChannel(lastFinalHeader, c);
        bytes32 stateHash = _checkConcluded(id, s);
        uint256 total = c.depositA + c.depositB;
        uint256 valueA = _channelShareA(s.balanceA, _channelPositionsValue(marksRoot, s.positions, marks), total);
        channelEscaped[id] = true;
        _payChannel(id, toA, toB, valueA, total - valueA, stateHash);
    }

    /// @dev Checks the header against the Rollup's last final state and the channel's leaf
    ///      against its stateRoot, requires the channel open there; returns the marks root.
    function _checkOpenChannel(Encoding.BlockHeader calldata lastFinalHeader, ChannelClaim calldata c)
        internal
        view
        returns (bytes32 marksRoot)
    {
        bytes32 finalHash;
        (, finalHash,, marksRoot) = rollup.lastFinalState();
        bytes32 given = Encoding.headerHash(lastFinalHeader);
        if (given != finalHash) revert HeaderMismatch(finalHash, given);
        bytes32 leaf = Encoding.channelLeaf(
            c.channelId, c.a, c.b, c.depositA, c.depositB, c.status, c.closedTurnNum, c.closedStateHash
        );
        if (!MerkleLib.verify(lastFinalHeader.stateRoot, leaf, c.channelIndex, c.channelProof)) {
            revert InvalidChannelProof();
        }
        if (c.status != Encoding.CHANNEL_OPEN) revert ChannelNotOpen(c.channelId, c.status);
    }

    /// @dev Requires `s` to be the state the Adjudicator concluded channel `id` with; returns
    ///      its EIP-712 digest. (The Adjudicator's stateDigest also refuses unsorted positions
    ///      or a zero amount, which no concluded state has.)
    function _checkConcluded(bytes32 id, Adjudicator.State calldata s) internal view returns (bytes32 digest) {
        if (s.channelId != id) revert StateChannelMismatch(id, s.channelId);
        (,, bytes32 concludedHash, bool concluded) = adjudicator.status(id);
        if (!concluded) revert ChannelNotConcluded(id);
        digest = adjudicator.stateDigest(s);
        if (digest != concludedHash) revert NotConcludedState(id, concludedHash, digest);
    }

    /// @dev Σ value(q) over A's channel positions: at its mark proven against `marksRoot` for
    ///      a listed instrument (the account escape's rule and rounding), zero for one proven
    ///      absent from the marks tree. Each term saturates at ±VALUE_BOUND (see there).
    function _channelPositionsValue(
        bytes32 marksRoot,
        Adjudicator.Position[] calldata ps,
        PositionMark[] calldata marks
    ) internal pure returns (int256 v) {
        uint256 n = ps.length;
        if (marks.length != n) revert MarksLengthMismatch(n, marks.length);
        for (uint256 i; i < n; ++i) {
            PositionMark calldata m = marks[i];
            if (m.listed) {
                if (m.markProof.length > MAX_PROOF_LENGTH) revert ProofTooLong(m.markProof.length, MAX_PROOF_LENGTH);
                bytes32 leaf = Encoding.markLeaf(ps[i].instrument, m.markLo, m.markHi);
                if (!MerkleLib.verify(marksRoot, leaf, m.markIndex, m.markProof)) revert InvalidMarkProof(i);
                v += _boundedPositionValue(ps[i].amount, m.markLo, m.markHi);
            } else if (!_absentFromMarks(marksRoot, bytes(ps[i].instrument), m.neighbours)) {
                revert InvalidAbsenceProof(i);
            }
        }
    }

    /// @dev True iff `ns` proves that no leaf of the marks tree `marksRoot` (mark leaves sorted
    ///      strictly by instrument name, then zero padding to 2^depth) is for `name`: adjacent
    ///      leaves around the gap where it would sit, all proven with one proof length (a real
    ///      leaf is a hash of a tagged record and a padding leaf is zero, so neither can pass as
    ///      an internal node of another depth without a Keccak preimage).
    function _absentFromMarks(bytes32 marksRoot, bytes calldata name, MarkNeighbour[] calldata ns)
        internal
        pure
        returns (bool)
    {
        uint256 n = ns.length;
        if (n == 0 || n > 2) return false;
        MarkNeighbour calldata first = ns[0];
        uint256 depth = first.proof.length;
        if (depth > MAX_PROOF_LENGTH) revert ProofTooLong(depth, MAX_PROOF_LENGTH);
        if (!_neighbourInTree(marksRoot, first)) return false;
        if (n == 2) {
            // [leaf g-1, leaf g]: a mark below the name, then a mark above it or the padding
            MarkNeighbour calldata second = ns[1];
            if (second.proof.length != depth || second.index != first.index + 1) return false;
            if (!_neighbourInTree(marksRoot, second)) return false;
            return !first.padding && Encoding.lessBytes(bytes(first.instrument), name)
                && (second.padding || Encoding.lessBytes(name, bytes(second.instrument)));
        }
        // [leaf 0]: the first mark is above the name (or the tree is empty)
        if (first.index == 0 && (first.padding || Encoding.lessBytes(name, bytes(first.instrument)))) return true;
        // [the last slot of the tree]: a mark below the name, nothing after it
        return !first.padding && first.index == (uint256(1) << depth) - 1
            && Encoding.lessBytes(bytes(first.instrument), name);
    }

    /// @dev The neighbour's leaf (the mark leaf, or zero for padding) is in `marksRoot` at its index.
    function _neighbourInTree(bytes32 marksRoot, MarkNeighbour calldata nb) internal pure returns (bool) {
        bytes32 leaf = nb.padding ? bytes32(0) : Encoding.markLeaf(nb.instrument, nb.markLo, nb.markHi);
        return MerkleLib.verify(marksRoot, leaf, nb.index, nb.proof);
    }

    /// @dev clamp(balanceA + positionsValue, 0, total). The balance is capped at 2^254 first
    ///      (anything above `total` pays `total` either way, short of absurd position values).
    function _channelShareA(uint256 balanceA, int256 positionsValue, uint256 total) internal pure returns (uint256) {
        int256 x = int256(balanceA < 2 ** 254 ? balanceA : 2 ** 254) + positionsValue;
        if (x <= 0) return 0;
        return uint256(x) < total ? uint256(x) : total;
    }

    /// @dev Pays both shares, capped by what the Bridge holds (A first, then B), and emits
    ///      ChannelEscaped (the caller has already marked the channel escaped).
    function _payChannel(bytes32 id, address toA, address toB, uint256 valueA, uint256 valueB, bytes32 stateHash)
        internal
    {
        uint256 held = token.balanceOf(address(this));
        uint256 paidA = valueA < held ? valueA : held;
        held -= paidA;
        uint256 paidB = valueB < held ? valueB : held;
        emit ChannelEscaped(id, toA, toB, valueA, valueB, paidA, paidB, stateHash);
        if (paidA != 0) _safeTransfer(toA, paidA);
        if (paidB != 0) _safeTransfer(toB, paidB);
    }

    /// @dev The escape value of a channel position: `_positionValue` for amounts and marks an
    ///      L2 state can hold (|q| < 2^120 and mark <= 2^96: no overflow, |value| < 2^200),
    ///      else ±VALUE_BOUND (the sign of q; 0 at a zero mark). Only a state both parties
    ///      signed can hold such a position; saturating keeps it from locking the channel.
    function _boundedPositionValue(int256 q, uint256 markLo, uint256 markHi) internal pure returns (int256) {
        uint256 mark = q >= 0 ? markLo : markHi;
        if (q == 0 || mark == 0) return 0;
        if (mark <= 2 ** 96 && q < 2 ** 120 && q > -(2 ** 120)) return _positionValue(q, markLo, markHi);
        return q > 0 ? VALUE_BOUND : -VALUE_BOUND;
    }

    /// @dev floor(q·markLo/10^6) for a long, floor(q·markHi/10^6) for a short: the L2's equity
    ///      rounding (against the holder). Marks are < 2^64 and |q| < 2^64 on L2, so no overflow.
    function _positionValue(int256 q, uint256 markLo, uint256 markHi) internal pure returns (int256) {
        int256 p = q * int256(q >= 0 ? markLo : markHi);
        int256 d = p / UNIT; // truncates toward zero
        if (p < 0 && d * UNIT != p) d -= 1;
        return d;
    }

    /// @notice After the freeze, returns a deposit that the last final state had not processed
    ///         (nonce >= the last final header's l1MessageCursor) to its depositor, once (or to
    ///         `recipient` if the depositor signed RefundTo(nonce, recipient)).
    /// @param lastFinalHeader the full header of the last final L2 block (its hash must match
    ///        the Rollup's last final header hash); it proves the message cursor.
    function refundDeposit(
        uint256 nonce,
        address depositor,
        address l2Account,
        uint256 amount,
        Encoding.BlockHeader calldata lastFinalHeader,
        address recipient,
        bytes calldata depositorSignature
    ) external nonReentrant {
        _requireRefundable(nonce, keccak256(abi.encode(KIND_DEPOSIT, depositor, l2Account, amount)), lastFinalHeader);
        address to = _payee(depositor, recipient, keccak256(abi.encode(REFUND_TO_TYPEHASH, nonce, recipient)), depositorSignature);

        messageCommitment[nonce] = REFUNDED;
        emit DepositRefunded(nonce, depositor, to, amount);
        _safeTransfer(to, amount);
    }

    /// @dev Reverts unless frozen, `lastFinalHeader` is the last final header, message `nonce`
    ///      is a deposit with commitment `commitment` not processed by it and not yet refunded.
    function _requireRefundable(uint256 nonce, bytes32 commitment, Encoding.BlockHeader calldata lastFinalHeader)
        internal
        view
    {
        (, bool isFrozen) = rollup.status();
        if (!isFrozen) revert NotFrozen();
        (, bytes32 finalHeaderHash,,) = rollup.lastFinalState();
        bytes32 given = Encoding.headerHash(lastFinalHeader);
        if (given != finalHeaderHash) revert HeaderMismatch(finalHeaderHash, given);
        if (nonce < lastFinalHeader.l1MessageCursor) {
            revert DepositAlreadyProcessed(nonce, lastFinalHeader.l1MessageCursor);
        }
        bytes32 c = messageCommitment[nonce];
        if (c == REFUNDED) revert DepositAlreadyRefunded(nonce);
        if (c == bytes32(0) || c != commitment) revert UnknownDeposit(nonce);
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    /// @notice EIP-712 domain separator of owner redirects (recomputed: survives chain forks).
    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH, keccak256(bytes(DOMAIN_NAME)), keccak256(bytes(DOMAIN_VERSION)), block.chainid, address(this)
            )
        );
    }

    /// @dev `owner` itself when `recipient` is zero or the owner; otherwise `recipient`, which
    ///      the owner must have signed for (`structHash` under this contract's domain).
    function _payee(address owner, address recipient, bytes32 structHash, bytes calldata sig)
        internal
        view
        returns (address)
    {
        if (recipient == address(0) || recipient == owner) return owner;
        if (recipient == address(this) || recipient == address(token)) revert BadRecipient(recipient);
        address signer = Signatures.recover(Signatures.typedDigest(domainSeparator(), structHash), sig);
        if (signer != owner) revert BadOwnerSignature(owner, signer);
        return recipient;
    }

    function _ensureFrozen() internal {
        (, bool isFrozen) = rollup.status();
        if (!isFrozen) rollup.freeze(); // reverts FreezeNotAllowed unless allowed
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
