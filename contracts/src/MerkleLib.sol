// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title MerkleLib: the optrollup Merkle rule (docs/encoding.md, "Hashing").
/// @notice Exactly the rule implemented by `cext.merkle_root` / `merkle_proof` / `merkle_verify`:
///   * leaves are 32-byte hashes;
///   * the leaf level is padded to a power of two with `bytes32(0)`;
///   * parent = keccak256(left ‖ right);
///   * one leaf -> the root is the leaf itself; no leaves -> `bytes32(0)`;
///   * a proof lists the sibling hashes from the leaf level up; bit `i` of the leaf index says
///     whether the node at level `i` is a right child (1) or a left child (0).
/// @dev Padding is never materialised: at level `k` a missing right sibling is the root of an
///      all-zero subtree of height `k` (Z_0 = 0, Z_{k+1} = H(Z_k ‖ Z_k)), which is what padding
///      the leaves with zeros yields.
library MerkleLib {
    /// @notice keccak256(left ‖ right), computed in scratch space (no memory allocation).
    function hashPair(bytes32 left, bytes32 right) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            h := keccak256(0x00, 0x40)
        }
    }

    /// @notice Walks `proof` from `leaf` at position `index` up to the root it implies.
    /// @dev Bits of `index` above `proof.length` are ignored here; `verify` rejects them.
    function computeRoot(bytes32 leaf, uint256 index, bytes32[] calldata proof)
        internal
        pure
        returns (bytes32 node)
    {
        node = leaf;
        uint256 n = proof.length;
        for (uint256 i; i < n; ++i) {
            node = (index & 1 == 1) ? hashPair(proof[i], node) : hashPair(node, proof[i]);
            index >>= 1;
        }
    }

    /// @notice True iff `proof` takes `leaf` at `index` to `expectedRoot`.
    /// @dev An index that does not fit in a tree of height `proof.length` is rejected, as in
    ///      `cext.merkle_verify` (so one leaf has exactly one valid (index, proof) pair).
    ///      For `proof.length >= 256` the shift yields 0 in both Solidity and Python.
    function verify(bytes32 expectedRoot, bytes32 leaf, uint256 index, bytes32[] calldata proof)
        internal
        pure
        returns (bool)
    {
        if ((index >> proof.length) != 0) return false;
        return computeRoot(leaf, index, proof) == expectedRoot;
    }

    /// @notice Merkle root over `leaves`. OVERWRITES `leaves` (used as the working buffer).
    /// @dev O(n) hashes, no allocation beyond the caller's array.
    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 n = leaves.length;
        if (n == 0) return bytes32(0);
        bytes32 zero; // root of an all-zero subtree at the current level
        while (n > 1) {
            uint256 half = (n + 1) >> 1;
            for (uint256 i; i < half; ++i) {
                uint256 l = i << 1;
                bytes32 right = l + 1 < n ? leaves[l + 1] : zero;
                leaves[i] = hashPair(leaves[l], right);
            }
            zero = hashPair(zero, zero);
            n = half;
        }
        return leaves[0];
    }
}
