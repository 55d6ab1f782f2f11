"""Python side of docs/encoding.md for the contract tests, written independently of the
contracts (eth-abi + cext), plus builders for fake L2 batches and a sparse depth-32 tree."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_abi import encode
from eth_account.signers.local import LocalAccount

import cext
from sequencer.l1 import Contract, Deployment, L1Client, deploy

ZERO32 = b"\0" * 32
H = cext.keccak256

WITHDRAWAL_TAG = H(b"optrollup.withdrawal.v1")
ACCOUNT_TAG = H(b"optrollup.account.v1")
TX_TAG = H(b"optrollup.tx.v1")
STATE_TREE_DEPTH = 32


@dataclass(frozen=True)
class Header:
    number: int
    parentHash: bytes
    timestamp: int
    txRoot: bytes
    stateRoot: bytes
    withdrawalRoot: bytes
    l1MessageCursor: int

    def hash(self) -> bytes:
        return H(
            encode(
                ["uint64", "bytes32", "uint64", "bytes32", "bytes32", "bytes32", "uint64"],
                [self.number, self.parentHash, self.timestamp, self.txRoot, self.stateRoot,
                 self.withdrawalRoot, self.l1MessageCursor],
            )
        )

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Withdrawal:
    account: str
    recipient: str
    amount: int
    nonce: int

    def leaf(self) -> bytes:
        return withdrawal_leaf(self.account, self.recipient, self.amount, self.nonce)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def withdrawal_leaf(account: str, recipient: str, amount: int, nonce: int) -> bytes:
    return H(encode(["bytes32", "address", "address", "uint256", "uint64"],
                    [WITHDRAWAL_TAG, account, recipient, amount, nonce]))


def account_leaf(account: str, collateral: int, positions_hash: bytes = ZERO32) -> bytes:
    return H(encode(["bytes32", "address", "uint256", "bytes32"], [ACCOUNT_TAG, account, collateral, positions_hash]))


def positions_hash(positions: dict[str, int]) -> bytes:
    items = sorted((k, v) for k, v in positions.items() if v)
    if not items:
        return ZERO32
    return H(encode(["string[]", "int256[]"], [[k for k, _ in items], [v for _, v in items]]))


class SparseTree:
    """Fixed-depth Merkle tree (the docs/encoding.md rule, zero padding) over a few leaves."""

    def __init__(self, depth: int = STATE_TREE_DEPTH) -> None:
        self.depth = depth
        self.zeros = [ZERO32]
        for _ in range(depth):
            self.zeros.append(H(self.zeros[-1] + self.zeros[-1]))
        self.leaves: dict[int, bytes] = {}

    def set(self, index: int, leaf: bytes) -> None:
        assert 0 <= index < 1 << self.depth
        self.leaves[index] = leaf

    def _levels(self) -> list[dict[int, bytes]]:
        levels = [dict(self.leaves)]
        for d in range(self.depth):
            cur, nxt = levels[-1], {}
            for i in {k >> 1 for k in cur}:
                left = cur.get(2 * i, self.zeros[d])
                right = cur.get(2 * i + 1, self.zeros[d])
                nxt[i] = H(left + right)
            levels.append(nxt)
        return levels

    def root(self) -> bytes:
        top = self._levels()[-1]
        return top.get(0, self.zeros[self.depth])

    def proof(self, index: int) -> list[bytes]:
        levels = self._levels()
        out = []
        for d in range(self.depth):
            out.append(levels[d].get((index >> d) ^ 1, self.zeros[d]))
        return out


@dataclass
class Batch:
    """A fake batch of L2 blocks with withdrawals, consistent with docs/encoding.md."""

    first_block: int
    prev_header_hash: bytes
    headers: list[Header]
    withdrawals: list[list[Withdrawal]]
    data: bytes
    state_root: bytes
    extra: dict = field(default_factory=dict)

    @property
    def last_block(self) -> int:
        return self.first_block + len(self.headers) - 1

    @property
    def last_header_hash(self) -> bytes:
        return self.headers[-1].hash()

    @property
    def withdrawal_roots(self) -> list[bytes]:
        return [h.withdrawalRoot for h in self.headers]

    @property
    def withdrawals_root(self) -> bytes:
        return cext.merkle_root(self.withdrawal_roots)

    def submit_args(self) -> tuple:
        return (self.first_block, self.last_block, self.prev_header_hash, self.last_header_hash,
                self.state_root, self.withdrawal_roots, self.data)

    def proof(self, batch_index: int, block_offset: int, leaf_index: int) -> dict:
        leaves = [w.leaf() for w in self.withdrawals[block_offset]]
        return {
            "batchIndex": batch_index,
            "blockOffset": block_offset,
            "blockWithdrawalRoot": self.withdrawal_roots[block_offset],
            "blockProof": cext.merkle_proof(self.withdrawal_roots, block_offset),
            "leafIndex": leaf_index,
            "leafProof": cext.merkle_proof(leaves, leaf_index),
        }


def make_batch(
    prev: Header,
    withdrawals_per_block: list[list[Withdrawal]],
    *,
    state_root: bytes | None = None,
    message_cursor: int | None = None,
    data: bytes = b"batch-data",
    timestamp: int | None = None,
) -> Batch:
    """Blocks prev.number+1.. chained by parentHash; each block's withdrawalRoot is the Merkle
    root of its withdrawal leaves; the last block carries `state_root`."""
    headers: list[Header] = []
    parent = prev
    sr = state_root if state_root is not None else prev.stateRoot
    cursor = message_cursor if message_cursor is not None else prev.l1MessageCursor
    for k, ws in enumerate(withdrawals_per_block):
        h = Header(
            number=parent.number + 1,
            parentHash=parent.hash(),
            timestamp=(timestamp or prev.timestamp) + k + 1,
            txRoot=H(b"txs" + (parent.number + 1).to_bytes(8, "big")),
            stateRoot=sr,
            withdrawalRoot=cext.merkle_root([w.leaf() for w in ws]),
            l1MessageCursor=cursor,
        )
        headers.append(h)
        parent = h
    return Batch(prev.number + 1, prev.hash(), headers, withdrawals_per_block, data, sr)


# ---------------------------------------------------------------------------------------------
# the deployed system used by the tests (conftest.py builds it once per session)
# ---------------------------------------------------------------------------------------------

L2_CHAIN_ID = 424242
CHALLENGE_WINDOW = 60
ESCAPE_DELAY = 3600
THRESHOLD = 3
USDC = 10**6



@dataclass
class System:
    """A deployed optrollup with named roles and bound contracts."""

    client: L1Client
    deployment: Deployment
    rollup: Contract
    bridge: Contract
    token: Contract
    deployer: LocalAccount
    poster: LocalAccount
    guardians: list[LocalAccount]  # 5 guardians, threshold 3
    users: list[LocalAccount]  # funded with 1,000,000 USDC each, Bridge approved
    outsider: LocalAccount
    genesis: Header

    @property
    def chain_id(self) -> int:
        return self.client.chain_id

    def now(self) -> int:
        return self.client.get_block_timestamp()

    def advance(self, seconds: int) -> None:
        self.client.increase_time(seconds)
        self.client.mine()


# The contracts never interpret the genesis bytes (they are only emitted in RollupDeployed);
# the replay verifier's tests (tests/prover) use a real `Genesis.to_bytes()`.
GENESIS_CONFIG = b"\x91\x01optrollup-contract-tests"


def genesis_header() -> Header:
    empty_state = SparseTree().root()
    return Header(0, ZERO32, 1_700_000_000, ZERO32, empty_state, ZERO32, 0)


def deploy_system(client: L1Client, accounts: list[LocalAccount], **overrides) -> System:
    deployer, poster = accounts[0], accounts[1]
    guardians = accounts[2:7]
    users = accounts[7:10]
    gen = genesis_header()
    kwargs = dict(
        poster=poster.address,
        guardians=[g.address for g in guardians],
        threshold=THRESHOLD,
        challenge_window=CHALLENGE_WINDOW,
        escape_delay=ESCAPE_DELAY,
        l2_chain_id=L2_CHAIN_ID,
        genesis_header_hash=gen.hash(),
        genesis_state_root=gen.stateRoot,
        genesis_config=GENESIS_CONFIG,
    )
    kwargs.update(overrides)
    d = deploy(client, deployer, **kwargs)
    token = d.token_contract(client)
    bridge = d.bridge_contract(client)
    for u in users:
        token.transact("mint", u.address, 1_000_000 * USDC, sender=u)
        token.transact("approve", bridge.address, 2**256 - 1, sender=u)
    return System(client, d, d.rollup_contract(client), bridge, token, deployer, poster, guardians, users,
                  accounts[10], gen)
