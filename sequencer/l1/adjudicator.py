"""The L1 `Adjudicator` of optrollup's state channels (contracts/src/Adjudicator.sol; design.md,
"State channels"): a typed client over `Contract` and the one transaction manager.

    adj = Adjudicator.at(client, deployment.adjudicator)    # the Rollup's (Rollup.adjudicator())
    adj.challenge(fixed, state, sig_a, sig_b, sender=key)   # register / refute / cooperative exit
    adj.conclude(fixed, sender=key)                         # after the window
    adj.status(channel_id)                                  # ChannelStatus
    adj.events(from_block, to_block)                        # [ChallengeRegistered | Concluded]

The Adjudicator holds no funds: it certifies the state a channel ends in. `channel_id` and
`state_digest` here are the contract's own answers (eth_call); the Python EIP-712 hashing of
channel messages lives with the channel code (`sequencer.core.channelmsg`). Signatures are 65
bytes r ‖ s ‖ v, low s. Wherever a `Fixed` or `State` is taken, any sequence in the structs'
field order works too (addresses as 0x hex or 20 raw bytes), e.g. the channel code's
NamedTuples. `events` is one eth_getLogs: to follow the chain (chunked, reorg-aware), subscribe
`adj.subscription()` in an `EventTracker` and type its events with `from_event`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sequencer.l1.abi import checksum_address
from sequencer.l1.client import BlockId, L1Client, Log, Receipt
from sequencer.l1.contracts import Contract, Event, deploy_contract
from sequencer.l1.errors import L1Error

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from sequencer.l1.txmanager import TxManager

ARTIFACT = "Adjudicator"
EVENT_NAMES = ("ChallengeRegistered", "Concluded")


# ----------------------------------------------------------------------------------------------
# the contract's structs
# ----------------------------------------------------------------------------------------------


class Fixed(NamedTuple):
    """`Adjudicator.Fixed`: what a channel is fixed to at open (its id commits to all of it)."""

    a: str
    b: str
    signer_a: str
    signer_b: str
    nonce: int
    challenge_period: int  # seconds

    def to_abi(self) -> tuple:
        return (checksum_address(self.a), checksum_address(self.b), checksum_address(self.signer_a),
                checksum_address(self.signer_b), int(self.nonce), int(self.challenge_period))


class Position(NamedTuple):
    """`Adjudicator.Position`: one of A's positions (B holds the negative), contracts x 10^6."""

    instrument: str
    amount: int


class State(NamedTuple):
    """`Adjudicator.State` = EIP-712 `ChannelState`. `positions` sorted by instrument (UTF-8
    bytes, strictly), no zero amount: the contract refuses anything else."""

    channel_id: bytes
    turn_num: int
    balance_a: int
    balance_b: int
    positions: tuple[Position, ...]
    is_final: bool

    def to_abi(self) -> tuple:
        return (_bytes32(self.channel_id), int(self.turn_num), int(self.balance_a), int(self.balance_b),
                [(str(p[0]), int(p[1])) for p in self.positions], bool(self.is_final))

    @staticmethod
    def sorted_positions(positions: Mapping[str, int] | Iterable[tuple[str, int]]) -> tuple[Position, ...]:
        """Positions in the contract's order (UTF-8 bytes ascending), zeros dropped."""
        items = positions.items() if isinstance(positions, Mapping) else positions
        return tuple(Position(n, int(q)) for n, q in sorted(items, key=lambda x: x[0].encode()) if q)


class ChannelStatus(NamedTuple):
    """`Adjudicator.status(channelId)`: the registered state (all zero when none)."""

    turn_num: int
    finalizes_at: int  # unix seconds (L1 time); 0 = nothing registered
    state_hash: bytes  # EIP-712 digest of the registered state
    concluded: bool

    @property
    def registered(self) -> bool:
        return self.finalizes_at != 0

    def window_open(self, now: int) -> bool:
        """A refutation by a higher turn is accepted at L1 time `now`."""
        return self.registered and not self.concluded and now < self.finalizes_at

    def concludable(self, now: int) -> bool:
        """`conclude` is accepted at L1 time `now`."""
        return self.registered and not self.concluded and now >= self.finalizes_at


