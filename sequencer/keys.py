"""Opening signing keys: one rule for every command and library that signs (design.md, Keys).

A key reference is either the path of an eth-account encrypted JSON keystore, or a PKCS#11 URI
(`pkcs11:...`, RFC 7512; recognised, not supported yet). A keystore's password comes from, in
this order:

1. `password_file`: its first line (the line ending is not part of the password);
2. `password_env`: the environment variable of that name (it must be set);
3. the environment variable `OPTROLLUP_PASSWORD`;
4. an interactive prompt, only where the caller allows one (`prompt=`).

No password (or an empty one) is `password_missing`; an unreadable file or one that is not a
keystore is `invalid_keystore`; a password that does not decrypt it is `bad_password`. Raw private
keys on a command line are for the devnet only.

Neutral on purpose: it imports only eth-account and `sequencer.errors`, so the SDK
(`sequencer.client`) and `prover` both use it without pulling in the L1 package.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from sequencer.errors import OptrollupError

__all__ = [
    "PASSWORD_ENV", "BadPassword", "InvalidKeystore", "KeyLoadError", "KeyRef", "PasswordMissing",
    "UnsupportedKeyRef", "decrypt_keystore", "load_key", "parse_key_ref", "read_keystore",
    "read_password", "refuse_raw_key_option",
]

PASSWORD_ENV = "OPTROLLUP_PASSWORD"


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
    """A key reference of a kind this build cannot open yet (PKCS#11)."""

    code = "key_ref_unsupported"


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


def decrypt_keystore(path: str | os.PathLike[str], password: str) -> LocalAccount:
    """The account in the keystore at `path`, decrypted with `password`."""
    blob = read_keystore(path)
    try:
        secret = Account.decrypt(blob, password)
    except ValueError as exc:
        raise BadPassword(f"cannot decrypt keystore {path}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise InvalidKeystore(f"keystore {path} is malformed: {exc!r}") from None
    return Account.from_key(secret)


def load_key(
    ref: str | os.PathLike[str] | KeyRef,
    *,
    password: str | None = None,
    password_file: str | os.PathLike[str] | None = None,
    password_env: str | None = None,
    prompt: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> LocalAccount:
    """Open the key `ref` refers to. For a keystore the password is `password` if given, else by
    the module's rule; a PKCS#11 URI raises UnsupportedKeyRef (not supported yet)."""
    key = parse_key_ref(ref)
    if key.kind == "pkcs11":
        raise UnsupportedKeyRef(f"PKCS#11 keys ({key.uri}) are not supported yet; use an encrypted "
                                f"keystore")
    assert key.path is not None
    read_keystore(key.path)  # a bad file is reported before any password is asked for
    if password is None:
        password = read_password(password_file, password_env, prompt=prompt, environ=environ,
                                 what=f"keystore {key.path}")
    return decrypt_keystore(key.path, password)


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
