"""optrollup's hot primitives: Keccak-256, Merkle trees, EIP-712 order digests, batched
secp256k1 address recovery, margin sums over an account's positions, and `untrack` (keeps the engine's many small records out of the
cyclic collector's scans).

The accelerated twin (Cython + C, libsecp256k1) is used when it imports; the pure-Python twin
(`cext._pure`) is used when `OPTROLLUP_PUREPYTHON=1` or when the extension is missing, with a
warning. Both have the same names, signatures, results and errors. `ACCELERATED` says which one
is active.
"""

from __future__ import annotations

import os
import warnings

from cext._types import (
    DOMAIN_TYPE,
    ORDER_FIELDS,
    ORDER_TYPE,
    ORDER_TYPEHASH,
    Order,
    domain_separator,
    parse_address,
    to_checksum,
)

if os.environ.get("OPTROLLUP_PUREPYTHON", "") not in ("", "0"):
    from cext._pure import (
        KeccakPrefix, keccak256, keccak256_many, margin_sums, merkle_proof, merkle_root,
        merkle_verify, order_digests, recover_addresses, untrack,
    )

    ACCELERATED = False
else:
    try:
        from cext._accel import (
            KeccakPrefix, keccak256, keccak256_many, margin_sums, merkle_proof, merkle_root,
            merkle_verify, order_digests, recover_addresses, untrack,
        )

        ACCELERATED = True
    except ImportError as exc:  # pragma: no cover - exercised on machines without the build
        warnings.warn(
            f"cext: accelerated extension unavailable ({exc}); using the pure-Python twin. "
            "Run `make test` or `pip install -e .` to build it.",
            RuntimeWarning,
            stacklevel=2,
        )
        from cext._pure import (
            KeccakPrefix, keccak256, keccak256_many, margin_sums, merkle_proof, merkle_root,
            merkle_verify, order_digests, recover_addresses, untrack,
        )

        ACCELERATED = False

__all__ = [
    "ACCELERATED",
    "DOMAIN_TYPE",
    "KeccakPrefix",
    "ORDER_FIELDS",
    "ORDER_TYPE",
    "ORDER_TYPEHASH",
    "Order",
    "domain_separator",
    "keccak256",
    "keccak256_many",
    "margin_sums",
    "merkle_proof",
    "merkle_root",
    "merkle_verify",
    "order_digests",
    "parse_address",
    "recover_addresses",
    "to_checksum",
    "untrack",
]
