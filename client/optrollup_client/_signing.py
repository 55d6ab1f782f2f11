"""Signing with eth-account from what `GET /v1/info` publishes (no types are hard-coded here).

`Signer` holds one secp256k1 key. It signs EIP-712 messages given the domain and `types` of
/v1/info, and the EIP-191 auth text of private reads. A signer may act for another `account`
(a session key registered by that account).

eth-account is imported when a key is first made or used, not with the package: importing it
costs ~0.8 s of CPU (eth-keyfile's BLS tables), which programs that only read the API or use
`optrollup_client`'s errors (the node's cron-run batch poster) need not pay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from optrollup_client._errors import ClientError

if TYPE_CHECKING:
    from eth_account.signers.base import BaseAccount

__all__ = ["Signer", "auth_text", "message_json", "typed_data"]


def auth_text(account: str, timestamp: int) -> str:
    """The EIP-191 text of the auth headers: `optrollup auth <EIP-55 account> <unix s>`."""
    return f"optrollup auth {to_checksum_address(account)} {timestamp}"


def _deps(types: dict[str, list[dict[str, str]]], primary: str) -> list[str]:
    """`primary` and every struct type it references (EIP-712 dependency closure)."""
    out, todo = [], [primary]
    while todo:
        t = todo.pop()
        if t in out:
            continue
        if t not in types:
            raise ClientError(f"server's /v1/info has no EIP-712 type {t!r}", code="unknown_type")
        out.append(t)
        for f in types[t]:
            base = f["type"].split("[", 1)[0]
            if base in types and base not in out:
                todo.append(base)
    return out


def typed_data(domain: dict[str, Any], types: dict[str, list[dict[str, str]]], primary: str,
               message: dict[str, Any]) -> dict[str, Any]:
    """The full EIP-712 typed-data object (domain, types subset, primaryType, message)."""
    sub = {t: types[t] for t in _deps(types, primary)}
    if "EIP712Domain" in types:
        sub["EIP712Domain"] = [f for f in types["EIP712Domain"] if f["name"] in domain]
    return {"types": sub, "primaryType": primary, "domain": domain, "message": message}


def _json_value(typ: str, value: Any, types: dict[str, list[dict[str, str]]]) -> Any:
    if typ.endswith("]"):
        inner = typ[: typ.rindex("[")]
        return [_json_value(inner, v, types) for v in value]
    if typ in types:
        return message_json(types, typ, value)
    if typ.startswith(("uint", "int")):
        return str(int(value))                     # design.md: decimal strings for numbers
    if typ.startswith("bytes") and isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if typ == "address":
        return to_checksum_address(value)
    return value


def message_json(types: dict[str, list[dict[str, str]]], primary: str, message: dict[str, Any]) -> dict[str, Any]:
    """A message as the HTTP body carries it: fields in type order, integers as decimal strings."""
    return {f["name"]: _json_value(f["type"], message[f["name"]], types) for f in types[primary]}


class Signer:
    """One private key; `account` (EIP-55) is whom it signs for (itself unless a session key).
    `key` is any eth-account account: a LocalAccount, or (in the node's CLI) what
    `sequencer.keys.load_key` returns for a keystore or a key in a PKCS#11 token."""

    def __init__(self, key: BaseAccount, account: str | None = None) -> None:
        self.key = key
        self.account = to_checksum_address(account) if account is not None else key.address

    @classmethod
    def from_private_key(cls, private_key: str | bytes, account: str | None = None) -> "Signer":
        """From a 32-byte key (0x hex or raw bytes)."""
        from eth_account import Account

        try:
            return cls(Account.from_key(private_key), account)
        except (ValueError, TypeError) as exc:
            raise ClientError(f"not a valid secp256k1 private key: {exc}", code="invalid_key") from None

    @classmethod
    def from_keystore(cls, path: str | Path, password: str, account: str | None = None) -> "Signer":
        """From an encrypted JSON keystore (eth-account / geth format); ClientError
        `invalid_keystore` (unreadable, not a keystore) or `bad_password` (the node's
        `sequencer.keys` uses the same codes, and also opens keys in HSMs)."""
        try:
            blob = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read keystore {path}: {exc}", code="invalid_keystore") from None
        if not isinstance(blob, dict) or not ({"crypto", "Crypto"} & blob.keys()):
            raise ClientError(f"{path} is not an encrypted JSON keystore", code="invalid_keystore")
        from eth_account import Account

        try:
            return cls(Account.from_key(Account.decrypt(blob, password)), account)
        except ValueError as exc:
            raise ClientError(f"cannot decrypt keystore {path}: {exc}", code="bad_password") from None
        except (KeyError, TypeError) as exc:
            raise ClientError(f"keystore {path} is malformed: {exc!r}", code="invalid_keystore") from None

    @property
    def address(self) -> str:
        """The signing key's own address (EIP-55)."""
        return self.key.address

    def sign_typed(self, domain: dict[str, Any], types: dict[str, list[dict[str, str]]],
                   primary: str, message: dict[str, Any]) -> str:
        """EIP-712 signature (0x, 65 bytes r‖s‖v) of `message` of type `primary`."""
        from eth_account.messages import encode_typed_data

        msg = encode_typed_data(full_message=typed_data(domain, types, primary, message))
        return "0x" + bytes(self.key.sign_message(msg).signature).hex()

    def auth_headers(self, timestamp: int) -> dict[str, str]:
        """The three X-Optrollup-* headers for a private read at `timestamp` (unix s)."""
        from eth_account.messages import encode_defunct

        sig = self.key.sign_message(encode_defunct(text=auth_text(self.account, timestamp))).signature
        return {"X-Optrollup-Account": self.account, "X-Optrollup-Timestamp": str(timestamp),
                "X-Optrollup-Signature": "0x" + bytes(sig).hex()}

    def auth_object(self, timestamp: int) -> dict[str, str]:
        """The same three values for a WebSocket `auth` object: account, timestamp, signature."""
        h = self.auth_headers(timestamp)
        return {"account": h["X-Optrollup-Account"], "timestamp": h["X-Optrollup-Timestamp"],
                "signature": h["X-Optrollup-Signature"]}
