"""A keystore key that signs L1 transactions without eth-account: the batch poster's key.

`optrollup post-batches --once` runs from cron every few seconds, each run a fresh interpreter;
importing eth-account (eth-keyfile pulls in py_ecc's BLS tables) cost it ~0.8 s of CPU a run for
two things done here with what optrollup loads anyway:

- `decrypt_keystore_v3`: an eth-account / geth JSON keystore (Web3 Secret Storage v3): scrypt or
  PBKDF2-HMAC (hashlib), MAC = keccak256(derived[16:32] ‖ ciphertext), AES-128-CTR
  (pycryptodome). A wrong password is `ValueError("MAC mismatch")`, eth-keyfile's error;
  anything else it does not open itself is `Unsupported`, and `sequencer.keys.load_tx_key`
  then opens the keystore with eth-account, so odd keystores behave exactly as with `load_key`;
- `TxKey`: `.address` (EIP-55) and `sign_transaction` of the EIP-1559 (type 2) transactions
  `sequencer.l1.txmanager.TxManager` sends (RLP encoded here, signed with libsecp256k1 through
  coincurve: RFC 6979 nonces and low s, the same bytes as eth-account's), plus `sign_digest`.

Amounts (value, fees) are wei and wei per gas; every integer field is in [0, 2^256).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import coincurve
from Crypto.Cipher import AES

from cext import keccak256, to_checksum
from sequencer.keys import SECP256K1_N

__all__ = ["SignedTx", "TxKey", "Unsupported", "decrypt_keystore_v3", "rlp_encode", "unsigned_eip1559"]

_UINT256 = 1 << 256
#: the fields of an EIP-1559 transaction as TxManager gives them (`to` absent: a contract creation)
EIP1559_FIELDS = frozenset({"type", "chainId", "nonce", "value", "data", "gas", "maxFeePerGas",
                            "maxPriorityFeePerGas"})
_OPTIONAL = frozenset({"to", "accessList"})

RlpItem = bytes | int | Sequence["RlpItem"]


class Unsupported(Exception):
    """A keystore this module does not open (not v3, another KDF or cipher layout, parameters
    hashlib refuses, a secret that is no secp256k1 key): eth-account opens it instead."""


# -- keystores --------------------------------------------------------------------------------------

def _lower_keys(obj: Any) -> Any:
    """The keystore with every object key lower-cased ("Crypto" -> "crypto"), as eth-keyfile reads it."""
    if isinstance(obj, Mapping):
        return {(k.lower() if isinstance(k, str) else k): _lower_keys(v) for k, v in obj.items()}
    return obj


def _hex(value: Any) -> bytes:
    """Bytes of a hex string with or without 0x; TypeError for a non-string, ValueError for bad hex."""
    if not isinstance(value, str):
        raise TypeError(f"expected a hex string, got {type(value).__name__}")
    return bytes.fromhex(value[2:] if value[:2] in ("0x", "0X") else value)


def _derive(kdf: str, params: Mapping[str, Any], password: bytes) -> bytes:
    """The KDF's derived key (KeyError / TypeError: malformed parameters; Unsupported: others)."""
    salt, dklen = _hex(params["salt"]), params["dklen"]
    try:
        if kdf == "pbkdf2":
            hmac_, _, hash_name = params["prf"].partition("-")
            if hmac_ != "hmac":
                raise Unsupported(f"PBKDF2 PRF {params['prf']!r}")
            return hashlib.pbkdf2_hmac(hash_name, password, salt, params["c"], dklen)
        if kdf == "scrypt" and hasattr(hashlib, "scrypt"):  # (an OpenSSL without it: eth-account's)
            n, r, p = params["n"], params["r"], params["p"]
            # OpenSSL needs 128·r·(n + p + 2) bytes; its default cap (32 MiB) is below geth's n = 2^18
            maxmem = 128 * r * (n + p + 2) + (1 << 20)
            return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)
    except (ValueError, OverflowError, MemoryError) as exc:  # eth-account says what these mean
        raise Unsupported(f"{kdf} parameters: {exc}") from None
    raise Unsupported(f"key derivation function {kdf!r}")


def decrypt_keystore_v3(blob: Mapping[str, Any], password: str) -> bytes:
    """The 32-byte secp256k1 secret in an eth-account / geth v3 JSON keystore. ValueError("MAC
    mismatch") for a wrong password (ValueError also for bad hex), KeyError / TypeError for a
    malformed keystore, `Unsupported` for one to open with eth-account instead."""
    ks = _lower_keys(blob)
    if ks.get("version") != 3:
        raise Unsupported(f"keystore version {ks.get('version')!r}")
    crypto = ks["crypto"]
    kdf = crypto["kdf"]
    if kdf not in ("pbkdf2", "scrypt"):
        raise Unsupported(f"key derivation function {kdf!r}")
    derived = _derive(kdf, crypto["kdfparams"], password.encode())
    if len(derived) < 32:
        raise Unsupported(f"derived key of {len(derived)} bytes")
    ciphertext = _hex(crypto["ciphertext"])
    if not hmac.compare_digest(keccak256(derived[16:32] + ciphertext), _hex(crypto["mac"])):
        raise ValueError("MAC mismatch")
    iv = _hex(crypto["cipherparams"]["iv"])
    if len(iv) != 16:
        raise Unsupported(f"AES-CTR IV of {len(iv)} bytes")
    secret = AES.new(derived[:16], AES.MODE_CTR, nonce=b"", initial_value=iv).decrypt(ciphertext)
    if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < SECP256K1_N:
        raise Unsupported("the keystore's secret is not a secp256k1 private key")
    return secret


