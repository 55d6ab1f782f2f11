"""seal_header/replay_block: sequencer sealing and verifier replay agree; roots stay exact."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sequencer.core import encode_tx, genesis, make_instrument
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import BadBlock, replay_block, seal_header, touched_leaves
from sequencer.core.header import Header, tx_leaves
from sequencer.core.state import account_leaf
from sequencer.core.transition import apply, prepare_block
from sequencer.errors import Rejected
from tests.sequencer.core.core_world import CALL, PUT, T0, USERS, World, make_config
from tests.sequencer.core.test_properties import random_flow, run


def full_root(state) -> bytes:
    tree = AccountTree()
    tree.update({state.index[a]: account_leaf(a, x) for a, x in state.accounts.items()})
    return tree.root()


def genesis_world():
    cfg = make_config()
    state = genesis(cfg, [make_instrument(CALL), make_instrument(PUT)])
    tree = AccountTree()
    tree.update({state.index[a]: account_leaf(a, x) for a, x in state.accounts.items()})
    state.touched.clear()
    return state, tree, Header(0, b"\0" * 32, T0 - 1, b"\0" * 32, tree.root(), b"\0" * 32, 0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(50, 200))
def test_incremental_root_equals_full_recompute_after_every_block(seed: int, n: int) -> None:
    _, blocks, _ = run(random_flow(seed, n))
    state, tree, head = genesis_world()
    for ts, txs in blocks:
        head = replay_block(state, tree, head, ts, [encode_tx(t) for t in txs])
        assert head.state_root == full_root(state)
        assert not state.touched


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(50, 200), st.data())
def test_leaves_taken_during_the_block_seal_the_same_header(seed: int, n: int, data) -> None:
    """A node takes touched leaves (and tx leaves) during the block, at any points between
    txs, and hands them to the seal; the header equals the verifier's replay of the block."""
    _, blocks, _ = run(random_flow(seed, n))
    s1, t1, h1 = genesis_world()
    s2, t2, h2 = genesis_world()
    for ts, txs in blocks:
        raw = [encode_tx(t) for t in txs]
        h1 = replay_block(s1, t1, h1, ts, raw)
        ctx = prepare_block(s2.config.domain, ts, txs)
        ahead: dict[bytes, bytes] = {}
        for tx in txs:
            apply(s2, tx, ctx)
            if data.draw(st.booleans()):
                ahead.update(touched_leaves(s2))
        h2 = seal_header(s2, t2, h2, ts, txs, raw, ahead=ahead, tx_hashes=tx_leaves(raw))
        assert h2 == h1
        assert not s2.touched


def sequencer_blocks():
    """Blocks made by the engine and sealed as the node does, with their headers."""
    w = World()
    state, eng = w.state, w.engine
    tree = AccountTree()
    tree.update({state.index[a]: account_leaf(a, x) for a, x in state.accounts.items()})
    # block 1 = what World did at T0 (deposits, feeds); sealed like the node seals
    parent = Header(0, b"\0" * 32, T0 - 1, b"\0" * 32, b"\0" * 32, b"\0" * 32, 0)
    out = []

    def seal(next_ts: int) -> None:
        nonlocal parent
        ts, txs = eng.now, eng.end_block()
        tx_bytes = [encode_tx(t) for t in txs]
        parent = seal_header(state, tree, parent, ts, txs, tx_bytes)
        assert parent.state_root == full_root(state)
        out.append((parent, tx_bytes))
        eng.begin_block(next_ts)

    seal(T0 + 1)
    a, b, c = USERS[:3]
    w.place(a, instrument=CALL, is_buy=False, price=100 * 10**6, amount=20_000, nonce=1, expiry=T0 + 900)
    w.place(c, instrument=CALL, is_buy=False, price=110 * 10**6, amount=10_000, nonce=2, expiry=T0 + 900)
    w.place(b, instrument=CALL, is_buy=True, price=105 * 10**6, amount=10_000, nonce=3, expiry=T0 + 900)
    seal(T0 + 2)
    w.fund(USERS[5], 7 * 10**6)  # a deposit alone into an existing account must reach the root
    # FOK larger than the book: refused, changes nothing
    with pytest.raises(Rejected, match="FOK"):
        w.place(b, instrument=CALL, is_buy=True, price=120 * 10**6, amount=90_000, nonce=4,
                expiry=T0 + 900, tif=2)
    w.place(b, instrument=CALL, is_buy=True, price=120 * 10**6, amount=20_000, nonce=5, expiry=T0 + 900)
    seal(T0 + 3)
    return w, out


def test_sequencer_sealing_and_replay_agree_header_for_header() -> None:
    w, blocks = sequencer_blocks()
    state, tree, _ = genesis_world()
    parent = Header(0, b"\0" * 32, T0 - 1, b"\0" * 32, b"\0" * 32, b"\0" * 32, 0)
    for header, tx_bytes in blocks:
        got = replay_block(state, tree, parent, header.timestamp, tx_bytes)
        assert got == header
        parent = got
    assert any(len(t) > 2 for _, t in blocks)  # trades happened
    assert blocks[-1][0].state_root == full_root(w.state)


