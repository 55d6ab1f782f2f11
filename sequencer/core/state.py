"""The committed state of the rollup and its leaf encodings (docs/encoding.md).

State is mutated in place by `transition.apply`. Iteration that affects results follows dict
insertion order (deterministic for the same transaction list) or sorted keys, never set order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgpack

from cext import KeccakPrefix, Order, keccak256, untrack
from sequencer.core.channelmsg import ChannelOpen
from sequencer.core.config import CoreConfig
from sequencer.core.header import ACCOUNT_TAG, ZERO32, WithdrawalLeaf, abi_tail
from sequencer.core.instruments import Instrument
from sequencer.core.oracle import OracleState

@dataclass
class Account:
    """`collateral` base units (never negative); `positions` instrument -> signed amount
    (contracts x 10^6, no zeros); `session_keys` key -> expiry (unix s); `used_key_digests`
    SessionKey digests already applied; `withdrawal_nonce` next Withdraw nonce; `margin_mode`
    0 standard, 1 portfolio (sequencer.core.portfolio); `margin_nonce` next SetMarginMode nonce."""

    collateral: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    session_keys: dict[bytes, int] = field(default_factory=dict)
    used_key_digests: set[bytes] = field(default_factory=set)
    withdrawal_nonce: int = 0
    margin_mode: int = 0
    margin_nonce: int = 0


@dataclass(slots=True)
class FilledOrder:
    """An order that has appeared in a Fill: the signed order and its cumulative filled amount
    (never above order.amount). Like `Resting`, never part of a reference cycle, so kept out of
    the cyclic collector's scans (`cext.untrack`): a node holds one per order filled until it
    expires."""

    order: Order
    filled: int

    def __post_init__(self) -> None:
        untrack(self)
        untrack(self.order)


@dataclass
class Channel:
    """A state channel of the rollup (sequencer.core.channelstate): its signed `open`, the block
    time it opened, `status` (0 open, 1 closed by a co-signed final state, 2 concluded on L1)
    and, once closed, the turn and EIP-712 digest of the state it closed with."""

    open: ChannelOpen
    opened_at: int
    status: int = 0
    closed_turn: int = 0
    closed_hash: bytes = ZERO32


@dataclass
class State:
    """Committed state. `index` is the account-tree leaf index (order of first appearance; the
    fee account is 0 at genesis); `holders` lists, per instrument, the accounts holding it;
    `settled` maps settled (delisted) instruments to their settlement price; `message_cursor`
    counts the L1 messages (deposits and forced withdrawals) processed; `oracle_version` counts
    accepted feeds (cache key for marks).
    Risk (docs/liquidation.md): `auctions` maps each account in liquidation to the block time
    (unix s) its auction started; `shortfall` (base units) is the loss the insurance fund could
    not absorb, owed by the system until recovered; `liquidate_nonces` is each liquidator's
    smallest acceptable next Liquidate nonce.
    Channels (sequencer.core.channelstate): `channels` maps channel id -> Channel; an open
    channel holds its deposits (still counted in `collateral_total`); each channel has a leaf
    in the state tree (`index`, keyed by its 32-byte id, next to the 20-byte accounts).
    Compliance (sequencer.core.compliance, docs/compliance.md): `frozen` maps each frozen L2
    account to the block time it was frozen; `denied` maps each L1 address on the deny list to
    the block time it was put there; `compliance_nonce` is the nonce the operator's next
    Freeze, Unfreeze or DenyL1 must carry (one counter, +1 per applied action).
    Derived (a sum kept in step, recomputed when a snapshot loads): `collateral_total`, Σ
    collateral over all accounts (what withdrawals are haircut against while `shortfall` > 0).
    Not committed state, both emptied at every seal: `touched`, the accounts whose leaf may have
    changed since the last seal (created, or collateral/positions written; sealing rehashes only
    their leaves), and `withdrawal_leaves`, what the open block pays out on L1 (Withdraw txs,
    deposit refunds, forced withdrawals) in transaction order: the block's withdrawalRoot."""

    config: CoreConfig
    accounts: dict[bytes, Account] = field(default_factory=dict)
    index: dict[bytes, int] = field(default_factory=dict)
    instruments: dict[str, Instrument] = field(default_factory=dict)
    settled: dict[str, int] = field(default_factory=dict)
    orders: dict[bytes, FilledOrder] = field(default_factory=dict)
    oracle: dict[str, OracleState] = field(default_factory=dict)
    holders: dict[str, dict[bytes, None]] = field(default_factory=dict)
    message_cursor: int = 0
    oracle_version: int = 0
    auctions: dict[bytes, int] = field(default_factory=dict)
    shortfall: int = 0
    liquidate_nonces: dict[bytes, int] = field(default_factory=dict)
    channels: dict[bytes, Channel] = field(default_factory=dict)
    frozen: dict[bytes, int] = field(default_factory=dict)
    denied: dict[bytes, int] = field(default_factory=dict)
    compliance_nonce: int = 0
    collateral_total: int = 0
    touched: set[bytes] = field(default_factory=set)
    withdrawal_leaves: list[WithdrawalLeaf] = field(default_factory=list)


