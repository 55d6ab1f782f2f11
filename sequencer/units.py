"""Human decimal amounts <-> exact integers (USDC base units, contracts x 10^6), and address
arguments, for every CLI.

Neutral (standard library, and eth-utils for addresses), shared by the terminal client and
prover's commands like sequencer.keys and sequencer.errors.
"""

from __future__ import annotations

import re
from decimal import Decimal

from sequencer.errors import InvalidRequest

DECIMALS = 6
_PLAIN = re.compile(r"[0-9]+(\.[0-9]+)?")


def parse_units(text: str, what: str, decimals: int = DECIMALS) -> int:
    """'12.5' -> 12_500_000 (decimals=6); refuses signs, exponents and inexact values."""
    if not _PLAIN.fullmatch(text):
        raise InvalidRequest(f"{what} must be a plain decimal number like 12.5, got {text!r}",
                             code="invalid_number")
    scaled = Decimal(text).scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise InvalidRequest(f"{what} {text} has more than {decimals} decimals; it would not be exact",
                             code="inexact_amount")
    n = int(scaled)
    if n <= 0:
        raise InvalidRequest(f"{what} must be positive, got {text}", code="invalid_number")
    return n


def format_units(n: int, decimals: int = DECIMALS) -> str:
    """12_500_000 -> '12.5' (decimals=6)."""
    sign, n = ("-" if n < 0 else ""), abs(n)
    whole, frac = divmod(n, 10**decimals)
    return sign + (f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".") if frac else str(whole))


def parse_address(text: str, what: str) -> str:
    """`text` (0x + 40 hex digits, any case) as an EIP-55 address; InvalidRequest
    `invalid_address` naming `what` otherwise."""
    from eth_utils import to_checksum_address

    try:
        if text.startswith("0x") and len(text) == 42:
            return to_checksum_address(text)
    except ValueError:
        pass
    raise InvalidRequest(f"{what} must be an address (0x + 40 hex digits), got {text!r}",
                         code="invalid_address")
