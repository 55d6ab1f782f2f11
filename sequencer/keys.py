"""Opening signing keys: one rule for every command and library that signs (design.md, Keys).

A key reference is either the path of an eth-account encrypted JSON keystore, or a PKCS#11 URI
(`pkcs11:token=...;object=...?module-path=...&pin-source=file:...`, RFC 7512): a secp256k1 key
that lives in a hardware security module (or SoftHSM) and never leaves it (sequencer.hsm,
docs/keys.md). A keystore's password, or a token's PIN when the URI carries none
(`pin-value=` / `pin-source=`), comes from, in this order:

1. `password_file`: its first line (the line ending is not part of the password);
2. `password_env`: the environment variable of that name (it must be set);
3. the environment variable `OPTROLLUP_PASSWORD`;
4. an interactive prompt, only where the caller allows one (`prompt=`).

No password (or an empty one) is `password_missing`; an unreadable file or one that is not a
keystore is `invalid_keystore`; a password that does not decrypt it is `bad_password`. Raw private
keys on a command line are for the devnet only.

Whatever the reference, `load_key` returns an eth-account `BaseAccount` that every signer of
optrollup uses the same way: `.address`, `sign_digest(digest32)` (65 bytes r ‖ s ‖ v, v 27/28,
low s), `unsafe_sign_hash`, `sign_message` (EIP-191 / EIP-712 signables), `sign_typed_data` and
`sign_transaction` (L1 transactions). A keystore gives a `LocalKey` (an eth-account
LocalAccount); a PKCS#11 URI a `sequencer.hsm.Pkcs11Key`, whose private key cannot be read.

`load_tx_key` is `load_key` for a key that only sends L1 transactions through a TxManager (the
cron-run batch poster): a keystore opens as a `sequencer.txkey.TxKey` (`.address`,
`sign_transaction`, `sign_digest`) without eth-account, whose import costs ~0.8 s of CPU.

Neutral on purpose: it imports only `sequencer.errors` (and, lazily, eth-account, the light
`sequencer.txkey` and the PKCS#11 code with its optional python-pkcs11), so the CLI
(`sequencer.client`) and `prover` both use it without pulling in the L1 package.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sequencer.errors import OptrollupError

if TYPE_CHECKING:  # eth-account is imported where a key is opened or signs, not with this module
    from eth_account.signers.base import BaseAccount

    from sequencer.localkey import LocalKey
    from sequencer.txkey import TxKey

__all__ = [
    "PASSWORD_ENV", "SECP256K1_N", "BadPassword", "HsmBadPin", "HsmError", "HsmKeyExists",
    "HsmKeyMissing", "HsmModuleMissing", "HsmPinLocked", "HsmTokenMissing", "InvalidKeystore",
    "InvalidPkcs11Uri", "KeyLoadError", "KeyNotExtractable", "KeyRef", "LocalKey", "PasswordMissing",
    "Pkcs11Unavailable", "UnsupportedKeyRef", "decrypt_keystore", "load_key", "load_tx_key",
    "low_s_signature", "parse_key_ref", "read_keystore", "read_password", "refuse_raw_key_option",
    "sign_digest",
]

PASSWORD_ENV = "OPTROLLUP_PASSWORD"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class KeyLoadError(OptrollupError):
    """A key could not be opened."""

    code = "key_error"


class InvalidKeystore(KeyLoadError):
    """The keystore file cannot be read or is not an encrypted JSON keystore."""

    code = "invalid_keystore"


class BadPassword(KeyLoadError):
    """The password does not decrypt the keystore."""

    code = "bad_password"


class PasswordMissing(KeyLoadError):
    """No password was given (no file, no environment variable, no prompt), or it is empty."""

    code = "password_missing"


class UnsupportedKeyRef(KeyLoadError):
    """A key reference of a kind this installation cannot open."""

    code = "key_ref_unsupported"


# -- PKCS#11 (sequencer.hsm): every failure to open or use a token key has its own stable code ----

class Pkcs11Unavailable(UnsupportedKeyRef):
    """python-pkcs11 is not installed (scripts/bootstrap.sh installs it)."""

    code = "pkcs11_unavailable"


class InvalidPkcs11Uri(KeyLoadError):
    """The `pkcs11:` URI is malformed or lacks what is needed to find the key (RFC 7512)."""

    code = "invalid_pkcs11_uri"


class HsmModuleMissing(KeyLoadError):
    """The PKCS#11 module (the vendor's .so, e.g. SoftHSM's) is not there or does not load."""

    code = "hsm_module_missing"


class HsmTokenMissing(KeyLoadError):
    """No token with that label (or serial, or slot) in the module."""

    code = "hsm_token_missing"