def test_replay_names_the_first_bad_transaction() -> None:
    _, blocks = sequencer_blocks()
    state, tree, _ = genesis_world()
    parent = Header(0, b"\0" * 32, T0 - 1, b"\0" * 32, b"\0" * 32, b"\0" * 32, 0)
    parent = replay_block(state, tree, parent, blocks[0][0].timestamp, blocks[0][1])
    header, txs = blocks[1]
    fill_i = next(i for i, t in enumerate(txs) if t[1] == 2)
    raw = msgpack.unpackb(txs[fill_i], raw=False)
    raw[3] += 10_000  # claim a larger fill than the maker signed for... or than is left
    tampered = list(txs)
    tampered[fill_i] = msgpack.packb(raw, use_bin_type=True)
    with pytest.raises(BadBlock) as info:
        replay_block(state, tree, parent, header.timestamp, tampered)
    assert info.value.number == 2 and info.value.tx_index == fill_i
    assert "FillTx rejected" in info.value.message
    with pytest.raises(BadBlock, match="does not decode"):
        replay_block(state, tree, parent, header.timestamp, [b"\xc1garbage"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=70), st.integers(-(2**255), 2**255 - 1)), max_size=6),
       st.binary(min_size=20, max_size=20), st.integers(0, 2**256 - 1))
def test_hand_written_leaf_encoding_equals_eth_abi(rows, address, collateral) -> None:
    from eth_abi import encode as abi_encode

    from cext import keccak256
    from sequencer.core.state import ACCOUNT_TAG, Account, abi_strings_ints, positions_hash
    names, amounts = [n for n, _ in rows], [q for _, q in rows]
    assert abi_strings_ints(names, amounts) == abi_encode(["string[]", "int256[]"], [names, amounts])
    # the names' part is cached per name list: a second encoding with other amounts (also of
    # another length) must not reuse anything but the names
    other = [~q for q in reversed(amounts)] + [7]  # ~q = -q-1 stays within int256
    assert abi_strings_ints(names, other) == abi_encode(["string[]", "int256[]"], [names, other])
    acct = Account(collateral=collateral, positions={n: q for n, q in rows if q})
    # positions_hash hashes on from the names' cached hash state: against eth_abi + keccak,
    # twice per name list with different amounts (the cached state must not change)
    for positions in (acct.positions, {n: ~q or 1 for n, q in acct.positions.items()}):
        srt = sorted(positions)
        assert positions_hash(positions) == (
            keccak256(abi_encode(["string[]", "int256[]"], [srt, [positions[n] for n in srt]]))
            if srt else b"\0" * 32)
    want = keccak256(abi_encode(["bytes32", "address", "uint256", "bytes32"],
                                [ACCOUNT_TAG, address, collateral, positions_hash(acct.positions)]))
    assert account_leaf(address, acct) == want


def test_marks_root_matches_an_independent_computation(world: World) -> None:
    """docs/encoding.md "Marks root": every listed instrument sorted by name, leaf
    H(abi.encode(MARK_TAG, string, uint256 markLo, uint256 markHi)), 0/0 without a valid price;
    computed here with eth_abi, keccak and a hand-written Merkle tree."""
    from eth_abi import encode as abi_encode
    from eth_utils import keccak

    from sequencer.core.chain import marks_root
    from sequencer.core.marks import Marks
    from sequencer.core.transition import list_instrument
    from tests.sequencer.core.test_l1_messages import merkle_by_hand

    st = world.state
    for name in ("ETH-27DEC26-2500-P", "ETH-27DEC26-10000-C"):  # listed after, sorted before
        list_instrument(st, make_instrument(name), T0)
    assert list(st.instruments) != sorted(st.instruments)
    tag = keccak(b"optrollup.mark.v1")

    def by_hand(now: int) -> bytes:
        marks = Marks(st, now)
        leaves = []
        for name in sorted(st.instruments, key=str.encode):
            m = marks.mark(name)
            lo, hi = (0, 0) if m is None else (m.mark_lo, m.mark_hi)
            leaves.append(keccak(abi_encode(["bytes32", "string", "uint256", "uint256"],
                                            [tag, name, lo, hi])))
        return merkle_by_hand(leaves)

    fresh = Marks(st, T0 + 5)
    assert all(fresh.mark(n) is not None and fresh.mark(n).mark_lo > 0 for n in st.instruments)
    assert marks_root(st, T0 + 5) == by_hand(T0 + 5)
    assert marks_root(st, T0 + 5, fresh) == by_hand(T0 + 5)           # marks passed in
    assert marks_root(st, T0 + 6, fresh) == by_hand(T0 + 6)           # not current: recomputed
    stale = T0 + 3600                                                  # no valid price: 0/0
    assert all(Marks(st, stale).mark(n) is None for n in st.instruments)
    assert marks_root(st, stale) == by_hand(stale) != by_hand(T0 + 5)
    one = genesis(make_config(), [make_instrument(CALL)])
    assert marks_root(one, T0) == keccak(abi_encode(["bytes32", "string", "uint256", "uint256"],
                                                    [tag, CALL, 0, 0]))
    assert marks_root(genesis(make_config(), []), T0) == b"\0" * 32
