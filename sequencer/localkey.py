"""`LocalKey`: a keystore's key as an eth-account LocalAccount (what `sequencer.keys.load_key`
returns for a keystore). Its own module so that `sequencer.keys` imports eth-account (~0.8 s of
CPU) only when a key is opened this way; `sequencer.keys.LocalKey` is this class."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from sequencer.keys import low_s_signature

__all__ = ["LocalKey"]


class LocalKey(LocalAccount):
    """A key held in memory (decrypted from a keystore): eth-account's LocalAccount plus
    `sign_digest`, the one signing call every key of optrollup answers."""

    __module__ = "sequencer.keys"  # its public name (reprs, pickles)

    def __eq__(self, other: object) -> bool:  # the same key as a plain LocalAccount of it
        return isinstance(other, LocalAccount) and self.address == other.address

    def __hash__(self) -> int:
        return hash((LocalAccount, self.address))

    def sign_digest(self, digest: bytes) -> bytes:
        """65 bytes r ‖ s ‖ v (v 27/28, low s) over a 32-byte digest."""
        if len(digest) != 32:
            raise ValueError("a digest is 32 bytes")
        sig = self.unsafe_sign_hash(digest)
        return low_s_signature(sig.r, sig.s, sig.v)