class HsmKeyMissing(KeyLoadError):
    """No secp256k1 key with that object label (or id) in the token."""

    code = "hsm_key_missing"


class HsmKeyExists(KeyLoadError):
    """A key with that label is in the token already (hsm-new does not replace keys)."""

    code = "hsm_key_exists"


class HsmBadPin(KeyLoadError):
    """The token refused the PIN."""

    code = "hsm_bad_pin"


class HsmPinLocked(KeyLoadError):
    """The token locked its user PIN after too many wrong ones (the security officer resets it)."""

    code = "hsm_pin_locked"


class HsmError(KeyLoadError):
    """Any other PKCS#11 failure (the message names the PKCS#11 error)."""

    code = "hsm_error"


class KeyNotExtractable(KeyLoadError):
    """The private key lives in a token and cannot be read (only used to sign)."""

    code = "key_not_extractable"


@dataclass(frozen=True)
class KeyRef:
    """A parsed key reference: `kind` is "keystore" (with `path`) or "pkcs11" (with `uri`)."""

    kind: str
    path: Path | None = None
    uri: str | None = None

    def __str__(self) -> str:
        return self.uri if self.kind == "pkcs11" else str(self.path)


def parse_key_ref(text: str | os.PathLike[str] | KeyRef) -> KeyRef:
    """`pkcs11:...` is a PKCS#11 URI; anything else is a keystore path."""
    if isinstance(text, KeyRef):
        return text
    s = os.fspath(text)
    if not s:
        raise InvalidKeystore("empty key reference")
    if s.lower().startswith("pkcs11:"):
        return KeyRef("pkcs11", uri=s)
    return KeyRef("keystore", path=Path(s))


def read_password(
    password_file: str | os.PathLike[str] | None = None,
    password_env: str | None = None,
    *,
    prompt: str | None = None,
    confirm: bool = False,
    environ: Mapping[str, str] | None = None,
    what: str = "the keystore",
) -> str:
    """The password by the module's rule. `prompt` (e.g. "Keystore password: ") allows asking
    at the terminal as the last resort; with `confirm` it is asked twice."""
    env = os.environ if environ is None else environ
    if password_file is not None:
        try:
            lines = Path(password_file).read_text().splitlines()
        except OSError as exc:
            raise PasswordMissing(f"cannot read password file {password_file}: {exc.strerror or exc}") from None
        if not lines or not lines[0]:
            raise PasswordMissing(f"password file {password_file} is empty")
        return lines[0]
    if password_env is not None:
        if not env.get(password_env):
            raise PasswordMissing(f"environment variable {password_env} (the password of {what}) is "
                                  f"not set or empty")
        return env[password_env]
    if env.get(PASSWORD_ENV):
        return env[PASSWORD_ENV]
    if prompt is None:
        raise PasswordMissing(f"no password for {what}: use --password-file FILE, --password-env NAME "
                              f"or set {PASSWORD_ENV}")
    pw = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat password: ") != pw:
        raise OptrollupError("the passwords do not match", code="password_mismatch")
    if not pw:
        raise PasswordMissing("an empty password is not allowed")
    return pw


