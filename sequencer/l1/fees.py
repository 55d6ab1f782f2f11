"""EIP-1559 fees: what to offer for a new transaction and how much to raise a replacement.

A new transaction offers `maxFeePerGas = 2 x next base fee + tip` (it stays includable through
several full blocks) and the node's suggested tip. A replacement of a pending transaction must
raise both fields by at least 10% (geth's and anvil's rule); we raise by 12.5%, or to the market
fee when that is higher.
"""

from __future__ import annotations

from dataclasses import dataclass

from sequencer.l1.client import L1Client, parse_quantity
from sequencer.l1.errors import RpcError

BUMP_NUM, BUMP_DEN = 9, 8  # +12.5%: above geth's and anvil's 10% replacement minimum
DEFAULT_TIP = 1_000_000_000  # 1 gwei when the node has no eth_maxPriorityFeePerGas


@dataclass(frozen=True, order=True)
class Fees:
    """The two EIP-1559 fee fields, in wei per gas."""

    max_fee: int
    tip: int

    def capped(self, cap: int | None) -> Fees:
        """These fees with `max_fee` at most `cap` (and the tip never above `max_fee`)."""
        fee = self.max_fee if cap is None else min(self.max_fee, cap)
        return Fees(fee, min(self.tip, fee))

    def gwei(self) -> str:
        return f"maxFee {self.max_fee / 1e9:.3f} gwei tip {self.tip / 1e9:.3f} gwei"


def bump(old: int) -> int:
    """`old` raised by at least 12.5% (and by at least 1 wei)."""
    return max(-(-old * BUMP_NUM // BUMP_DEN), old + 1)


def market_fees(client: L1Client) -> Fees:
    """Fees for a new transaction: 2 x base fee + tip, with the base fee of the next block (the
    pending block's) when the node tells it, and never below the latest block's."""
    base = 0
    for tag in ("pending", "latest"):
        base = max(base, parse_quantity((client.get_block(tag) or {}).get("baseFeePerGas")))
    try:
        tip = parse_quantity(client.rpc("eth_maxPriorityFeePerGas"))
    except RpcError:
        tip = DEFAULT_TIP
    return Fees(2 * base + tip, tip)


def replacement_fees(old: Fees, market: Fees, cap: int | None = None) -> Fees:
    """Fees for a replacement of a transaction sent at `old`: each field bumped, or the market's
    when higher; then capped."""
    return Fees(max(bump(old.max_fee), market.max_fee), max(bump(old.tip), market.tip)).capped(cap)