class ChallengeRegistered(NamedTuple):
    """A `ChallengeRegistered` log: a state registered (or replacing a lower turn)."""

    channel_id: bytes
    turn_num: int
    finalizes_at: int
    block_number: int
    tx_hash: str
    log_index: int


class Concluded(NamedTuple):
    """A `Concluded` log: the channel ends in the state with EIP-712 digest `state_hash`."""

    channel_id: bytes
    turn_num: int
    state_hash: bytes
    block_number: int
    tx_hash: str
    log_index: int


AdjudicatorEvent = ChallengeRegistered | Concluded


def _bytes32(v: bytes | str) -> bytes:
    b = bytes.fromhex(v.removeprefix("0x")) if isinstance(v, str) else bytes(v)
    if len(b) != 32:
        raise L1Error(f"expected 32 bytes, got {len(b)}")
    return b


def _fixed(f: Fixed | Sequence[Any]) -> tuple:
    return f.to_abi() if isinstance(f, Fixed) else Fixed(*f).to_abi()


def _state(s: State | Sequence[Any]) -> tuple:
    return s.to_abi() if isinstance(s, State) else State(*s).to_abi()


def from_event(ev: Event) -> AdjudicatorEvent:
    """The typed form of a decoded `ChallengeRegistered` or `Concluded` event (e.g. from an
    `EventTracker`)."""
    if ev.name == "ChallengeRegistered":
        return ChallengeRegistered(bytes(ev["channelId"]), int(ev["turnNum"]), int(ev["finalizesAt"]),
                                   ev.block_number, ev.tx_hash, ev.log_index)
    if ev.name == "Concluded":
        return Concluded(bytes(ev["channelId"]), int(ev["turnNum"]), bytes(ev["stateHash"]), ev.block_number,
                         ev.tx_hash, ev.log_index)
    raise L1Error(f"not an Adjudicator dispute event: {ev.name}")


# ----------------------------------------------------------------------------------------------
# the client
# ----------------------------------------------------------------------------------------------


