// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Signatures: the one ECDSA rule of the contracts (guardian quorums, owner redirects).
library Signatures {
    /// @dev secp256k1 n / 2: signatures with a larger `s` are malleable and refused.
    uint256 internal constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    /// @notice Signer of `digest` by a 65-byte `r ‖ s ‖ v` signature (v in {27, 28} or {0, 1},
    ///         low s), or address(0) when the signature is malformed or does not recover.
    function recover(bytes32 digest, bytes calldata sig) internal pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (v < 27) v += 27;
        if ((v != 27 && v != 28) || uint256(s) > HALF_N) return address(0);
        return ecrecover(digest, v, r, s);
    }

    /// @notice EIP-712 digest of `structHash` under `domainSeparator`.
    function typedDigest(bytes32 domainSeparator, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }
}
