"""Python side of docs/encoding.md for the contract tests, written independently of the
contracts (eth-abi + eth-account + cext), plus builders for fake L2 batches, a sparse depth-32
tree, marks roots (with proofs of absence), escape claims, channel leaves, and the owner
signatures of the Bridge (EscapeTo, RefundTo, ChannelEscapeTo)."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

import cext
from sequencer.l1 import Contract, Deployment, L1Client, deploy

ZERO32 = b"\0" * 32
H = cext.keccak256

WITHDRAWAL_TAG = H(b"optrollup.withdrawal.v1")
ACCOUNT_TAG = H(b"optrollup.account.v1")
TX_TAG = H(b"optrollup.tx.v1")
MARK_TAG = H(b"optrollup.mark.v1")
CHANNEL_TAG = H(b"optrollup.channel.v1")
CHANNEL_OPEN, CHANNEL_CLOSED, CHANNEL_CONCLUDED = 0, 1, 2
STATE_TREE_DEPTH = 32
UNIT = 10**6  # position amounts are contracts x 10^6
FORCED_NONCE_BASE = 2**63  # nonce of forced-withdrawal / deposit-refund leaves = base + message nonce
MAX_AMOUNT = 2**64 - 1
KIND_DEPOSIT, KIND_FORCED_WITHDRAWAL = 0, 1


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


def mark_leaf(instrument: str, mark_lo: int, mark_hi: int) -> bytes:
    return H(encode(["bytes32", "string", "uint256", "uint256"], [MARK_TAG, instrument, mark_lo, mark_hi]))


def channel_leaf(channel_id: bytes, a: str, b: str, deposit_a: int, deposit_b: int, status: int = CHANNEL_OPEN,
                 closed_turn: int = 0, closed_hash: bytes = ZERO32) -> bytes:
    """H(abi.encode(CHANNEL_TAG, bytes32 channelId, address a, address b, uint256 depositA,
    uint256 depositB, uint256 status, uint256 closedTurnNum, bytes32 closedStateHash))."""
    return H(encode(["bytes32", "bytes32", "address", "address", "uint256", "uint256", "uint256", "uint256",
                     "bytes32"],
                    [CHANNEL_TAG, channel_id, a, b, deposit_a, deposit_b, status, closed_turn, closed_hash]))


def channel_claim(channel_id: bytes, a: str, b: str, deposit_a: int, deposit_b: int, index: int, tree: SparseTree,
                  status: int = CHANNEL_OPEN, closed_turn: int = 0, closed_hash: bytes = ZERO32) -> dict:
    """Bridge.ChannelClaim for the channel leaf at `index` of `tree`."""
    return {"channelId": channel_id, "a": a, "b": b, "depositA": deposit_a, "depositB": deposit_b, "status": status,
            "closedTurnNum": closed_turn, "closedStateHash": closed_hash, "channelIndex": index,
            "channelProof": tree.proof(index)}


def message_commitment(kind: int, sender: str, to: str, amount: int) -> bytes:
    """Bridge.messageCommitment of an L1 message (docs/encoding.md, "L1 messages")."""
    return H(encode(["uint8", "address", "address", "uint256"], [kind, sender, to, amount]))


class Marks:
    """The per-batch marks table: {instrument: (markLo, markHi)}, leaves sorted by name bytewise."""

    def __init__(self, marks: dict[str, tuple[int, int]]) -> None:
        self.marks = dict(marks)
        self.names = sorted(self.marks, key=lambda n: n.encode())
        self.leaves = [mark_leaf(n, *self.marks[n]) for n in self.names]

    def root(self) -> bytes:
        return cext.merkle_root(self.leaves)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def proof(self, name: str) -> list[bytes]:
        return cext.merkle_proof(self.leaves, self.index(name))

    def depth(self) -> int:
        """Proof length of every leaf: the padded tree has 2^depth slots (0 for one leaf or none)."""
        return max(len(self.leaves) - 1, 0).bit_length()

    def _slot(self, i: int) -> dict:
        """Bridge.MarkNeighbour of slot i: a mark leaf, or the zero padding after the last one."""
        padded = self.leaves + [ZERO32] * ((1 << self.depth()) - len(self.leaves))
        proof = cext.merkle_proof(padded, i) if len(padded) > 1 else []
        if i < len(self.names):
            n = self.names[i]
            return {"padding": False, "instrument": n, "markLo": self.marks[n][0], "markHi": self.marks[n][1],
                    "index": i, "proof": proof}
        return {"padding": True, "instrument": "", "markLo": 0, "markHi": 0, "index": i, "proof": proof}

    def mark(self, name: str) -> dict:
        """Bridge.PositionMark of a position in `name`: its mark and proof if listed, else the
        proof of absence (the adjacent slots around where it would sit)."""
        if name in self.marks:
            lo, hi = self.marks[name]
            return {"listed": True, "markLo": lo, "markHi": hi, "markIndex": self.index(name),
                    "markProof": self.proof(name), "neighbours": []}
        key = name.encode()
        g = sum(1 for n in self.names if n.encode() < key)  # the gap: it would be leaf g
        slots = 1 << self.depth()
        neighbours = ([self._slot(g - 1)] if g > 0 else []) + ([self._slot(g)] if g < slots else [])
        return {"listed": False, "markLo": 0, "markHi": 0, "markIndex": 0, "markProof": [],
                "neighbours": neighbours}


def position_value(q: int, mark_lo: int, mark_hi: int) -> int:
    """floor(q·markLo/10^6) for a long, floor(q·markHi/10^6) for a short (Python // floors)."""
    return (q * (mark_lo if q >= 0 else mark_hi)) // UNIT


def escape_value(collateral: int, positions: dict[str, int], marks: Marks) -> int:
    """max(0, collateral + Σ value(q)) at the marks: what Bridge.escape must pay (before the cap)."""
    total = collateral + sum(position_value(q, *marks.marks[n]) for n, q in positions.items() if q)
    return max(0, total)


def escape_claim(account: str, collateral: int, index: int, tree: SparseTree, positions: dict[str, int] | None = None,
                 marks: Marks | None = None) -> dict:
    """Bridge.EscapeClaim for the account leaf at `index` of `tree` (positions in leaf order)."""
    positions = positions or {}
    ps = []
    for name in sorted((n for n, q in positions.items() if q), key=lambda n: n.encode()):
        assert marks is not None
        lo, hi = marks.marks[name]
        ps.append({"instrument": name, "amount": positions[name], "markLo": lo, "markHi": hi,
                   "markIndex": marks.index(name), "markProof": marks.proof(name)})
    return {"account": account, "collateral": collateral, "accountIndex": index, "accountProof": tree.proof(index),
            "positions": ps}


# ---------------------------------------------------------------------------------------------
# owner signatures of the Bridge (EIP-712 domain "optrollup.bridge", version "1")
# ---------------------------------------------------------------------------------------------

BRIDGE_DOMAIN_NAME = "optrollup.bridge"
BRIDGE_DOMAIN_VERSION = "1"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_BRIDGE_TYPES = {
    "EscapeTo": [{"name": "account", "type": "address"}, {"name": "recipient", "type": "address"}],
    "RefundTo": [{"name": "nonce", "type": "uint256"}, {"name": "recipient", "type": "address"}],
    "ChannelEscapeTo": [{"name": "channelId", "type": "bytes32"}, {"name": "account", "type": "address"},
                        {"name": "recipient", "type": "address"}],
}


def bridge_typed_data(chain_id: int, bridge: str, primary: str, message: dict) -> dict:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: _BRIDGE_TYPES[primary],
        },
        "primaryType": primary,
        "domain": {"name": BRIDGE_DOMAIN_NAME, "version": BRIDGE_DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": bridge},
        "message": message,
    }


