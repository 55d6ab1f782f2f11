// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {MerkleLib} from "optrollup/MerkleLib.sol";
import {TestBase} from "../base/TestBase.sol";
import {Spec} from "../base/Spec.sol";

/// @notice MerkleLib behind an external call, so proofs arrive as calldata (as in the Bridge).
contract MerkleLibHarness {
    function verify(bytes32 root, bytes32 leaf, uint256 index, bytes32[] calldata proof) external pure returns (bool) {
        return MerkleLib.verify(root, leaf, index, proof);
    }
}

/// @notice Set-up and helpers shared by the proofs and their controls (all loops have concrete
///         bounds; symbolic indices are resolved by case splits, never by symbolic offsets).
abstract contract MerkleLibChecks is TestBase {
    MerkleLibHarness internal lib;

    function setUp() public {
        lib = new MerkleLibHarness();
    }

    function _list(bytes32[8] calldata a, uint256 n) internal pure returns (bytes32[] memory l) {
        l = new bytes32[](n);
        for (uint256 i; i < n; ++i) l[i] = a[i];
    }

    function _copy(bytes32[] memory a) internal pure returns (bytes32[] memory c) {
        c = new bytes32[](a.length);
        for (uint256 i; i < a.length; ++i) c[i] = a[i];
    }

    /// @dev MerkleLib.root overwrites its argument: give it a copy.
    function _libRoot(bytes32[] memory leaves) internal pure returns (bytes32) {
        return MerkleLib.root(_copy(leaves));
    }

    function _proofOf(bytes32[4] calldata s, uint256 len) internal pure returns (bytes32[] memory p) {
        p = new bytes32[](len);
        for (uint256 i; i < len; ++i) p[i] = s[i];
    }

    /// @dev leaves[j] by a case split (j symbolic), or 0 when j is past the list.
    function _at(bytes32[] memory leaves, uint256 j) internal pure returns (bytes32 v) {
        for (uint256 k; k < leaves.length; ++k) {
            if (j == k) v = leaves[k];
        }
    }

    struct W {
        address account;
        address recipient;
        uint256 amount;
        uint64 nonce;
    }

    function _leafOf(W calldata w) internal pure returns (bytes32) {
        return Spec.withdrawalLeaf(w.account, w.recipient, w.amount, w.nonce);
    }

    function _taggedTree(W[4] calldata t) internal pure returns (bytes32 r) {
        bytes32[] memory leaves = new bytes32[](4);
        for (uint256 i; i < 4; ++i) leaves[i] = _leafOf(t[i]);
        r = _libRoot(leaves);
    }
}

