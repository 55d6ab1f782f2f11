"""The channel store on a real LevelDB: never two signatures for one turn, latest co-signed
state, synced writes, persistence across reopen."""

from __future__ import annotations

import tempfile

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import (ChannelExists, ChannelStore, ChannelStoreLocked, Cosigned,
                      CosignedConflict, DoubleSign, Trade, apply_trade, initial_state)
from sequencer.core.channelmsg import ChannelState, state_digest
from tests.channels.world import KEY_A, KEY_B, channel

U = 10**6
C = "ETH-27DEC26-3000-C"
CH = channel()


def states(n: int) -> list[ChannelState]:
    s, out = initial_state(CH), []
    for i in range(n):
        s = apply_trade(s, Trade(C, i % 2 == 0, (i + 1) * 100_000, U), True)
        out.append(s)
    return out


def sign(key, s: ChannelState) -> bytes:
    return bytes(key.unsafe_sign_hash(state_digest(CH.domain, s)).signature)


def cosign(store: ChannelStore, s: ChannelState) -> None:
    store.record_cosigned(s, state_digest(CH.domain, s), sign(KEY_A, s), sign(KEY_B, s))


def test_refuses_a_second_different_signature_for_a_turn(tmp_path) -> None:
    s1 = states(1)[0]
    other = s1._replace(balanceA=s1.balanceA - 1, balanceB=s1.balanceB + 1)
    d1, d2 = state_digest(CH.domain, s1), state_digest(CH.domain, other)
    with ChannelStore(tmp_path) as store:
        sig = sign(KEY_A, s1)
        assert store.record_signed(s1, d1, sig) == sig
        assert store.record_signed(s1, d1, b"\x01" * 65) == sig      # same state: first signature
        with pytest.raises(DoubleSign) as e:
            store.record_signed(other, d2, sign(KEY_A, other))
        assert e.value.code == "turn_already_signed"
        assert store.signed(CH.id, 1).state == s1
        # the next turn is free
        s2 = other._replace(turnNum=2)
        store.record_signed(s2, state_digest(CH.domain, s2), sign(KEY_A, s2))
    with ChannelStore(tmp_path) as store:                            # the rule survives reopen
        with pytest.raises(DoubleSign):
            store.record_signed(other, d2, sign(KEY_A, other))
        assert store.signed(CH.id, 1).signature == sig


def test_sign_once_signs_at_most_once_per_turn(tmp_path) -> None:
    s1 = states(1)[0]
    other = s1._replace(isFinal=True)
    calls: list[bytes] = []

    def signer(d: bytes) -> bytes:
        calls.append(d)
        return bytes(KEY_A.unsafe_sign_hash(d).signature)

    with ChannelStore(tmp_path) as store:
        d1 = state_digest(CH.domain, s1)
        sig = store.sign_once(s1, d1, signer)
        assert store.sign_once(s1, d1, signer) == sig and calls == [d1]
        with pytest.raises(DoubleSign):
            store.sign_once(other, state_digest(CH.domain, other), signer)
        assert calls == [d1]


def test_intent_is_durable_before_signing(tmp_path) -> None:
    """A crash between recording the intent and signing still blocks a different state."""
    s1 = states(1)[0]
    other = s1._replace(isFinal=True)
    d1 = state_digest(CH.domain, s1)

    def crash(d: bytes) -> bytes:
        raise KeyboardInterrupt

    with ChannelStore(tmp_path) as store:
        with pytest.raises(KeyboardInterrupt):
            store.sign_once(s1, d1, crash)
        assert store.signed(CH.id, 1).signature == b""
    with ChannelStore(tmp_path) as store:
        with pytest.raises(DoubleSign):
            store.sign_once(other, state_digest(CH.domain, other), lambda d: b"\0" * 65)
        sig = store.sign_once(s1, d1, lambda d: bytes(KEY_A.unsafe_sign_hash(d).signature))
        assert len(sig) == 65 and store.signed(CH.id, 1).signature == sig