def _sign_typed(key: LocalAccount, full: dict) -> bytes:
    sig = Account.sign_message(encode_typed_data(full_message=full), key.key)
    r, s, v = sig.r, sig.s, sig.v
    if s > SECP256K1_N // 2:
        s, v = SECP256K1_N - s, 55 - v
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def sign_escape_to(key: LocalAccount, chain_id: int, bridge: str, account: str, recipient: str) -> bytes:
    return _sign_typed(key, bridge_typed_data(chain_id, bridge, "EscapeTo",
                                              {"account": account, "recipient": recipient}))


def sign_refund_to(key: LocalAccount, chain_id: int, bridge: str, nonce: int, recipient: str) -> bytes:
    return _sign_typed(key, bridge_typed_data(chain_id, bridge, "RefundTo", {"nonce": nonce, "recipient": recipient}))


def sign_channel_escape_to(key: LocalAccount, chain_id: int, bridge: str, channel_id: bytes, account: str,
                           recipient: str) -> bytes:
    return _sign_typed(key, bridge_typed_data(chain_id, bridge, "ChannelEscapeTo",
                                              {"channelId": channel_id, "account": account, "recipient": recipient}))


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
    marks_root: bytes = ZERO32
    extra: dict = field(default_factory=dict)

    @property
    def last_block(self) -> int:
        return self.first_block + len(self.headers) - 1

    @property
    def last_header_hash(self) -> bytes:
        return self.headers[-1].hash()

    @property
    def last_header(self) -> Header:
        return self.headers[-1]

    @property
    def withdrawal_roots(self) -> list[bytes]:
        return [h.withdrawalRoot for h in self.headers]

    @property
    def withdrawals_root(self) -> bytes:
        return cext.merkle_root(self.withdrawal_roots)

    def submit_args(self) -> tuple:
        """Rollup.submitBatch(firstBlock, prevHeaderHash, lastHeader, withdrawalRoots, marksRoot, data)."""
        return (self.first_block, self.prev_header_hash, self.last_header.as_dict(), self.withdrawal_roots,
                self.marks_root, self.data)

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
    marks_root: bytes = ZERO32,
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
    return Batch(prev.number + 1, prev.hash(), headers, withdrawals_per_block, data, sr, marks_root)


