"""The state-channel service, one per party (design.md "State channels"; docs/channels.md):

    optrollup channels serve --data-dir D --keystore K --sequencer URL [--account ADDR]
        [--port P] [--host H] [--public-url URL] [--max-deposit USDC]
        [--l1-rpc URL --adjudicator ADDR]

`ChannelService` is everything but HTTP (channels._app mounts it): this party's key, its channel
store (`D/db`, LevelDB, synced writes), the peers' URLs (`D/peers.json`), the marks
(channels._marks), the peer protocol client (channels._peer) and, given an L1, the watcher.

The party: `account` (the rollup account whose collateral it locks; `--account`, default the
key's own address) and `signer` (the key's address: it signs the opens, as the account itself or
as a live session key of it, and every state). A channel's side is "a" when this party opened
it, "b" when it countersigned the peer's proposal.

Safety rules, all enforced here before a signature leaves the process:

- A state is signed at most once per turnNum: the signature is made in memory and recorded
  with a synced write (`ChannelStore.record_signed`, refusing a different state at a turn
  already signed) before it is sent or answered, the same guarantee as `sign_once` with one
  synced write instead of two (the signature exists nowhere else until that write returns).
- This party countersigns a peer's state only if it is exactly the latest co-signed state with
  the peer's trade applied at its price (`rules.follows`), at a turn above the latest one, the
  trade within this owner's standing quote (`rules.within_quote`) and on the rollup's tick and
  step, and both sides' channel equity covers the initial margin of their channel shorts at
  the current marks (`rules.check_margin`); or exactly the latest state made final.
- Every co-signed state is recorded (synced) before it is answered, to the owner or the peer.

Turns. A proposal signs the next turn above every turn this party has co-signed or signed. A
refused proposal leaves its turn signed by the proposer, so that turn is burned: the next
proposal skips it, and a peer accepts a proposal at any turn above its latest co-signed one
(at most `max_turn_gap` above the highest it has seen), built on that latest state. Nothing
else can be safe: a refused state the proposer signed may still be countersigned later, and a
second, different state at its turn would let the peer choose between two. The L1 Adjudicator
only asks that turns increase.

Recovery: when the peer does not answer (or answers 5xx) the outcome is unknown (it may have
countersigned and recorded the state); the owner gets `peer_unavailable`, and the next request
on the channel first asks the peer for its latest co-signed state (`GET
/v1/channels/{id}/state`, signed headers of this party) and records it if it is newer. The same
pull settles "does not follow" refusals caused by a state this party lacks (an answer lost to a
crash). Collisions (both owners trade at once: each service refuses the other's proposal while
its own is in flight, `channel_busy`) are retried with a random backoff, side "a" first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cext import domain_separator, to_checksum
from channels._auth import Authenticated, AuthHeaders
from channels._http import HttpPool
from channels._marks import Marks
from channels._peer import PeerClient, PeerDown
from channels._peers import PeerBook
from channels._proto import (
    cosigned_from_json,
    cosigned_to_json,
    fields,
    hexb,
    signature,
)
from channels._sign import KeySigner, recover
from channels._wire import quote_to_json, trade_from_json, trade_to_json
from channels.errors import (
    BadSignature,
    ChannelFinal,
    DoesNotFollow,
    DoubleSign,
    InvalidState,
    StaleTurn,
)
from channels.rules import (
    Channel,
    Quote,
    Trade,
    apply_trade,
    check_margin,
    check_state,
    final_state,
    follows,
    follows_expected,
    initial_state,
    make_channel,
    verify_signatures,
    within_quote,
)
from channels.store import ChannelStore, Cosigned
from optrollup_client._errors import ApiError, error_from_answer
from sequencer.core.channelmsg import (
    ChannelOpen,
    ChannelState,
    json_address,
    open_digest,
    open_from_json,
    open_to_json,
    state_digest,
    state_from_json,
    state_to_json,
)
from sequencer.core.channelstate import MAX_CHALLENGE_PERIOD, MIN_CHALLENGE_PERIOD
from sequencer.errors import (
    Conflict,
    InvalidRequest,
    InvalidSignature,
    NotFound,
    OptrollupError,
    Rejected,
    Unavailable,
)

logger = logging.getLogger("optrollup.channels.service")

__all__ = ["DEFAULT_PORT", "ChannelService", "ServiceConfig", "add_serve_arguments",
           "serve_command"]

DEFAULT_PORT = 8750
MAX_TRADES = 256
"""Most trades one proposed state may carry (`trades`, the batched form of `trade`)."""
_ZERO20 = b"\0" * 20

# refusals of a proposal that a later attempt can overcome
_RETRY_WAIT = frozenset({"channel_busy", "turn_already_signed"})
_RETRY_SYNC = frozenset({"stale_turn", "turn_not_next", "balances_mismatch", "positions_mismatch",
                         "final_mismatch", "channel_final", "state_does_not_follow"})


@dataclass
class ServiceConfig:
    """What `optrollup channels serve` configures (money in base units, times in seconds)."""

    data_dir: Path
    sequencer: str
    public_url: str | None = None      # where the peer reaches this service (sent at open)
    max_deposit: int | None = None     # most this party locks in a channel a peer proposes
    allowed_peers: frozenset[bytes] | None = None  # accounts that may propose a channel (None: any)
    l1_rpc: str | None = None
    adjudicator: str | None = None
    marks_interval: float = 1.0
    marks_max_age: float = 5.0
    peer_timeout: float = 10.0
    sequencer_timeout: float = 10.0
    startup_timeout: float = 30.0      # waiting for the sequencer's /v1/info at start
    max_attempts: int = 8              # proposals per owner request when the peer is contended
    max_turn_gap: int = 1024
    max_batch: int = 64                # owner trades one proposed state may carry
    watcher_poll: float = 1.0


class _Chan:
    """One channel at run time. `latest` is the latest co-signed state (turn 0 of a channel
    whose peer did not sign it carries empty signatures and is never answered); `signed_top`
    the highest turn this party signed; `seen_top` the highest turn of a proposal the peer
    signed; `busy` while an own proposal awaits the peer; `pending` after a proposal whose
    outcome is unknown."""

    __slots__ = (
        "busy",
        "ch",
        "is_a",
        "latest",
        "lock",
        "peer_url",
        "pending",
        "queue",
        "quote",
        "rollup",
        "runner",
        "seen_top",
        "signed_top",
    )

    def __init__(self, ch: Channel, is_a: bool, peer_url: str | None, latest: Cosigned,
                 signed_top: int) -> None:
        self.ch, self.is_a, self.peer_url, self.latest = ch, is_a, peer_url, latest
        self.signed_top = signed_top
        self.seen_top = latest.state.turnNum
        self.quote: Quote = ()
        self.lock = asyncio.Lock()
        self.busy = False
        self.pending = False
        self.rollup = "unknown"  # the rollup's status, as last learnt: open, closed, concluded
        self.queue: deque[tuple[Trade, asyncio.Future[Cosigned]]] = deque()
        self.runner: asyncio.Task[None] | None = None

    @property
    def id_hex(self) -> str:
        return "0x" + self.ch.id.hex()

    @property
    def peer_account(self) -> bytes:
        return self.ch.open.b if self.is_a else self.ch.open.a

    @property
    def peer_signer(self) -> bytes:
        return self.ch.open.signerB if self.is_a else self.ch.open.signerA


def _cosigned_ok(co: Cosigned) -> bool:
    return bool(co.sigA) and bool(co.sigB)


class ChannelService:
    """One party's channel service. `key`: an eth-account LocalAccount (or 32 raw bytes);
    `account`: the rollup account it acts for (default: the key's own address). Call `start()`
    in the event loop that will serve it and `stop()` at the end."""

    def __init__(self, cfg: ServiceConfig, key: Any, account: bytes | str | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.key = key
        self.signer = KeySigner(key)
        if isinstance(account, str):
            account = json_address(account, "--account")
        self.account: bytes = account if account is not None else self.signer.address
        self.clock = clock
        self.public_url = cfg.public_url
        self.chans: dict[bytes, _Chan] = {}
        self.auth = AuthHeaders(self.signer, self.account, clock)
        self._nonce = 0
        self._rng = random.Random()
        self._tasks: list[asyncio.Task[Any]] = []
        self.watcher: Any = None
        self._l1: Any = None
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = ChannelStore(cfg.data_dir / "db")  # = channels.watcher.default_store_path
        try:
            self.peers = PeerBook(cfg.data_dir / "peers.json")
            self.http = HttpPool(timeout=cfg.peer_timeout)
            self.peer = PeerClient(self.http, self.auth)
            self.seq = httpx.AsyncClient(base_url=cfg.sequencer.rstrip("/"),
                                         timeout=cfg.sequencer_timeout)
            info = await self._info_at_start()
            self.chain_id = int(info["chainId"])
            self.rollup = json_address(info["eip712"]["domain"]["verifyingContract"],
                                       "verifyingContract")
            self.domain = domain_separator(self.chain_id, self.rollup)
            self._load()
            self.marks = Marks(self._instruments, interval=cfg.marks_interval,
                               max_age=cfg.marks_max_age)
            await self.marks.refresh()
            self._tasks.append(asyncio.create_task(self.marks.run(), name="marks"))
            self._start_watcher()
        except BaseException:
            await self._close_io()
            raise
        self.started = True
        logger.info("channel service of %s (signer %s) on rollup %s chain %d: %d channel(s)",
                    to_checksum(self.account), self.signer.checksum, to_checksum(self.rollup),
                    self.chain_id, len(self.chans))

    async def stop(self) -> None:
        if self.watcher is not None:  # let it finish its round: it reads the store in a thread
            self.watcher.stop()
            task = next((t for t in self._tasks if t.get_name() == "watcher"), None)
            if task is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(task), 30)
        tasks = self._tasks + [c.runner for c in self.chans.values() if c.runner is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await self._close_io()
        self.started = False

    async def _close_io(self) -> None:
        http = getattr(self, "http", None)
        if http is not None:
            await http.close()
        seq = getattr(self, "seq", None)
        if seq is not None:
            await seq.aclose()
        if self._l1 is not None:
            with contextlib.suppress(Exception):
                self._l1.close()
        store = getattr(self, "store", None)
        if store is not None:
            store.close()

    async def _info_at_start(self) -> Any:
        deadline = time.monotonic() + self.cfg.startup_timeout
        while True:
            try:
                return await self._seq("GET", "/v1/info")
            except Unavailable as exc:
                if time.monotonic() > deadline:
                    raise
                logger.warning("%s; retrying", exc.message)
                await asyncio.sleep(1.0)

    def _load(self) -> None:
        for cid in self.store.channel_ids():
            ch = self.store.channel(cid)
            if ch is None:
                continue
            if ch.domain != self.domain:
                logger.warning("channel 0x%s belongs to another rollup or chain: not served", cid.hex())
                continue
            o = ch.open
            if (o.a, o.signerA) == (self.account, self.signer.address):
                is_a = True
            elif (o.b, o.signerB) == (self.account, self.signer.address):
                is_a = False
            else:
                logger.warning("channel 0x%s is not this party's (account %s, signer %s): not served",
                               cid.hex(), to_checksum(self.account), self.signer.checksum)
                continue
            latest = self.store.latest(cid) or self._unsigned_initial(ch)
            top = latest.state.turnNum
            while self.store.signed(cid, top + 1) is not None:
                top += 1
            self.chans[cid] = _Chan(ch, is_a, self.peers.get(cid), latest, top)

    def _start_watcher(self) -> None:
        cfg = self.cfg
        if not (cfg.l1_rpc and cfg.adjudicator):
            return
        from eth_account import Account

        from channels import watcher as wmod

        from sequencer.l1.adjudicator import Adjudicator
        from sequencer.l1.client import L1Client

        sender = self.key if hasattr(self.key, "address") else Account.from_key(bytes(self.key))
        self._l1 = L1Client(cfg.l1_rpc)
        adj = Adjudicator.at(self._l1, cfg.adjudicator)
        self.watcher = wmod.Watcher(self.store, adj, sender, poll_seconds=cfg.watcher_poll,
                                    state_path=wmod.default_state_path(cfg.data_dir))
        self._tasks.append(asyncio.create_task(self.watcher.run(), name="watcher"))
        logger.info("watching the Adjudicator %s on %s", cfg.adjudicator, cfg.l1_rpc)

    # -- the sequencer --------------------------------------------------------------------------

    async def _seq(self, method: str, path: str, body: Any = None) -> Any:
        try:
            r = await self.seq.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the sequencer {self.cfg.sequencer} did not answer {method} {path}: "
                              f"{type(exc).__name__}: {exc}", code="sequencer_unavailable") from None
        try:
            answer = r.json() if r.content else None
        except ValueError:
            answer = None
        if r.status_code >= 400:
            err = error_from_answer(r.status_code, answer, r.headers)
            if r.status_code >= 500:
                raise Unavailable(f"the sequencer answered {method} {path} with HTTP "
                                  f"{r.status_code} [{err.code}]: {err.message}",
                                  code="sequencer_unavailable")
            if isinstance(err, InvalidSignature):  # not the caller's auth: the channel's signatures
                raise Rejected(f"the sequencer refused the signatures: {err.message}", code=err.code)
            err.args = (f"the sequencer refused: {err.message}", *err.args[1:])
            raise err
        if answer is None:
            raise Unavailable(f"the sequencer's answer to {method} {path} is not JSON",
                              code="sequencer_unavailable")
        return answer

    async def _instruments(self) -> Any:
        return await self._seq("GET", "/v1/instruments")

    async def _ensure_open(self, c: _Chan) -> None:
        """The rollup holds the channel open (asked once; closed is remembered)."""
        if c.rollup == "open":
            return
        if c.rollup in ("closed", "concluded"):
            raise Conflict(f"channel {c.id_hex} is {c.rollup} on the rollup", code="channel_closed")
        try:
            ch = await self._seq("GET", f"/v1/channels/{c.id_hex}")
        except NotFound:
            raise Rejected(f"channel {c.id_hex} is not open on the rollup (its open was never "
                           "applied there)", code="channel_not_open") from None
        c.rollup = str(ch.get("status"))
        if c.rollup != "open":
            raise Conflict(f"channel {c.id_hex} is {c.rollup} on the rollup", code="channel_closed")

    # -- identity and reads -----------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        return {"account": to_checksum(self.account), "signer": self.signer.checksum,
                "chainId": self.chain_id, "rollup": to_checksum(self.rollup)}

    def authorize_owner(self, who: Authenticated) -> None:
        if who.account != self.account or who.signer not in (self.account, self.signer.address):
            raise InvalidSignature(
                f"only this service's owner {to_checksum(self.account)} (signed by the account or by "
                f"the service key {self.signer.checksum}) may use this endpoint; the headers are "
                f"for {to_checksum(who.account)} signed by {to_checksum(who.signer)}", code="not_owner")

    def authorize_reader(self, c: _Chan, who: Authenticated) -> None:
        """The owner, or the channel's other party (its account or its state signer)."""
        if who.account == c.peer_account and who.signer in (c.peer_account, c.peer_signer):
            return
        if who.account != self.account:
            raise InvalidSignature(f"{to_checksum(who.account)} (signed by {to_checksum(who.signer)}) "
                                   f"is not a party of channel {c.id_hex}", code="not_a_party")
        self.authorize_owner(who)

    def chan(self, cid: bytes) -> _Chan:
        c = self.chans.get(cid)
        if c is None:
            raise NotFound(f"channel 0x{cid.hex()} is not one of this service's channels",
                           code="unknown_channel")
        return c

    def summary(self, c: _Chan) -> dict[str, Any]:
        s = c.latest.state
        return {"channelId": c.id_hex, "side": "a" if c.is_a else "b", "peer": c.peer_url,
                "channelOpen": open_to_json(c.ch.open), "turnNum": str(s.turnNum),
                "isFinal": s.isFinal, "balanceA": str(s.balanceA), "balanceB": str(s.balanceB),
                "positions": state_to_json(s)["positions"], "rollupStatus": c.rollup,
                "pending": c.pending}

    def list_channels(self) -> dict[str, Any]:
        return {"channels": [self.summary(c) for c in self.chans.values()]}

    def latest_json(self, c: _Chan) -> dict[str, Any]:
        if not _cosigned_ok(c.latest):
            raise NotFound(f"channel {c.id_hex} has no co-signed state yet", code="no_state")
        return cosigned_to_json(c.latest)

    def quotes_json(self, c: _Chan) -> dict[str, Any]:
        return {"channelId": c.id_hex, "quotes": quote_to_json(c.quote)}

    def set_quotes(self, c: _Chan, quote: Quote) -> dict[str, Any]:
        """Replace the owner's standing quotes of the channel (in memory: after a restart there
        are none until the owner posts them again, so nothing is traded on a stale quote)."""
        c.quote = tuple(quote)
        return self.quotes_json(c)

    def set_peer(self, c: _Chan, url: str) -> dict[str, Any]:
        c.peer_url = url
        self.peers.set(c.ch.id, url)
        return self.summary(c)

    # -- helpers ------------------------------------------------------------------------------

    def _unsigned_initial(self, ch: Channel) -> Cosigned:
        s = initial_state(ch)
        return Cosigned(s, state_digest(ch.domain, s), b"", b"")

    def _fresh_nonce(self) -> int:
        self._nonce = max(self._nonce + 1, int(self.clock() * 1_000_000))
        return self._nonce

    def _check_open(self, msg: ChannelOpen) -> None:
        if msg.a == msg.b:
            raise InvalidRequest("channelOpen.a and channelOpen.b must be different accounts",
                                 code="self_channel")
        for name in ("signerA", "signerB"):
            if getattr(msg, name) == _ZERO20:
                raise InvalidRequest(f"channelOpen.{name} is the zero address", code="bad_address")
        if not MIN_CHALLENGE_PERIOD <= msg.challengePeriod <= MAX_CHALLENGE_PERIOD:
            raise InvalidRequest(f"channelOpen.challengePeriod must be in [{MIN_CHALLENGE_PERIOD}, "
                                 f"{MAX_CHALLENGE_PERIOD}] s, got {msg.challengePeriod}",
                                 code="bad_challenge_period")
        if msg.depositA + msg.depositB <= 0:
            raise InvalidRequest("a channel needs a deposit on at least one side", code="bad_amount")

    def _sign_next(self, c: _Chan, nxt: ChannelState) -> tuple[ChannelState, bytes, bytes]:
        """`nxt` at the next turn this party has not signed, signed and recorded (synced)."""
        turn = max(c.latest.state.turnNum, c.signed_top) + 1
        for _ in range(4096):
            state = nxt._replace(turnNum=turn)
            digest = state_digest(c.ch.domain, state)
            try:
                sig = self.store.record_signed(state, digest, self.signer.sign(digest))
            except DoubleSign:  # a turn signed before a crash, above what memory knew
                c.signed_top = max(c.signed_top, turn)
                turn += 1
                continue
            c.signed_top = max(c.signed_top, turn)
            return state, digest, sig
        raise Conflict(f"channel {c.id_hex}: 4096 turns above {c.latest.state.turnNum} are already "
                       "signed", code="turn_already_signed")

    def _record(self, c: _Chan, state: ChannelState, digest: bytes, sig_a: bytes,
                sig_b: bytes) -> Cosigned:
        self.store.record_cosigned(state, digest, sig_a, sig_b)
        co = Cosigned(state, digest, sig_a, sig_b)
        c.latest = co
        c.signed_top = max(c.signed_top, state.turnNum)
        c.seen_top = max(c.seen_top, state.turnNum)
        return co

    def _backoff(self, c: _Chan, attempt: int) -> float:
        base = 0.002 * 2 ** min(attempt, 6)
        return self._rng.uniform(0, base) if c.is_a else base + self._rng.uniform(0, 2 * base)

    def _peer_url(self, c: _Chan) -> str:
        if not c.peer_url:
            raise Rejected(f"channel {c.id_hex} has no peer URL (the peer did not send one when it "
                           "opened the channel): set it with POST /v1/channels/{id}/peer",
                           code="no_peer_url")
        return c.peer_url

    async def sync(self, c: _Chan) -> bool:
        """Ask the peer for its latest co-signed state and record it if it is newer than ours
        (both signatures verified). True when it was."""
        ans = await self.peer.latest(self._peer_url(c), c.id_hex)
        try:
            state, sa, sb = cosigned_from_json(ans, "peer state")
        except InvalidRequest as exc:
            raise Rejected(f"the peer's latest state is malformed: {exc.message}",
                           code="peer_bad_answer") from None
        if state.channelId != c.ch.id:
            raise Rejected("the peer answered a state of another channel", code="peer_bad_answer")
        ours = c.latest.state
        if state.turnNum < ours.turnNum or (state.turnNum == ours.turnNum and state == ours):
            return False
        try:
            check_state(c.ch, state)
            digest = verify_signatures(c.ch, state, sa, sb)
        except (InvalidState, BadSignature) as exc:
            raise Rejected(f"the peer's latest state is not a valid co-signed state: {exc.message}",
                           code="peer_bad_answer") from None
        self._record(c, state, digest, sa, sb)  # CosignedConflict when it differs at our turn
        logger.info("channel %s: recorded turn %d from the peer", c.id_hex, state.turnNum)
        return True

    # -- owner: open ----------------------------------------------------------------------------

    async def open_channel(self, peer_url: str, deposit_a: int, deposit_b: int,
                           challenge_period: int, nonce: int | None = None) -> dict[str, Any]:
        """Open a channel with the service at `peer_url` (this party is `a`): both sign the open
        and the initial state (turn 0), both record them, then the open goes to the rollup."""
        peer_url = peer_url.rstrip("/")
        ident = await self.peer.identity(peer_url)
        try:
            o = fields(ident, "peer identity", ("account", "signer", "chainId", "rollup"))
            peer_account = json_address(o["account"], "peer identity.account")
            peer_signer = json_address(o["signer"], "peer identity.signer")
            peer_chain = int(o["chainId"])
            peer_rollup = json_address(o["rollup"], "peer identity.rollup")
        except (InvalidRequest, TypeError, ValueError) as exc:
            raise Rejected(f"the peer's identity is malformed: {exc}", code="peer_bad_answer") from None
        if (peer_chain, peer_rollup) != (self.chain_id, self.rollup):
            raise Rejected(f"the peer serves chain {peer_chain} rollup {to_checksum(peer_rollup)}, "
                           f"not chain {self.chain_id} rollup {to_checksum(self.rollup)}",
                           code="peer_other_rollup")
        msg = ChannelOpen(self.account, peer_account, self.signer.address, peer_signer, deposit_a,
                          deposit_b, self._fresh_nonce() if nonce is None else nonce,
                          challenge_period)
        self._check_open(msg)
        ch = make_channel(self.chain_id, self.rollup, msg)
        if ch.id in self.chans or self.store.channel(ch.id) is not None:
            raise Conflict(f"channel 0x{ch.id.hex()} already exists (use another nonce)",
                           code="channel_exists")
        od = open_digest(ch.domain, msg)
        s0 = initial_state(ch)
        d0 = state_digest(ch.domain, s0)
        sig_a, s0_a = self.signer.sign(od), self.signer.sign(d0)
        ans = await self.peer.propose_open(peer_url, {
            "channelOpen": open_to_json(msg), "signature": hexb(sig_a),
            "initialStateSignature": hexb(s0_a), "serviceUrl": self.public_url})
        try:
            a = fields(ans, "peer answer", ("signature", "initialStateSignature"))
            sig_b = signature(a["signature"], "peer answer.signature")
            s0_b = signature(a["initialStateSignature"], "peer answer.initialStateSignature")
        except InvalidRequest as exc:
            raise Rejected(f"the peer's answer is malformed: {exc.message}",
                           code="peer_bad_answer") from None
        if recover(od, sig_b) not in (msg.b, msg.signerB):
            raise Rejected("the peer's signature of the open is by neither its account nor its "
                           "signer", code="peer_bad_signature")
        try:
            verify_signatures(ch, s0, s0_a, s0_b)
        except BadSignature:
            raise Rejected("the peer's signature of the initial state is not by its signer",
                           code="peer_bad_signature") from None
        self.store.put_channel(ch)
        self.store.record_signed(s0, d0, s0_a)
        c = _Chan(ch, True, peer_url, self._unsigned_initial(ch), 0)
        self._record(c, s0, d0, s0_a, s0_b)
        self.peers.set(ch.id, peer_url)
        self.chans[ch.id] = c
        logger.info("channel %s with %s: open co-signed, submitting it to the rollup", c.id_hex,
                    to_checksum(peer_account))
        rollup = await self._seq("POST", "/v1/channels", {
            "channelOpen": open_to_json(msg), "signatures": [hexb(sig_a), hexb(sig_b)]})
        c.rollup = str(rollup.get("status", "open"))
        return {"channelId": c.id_hex, "channel": rollup, "state": cosigned_to_json(c.latest)}

    # -- owner: trade and close -----------------------------------------------------------------

    async def trade(self, cid: bytes, trade: Trade) -> Cosigned:
        """The owner's trade with the peer (from the owner's side): the co-signed state that
        holds it, recorded. Trades that arrive while a state is with the peer wait in the
        channel's queue and go together in the next state (at most `max_batch`)."""
        c = self.chan(cid)
        await self.marks.ready()
        self.marks.check_trade(trade)
        fut: asyncio.Future[Cosigned] = asyncio.get_running_loop().create_future()
        c.queue.append((trade, fut))
        if c.runner is None or c.runner.done():
            c.runner = asyncio.create_task(self._drain(c), name=f"propose-{c.id_hex[:10]}")
        return await fut

    async def _drain(self, c: _Chan) -> None:
        """Propose the queued trades, `max_batch` at a time, until the queue is empty."""
        try:
            while c.queue:
                async with c.lock:  # a close waiting for the lock gets it between two states
                    n = min(len(c.queue), self.cfg.max_batch)
                    batch = [c.queue.popleft() for _ in range(n)]
                    await self._trade_batch(c, batch)
        except BaseException as exc:  # cancelled (shutdown) or a bug: nobody waits forever
            err = exc if isinstance(exc, Exception) else Unavailable("the service is stopping",
                                                                     code="shutting_down")
            while c.queue:
                fut = c.queue.popleft()[1]
                if not fut.done():
                    fut.set_exception(err)
            raise

    async def _trade_batch(self, c: _Chan, batch: list[tuple[Trade, asyncio.Future[Cosigned]]]) -> None:
        """One state for the trades of `batch` (those this party's own checks let through, in
        order), or, when the peer refuses a state of several trades, one state each."""
        included: list[tuple[Trade, asyncio.Future[Cosigned]]] = []

        def build(base: ChannelState) -> tuple[ChannelState, list[Trade]] | None:
            rows = self.marks.rows()
            s, ok = base, []
            for trade, fut in batch:
                if fut.done():
                    continue
                try:
                    nxt = apply_trade(s, trade, c.is_a)
                    check_margin(nxt, rows)
                except OptrollupError as exc:  # this trade alone: the others go on
                    fut.set_exception(exc)
                    continue
                s = nxt
                ok.append((trade, fut))
            included[:] = ok
            return None if not ok else (s, [t for t, _ in ok])

        try:
            await self._ensure_open(c)
            co = await self._propose(c, build)
        except OptrollupError as exc:
            live = [(t, f) for t, f in included if not f.done()]
            if len(live) > 1 and isinstance(exc, ApiError) and exc.status < 500:
                for one in live:  # which trade did the peer refuse? each on its own
                    await self._trade_batch(c, [one])
                return
            for _, f in (live if included else batch):
                if not f.done():
                    f.set_exception(exc)
            return
        except Exception as exc:  # a bug: answer it (500), keep serving the channel
            logger.exception("channel %s: proposing a state failed", c.id_hex)
            for _, f in batch:
                if not f.done():
                    f.set_exception(exc)
            return
        else:
            for _, f in included:
                if not f.done():
                    f.set_result(co)  # type: ignore[arg-type]
        finally:  # cancelled (the service stops): nobody waits forever
            for _, f in batch:
                if not f.done():
                    f.set_exception(Unavailable("the service is stopping; the outcome of the trade "
                                                "is unknown until its state is read",
                                                code="shutting_down"))

    async def close(self, cid: bytes) -> dict[str, Any]:
        """Co-sign the final state (turn above the latest, same balances and positions) with the
        peer, unless the latest is already final, and close the channel on the rollup: the
        rollup's channel (its `GET /v1/channels/{id}`) with `finalState`, the co-signed state."""
        c = self.chan(cid)
        async with c.lock:
            if c.rollup in ("closed", "concluded"):
                raise Conflict(f"channel {c.id_hex} is already {c.rollup} on the rollup",
                               code="channel_closed")
            if c.latest.state.isFinal:
                co = c.latest
            else:
                co = await self._propose(c, lambda base: (final_state(base), None))
                assert co is not None
            try:
                ans = await self._seq("POST", f"/v1/channels/{c.id_hex}/close", {
                    "channelState": state_to_json(co.state),
                    "signatures": [hexb(co.sigA), hexb(co.sigB)]})
            except Conflict as exc:
                if exc.code == "channel_closed":
                    c.rollup = "closed"
                raise
            c.rollup = str(ans.get("status", "closed"))
            return {**ans, "finalState": cosigned_to_json(co)}

    async def _propose(self, c: _Chan, build: Callable[[ChannelState], tuple[ChannelState, list[Trade] | None] | None]
                       ) -> Cosigned | None:
        """Sign the next state, `build(latest co-signed state)` -> (state, its trades, or None
        for the final state), have the peer countersign it, record it; None when `build` has
        nothing to propose. Retries what a later attempt can overcome (see the module
        docstring). Call with `c.lock` held."""
        peer = self._peer_url(c)
        last: ApiError | None = None
        for attempt in range(self.cfg.max_attempts):
            if c.pending:
                await self.sync(c)
                c.pending = False
            built = build(c.latest.state)
            if built is None:
                return None
            nxt, trades = built
            state, digest, sig = self._sign_next(c, nxt)
            body: dict[str, Any] = {"channelState": state_to_json(state), "signature": hexb(sig)}
            if trades is None:
                body["trade"] = None
            elif len(trades) == 1:
                body["trade"] = trade_to_json(trades[0])
            else:
                body["trades"] = [trade_to_json(t) for t in trades]
            c.busy = True
            try:
                try:
                    ans = await self.peer.propose_state(peer, c.id_hex, body)
                except PeerDown:  # once more: the same signed state is safe to send again
                    ans = await self.peer.propose_state(peer, c.id_hex, body)
            except PeerDown as exc:
                c.pending = True
                raise PeerDown(f"{exc.message}; the outcome of turn {state.turnNum} is unknown: the "
                               "next request on this channel first asks the peer for its latest "
                               "state") from None
            except ApiError as exc:
                last = exc
                logger.info("channel %s: the peer refused turn %d [%s]: %s", c.id_hex,
                            state.turnNum, exc.code, exc.message)
                if exc.code in _RETRY_WAIT:
                    pass
                elif exc.code in _RETRY_SYNC:
                    if not await self.sync(c) and exc.code != "stale_turn":
                        raise
                else:
                    raise
                c.busy = False
                await asyncio.sleep(self._backoff(c, attempt))
                continue
            finally:
                c.busy = False
            try:
                peer_sig = signature(fields(ans, "peer answer", ("signature",))["signature"],
                                     "peer answer.signature")
                sa, sb = (sig, peer_sig) if c.is_a else (peer_sig, sig)
                verify_signatures(c.ch, state, None if c.is_a else sa, sb if c.is_a else None)  # theirs
            except (InvalidRequest, BadSignature) as exc:
                raise Rejected(f"the peer's countersignature of turn {state.turnNum} is not valid "
                               f"({exc.message})", code="peer_bad_signature") from None
            return self._record(c, state, digest, sa, sb)
        assert last is not None
        raise Conflict(f"the peer refused {self.cfg.max_attempts} proposals in a row while the "
                       f"channel was contended (last [{last.code}]: {last.message})",
                       code="channel_contended")

    # -- peer: proposals ------------------------------------------------------------------------

    async def on_open(self, body: Any) -> dict[str, Any]:
        """Countersign an open that names this party as `b` (and its initial state)."""
        o = fields(body, "body", ("channelOpen", "signature"), ("initialStateSignature", "serviceUrl"))
        msg = open_from_json(o["channelOpen"])
        sig_a = signature(o["signature"], "signature")
        s0_a = None if o.get("initialStateSignature") is None else \
            signature(o["initialStateSignature"], "initialStateSignature")
        url = o.get("serviceUrl")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))
                                or len(url) > 512):
            raise InvalidRequest("serviceUrl must be an http(s) URL", code="invalid_value")
        if msg.b != self.account:
            raise InvalidRequest(f"channelOpen.b {to_checksum(msg.b)} is not this party's account "
                                 f"{to_checksum(self.account)}", code="not_this_party")
        if msg.signerB != self.signer.address:
            raise InvalidRequest(f"channelOpen.signerB {to_checksum(msg.signerB)} is not this "
                                 f"party's signer {self.signer.checksum}", code="not_this_party")
        self._check_open(msg)
        if self.cfg.allowed_peers is not None and msg.a not in self.cfg.allowed_peers:
            raise Rejected(f"channelOpen.a {to_checksum(msg.a)} is not among the accounts this party "
                           "opens channels with", code="peer_not_allowed")
        if self.cfg.max_deposit is not None and msg.depositB > self.cfg.max_deposit:
            raise Rejected(f"channelOpen.depositB {msg.depositB} is above this party's limit "
                           f"{self.cfg.max_deposit}", code="deposit_too_large")
        ch = make_channel(self.chain_id, self.rollup, msg)
        od = open_digest(ch.domain, msg)
        if recover(od, sig_a) not in (msg.a, msg.signerA):
            raise InvalidSignature("signature of the open recovers to neither channelOpen.a nor "
                                   "channelOpen.signerA", code="bad_signature_a")
        s0 = initial_state(ch)
        d0 = state_digest(ch.domain, s0)
        if s0_a is not None:
            verify_signatures(ch, s0, s0_a, None)
        self.store.put_channel(ch)  # ChannelExists: this id with other deposits
        s0_b = self.store.record_signed(s0, d0, self.signer.sign(d0))
        c = self.chans.get(ch.id)
        if c is None:
            c = _Chan(ch, False, url, self._unsigned_initial(ch), 0)
        if s0_a is not None and c.latest.state.turnNum == 0:
            self._record(c, s0, d0, s0_a, s0_b)
        self.peers.set(ch.id, url)
        if url is not None:
            c.peer_url = url
        self.chans[ch.id] = c
        logger.info("channel %s: countersigned the open proposed by %s", c.id_hex, to_checksum(msg.a))
        return {"signature": hexb(self.signer.sign(od)), "initialStateSignature": hexb(s0_b)}

    async def on_state(self, cid: bytes, body: Any) -> dict[str, Any]:
        """Countersign the peer's proposed state, or refuse it."""
        c = self.chan(cid)
        o = fields(body, "body", ("channelState", "signature"), ("trade", "trades"))
        state = state_from_json(o["channelState"])
        sig = signature(o["signature"], "signature")
        trades: list[Trade] | None = None
        if o.get("trades") is not None:
            if o.get("trade") is not None:
                raise InvalidRequest("give body.trade or body.trades, not both", code="invalid_value")
            raw = o["trades"]
            if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TRADES:
                raise InvalidRequest(f"body.trades must be a list of 1 to {MAX_TRADES} trades",
                                     code="invalid_type")
            trades = [trade_from_json(t, f"trades[{i}]") for i, t in enumerate(raw)]
        elif o.get("trade") is not None:
            trades = [trade_from_json(o["trade"])]
        if state.channelId != c.ch.id:
            raise InvalidState(f"channelState.channelId 0x{state.channelId.hex()} is not the channel "
                               f"of the path {c.id_hex}", code="wrong_channel")
        by_a = not c.is_a
        lt = c.latest
        if state == lt.state and _cosigned_ok(lt) and sig == (lt.sigA if by_a else lt.sigB):
            return {"signature": hexb(lt.sigB if by_a else lt.sigA)}  # an answer lost: again
        digest = verify_signatures(c.ch, state, sig if by_a else None, None if by_a else sig)
        if trades is not None:
            await self.marks.ready()
            await self._ensure_open(c)
        return {"signature": hexb(self._countersign(c, state, digest, sig, trades, by_a))}

    def _countersign(self, c: _Chan, state: ChannelState, digest: bytes, sig: bytes,
                     trades: list[Trade] | None, by_a: bool) -> bytes:
        """The checks and the signature of a peer's proposal; no await inside, so nothing else
        touches the channel meanwhile."""
        lt = c.latest.state
        gap_base = max(lt.turnNum, c.seen_top)
        if state.turnNum <= lt.turnNum:
            raise StaleTurn(f"turnNum {state.turnNum} is not above the latest co-signed turn "
                            f"{lt.turnNum}")
        if c.busy:
            raise Conflict(f"channel {c.id_hex}: this party's own proposal is in flight; propose "
                           "again in a moment", code="channel_busy")
        if state.turnNum > gap_base + self.cfg.max_turn_gap:
            raise DoesNotFollow(f"turnNum {state.turnNum} skips more than {self.cfg.max_turn_gap} "
                                f"turns past {gap_base}", code="turn_not_next")
        c.seen_top = max(c.seen_top, state.turnNum)  # the proposer burned the turns below
        prev = lt._replace(turnNum=state.turnNum - 1)  # the latest state, at the turn before
        quote = c.quote
        if trades is None:
            if not state.isFinal:
                raise InvalidRequest("trade is required unless channelState.isFinal is true (the "
                                     "cooperative close)", code="missing_field")
            if lt.isFinal:
                raise ChannelFinal(f"turn {lt.turnNum} is final: nothing follows it")
            follows_expected(prev, state, final_state(lt)._replace(turnNum=state.turnNum))
        elif len(trades) == 1:
            self.marks.check_trade(trades[0])
            follows(prev, state, trades[0], by_a)
            quote = within_quote(quote, trades[0])
            check_margin(state, self.marks.rows())
        else:
            expected = prev
            for i, t in enumerate(trades):
                self.marks.check_trade(t, f"trades[{i}]")
                try:
                    expected = apply_trade(expected, t, by_a)
                    quote = within_quote(quote, t)
                except OptrollupError as exc:
                    exc.args = (f"trades[{i}]: {exc.message}", *exc.args[1:])
                    raise
            follows_expected(prev, state, expected._replace(turnNum=state.turnNum))
            check_margin(state, self.marks.rows())
        mine = self.store.record_signed(state, digest, self.signer.sign(digest))
        self._record(c, state, digest, *((sig, mine) if by_a else (mine, sig)))
        c.quote = quote
        return mine