/// @title MerkleLibProofs: halmos proofs (`check_*`) about contracts/src/MerkleLib.sol for small
///        trees. Every function parameter is a fully symbolic input.
/// @notice Run: `halmos --root contracts/forge --contract MerkleLibProofs --function check_`.
/// @dev HASH MODEL. Halmos does not compute keccak256 of symbolic data: it is an uninterpreted
///      function per input length, with axioms: injective (an inverse exists, even on the low
///      160 bits of the output), the input length is recoverable from the output (so hashes of
///      64-byte pairs and of 160-byte tagged records never coincide), the output is never 0
///      (nor above 2^256 - 2^64), and hashes of concrete inputs take their real values (so the
///      zero-subtree roots Z_k are the true constants). So:
///        * "completeness" and "root = spec" results are exact: they need no hash property;
///        * every "soundness" result holds under the assumption that keccak256 has no
///          collision (and never outputs 0): it rules out every forgery except a keccak
///          collision, which is the best any Merkle proof can offer.
///      Sizes are small and fixed (1..8 leaves, proofs of 0..4 siblings): nothing is claimed
///      for bigger trees beyond the argument by induction these cases illustrate.
contract MerkleLibProofs is MerkleLibChecks {
    // ------------------------------------------------------------------------------------------
    // 1. MerkleLib.root (zero padding never materialised) = the padded spec, n = 1..8
    // ------------------------------------------------------------------------------------------

    function _rootMatchesSpec(bytes32[8] calldata a, uint256 n) internal pure {
        bytes32[] memory leaves = _list(a, n);
        assert(_libRoot(leaves) == Spec.root(leaves));
    }

    function check_root_equals_spec_1to8(bytes32[8] calldata a) public pure {
        for (uint256 n = 1; n <= 8; ++n) _rootMatchesSpec(a, n);
    }

    // ------------------------------------------------------------------------------------------
    // 2. Completeness: the spec's proof of every leaf verifies against MerkleLib.root
    // ------------------------------------------------------------------------------------------

    function _complete(bytes32[8] calldata a, uint256 n) internal view {
        bytes32[] memory leaves = _list(a, n);
        bytes32 r = _libRoot(leaves);
        for (uint256 i; i < n; ++i) {
            assert(lib.verify(r, leaves[i], i, Spec.proof(leaves, i)));
        }
    }

    function check_complete_2(bytes32[8] calldata a) public view {
        _complete(a, 2);
    }

    function check_complete_4(bytes32[8] calldata a) public view {
        _complete(a, 4);
    }

    function check_complete_8(bytes32[8] calldata a) public view {
        _complete(a, 8);
    }

    function check_complete_3_5(bytes32[8] calldata a) public view {
        _complete(a, 3);
        _complete(a, 5);
    }

    // ------------------------------------------------------------------------------------------
    // 3. Soundness: ANY proof (symbolic siblings) of ANY leaf x at ANY index j that verifies
    //    against root(leaves) proves exactly leaves[j] (no hash collision assumed)
    // ------------------------------------------------------------------------------------------

    function _sound(bytes32[8] calldata a, uint256 n, bytes32 x, uint256 j, bytes32[4] calldata s) internal view {
        bytes32[] memory leaves = _list(a, n);
        uint256 d = Spec.depthOf(n);
        if (!lib.verify(_libRoot(leaves), x, j, _proofOf(s, d))) return;
        // index in range of the padded tree, and the leaf is the one at j (padding is 0)
        assert(j < (uint256(1) << d));
        assert(x == _at(leaves, j));
    }

    function check_sound_2(bytes32[8] calldata a, bytes32 x, uint256 j, bytes32[4] calldata s) public view {
        _sound(a, 2, x, j, s);
    }

    function check_sound_4(bytes32[8] calldata a, bytes32 x, uint256 j, bytes32[4] calldata s) public view {
        _sound(a, 4, x, j, s);
    }

    function check_sound_8(bytes32[8] calldata a, bytes32 x, uint256 j, bytes32[4] calldata s) public view {
        _sound(a, 8, x, j, s);
    }

    /// @notice Not a power of two: the padding positions verify, but only with the zero leaf.
    function check_sound_3(bytes32[8] calldata a, bytes32 x, uint256 j, bytes32[4] calldata s) public view {
        _sound(a, 3, x, j, s);
    }

    // ------------------------------------------------------------------------------------------
    // 4. Tagged leaves (as the Bridge uses them): a withdrawal verifies only with a proof of the
    //    tree's exact height, and then it IS one of the tree's withdrawals, field by field.
    //    (A proof of another length would make a 160-byte record hash equal to a 64-byte pair
    //    hash: ruled out, as the contracts' README argues, by "no collision".)
    // ------------------------------------------------------------------------------------------

    function _taggedSound(W[4] calldata t, W calldata w, uint256 j, bytes32[4] calldata s, uint256 len)
        internal
        view
    {
        if (!lib.verify(_taggedTree(t), _leafOf(w), j, _proofOf(s, len))) return;
        assert(len == 2);
        assert(j < 4); // verify checks the index against the proof length
        W memory e;
        for (uint256 k; k < 4; ++k) {
            if (j == k) e = t[k];
        }
        assert(w.account == e.account && w.recipient == e.recipient && w.amount == e.amount && w.nonce == e.nonce);
    }

    function check_tagged_exact_height(W[4] calldata t, W calldata w, uint256 j, bytes32[4] calldata s) public view {
        _taggedSound(t, w, j, s, 2);
    }

    function check_tagged_shorter_proof_fails(W[4] calldata t, W calldata w, uint256 j, bytes32[4] calldata s)
        public
        view
    {
        _taggedSound(t, w, j, s, 0);
        _taggedSound(t, w, j, s, 1);
    }

    function check_tagged_longer_proof_fails(W[4] calldata t, W calldata w, uint256 j, bytes32[4] calldata s)
        public
        view
    {
        _taggedSound(t, w, j, s, 3);
        _taggedSound(t, w, j, s, 4);
    }
}

/// @title MerkleLibControls: checks that MUST FAIL (halmos finds a counterexample). They show that
///        the proofs above are not vacuous (the "verify returned true" paths exist) and document
///        what the Merkle rule deliberately accepts.
/// @notice Run: `halmos --root contracts/forge --contract MerkleLibControls --function check_`
///         and expect every check to fail.
contract MerkleLibControls is MerkleLibChecks {
    /// @notice A valid proof exists for some leaf: the soundness checks do reach `verify == true`.
    function check_control_some_proof_verifies(bytes32[8] calldata a, bytes32 x, uint256 j, bytes32[4] calldata s)
        public
        view
    {
        bytes32[] memory leaves = _list(a, 4);
        assert(!lib.verify(_libRoot(leaves), x, j, _proofOf(s, 2)));
    }

    /// @notice Padding positions verify with the zero leaf (3 leaves: index 3 holds 0).
    function check_control_padding_position_verifies(bytes32[8] calldata a, bytes32 x, uint256 j, bytes32[4] calldata s)
        public
        view
    {
        bytes32[] memory leaves = _list(a, 3);
        if (!lib.verify(_libRoot(leaves), x, j, _proofOf(s, 2))) return;
        assert(j < 3);
    }

    /// @notice Untagged leaves: a shorter proof verifies an internal node (the README's note; the
    ///         Bridge relies on leaves being tagged-record hashes, see check_tagged_*).
    function check_control_internal_node_verifies(bytes32[8] calldata a, bytes32 x, uint256 j, bytes32[4] calldata s)
        public
        view
    {
        bytes32[] memory leaves = _list(a, 4);
        assert(!lib.verify(_libRoot(leaves), x, j, _proofOf(s, 1)));
    }

    /// @notice Tagged leaves: a withdrawal of the tree does verify (the tagged checks are not vacuous).
    function check_control_tagged_withdrawal_verifies(W[4] calldata t, W calldata w, uint256 j, bytes32[4] calldata s)
        public
        view
    {
        assert(!lib.verify(_taggedTree(t), _leafOf(w), j, _proofOf(s, 2)));
    }
}