# ---------------------------------------------------------------------------------------------
# the deployed system used by the tests (conftest.py builds it once per session)
# ---------------------------------------------------------------------------------------------

L2_CHAIN_ID = 424242
ALLOWANCE = 3600  # Rollup.ALLOWANCE
CHALLENGE_WINDOW = 60
POSTING_INTERVAL = 600
INCLUSION_DELAY = POSTING_INTERVAL + ALLOWANCE  # 4200: the minimum the constructor accepts
ESCAPE_DELAY = 2 * CHALLENGE_WINDOW + POSTING_INTERVAL + ALLOWANCE  # 4320: the minimum
ROTATION_DELAY = INCLUSION_DELAY + CHALLENGE_WINDOW  # 4260: the minimum
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

    def mine_at(self, timestamp: int) -> None:
        """Mines one block with exactly this timestamp (later views read it at "latest")."""
        self.client.set_next_block_timestamp(timestamp)
        self.client.mine()

    def next_at(self, timestamp: int) -> None:
        """The next transaction's block gets exactly this timestamp."""
        self.client.set_next_block_timestamp(timestamp)

    def live(self) -> int:
        return self.rollup.call("liveClock")


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
        posting_interval=POSTING_INTERVAL,
        inclusion_delay=INCLUSION_DELAY,
        escape_delay=ESCAPE_DELAY,
        rotation_delay=ROTATION_DELAY,
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


# ---------------------------------------------------------------------------------------------
# small helpers shared by the test modules
# ---------------------------------------------------------------------------------------------


def reverts(name: str, fn, *args, **kwargs):
    """Calls fn(*args, **kwargs), asserts it raises ContractRevert with custom error `name`."""
    import pytest

    from sequencer.l1 import ContractRevert

    with pytest.raises(ContractRevert) as ei:
        fn(*args, **kwargs)
    assert ei.value.error == name, str(ei.value)
    return ei.value


def guardian_struct_hash(primary: str, message: dict, typehash: bytes) -> bytes:
    """EIP-712 hashStruct of a guardian action, by eth-abi (independent of sequencer.l1.guardians)."""
    if primary == "Reject":
        return H(encode(["bytes32", "uint256", "bytes32", "uint256"],
                        [typehash, message["batchIndex"], message["lastHeaderHash"], message["deadline"]]))
    if primary in ("Pause", "Unpause"):
        return H(encode(["bytes32", "uint256"], [typehash, message["deadline"]]))
    if primary == "Rotate":
        gs = H(b"".join(encode(["address"], [g]) for g in message["guardians"]))
        return H(encode(["bytes32", "address", "bytes32", "uint256", "uint256"],
                        [typehash, message["poster"], gs, message["threshold"], message["deadline"]]))
    raise ValueError(primary)


def eip712_digest(domain_name: str, domain_version: str, chain_id: int, contract: str, struct_hash: bytes) -> bytes:
    dom_type = H(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    dom = H(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                   [dom_type, H(domain_name.encode()), H(domain_version.encode()), chain_id, contract]))
    return H(b"\x19\x01" + dom + struct_hash)