def read_keystore(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The keystore JSON (still encrypted), checked to look like one."""
    try:
        blob = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidKeystore(f"cannot read keystore {path}: {exc}") from None
    if not isinstance(blob, dict) or ("crypto" not in blob and "Crypto" not in blob):
        raise InvalidKeystore(f"{path} is not an encrypted JSON keystore")
    return blob


def low_s_signature(r: int, s: int, v: int) -> bytes:
    """65 bytes r ‖ s ‖ v with s normalised to the lower half of the curve order (v 27/28, flipped
    with s): the one form the contracts and the node accept."""
    if v in (0, 1):
        v += 27
    if v not in (27, 28) or not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise ValueError(f"not a secp256k1 signature (r={r:#x}, s={s:#x}, v={v})")
    if s > SECP256K1_N // 2:
        s, v = SECP256K1_N - s, 55 - v  # 27 <-> 28
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def __getattr__(name: str) -> Any:
    """`LocalKey` (sequencer.localkey), imported with eth-account when first asked for."""
    if name == "LocalKey":
        from sequencer.localkey import LocalKey

        return LocalKey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sign_digest(key: BaseAccount | TxKey | str | bytes, digest: bytes) -> bytes:
    """65 bytes r ‖ s ‖ v (v 27/28, low s) over `digest` by any key: what `load_key` or
    `load_tx_key` returns, any eth-account account, or (devnet, tests) a raw private key."""
    if hasattr(key, "sign_digest"):
        return key.sign_digest(digest)
    if len(digest) != 32:
        raise ValueError("a digest is 32 bytes")
    from eth_account import Account
    from eth_account.signers.base import BaseAccount

    acct = key if isinstance(key, BaseAccount) else Account.from_key(key)
    sig = acct.unsafe_sign_hash(digest)
    return low_s_signature(sig.r, sig.s, sig.v)


@contextlib.contextmanager
def _decrypting(path: str | os.PathLike[str]) -> Iterator[None]:
    """A keystore decryption's errors as this module's: ValueError (a wrong password: "MAC
    mismatch", as eth-account and sequencer.txkey say it) is BadPassword, KeyError / TypeError
    (a malformed keystore) InvalidKeystore."""
    try:
        yield
    except ValueError as exc:
        raise BadPassword(f"cannot decrypt keystore {path}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise InvalidKeystore(f"keystore {path} is malformed: {exc!r}") from None


def decrypt_keystore(path: str | os.PathLike[str], password: str) -> LocalKey:
    """The account in the keystore at `path`, decrypted with `password`."""
    return _local_key(path, read_keystore(path), password)


def _local_key(path: str | os.PathLike[str], blob: dict[str, Any], password: str) -> LocalKey:
    """The account in keystore `blob` (read from `path`), decrypted by eth-account."""
    from eth_account import Account
    from eth_keys.datatypes import PrivateKey

    from sequencer.localkey import LocalKey

    with _decrypting(path):
        secret = Account.decrypt(blob, password)
    return LocalKey(PrivateKey(secret), Account)


def load_key(
    ref: str | os.PathLike[str] | KeyRef,
    *,
    password: str | None = None,
    password_file: str | os.PathLike[str] | None = None,
    password_env: str | None = None,
    prompt: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> BaseAccount:
    """Open the key `ref` refers to. For a keystore the password is `password` if given, else by
    the module's rule. For a PKCS#11 URI the token is opened and logged in once (the session is
    kept for the signer's life): the PIN is the URI's `pin-value` / `pin-source`, else
    `password`, else by the module's rule (prompting "PIN of <token>: " where `prompt` allows)."""
    key = parse_key_ref(ref)
    if key.kind == "pkcs11":
        assert key.uri is not None
        from sequencer import (
            hsm,  # lazily: python-pkcs11 is only needed for PKCS#11 keys
        )

        return hsm.open_key(key.uri, pin=password, pin_file=password_file, pin_env=password_env,
                            prompt=prompt, environ=environ)
    assert key.path is not None
    blob, password = _keystore_password(key.path, password, password_file, password_env, prompt, environ)
    return _local_key(key.path, blob, password)


def load_tx_key(
    ref: str | os.PathLike[str] | KeyRef,
    *,
    password: str | None = None,
    password_file: str | os.PathLike[str] | None = None,
    password_env: str | None = None,
    prompt: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> TxKey | BaseAccount:
    """`load_key` for a key that only signs L1 transactions (TxManager: `.address`,
    `sign_transaction`) and digests: a keystore opens as a `sequencer.txkey.TxKey`, without
    importing eth-account. A PKCS#11 URI, and a keystore that sequencer.txkey leaves to
    eth-account (not v3 with scrypt / PBKDF2), open as with `load_key`. Same password rule,
    same errors and codes."""
    key = parse_key_ref(ref)
    if key.kind == "pkcs11":
        return load_key(key, password=password, password_file=password_file, password_env=password_env,
                        prompt=prompt, environ=environ)
    assert key.path is not None
    blob, password = _keystore_password(key.path, password, password_file, password_env, prompt, environ)
    from sequencer import txkey

    with _decrypting(key.path):
        try:
            return txkey.TxKey(txkey.decrypt_keystore_v3(blob, password))
        except txkey.Unsupported:
            pass
    return _local_key(key.path, blob, password)


def _keystore_password(path: Path, password: str | None, password_file: str | os.PathLike[str] | None,
                       password_env: str | None, prompt: str | None,
                       environ: Mapping[str, str] | None) -> tuple[dict[str, Any], str]:
    """The keystore at `path` (read first: a bad file is reported before any password is asked
    for) and its password: `password` if given, else by the module's rule."""
    blob = read_keystore(path)
    if password is None:
        password = read_password(password_file, password_env, prompt=prompt, environ=environ,
                                 what=f"keystore {path}")
    return blob, password


class _RefuseRawKey(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        parser.error(f"{option_string}: raw private keys on a command line are for the devnet only; "
                     f"use --keystore FILE (its password from --password-file, --password-env or "
                     f"{PASSWORD_ENV})")


def refuse_raw_key_option(parser: argparse.ArgumentParser) -> None:
    """A hidden `--key` on a command that is not devnet-only: it is refused with a clear message
    (without echoing the key), rather than taken as an abbreviation of `--keystore`."""
    parser.add_argument("--key", action=_RefuseRawKey, help=argparse.SUPPRESS)