# -- RLP and EIP-1559 -------------------------------------------------------------------------------

def _length_prefix(length: int, offset: int) -> bytes:
    if length <= 55:
        return bytes([offset + length])
    n = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(n)]) + n


def rlp_encode(item: RlpItem) -> bytes:
    """RLP of bytes, of a non-negative int (big-endian, no leading zeros: 0 is the empty string)
    or of a (nested) sequence of those."""
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP integers are non-negative")
        b = item.to_bytes((item.bit_length() + 7) // 8, "big")
    elif isinstance(item, (bytes, bytearray, memoryview)):
        b = bytes(item)
    else:
        payload = b"".join(rlp_encode(x) for x in item)
        return _length_prefix(len(payload), 0xC0) + payload
    return b if len(b) == 1 and b[0] < 0x80 else _length_prefix(len(b), 0x80) + b


def _uint(fields: Mapping[str, Any], name: str) -> int:
    v = fields[name]
    if type(v) is not int or not 0 <= v < _UINT256:
        raise ValueError(f"transaction field {name} must be an int in [0, 2^256), got {v!r}")
    return v


def _bytes(v: Any, what: str) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str) and v[:2] in ("0x", "0X"):
        return bytes.fromhex(v[2:])
    raise ValueError(f"transaction field {what} must be bytes or 0x hex, got {v!r}")


def _address(v: Any) -> bytes:
    b = _bytes(v, "to")
    if len(b) != 20:
        raise ValueError(f"transaction field to must be a 20-byte address, got {v!r}")
    return b


def _access_list(v: Any) -> list[list[Any]]:
    return [[_address(e["address"]), [_bytes(k, "accessList storage key") for k in e["storageKeys"]]]
            for e in v]


def unsigned_eip1559(fields: Mapping[str, Any]) -> list[Any]:
    """The RLP list of an unsigned EIP-1559 transaction: [chainId, nonce, maxPriorityFeePerGas,
    maxFeePerGas, gas, to (empty: contract creation), value, data, accessList]. ValueError for
    any other shape (eth-account's field names; `type` must be 2)."""
    missing = EIP1559_FIELDS - fields.keys()
    extra = fields.keys() - EIP1559_FIELDS - _OPTIONAL
    if missing or extra or fields["type"] != 2 or type(fields["type"]) is not int:
        raise ValueError(f"TxKey signs EIP-1559 (type 2) transactions with the fields "
                         f"{sorted(EIP1559_FIELDS)} and optional to, accessList; got {sorted(fields)} "
                         f"(type {fields.get('type')!r})")
    to = fields.get("to")
    return [_uint(fields, "chainId"), _uint(fields, "nonce"), _uint(fields, "maxPriorityFeePerGas"),
            _uint(fields, "maxFeePerGas"), _uint(fields, "gas"), b"" if to is None else _address(to),
            _uint(fields, "value"), _bytes(fields["data"], "data"),
            _access_list(fields.get("accessList") or ())]


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction as eth-account's SignedTransaction has it: the raw bytes to
    broadcast, their keccak256 (the transaction hash), and the signature (v: y parity 0/1)."""

    raw_transaction: bytes
    hash: bytes
    r: int
    s: int
    v: int


class TxKey:
    """A secp256k1 key in memory that signs L1 transactions and digests. `address` is EIP-55."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("a private key is 32 bytes")
        self._priv = coincurve.PrivateKey(bytes(secret))  # ValueError outside [1, n)
        self.address: str = to_checksum(keccak256(self._priv.public_key.format(compressed=False)[1:])[12:])

    def __repr__(self) -> str:  # never the secret
        return f"<TxKey {self.address}>"

    def sign_transaction(self, fields: Mapping[str, Any]) -> SignedTx:
        """Sign an EIP-1559 transaction given as eth-account's dict (see `unsigned_eip1559`)."""
        body = unsigned_eip1559(fields)
        sig = self._priv.sign_recoverable(keccak256(b"\x02" + rlp_encode(body)), hasher=None)
        r, s, y = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
        raw = b"\x02" + rlp_encode([*body, y, r, s])
        return SignedTx(raw, keccak256(raw), r, s, y)

    def sign_digest(self, digest: bytes) -> bytes:
        """65 bytes r ‖ s ‖ v (v 27/28, low s) over a 32-byte digest."""
        if len(digest) != 32:
            raise ValueError("a digest is 32 bytes")
        sig = self._priv.sign_recoverable(bytes(digest), hasher=None)
        return sig[:64] + bytes([sig[64] + 27])
