// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Encoding} from "optrollup/Encoding.sol";

/// @title Spec: test-side twins of docs/encoding.md, written independently of contracts/src
///        (only the BlockHeader struct type is shared, because Bridge.refundDeposit takes it).
/// @dev Merkle rule: leaves padded with bytes32(0) to a power of two, parent = keccak256(l ‖ r),
///      one leaf -> the leaf itself, no leaves -> 0; a proof lists siblings from the leaves up.
///      Everything here materialises the padded levels (simple, O(n log n)); MerkleLib does not.
library Spec {
    bytes32 internal constant WITHDRAWAL_TAG = keccak256("optrollup.withdrawal.v1");
    bytes32 internal constant ACCOUNT_TAG = keccak256("optrollup.account.v1");
    uint256 internal constant STATE_TREE_DEPTH = 32;

    function node(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(left, right));
    }

    function withdrawalLeaf(address account, address recipient, uint256 amount, uint64 nonce)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(WITHDRAWAL_TAG, account, recipient, amount, nonce));
    }

    function accountLeaf(address account, uint256 collateral, bytes32 positionsHash) internal pure returns (bytes32) {
        return keccak256(abi.encode(ACCOUNT_TAG, account, collateral, positionsHash));
    }

    function headerHash(Encoding.BlockHeader memory h) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(h.number, h.parentHash, h.timestamp, h.txRoot, h.stateRoot, h.withdrawalRoot, h.l1MessageCursor)
        );
    }

    /// @notice Number of proof levels for `n` leaves: ceil(log2(n)) (0 for n <= 1).
    function depthOf(uint256 n) internal pure returns (uint256 d) {
        while ((uint256(1) << d) < n) ++d;
    }

    /// @notice The leaf level padded with zeros to 2^depthOf(n) entries (a fresh array).
    function padded(bytes32[] memory leaves) internal pure returns (bytes32[] memory level) {
        level = new bytes32[](uint256(1) << depthOf(leaves.length));
        for (uint256 i; i < leaves.length; ++i) level[i] = leaves[i];
    }

    function parentLevel(bytes32[] memory level) internal pure returns (bytes32[] memory up) {
        up = new bytes32[](level.length / 2);
        for (uint256 i; i < up.length; ++i) up[i] = node(level[2 * i], level[2 * i + 1]);
    }

    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        if (leaves.length == 0) return bytes32(0);
        bytes32[] memory level = padded(leaves);
        while (level.length > 1) level = parentLevel(level);
        return level[0];
    }

    /// @notice Sibling path of leaf `index` (depthOf(leaves.length) entries).
    function proof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory p) {
        bytes32[] memory level = padded(leaves);
        p = new bytes32[](depthOf(leaves.length));
        for (uint256 d; d < p.length; ++d) {
            p[d] = level[index ^ 1];
            level = parentLevel(level);
            index >>= 1;
        }
    }

    /// @notice Root of the all-zero subtree of height `h` (Z_0 = 0, Z_{k+1} = H(Z_k ‖ Z_k)).
    function zeroRoot(uint256 h) internal pure returns (bytes32 z) {
        for (uint256 i; i < h; ++i) z = node(z, z);
    }

    /// @notice State root (depth-32 account tree) whose first `accounts.length` leaves are the
    ///         given accounts' leaves (positionsHash 0) and the rest zero, and the 32-sibling
    ///         proof of account `index` in it.
    function stateTree(address[] memory accounts, uint256[] memory collateral, uint256 index)
        internal
        pure
        returns (bytes32 stateRoot, bytes32[] memory accountProof)
    {
        bytes32[] memory leaves = new bytes32[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) leaves[i] = accountLeaf(accounts[i], collateral[i], bytes32(0));
        uint256 d = depthOf(leaves.length);
        bytes32[] memory low = proof(leaves, index);
        accountProof = new bytes32[](STATE_TREE_DEPTH);
        bytes32 r = root(leaves);
        bytes32 z = zeroRoot(d);
        for (uint256 i; i < d; ++i) accountProof[i] = low[i];
        for (uint256 i = d; i < STATE_TREE_DEPTH; ++i) {
            accountProof[i] = z; // the subtree holding the accounts is always the left child
            r = node(r, z);
            z = node(z, z);
        }
        stateRoot = r;
    }
}
