"""This party's signing key and signature recovery, over 32-byte digests (EIP-712 digests of
channel messages, EIP-191 digests of auth headers).

`KeySigner` signs with libsecp256k1 (coincurve): 65 bytes r ‖ s ‖ v with v in {27, 28} and a
low s (libsecp256k1 only produces low-s signatures), which is what the rollup, the L1
Adjudicator and `channels.rules.verify_signatures` accept. RFC 6979 makes a signature a
function of (key, digest): signing one digest twice gives the same bytes.
"""

from __future__ import annotations

from typing import Any

import coincurve

from cext import keccak256, recover_addresses, to_checksum

__all__ = ["KeySigner", "eip191_digest", "recover"]


class KeySigner:
    """One secp256k1 key that signs digests: an eth-account LocalAccount or 32 raw bytes (signed
    here with libsecp256k1), or a key that never leaves its token (sequencer.keys.load_key of a
    PKCS#11 URI: it has `sign_digest` and no readable secret; each signature is the token's)."""

    def __init__(self, key: Any) -> None:
        self._token: Any = None
        if hasattr(key, "sign_digest"):
            try:
                secret = bytes(key.key)
            except Exception:  # noqa: BLE001 - key_not_extractable: sign in the token
                self._token = key
                self.address: bytes = bytes.fromhex(str(key.address)[2:])
                return
        else:
            secret = bytes(key.key) if hasattr(key, "key") else bytes(key)
        if len(secret) != 32:
            raise ValueError("a private key is 32 bytes")
        self._priv = coincurve.PrivateKey(secret)
        self.address = keccak256(self._priv.public_key.format(compressed=False)[1:])[12:]

    @property
    def checksum(self) -> str:
        return to_checksum(self.address)

    def sign(self, digest: bytes) -> bytes:
        """65 bytes r ‖ s ‖ v (v 27/28, low s) over a 32-byte digest."""
        if self._token is not None:
            return bytes(self._token.sign_digest(digest))
        sig = self._priv.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes((sig[64] + 27,))

    def __repr__(self) -> str:
        return f"<KeySigner {self.checksum}>"


def recover(digest: bytes, signature: bytes) -> bytes | None:
    """The 20-byte address that signed `digest`, or None for an invalid or high-s signature."""
    if type(signature) is not bytes or len(signature) != 65:
        return None
    return recover_addresses([digest], [signature], threads=1)[0]


def eip191_digest(message: bytes) -> bytes:
    """personal_sign (EIP-191 version 0x45) digest of `message`."""
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)
