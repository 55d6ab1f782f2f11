// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Encoding: the byte layouts of docs/encoding.md that the contracts need.
/// @notice Every function here has a Python twin (eth-abi `encode` + keccak256); the test
///         suite (tests/contracts) checks that both sides agree.
library Encoding {
    /// @notice H("optrollup.withdrawal.v1"): domain tag of withdrawal leaves.
    bytes32 internal constant WITHDRAWAL_TAG = keccak256("optrollup.withdrawal.v1");
    /// @notice H("optrollup.account.v1"): domain tag of account (state) leaves.
    bytes32 internal constant ACCOUNT_TAG = keccak256("optrollup.account.v1");
    /// @notice H("optrollup.mark.v1"): domain tag of mark leaves (per-batch marks root).
    bytes32 internal constant MARK_TAG = keccak256("optrollup.mark.v1");
    /// @notice H("optrollup.tx.v1"): domain tag of transaction leaves (not used on chain today).
    bytes32 internal constant TX_TAG = keccak256("optrollup.tx.v1");
    /// @notice H("optrollup.channel.v1"): domain tag of state-channel leaves (in the state tree).
    bytes32 internal constant CHANNEL_TAG = keccak256("optrollup.channel.v1");
    /// @notice Status of a state channel in its leaf: open (funds in the channel), closed on L2
    ///         by a co-signed final state, concluded on L2 by the Adjudicator's state.
    uint256 internal constant CHANNEL_OPEN = 0;
    uint256 internal constant CHANNEL_CLOSED = 1;
    uint256 internal constant CHANNEL_CONCLUDED = 2;

    /// @notice Height of the state tree: `stateRoot` commits to 2^32 leaves (accounts and
    ///         state channels share the tree and its index space).
    uint256 internal constant STATE_TREE_DEPTH = 32;

    /// @notice An L2 block header, field order as in docs/encoding.md ("Block header").
    struct BlockHeader {
        uint64 number;
        bytes32 parentHash;
        uint64 timestamp;
        bytes32 txRoot;
        bytes32 stateRoot;
        bytes32 withdrawalRoot;
        uint64 l1MessageCursor; // number of L1 messages (Bridge nonces) processed up to and including this block
    }

    /// @notice headerHash = H(abi.encode(number, parentHash, timestamp, txRoot, stateRoot,
    ///         withdrawalRoot, l1MessageCursor)).
    function headerHash(BlockHeader calldata h) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                h.number, h.parentHash, h.timestamp, h.txRoot, h.stateRoot, h.withdrawalRoot, h.l1MessageCursor
            )
        );
    }

    /// @notice H(abi.encode(WITHDRAWAL_TAG, account, recipient, amount, nonce)).
    function withdrawalLeaf(address account, address recipient, uint256 amount, uint64 nonce)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(WITHDRAWAL_TAG, account, recipient, amount, nonce));
    }

    /// @notice H(abi.encode(ACCOUNT_TAG, account, collateral, positionsHash)).
    function accountLeaf(address account, uint256 collateral, bytes32 positionsHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(ACCOUNT_TAG, account, collateral, positionsHash));
    }

    /// @notice H(abi.encode(MARK_TAG, string instrument, uint256 markLo, uint256 markHi)).
    function markLeaf(string calldata instrument, uint256 markLo, uint256 markHi) internal pure returns (bytes32) {
        return keccak256(abi.encode(MARK_TAG, instrument, markLo, markHi));
    }

    /// @notice H(abi.encode(CHANNEL_TAG, channelId, a, b, depositA, depositB, status,
    ///         closedTurnNum, closedStateHash)): a state channel's leaf in the state tree
    ///         (status 0 open, 1 closed, 2 concluded; the turn and EIP-712 digest of the state it
    ///         closed with, zero while open).
    function channelLeaf(
        bytes32 channelId,
        address a,
        address b,
        uint256 depositA,
        uint256 depositB,
        uint256 status,
        uint256 closedTurnNum,
        bytes32 closedStateHash
    ) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(CHANNEL_TAG, channelId, a, b, depositA, depositB, status, closedTurnNum, closedStateHash)
        );
    }

    /// @notice a < b in bytewise lexicographic order (a proper prefix is smaller): the order of
    ///         instrument names in the marks tree and in channel states (UTF-8 bytes = code
    ///         points). Compares 32-byte words, zero padded past each end, then the lengths.
    function lessBytes(bytes calldata a, bytes calldata b) internal pure returns (bool) {
        uint256 n = a.length < b.length ? a.length : b.length;
        for (uint256 i; i < n; i += 32) {
            bytes32 wa = bytes32(a[i:]);
            bytes32 wb = bytes32(b[i:]);
            if (wa != wb) return wa < wb;
        }
        return a.length < b.length;
    }
}