def test_latest_cosigned_state_survives_reopen(tmp_path) -> None:
    ss = states(5)
    far = ss[-1]._replace(turnNum=2**40)
    mid = ss[-1]._replace(turnNum=256)
    with ChannelStore(tmp_path) as store:
        assert store.latest(CH.id) is None
        store.put_channel(CH)
        for s in (ss[2], ss[0], mid, ss[4], far, ss[1], ss[3]):   # out of order
            cosign(store, s)
        cosign(store, ss[2])                                        # the same again: no-op
        assert store.latest(CH.id).state == far
    with ChannelStore(tmp_path) as store:
        latest = store.latest(CH.id)
        assert isinstance(latest, Cosigned) and latest.state == far
        assert latest.digest == state_digest(CH.domain, far)
        assert latest.sigA == sign(KEY_A, far) and latest.sigB == sign(KEY_B, far)
        assert [c.state.turnNum for c in store.cosigned_states(CH.id)] == [1, 2, 3, 4, 5, 256, 2**40]
        assert store.cosigned(CH.id, 3).state == ss[2]
        assert store.cosigned(CH.id, 6) is None
        assert store.channel(CH.id) == CH and store.channel_ids() == [CH.id]
        other = channel(nonce=9)
        assert store.latest(other.id) is None and store.channel(other.id) is None


def test_conflicting_cosigned_state_is_refused(tmp_path) -> None:
    s1 = states(1)[0]
    other = s1._replace(isFinal=True)
    with ChannelStore(tmp_path) as store:
        cosign(store, s1)
        with pytest.raises(CosignedConflict) as e:
            cosign(store, other)
        assert e.value.code == "cosigned_conflict"
        assert store.latest(CH.id).state == s1


def test_channel_is_recorded_once(tmp_path) -> None:
    with ChannelStore(tmp_path) as store:
        store.put_channel(CH)
        store.put_channel(CH)
        changed = CH._replace(open=CH.open._replace(depositA=CH.open.depositA + 1))
        with pytest.raises(ChannelExists):
            store.put_channel(changed)


def test_second_opener_is_refused(tmp_path) -> None:
    with ChannelStore(tmp_path):
        with pytest.raises(ChannelStoreLocked) as e:
            ChannelStore(tmp_path)
        assert e.value.code == "data_dir_locked"


class _SyncSpy:
    def __init__(self, db: plyvel.DB) -> None:
        self.db, self.syncs = db, []

    def put(self, key, value, sync=False):
        self.syncs.append(sync)
        return self.db.put(key, value, sync=sync)

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_every_write_is_synced(tmp_path) -> None:
    store = ChannelStore(tmp_path)
    spy = _SyncSpy(store._db)
    store._db = spy
    s1 = states(1)[0]
    store.put_channel(CH)
    cosign(store, s1)
    store.sign_once(s1, state_digest(CH.domain, s1), lambda d: b"\x02" * 65)
    assert spy.syncs and all(spy.syncs)
    spy.db.close()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 2)), max_size=20))
def test_signed_records_follow_a_model(ops) -> None:
    """Random (turn, variant) signing requests: refused exactly when the model already holds
    another variant for that turn; the model and the store agree after reopen."""
    base = states(1)[0]
    variants = [base._replace(balanceA=base.balanceA - v, balanceB=base.balanceB + v) for v in range(3)]
    model: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as d:
        with ChannelStore(d) as store:
            for turn, v in ops:
                s = variants[v]._replace(turnNum=turn)
                dig = state_digest(CH.domain, s)
                if turn in model and model[turn] != v:
                    with pytest.raises(DoubleSign):
                        store.record_signed(s, dig, bytes([v]) * 65)
                else:
                    assert store.record_signed(s, dig, bytes([v]) * 65) == bytes([model.get(turn, v)]) * 65
                    model.setdefault(turn, v)
        with ChannelStore(d) as store:
            for turn in range(1, 5):
                rec = store.signed(CH.id, turn)
                if turn in model:
                    assert rec.state == variants[model[turn]]._replace(turnNum=turn)
                else:
                    assert rec is None