def genesis(config: CoreConfig, instruments: Iterable[Instrument] = ()) -> State:
    """Genesis state: the fee account at leaf 0, the insurance fund at leaf 1 when the rules
    schedule has the risk rules (config.risk_scheduled), and the config-file instruments."""
    state = State(config)
    account(state, config.fee_account)
    if config.risk_scheduled:
        account(state, config.insurance_fund)
    for ins in instruments:
        state.instruments[ins.name] = ins
        state.holders[ins.name] = {}
    return state


def account(state: State, address: bytes) -> Account:
    """The account at `address`, created (and given the next leaf index) if new."""
    acct = state.accounts.get(address)
    if acct is None:
        acct = state.accounts[address] = Account()
        state.index[address] = len(state.index)
        state.touched.add(address)
    return acct


def set_position(state: State, address: bytes, acct: Account, name: str, q: int) -> None:
    """Set a position (removing it at zero) and keep `holders` in step."""
    state.touched.add(address)
    if q:
        acct.positions[name] = q
        state.holders[name][address] = None
    else:
        acct.positions.pop(name, None)
        state.holders[name].pop(address, None)


def _word(n: int) -> bytes:
    """A 32-byte ABI word of an int (two's complement for negatives)."""
    return (n % (1 << 256)).to_bytes(32, "big")


_HEADS: dict[tuple[str, ...], KeccakPrefix] = {}
_HEADS_MAX = 4096  # name lists kept (an account's instruments rarely change between seals)


def _strings_head(names: tuple[str, ...]) -> KeccakPrefix:
    """The bytes of abi.encode(string[] names, int256[] amounts) before the amounts' length
    word (both offsets, then the names' array), with the hash state after them: a function
    of `names` alone, so cached. Every seal re-encodes each touched account, its instruments
    rarely change, and the names are most of the bytes (~3.9 KB of 5.2 KB for 40)."""
    head = _HEADS.get(names)
    if head is None:
        elems = [abi_tail(s.encode()) for s in names]
        offsets, at = [], 32 * len(names)
        for e in elems:
            offsets.append(_word(at))
            at += len(e)
        tail_a = _word(len(names)) + b"".join(offsets) + b"".join(elems)
        head = KeccakPrefix(_word(64) + _word(64 + len(tail_a)) + tail_a)
        if len(_HEADS) >= _HEADS_MAX:
            del _HEADS[next(iter(_HEADS))]  # the oldest
        _HEADS[names] = head
    return head


def abi_strings_ints(names: list[str] | tuple[str, ...], amounts: list[int]) -> bytes:
    """abi.encode(string[] names, int256[] amounts), written out by hand: the bytes
    `positions_hash` hashes (it never builds them: it hashes on from `_strings_head`'s state),
    kept in this checkable form, which tests compare with eth_abi."""
    return (_strings_head(tuple(names)).prefix + _word(len(amounts))
            + b"".join([_word(q) for q in amounts]))


def positions_hash(positions: dict[str, int]) -> bytes:
    """H(abi.encode(string[] instruments, int256[] amounts)) over non-zero positions sorted by
    name; bytes32(0) when there are none. The names' part is hashed once per name list
    (`_strings_head`); the amounts are hashed on from there."""
    names = sorted([n for n, q in positions.items() if q])
    if not names:
        return ZERO32
    return _strings_head(tuple(names)).hash_words([len(names), *[positions[n] for n in names]])


def account_leaf(address: bytes, acct: Account) -> bytes:
    """H(abi.encode(ACCOUNT_TAG, address, uint256 collateral, bytes32 positionsHash))."""
    return keccak256(ACCOUNT_TAG + address.rjust(32, b"\0") + _word(acct.collateral)
                     + positions_hash(acct.positions))


def state_bytes(state: State) -> bytes:
    """Canonical msgpack serialisation of the whole committed state (keys sorted): equal states
    give equal bytes. For determinism checks and snapshots."""
    accts = [[a, state.index[a], x.collateral, sorted(x.positions.items()),
              sorted(x.session_keys.items()), sorted(x.used_key_digests), x.withdrawal_nonce,
              # the margin fields only where set, so states without them keep their bytes
              *([x.margin_mode, x.margin_nonce] if x.margin_nonce else [])]
             for a, x in sorted(state.accounts.items())]
    return msgpack.packb([
        accts,
        sorted([list(i) for i in state.instruments.values()]),
        sorted(state.settled.items()),
        [[d, list(f.order[:]), f.filled] for d, f in sorted(state.orders.items())],
        [[u, [[k, list(f[:3]), list(f.expiries), list(f.vols)] for k, f in o.feeds.items()],
          o.history] for u, o in sorted(state.oracle.items())],
        state.message_cursor,
        sorted(state.auctions.items()), state.shortfall, sorted(state.liquidate_nonces.items()),
        # channels only when there are some, so states without them keep their bytes
        *([[[cid, list(c.open), c.opened_at, c.status, c.closed_turn, c.closed_hash]
            for cid, c in sorted(state.channels.items())]] if state.channels else []),
        # compliance only once the operator acted, so states without it keep their bytes
        *([["compliance", sorted(state.frozen.items()), sorted(state.denied.items()),
            state.compliance_nonce]] if state.compliance_nonce else []),
    ], use_bin_type=True)
