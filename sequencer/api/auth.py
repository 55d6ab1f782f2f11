"""Authentication of private reads: EIP-191 signature over "optrollup auth <account> <timestamp>".

Headers: X-Optrollup-Account, X-Optrollup-Timestamp (unix seconds, within `max_skew` of now),
X-Optrollup-Signature (65 bytes hex). The signer must be the account or one of its live
session keys (the caller supplies that predicate, the state lives elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cext import keccak256, recover_addresses, to_checksum
from sequencer.api import wire
from sequencer.errors import InvalidSignature

MAX_SKEW_S = 30


def auth_message(account: bytes, timestamp: int) -> bytes:
    """The text a client signs with personal_sign (EIP-191 version 0x45)."""
    return f"optrollup auth {to_checksum(account)} {timestamp}".encode()


def eip191_digest(message: bytes) -> bytes:
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)


def authenticate(headers: Mapping[str, str], now: int,
                 may_sign_for: Callable[[bytes, bytes], bool],
                 max_skew: int = MAX_SKEW_S) -> bytes:
    """Return the authenticated 20-byte account, or raise with the reason.

    `may_sign_for(account, signer)` says whether `signer` may act for `account` (itself or a
    live session key)."""
    raw = {k.lower(): v for k, v in headers.items()}
    for h in ("x-optrollup-account", "x-optrollup-timestamp", "x-optrollup-signature"):
        if h not in raw:
            raise InvalidSignature(f"missing header {h}", code="auth_required")
    account = wire.address(raw["x-optrollup-account"], "X-Optrollup-Account")
    ts = wire.uint(raw["x-optrollup-timestamp"], "X-Optrollup-Timestamp", 64)
    if abs(now - ts) > max_skew:
        raise InvalidSignature(
            f"X-Optrollup-Timestamp {ts} is {now - ts:+d} s from server time {now}; "
            f"allowed skew is {max_skew} s", code="auth_expired")
    sig = wire.signature(raw["x-optrollup-signature"], "X-Optrollup-Signature")
    signer = recover_addresses([eip191_digest(auth_message(account, ts))], [sig], threads=1)[0]
    if signer is None:
        raise InvalidSignature("X-Optrollup-Signature is not a valid low-s secp256k1 signature",
                               code="invalid_signature")
    if not may_sign_for(account, signer):
        raise InvalidSignature(
            f"auth signed by {to_checksum(signer)}, which is neither {to_checksum(account)} "
            "nor one of its live session keys", code="signer_mismatch")
    return account


