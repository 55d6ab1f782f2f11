"""The channel service's own LevelDB: channels, every co-signed state, and every state this
party has signed. Every write is synced (`sync=True`) before the call returns, so a state is
durable before it is answered or sent.

The safety rule lives here: this party never signs two different states with one turnNum.
`sign_once` records what it is about to sign (synced) before it signs, so that even a crash
between signing and answering cannot lead to a second, different signature for that turn.

Keys (channel id 32 bytes, turnNum 8 bytes big-endian, so a channel's turns sort in order):
    b"ch" ‖ id            -> the open and domain (JSON)
    b"co" ‖ id ‖ turnNum  -> a co-signed state: state, digest, sigA, sigB (JSON)
    b"me" ‖ id ‖ turnNum  -> a state this party signed: state, digest, signature (JSON;
                             signature "" while only the intent is recorded)

Signatures are stored as given: callers verify them (channels.rules.verify_signatures).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import plyvel

from sequencer.core.channelmsg import (ChannelState, json_bytes, open_from_json, open_to_json,
                                       state_from_json, state_to_json)

from channels.errors import (ChannelExists, ChannelStoreError, ChannelStoreLocked,
                             CosignedConflict, DoubleSign)
from channels.rules import Channel

_CH, _CO, _ME = b"ch", b"co", b"me"


class Cosigned(NamedTuple):
    """A state signed by both signers; `digest` is its EIP-712 digest."""

    state: ChannelState
    digest: bytes
    sigA: bytes
    sigB: bytes


class Signed(NamedTuple):
    """A state this party signed (`signature` b"" if only the intent was recorded)."""

    state: ChannelState
    digest: bytes
    signature: bytes


def _turn_key(prefix: bytes, channel_id: bytes, turn: int) -> bytes:
    if type(channel_id) is not bytes or len(channel_id) != 32:
        raise ValueError("channel_id must be 32 bytes")
    return prefix + channel_id + turn.to_bytes(8, "big")


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _unhex(s: str) -> bytes:
    return b"" if s == "" else bytes.fromhex(s[2:])


class ChannelStore:
    """One party's channel store at `path` (created if missing). One process owns it."""

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        try:
            self._db = plyvel.DB(str(p), create_if_missing=True)
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise ChannelStoreLocked(f"channel store {p} is in use by another process "
                                         "(LevelDB lock held)") from exc
            raise ChannelStoreError(f"cannot open LevelDB at {p}: {exc}") from exc
        except plyvel.Error as exc:
            raise ChannelStoreError(f"cannot open LevelDB at {p}: {exc}") from exc
        self._lock = threading.Lock()

    # -- lifecycle --
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ChannelStore:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _put(self, key: bytes, value: bytes) -> None:
        try:
            self._db.put(key, value, sync=True)
        except plyvel.Error as exc:
            raise ChannelStoreError(f"channel store write failed: {exc}") from exc

    # -- channels --
    def put_channel(self, ch: Channel) -> None:
        """Record a channel; again with the same parameters is a no-op, with others
        ChannelExists."""
        value = _dump({"channelId": _hex(ch.id), "domain": _hex(ch.domain),
                       "channelOpen": open_to_json(ch.open)})
        with self._lock:
            old = self._db.get(_CH + ch.id)
            if old is not None and old != value:
                raise ChannelExists(f"channel 0x{ch.id.hex()} is already recorded with other "
                                    "parameters")
            if old is None:
                self._put(_CH + ch.id, value)

    def channel(self, channel_id: bytes) -> Channel | None:
        raw = self._db.get(_CH + channel_id)
        if raw is None:
            return None
        o = json.loads(raw)
        return Channel(json_bytes(o["channelId"], "channelId", 32),
                       json_bytes(o["domain"], "domain", 32), open_from_json(o["channelOpen"]))

    def channel_ids(self) -> list[bytes]:
        return [k[len(_CH):] for k in self._db.iterator(prefix=_CH, include_value=False)]

    # -- co-signed states --
    def record_cosigned(self, state: ChannelState, digest: bytes, sig_a: bytes,
                        sig_b: bytes) -> None:
        """Durably record a co-signed state (signatures verified by the caller). The same
        state again is a no-op; a different one with that turnNum raises CosignedConflict."""
        key = _turn_key(_CO, state.channelId, state.turnNum)
        value = _dump({"channelState": state_to_json(state), "digest": _hex(digest),
                       "sigA": _hex(sig_a), "sigB": _hex(sig_b)})
        with self._lock:
            old = self._db.get(key)
            if old is not None:
                prev = _cosigned(old)
                if prev.digest != digest or prev.state != state:
                    raise CosignedConflict(
                        f"turn {state.turnNum} of channel 0x{state.channelId.hex()} already has "
                        f"a different co-signed state (digest {_hex(prev.digest)})")
                return
            self._put(key, value)

    def cosigned(self, channel_id: bytes, turn: int) -> Cosigned | None:
        raw = self._db.get(_turn_key(_CO, channel_id, turn))
        return None if raw is None else _cosigned(raw)

    def latest(self, channel_id: bytes) -> Cosigned | None:
        """The co-signed state with the highest turnNum, or None."""
        with self._db.iterator(prefix=_CO + channel_id, reverse=True,
                               include_key=False) as it:
            raw = next(it, None)
        return None if raw is None else _cosigned(raw)

    def cosigned_states(self, channel_id: bytes) -> list[Cosigned]:
        """Every co-signed state of the channel, by turnNum."""
        with self._db.iterator(prefix=_CO + channel_id, include_key=False) as it:
            return [_cosigned(raw) for raw in it]

    # -- own signatures --
    def signed(self, channel_id: bytes, turn: int) -> Signed | None:
        """What this party signed (or is about to sign) at that turn, or None."""
        raw = self._db.get(_turn_key(_ME, channel_id, turn))
        return None if raw is None else _signed(raw)

    def record_signed(self, state: ChannelState, digest: bytes, signature: bytes) -> bytes:
        """Durably record that this party signed `state` (EIP-712 `digest`) and return the
        signature on record: the first one given for this state. DoubleSign if a different
        state was signed (or is being signed) with that turnNum."""
        with self._lock:
            return self._record(state, digest, signature)

    def sign_once(self, state: ChannelState, digest: bytes,
                  sign: Callable[[bytes], bytes]) -> bytes:
        """Sign `digest` with `sign` at most for one state per turnNum: record the intent
        (synced), sign, record the signature (synced), return it. The same state again
        returns the recorded signature without signing; DoubleSign for a different state."""
        with self._lock:
            old = self._check(state, digest)
            if old is not None and old.signature:
                return old.signature
            if old is None:
                self._record(state, digest, b"")
            return self._record(state, digest, sign(digest))

    def _check(self, state: ChannelState, digest: bytes) -> Signed | None:
        raw = self._db.get(_turn_key(_ME, state.channelId, state.turnNum))
        if raw is None:
            return None
        old = _signed(raw)
        if old.digest != digest or old.state != state:
            raise DoubleSign(f"already signed a different state at turn {state.turnNum} of "
                             f"channel 0x{state.channelId.hex()} (digest {_hex(old.digest)})")
        return old

    def _record(self, state: ChannelState, digest: bytes, signature: bytes) -> bytes:
        old = self._check(state, digest)
        if old is not None and old.signature:
            return old.signature
        self._put(_turn_key(_ME, state.channelId, state.turnNum),
                  _dump({"channelState": state_to_json(state), "digest": _hex(digest),
                         "signature": _hex(signature) if signature else ""}))
        return signature


def _cosigned(raw: bytes) -> Cosigned:
    o = json.loads(raw)
    return Cosigned(state_from_json(o["channelState"]), _unhex(o["digest"]),
                    _unhex(o["sigA"]), _unhex(o["sigB"]))


def _signed(raw: bytes) -> Signed:
    o = json.loads(raw)
    return Signed(state_from_json(o["channelState"]), _unhex(o["digest"]),
                  _unhex(o["signature"]))
