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

    /// @notice Height of the account tree: `stateRoot` commits to 2^32 account leaves.
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
}
