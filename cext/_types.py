"""Wire-level types and input rules shared by both twins.

`normalize_order` is the single definition of a valid `Order`: the accelerated twin takes a
fast path for ordinary input and defers to this function for anything else, so both twins
accept and reject exactly the same things.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from Crypto.Hash import keccak as _keccak

ORDER_FIELDS: tuple[tuple[str, str], ...] = (
    ("account", "address"),
    ("instrument", "string"),
    ("isBuy", "bool"),
    ("price", "uint256"),
    ("amount", "uint256"),
    ("nonce", "uint64"),
    ("expiry", "uint64"),
    ("timeInForce", "uint8"),
    ("postOnly", "bool"),
    ("reduceOnly", "bool"),
)
ORDER_TYPE = "Order(" + ",".join(f"{t} {n}" for n, t in ORDER_FIELDS) + ")"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"

_UINT_BITS = {"uint256": 256, "uint64": 64, "uint8": 8}


def _k(data: bytes) -> bytes:
    return _keccak.new(digest_bits=256, data=data).digest()


ORDER_TYPEHASH: bytes = _k(ORDER_TYPE.encode())
DOMAIN_TYPEHASH: bytes = _k(DOMAIN_TYPE.encode())


class Order(NamedTuple):
    """An option order, field for field the design's EIP-712 `Order` type.

    `account` is 20 raw bytes or a 0x-prefixed hex string; `price` is collateral base units
    per contract; `amount` is contracts x 10^6; `expiry` is unix seconds.
    """

    account: bytes | str
    instrument: str
    isBuy: bool
    price: int
    amount: int
    nonce: int
    expiry: int
    timeInForce: int
    postOnly: bool
    reduceOnly: bool


def as_bytes(value: Any, name: str, length: int | None = None) -> bytes:
    """Return `value` as bytes: bytes, bytearray and memoryview only (TypeError otherwise);
    with `length`, ValueError unless it has exactly that many bytes."""
    if type(value) is bytes:
        b = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
    else:
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    if length is not None and len(b) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(b)}")
    return b


def to_checksum(addr20: bytes) -> str:
    """EIP-55 checksum form of a 20-byte address."""
    hexaddr = addr20.hex()
    h = _k(hexaddr.encode()).hex()
    return "0x" + "".join(c.upper() if int(h[i], 16) >= 8 else c for i, c in enumerate(hexaddr))


def parse_address(value: Any, name: str = "account") -> bytes:
    """20-byte address from raw bytes or 0x hex; a mixed-case hex string must be valid EIP-55."""
    if isinstance(value, str):
        if len(value) != 42 or value[:2] not in ("0x", "0X"):
            raise ValueError(f"{name} must be 0x followed by 40 hex digits, got {value!r}")
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raise ValueError(f"{name} is not hex: {value!r}") from None
        body = value[2:]
        if body != body.lower() and body != body.upper() and to_checksum(raw) != "0x" + body:
            raise ValueError(f"{name} has a bad EIP-55 checksum: {value!r}")
        return raw
    return as_bytes(value, name, 20)


def _uint(value: Any, name: str, bits: int) -> int:
    if type(value) is bool or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or value >> bits:
        raise ValueError(f"{name} out of range for uint{bits}: {value}")
    return int(value)


def _bool(value: Any, name: str) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {value!r}")


NormalizedOrder = tuple[bytes, str, bool, int, int, int, int, int, bool, bool]


def normalize_order(order: Any) -> NormalizedOrder:
    """Validate an `Order` (or a mapping with the EIP-712 field names) and return its fields
    in type order with `account` as 20 bytes. Raises TypeError/ValueError naming the field."""
    if isinstance(order, Mapping):
        missing = [n for n, _ in ORDER_FIELDS if n not in order]
        if missing:
            raise ValueError(f"order is missing fields: {', '.join(missing)}")
        values = [order[n] for n, _ in ORDER_FIELDS]
    elif isinstance(order, tuple) and len(order) == len(ORDER_FIELDS):
        values = list(order)
    else:
        raise TypeError(f"order must be an Order or a mapping, got {type(order).__name__}")
    out: list[Any] = []
    for (name, typ), value in zip(ORDER_FIELDS, values):
        if typ == "address":
            out.append(parse_address(value, name))
        elif typ == "string":
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
            out.append(value)
        elif typ == "bool":
            out.append(_bool(value, name))
        else:
            out.append(_uint(value, name, _UINT_BITS[typ]))
    return tuple(out)  # type: ignore[return-value]


def domain_separator(chain_id: int, verifying_contract: bytes | str,
                     name: str = "optrollup", version: str = "1") -> bytes:
    """EIP-712 domain separator of the design's domain (name, version, chainId, verifyingContract)."""
    contract = parse_address(verifying_contract, "verifyingContract")
    return _k(
        DOMAIN_TYPEHASH
        + _k(name.encode())
        + _k(version.encode())
        + _uint(chain_id, "chainId", 256).to_bytes(32, "big")
        + contract.rjust(32, b"\0")
    )


def check_threads(threads: Any) -> int:
    if type(threads) is bool or not isinstance(threads, int):
        raise TypeError(f"threads must be an int, got {type(threads).__name__}")
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    return threads


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