# ----------------------------------------------------------------------------------------------
# the command: optrollup channels serve
# ----------------------------------------------------------------------------------------------

SERVE_HELP = "run this party's state-channel service"
SERVE_DESCRIPTION = (
    "Run the state-channel service of one party: it opens channels with peers' services, co-signs "
    "trades against standing quotes, keeps every co-signed state in a synced LevelDB under "
    "--data-dir, and closes channels on the rollup. --keystore is the party's key (the account "
    "itself, or a live session key of --account); its password from --password-file, "
    "--password-env or $OPTROLLUP_PASSWORD. With --l1-rpc and --adjudicator it also runs the "
    "watcher (the key pays L1 gas for refutations).")


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    from sequencer.keys import PASSWORD_ENV, refuse_raw_key_option

    p.add_argument("--data-dir", required=True, metavar="DIR", help="store and state of this party")
    p.add_argument("--keystore", required=True, metavar="FILE",
                   help="encrypted JSON keystore of the party's key")
    p.add_argument("--password-file", metavar="FILE",
                   help=f"keystore password: first line of FILE (else --password-env, else ${PASSWORD_ENV})")
    p.add_argument("--password-env", metavar="NAME", help="read the keystore password from variable NAME")
    p.add_argument("--sequencer", required=True, metavar="URL", help="the rollup's HTTP API")
    p.add_argument("--account", metavar="ADDR",
                   help="the rollup account this party acts for, when --keystore is a session key of it")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"listen port (default {DEFAULT_PORT})")
    p.add_argument("--public-url", metavar="URL",
                   help="where peers reach this service (default http://HOST:PORT)")
    p.add_argument("--max-deposit", metavar="USDC",
                   help="most this party locks in a channel a peer proposes (default: no limit)")
    p.add_argument("--allow-peer", action="append", metavar="ADDR",
                   help="only these accounts may propose a channel to this party (repeat; default: any)")
    p.add_argument("--l1-rpc", metavar="URL", help="L1 JSON-RPC, for the watcher")
    p.add_argument("--adjudicator", metavar="ADDR", help="the L1 Adjudicator, for the watcher")
    p.add_argument("--marks-max-age", type=float, default=5.0, metavar="S",
                   help="refuse to sign when the marks are older than S seconds (default 5)")
    p.add_argument("--max-batch", type=int, default=64, metavar="N",
                   help="owner trades that one proposed state may carry when they queue up "
                        "(default 64; 1: one state per trade)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    refuse_raw_key_option(p)


def config_from_args(args: argparse.Namespace) -> ServiceConfig:
    from sequencer.units import parse_units

    if bool(args.l1_rpc) != bool(args.adjudicator):
        raise InvalidRequest("--l1-rpc and --adjudicator go together", code="invalid_argument")
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    public = args.public_url or f"http://{host}:{args.port}"
    return ServiceConfig(
        data_dir=Path(args.data_dir), sequencer=args.sequencer, public_url=public.rstrip("/"),
        max_deposit=None if args.max_deposit is None else parse_units(args.max_deposit, "--max-deposit"),
        l1_rpc=args.l1_rpc, adjudicator=args.adjudicator, marks_max_age=args.marks_max_age,
        max_batch=max(1, min(args.max_batch, MAX_TRADES)),
        allowed_peers=None if not args.allow_peer else
        frozenset(json_address(a, "--allow-peer") for a in args.allow_peer))


def serve_command(args: argparse.Namespace) -> int:
    """Run the service until SIGINT/SIGTERM."""
    import uvicorn

    from channels._app import create_app
    from sequencer.keys import load_key

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    cfg = config_from_args(args)
    key = load_key(args.keystore, password_file=args.password_file, password_env=args.password_env)
    service = ChannelService(cfg, key, args.account)
    app = create_app(service)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    server.run()
    if not service.started and getattr(app.state, "startup_error", None) is not None:
        exc = app.state.startup_error
        if isinstance(exc, OptrollupError):
            raise exc
        return 1
    return 0
