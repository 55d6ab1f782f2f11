"""Pure-Python twin of the accelerated primitives: same names, signatures and errors.

Keccak comes from pycryptodome, recovery from coincurve (libsecp256k1); everything else is
plain Python. `cext/__init__.py` selects this module when OPTROLLUP_PUREPYTHON=1 or when the
extension cannot be imported.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Sequence

import coincurve

from cext._types import (
    ORDER_TYPEHASH,
    SECP256K1_N,
    Order,
    as_bytes,
    check_threads,
    normalize_order,
)
from cext._types import _k as keccak_bytes

ZERO32 = b"\0" * 32


def keccak256(data: bytes) -> bytes:
    """Ethereum Keccak-256 (original padding, not SHA3-256) of `data`."""
    return keccak_bytes(as_bytes(data, "data"))


class KeccakPrefix:
    """keccak256(prefix + data) for many `data` after one `prefix` (the accelerated twin
    absorbs the prefix once; here it is simply hashed again each time)."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = as_bytes(prefix, "prefix", None)

    def hash(self, data: bytes) -> bytes:
        """keccak256(prefix + data)."""
        return keccak256(self.prefix + as_bytes(data, "data", None))

    def hash_words(self, values: Sequence[int]) -> bytes:
        """keccak256(prefix + the 32-byte big-endian word of each int in `values`, taken
        mod 2**256: two's complement for negatives, as abi.encode writes int256)."""
        words = []
        for i, x in enumerate(values):
            if not isinstance(x, int):
                raise TypeError(f"values[{i}] must be an int, not {type(x).__name__}")
            words.append((x % (1 << 256)).to_bytes(32, "big"))
        return keccak256(self.prefix + b"".join(words))


def keccak256_many(items: Sequence[bytes]) -> list[bytes]:
    """keccak256 of each item, in order."""
    return [keccak_bytes(as_bytes(x, f"items[{i}]")) for i, x in enumerate(items)]


def _leaves(leaves: Sequence[bytes]) -> list[bytes]:
    return [as_bytes(x, f"leaves[{i}]", 32) for i, x in enumerate(leaves)]


def _next_level(level: list[bytes], zero: bytes) -> list[bytes]:
    if len(level) & 1:
        level = level + [zero]
    return [keccak_bytes(level[i] + level[i + 1]) for i in range(0, len(level), 2)]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root over 32-byte leaves padded with zero leaves to a power of two; empty -> 32 zero bytes."""
    level = _leaves(leaves)
    if not level:
        return ZERO32
    zero = ZERO32
    while len(level) > 1:
        level = _next_level(level, zero)
        zero = keccak_bytes(zero + zero)
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from the leaf up to (not including) the root; len = ceil(log2(n))."""
    level = _leaves(leaves)
    if type(index) is bool or not isinstance(index, int):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if not 0 <= index < len(level):
        raise ValueError(f"index {index} out of range for {len(level)} leaves")
    proof: list[bytes] = []
    zero = ZERO32
    while len(level) > 1:
        sib = index ^ 1
        proof.append(level[sib] if sib < len(level) else zero)
        level = _next_level(level, zero)
        zero = keccak_bytes(zero + zero)
        index >>= 1
    return proof


def merkle_verify(root: bytes, leaf: bytes, index: int, proof: Sequence[bytes]) -> bool:
    """True iff `proof` takes `leaf` at `index` to `root`. Bad lengths/types raise."""
    root = as_bytes(root, "root", 32)
    node = as_bytes(leaf, "leaf", 32)
    sibs = [as_bytes(p, f"proof[{i}]", 32) for i, p in enumerate(proof)]
    if type(index) is bool or not isinstance(index, int):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    if index >> len(sibs):
        return False
    for sib in sibs:
        node = keccak_bytes(sib + node) if index & 1 else keccak_bytes(node + sib)
        index >>= 1
    return node == root


def _recover_one(digest: bytes, sig: bytes) -> bytes | None:
    v = sig[64]
    if v in (27, 28):
        recid = v - 27
    elif v in (0, 1):
        recid = v
    else:
        return None
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2):
        return None
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            sig[:64] + bytes([recid]), digest, hasher=None
        )
    except Exception:  # coincurve raises plain Exception when no point recovers
        return None
    return keccak_bytes(pub.format(compressed=False)[1:])[12:]


