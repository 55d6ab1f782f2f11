// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {MerkleLib} from "../src/MerkleLib.sol";
import {Encoding} from "../src/Encoding.sol";

/// @title EncodingHarness: TEST ONLY. Exposes MerkleLib and Encoding as external pure
///        functions so tests (tests/contracts) can check them against the Python side via
///        eth_call. Never deployed outside tests.
contract EncodingHarness {
    function merkleRoot(bytes32[] calldata leaves) external pure returns (bytes32) {
        return MerkleLib.root(leaves); // calldata -> memory copy; the copy is overwritten
    }

    function merkleVerify(bytes32 root, bytes32 leaf, uint256 index, bytes32[] calldata proof)
        external
        pure
        returns (bool)
    {
        return MerkleLib.verify(root, leaf, index, proof);
    }

    function merkleComputeRoot(bytes32 leaf, uint256 index, bytes32[] calldata proof) external pure returns (bytes32) {
        return MerkleLib.computeRoot(leaf, index, proof);
    }

    function headerHash(Encoding.BlockHeader calldata h) external pure returns (bytes32) {
        return Encoding.headerHash(h);
    }

    function withdrawalLeaf(address account, address recipient, uint256 amount, uint64 nonce)
        external
        pure
        returns (bytes32)
    {
        return Encoding.withdrawalLeaf(account, recipient, amount, nonce);
    }

    function accountLeaf(address account, uint256 collateral, bytes32 positionsHash) external pure returns (bytes32) {
        return Encoding.accountLeaf(account, collateral, positionsHash);
    }

    function tags() external pure returns (bytes32 withdrawalTag, bytes32 accountTag, bytes32 txTag) {
        return (Encoding.WITHDRAWAL_TAG, Encoding.ACCOUNT_TAG, Encoding.TX_TAG);
    }
}
