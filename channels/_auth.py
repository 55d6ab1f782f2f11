"""The signed-header scheme of the rollup's private reads (sequencer/api/auth.py), for the channel
service: X-Optrollup-Account, X-Optrollup-Timestamp (unix seconds, within MAX_SKEW_S of the
service's clock) and X-Optrollup-Signature, the EIP-191 personal_sign of
"optrollup auth <EIP-55 account> <timestamp>". The text is the SDK's (`optrollup_client._signing.
auth_text`), so a header made by `optrollup_client.Signer.auth_headers` is accepted here too.

Owner writes (every POST of the owner) are bound to the request: the client also sends
X-Optrollup-Body-Hash = 0x keccak256("<METHOD> <path>\n" ‖ body) and signs
"optrollup auth <EIP-55 account> <timestamp> <body hash>", so a header seen on the wire cannot
be replayed with another body or on another route within the skew.

The service decides who may act for whom (`Authenticated` carries both the claimed account and
the recovered signer): its owner (the owner's account key or the service's own key), or, on
the one read a peer may make, the channel's other party (its account or its state signer).

Every failure is a 401 (`InvalidSignature`) with a code: auth_required, auth_expired,
invalid_signature, and the caller's own (not_owner, not_a_party).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import NamedTuple

from cext import keccak256, to_checksum
from channels._sign import KeySigner, eip191_digest, recover
from optrollup_client._signing import auth_text
from sequencer.core.channelmsg import json_address
from sequencer.errors import InvalidRequest, InvalidSignature

__all__ = ["MAX_SKEW_S", "AuthHeaders", "AuthVerifier", "Authenticated", "request_binding"]

MAX_SKEW_S = 30
H_ACCOUNT, H_TIMESTAMP, H_SIGNATURE = ("x-optrollup-account", "x-optrollup-timestamp",
                                       "x-optrollup-signature")
H_BODY = "x-optrollup-body-hash"


def request_binding(method: str, path: str, body: bytes) -> str:
    """0x keccak256("<METHOD> <path>\n" ‖ body): what an owner write's header signature covers."""
    return "0x" + keccak256(f"{method.upper()} {path}\n".encode() + body).hex()


def _text(account: bytes, ts: int, binding: str | None) -> bytes:
    text = auth_text(to_checksum(account), ts)
    return (text if binding is None else f"{text} {binding}").encode()


class Authenticated(NamedTuple):
    account: bytes  # who the caller claims to act for
    signer: bytes   # who signed the header


class AuthVerifier:
    """Checks the three headers; remembers recent good ones (a client reuses one header for a
    second), so a burst of requests costs one recovery per second per client."""

    def __init__(self, clock: Callable[[], float] = time.time, max_skew: int = MAX_SKEW_S,
                 cache_size: int = 4096) -> None:
        self.clock, self.max_skew, self.cache_size = clock, max_skew, cache_size
        self._seen: OrderedDict[tuple[str, str, str, str], Authenticated] = OrderedDict()

    def verify(self, headers: Mapping[str, str], binding: str | None = None) -> Authenticated:
        """`headers` with lower-case names (Starlette's are). With `binding` (an owner write:
        `request_binding` of this request) the signature must cover it too."""
        if binding is not None and headers.get(H_BODY) != binding:
            raise InvalidSignature("owner writes need X-Optrollup-Body-Hash: 0x keccak256 of "
                                   "\"<METHOD> <path>\\n\" and the body, covered by the signature "
                                   "(missing or not this request's)", code="auth_required")
        acct_h, ts_h, sig_h = headers.get(H_ACCOUNT), headers.get(H_TIMESTAMP), headers.get(H_SIGNATURE)
        if acct_h is None or ts_h is None or sig_h is None:
            missing = [h for h, v in ((H_ACCOUNT, acct_h), (H_TIMESTAMP, ts_h), (H_SIGNATURE, sig_h))
                       if v is None]
            raise InvalidSignature(f"missing header {', '.join(missing)}: this endpoint needs the "
                                   "signed X-Optrollup-* headers", code="auth_required")
        if not (ts_h.isascii() and ts_h.isdigit() and len(ts_h) <= 12):
            raise InvalidSignature(f"X-Optrollup-Timestamp must be unix seconds, got {ts_h[:40]!r}",
                                   code="auth_required")
        ts, now = int(ts_h), int(self.clock())
        if abs(now - ts) > self.max_skew:
            raise InvalidSignature(f"X-Optrollup-Timestamp {ts} is {now - ts:+d} s from the service's "
                                   f"time {now}; allowed skew is {self.max_skew} s", code="auth_expired")
        key = (acct_h, ts_h, sig_h, binding or "")
        hit = self._seen.get(key)
        if hit is not None:
            return hit
        try:
            account = json_address(acct_h, "X-Optrollup-Account")
        except InvalidRequest as exc:
            raise InvalidSignature(exc.message, code="auth_required") from None
        try:
            sig = bytes.fromhex(sig_h[2:] if sig_h[:2] in ("0x", "0X") else sig_h)
        except ValueError:
            sig = b""
        if len(sig) != 65:
            raise InvalidSignature("X-Optrollup-Signature must be 65 bytes of 0x hex",
                                   code="invalid_signature")
        signer = recover(eip191_digest(_text(account, ts, binding)), sig)
        if signer is None:
            raise InvalidSignature("X-Optrollup-Signature is not a valid low-s secp256k1 signature",
                                   code="invalid_signature")
        got = Authenticated(account, signer)
        self._seen[key] = got
        if len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)
        return got


class AuthHeaders:
    """The headers a client sends: signed by `signer` for `account` (default: the signer's own
    address), one signature per second of `clock`."""

    def __init__(self, signer: KeySigner, account: bytes | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.signer, self.clock = signer, clock
        self.account = account if account is not None else signer.address
        self._cache: tuple[int, dict[str, str]] | None = None

    def __call__(self, binding: str | None = None) -> dict[str, str]:
        """The headers; with `binding` (`request_binding` of an owner write) bound to it."""
        ts = int(self.clock())
        if binding is None and self._cache is not None and self._cache[0] == ts:
            return self._cache[1]
        acct = to_checksum(self.account)
        sig = self.signer.sign(eip191_digest(_text(self.account, ts, binding)))
        h = {"X-Optrollup-Account": acct, "X-Optrollup-Timestamp": str(ts),
             "X-Optrollup-Signature": "0x" + sig.hex()}
        if binding is not None:
            h["X-Optrollup-Body-Hash"] = binding
            return h
        self._cache = (ts, h)
        return h