def recover_addresses(digests: Sequence[bytes], signatures: Sequence[bytes],
                      threads: int = 0, release_gil: bool | None = None) -> list[bytes | None]:
    """20-byte signer address per (digest, 65-byte r||s||v signature), or None when invalid
    (v not in {0,1,27,28}, r or s zero or >= n, s > n/2). `threads` and `release_gil` are
    accepted and ignored (pure Python holds the GIL)."""
    check_threads(threads)
    ds = [as_bytes(d, f"digests[{i}]", 32) for i, d in enumerate(digests)]
    ss = [as_bytes(s, f"signatures[{i}]", 65) for i, s in enumerate(signatures)]
    if len(ds) != len(ss):
        raise ValueError(f"{len(ds)} digests but {len(ss)} signatures")
    return [_recover_one(d, s) for d, s in zip(ds, ss)]


def _struct_hash(o: Order | tuple) -> bytes:
    account, instrument, is_buy, price, amount, nonce, expiry, tif, post_only, reduce_only = o
    words = [
        account.rjust(32, b"\0"),
        keccak_bytes(instrument.encode()),
        *(int(x).to_bytes(32, "big") for x in
          (is_buy, price, amount, nonce, expiry, tif, post_only, reduce_only)),
    ]
    return keccak_bytes(ORDER_TYPEHASH + b"".join(words))


def order_digests(domain_separator: bytes, orders: Sequence[Order]) -> list[bytes]:
    """EIP-712 digests keccak256(0x1901 || domain || hashStruct(order)), one per order."""
    domain = as_bytes(domain_separator, "domain_separator", 32)
    return [keccak_bytes(b"\x19\x01" + domain + _struct_hash(normalize_order(o))) for o in orders]


_GC_UNTRACK = ctypes.pythonapi.PyObject_GC_UnTrack
_GC_UNTRACK.argtypes = [ctypes.py_object]
_GC_UNTRACK.restype = None


def untrack(obj: object) -> None:
    """Take `obj` out of the cyclic collector's lists (as CPython does itself with tuples of
    atomic values), so that collections never scan it again; it is still freed by reference
    counting. Only for objects that can never be part of a reference cycle (immutable values,
    or records whose fields only ever hold such values): a cycle through an untracked object
    is never collected. A no-op for objects the collector does not track."""
    if gc.is_tracked(obj):
        _GC_UNTRACK(obj)


def margin_sums(collateral: int, amounts: Sequence[int], rows: Sequence[Sequence[int]],
                unit: int) -> tuple[int, int, int]:
    """(equity, initial, maintenance) of positions `amounts` (signed) with `rows[i]` =
    (mark_lo, mark_hi, im, mm) per contract, amounts in 1/`unit` contracts, everything rounded
    against the holder (floor division): equity = collateral + Σ floor(q·mark_lo/unit) over
    longs and floor(q·mark_hi/unit) over shorts; im, mm = Σ over shorts of -floor(q·im/unit),
    -floor(q·mm/unit). The rule is design.md "Risk" (sequencer/core/margin.py)."""
    amounts, rows = list(amounts), list(rows)
    if len(amounts) != len(rows):
        raise ValueError(f"{len(amounts)} amounts but {len(rows)} rows")
    for name, x in (("collateral", collateral), ("unit", unit)):
        if not isinstance(x, int):
            raise TypeError(f"{name} must be an int, not {type(x).__name__}")
    e, im, mm = collateral, 0, 0
    for i, (q, (lo, hi, r_im, r_mm)) in enumerate(zip(amounts, rows)):
        if not all(isinstance(x, int) for x in (q, lo, hi, r_im, r_mm)):
            raise TypeError(f"amounts[{i}] and rows[{i}] must be an int each: {q!r}, {rows[i]!r}")
        if q >= 0:
            e += q * lo // unit
        else:
            e += q * hi // unit
            im -= q * r_im // unit
            mm -= q * r_mm // unit
    return e, im, mm