class Adjudicator:
    """The Adjudicator at one address. Reverts raise `ContractRevert` naming the custom error
    (`ChannelIdMismatch`, `InvalidSignature`, `WrongSigner`, `PositionsNotSorted`,
    `ZeroPositionAmount`, `ChannelAlreadyConcluded`, `ChallengeWindowClosed`, `TurnNotHigher`,
    `NoChallenge`, `ChallengeWindowOpen`) before anything is sent."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract

    @classmethod
    def at(cls, client: L1Client, address: str) -> Adjudicator:
        return cls(Contract.at(client, ARTIFACT, address))

    @property
    def address(self) -> str:
        return self.contract.address

    @property
    def client(self) -> L1Client:
        return self.contract.client

    def __repr__(self) -> str:
        return f"<Adjudicator at {self.address}>"

    # -- configuration and views -----------------------------------------------------------------

    def l2_chain_id(self) -> int:
        return self.contract.call("l2ChainId")

    def rollup(self) -> str:
        return self.contract.call("rollup")

    def domain_separator(self) -> bytes:
        return bytes(self.contract.call("domainSeparator"))

    def channel_id(self, fixed: Fixed, *, block: BlockId = "latest") -> bytes:
        return bytes(self.contract.call("channelId", _fixed(fixed), block=block))

    def state_digest(self, state: State, *, block: BlockId = "latest") -> bytes:
        """The state's EIP-712 digest as the contract computes it (reverts like `challenge` on
        unsorted positions or a zero amount)."""
        return bytes(self.contract.call("stateDigest", _state(state), block=block))

    def status(self, channel_id: bytes | str, *, block: BlockId = "latest") -> ChannelStatus:
        turn, fin, h, concluded = self.contract.call("status", _bytes32(channel_id), block=block)
        return ChannelStatus(int(turn), int(fin), bytes(h), bool(concluded))

    # -- transactions ----------------------------------------------------------------------------

    def encode_challenge(self, fixed: Fixed, state: State, sig_a: bytes, sig_b: bytes) -> bytes:
        """Calldata of `challenge` (for a caller sending through its own TxManager)."""
        return self.contract.encode("challenge", _fixed(fixed), _state(state), bytes(sig_a), bytes(sig_b))

    def encode_conclude(self, fixed: Fixed) -> bytes:
        return self.contract.encode("conclude", _fixed(fixed))

    def challenge(self, fixed: Fixed, state: State, sig_a: bytes, sig_b: bytes, *,
                  sender: LocalAccount | TxManager, gas: int | None = None, timeout: float = 30.0) -> Receipt:
        """Registers `state` (co-signed: `sig_a` by `fixed.signer_a`, `sig_b` by
        `fixed.signer_b`), refutes the registered one with a higher turn, or, when
        `state.is_final`, concludes the channel at once. Anyone may send it."""
        return self.contract.transact("challenge", _fixed(fixed), _state(state), bytes(sig_a), bytes(sig_b),
                                      sender=sender, gas=gas, timeout=timeout)

    def conclude(self, fixed: Fixed, *, sender: LocalAccount | TxManager, gas: int | None = None,
                 timeout: float = 30.0) -> Receipt:
        """Concludes the channel with its registered state once `finalizes_at` has passed."""
        return self.contract.transact("conclude", _fixed(fixed), sender=sender, gas=gas, timeout=timeout)

    # -- events ----------------------------------------------------------------------------------

    def subscription(self) -> tuple[Contract, tuple[str, ...]]:
        """`(contract, event names)` for an `EventTracker` following the disputes."""
        return self.contract, EVENT_NAMES

    def decode_log(self, log: Log) -> AdjudicatorEvent | None:
        ev = self.contract.decode_log(log)
        return from_event(ev) if ev is not None and ev.name in EVENT_NAMES else None

    def decode_receipt(self, receipt: Receipt) -> list[AdjudicatorEvent]:
        """The dispute events of one transaction."""
        return [e for e in (self.decode_log(log) for log in receipt.logs) if e is not None]

    def events(self, from_block: BlockId = 0, to_block: BlockId = "latest", *,
               channel_id: bytes | str | None = None) -> list[AdjudicatorEvent]:
        """`ChallengeRegistered` and `Concluded` logs in [from_block, to_block] (one
        eth_getLogs, in chain order), optionally of one channel only."""
        topic0 = [self.contract.abi.event(n).topic0 for n in EVENT_NAMES]
        topics: list[Any] = [topic0]
        if channel_id is not None:
            topics.append(_bytes32(channel_id))
        logs = self.client.get_logs(address=self.address, topics=topics, from_block=from_block, to_block=to_block)
        return [e for e in (self.decode_log(log) for log in logs) if e is not None]

    def challenges(self, from_block: BlockId = 0, to_block: BlockId = "latest", *,
                   channel_id: bytes | str | None = None) -> list[ChallengeRegistered]:
        return [e for e in self.events(from_block, to_block, channel_id=channel_id)
                if isinstance(e, ChallengeRegistered)]

    def conclusions(self, from_block: BlockId = 0, to_block: BlockId = "latest", *,
                    channel_id: bytes | str | None = None) -> list[Concluded]:
        return [e for e in self.events(from_block, to_block, channel_id=channel_id) if isinstance(e, Concluded)]


def deploy_adjudicator(client: L1Client, deployer: LocalAccount | TxManager, l2_chain_id: int,
                       rollup: str) -> tuple[Adjudicator, Receipt]:
    """Deploys a standalone Adjudicator for the rollup at `rollup` on L2 chain `l2_chain_id` (its
    EIP-712 domain: {name "optrollup", version "1", chainId l2_chain_id, verifyingContract rollup}),
    e.g. for tests without a Rollup. A Rollup's canonical Adjudicator is the one its constructor
    created (`Rollup.adjudicator()`, `Deployment.adjudicator`): another one for the same pair
    accepts the same states, but neither the L2 nor the Bridge follows it."""
    contract, receipt = deploy_contract(client, deployer, ARTIFACT, int(l2_chain_id), checksum_address(rollup))
    return Adjudicator(contract), receipt
