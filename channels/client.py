"""`ChannelClient`: a small synchronous SDK (httpx) for the owner endpoints of one party's
channel service (channels/_app.py lists them; docs/channels.md describes them).

    with ChannelClient("http://127.0.0.1:8750", key=local_account) as c:
        opened = c.open("http://peer:8750", deposit_a=1_000 * 10**6, deposit_b=1_000 * 10**6)
        c.set_quotes(opened.channel_id, [QuoteLine("ETH-27DEC26-3000-C", 95 * 10**6, 10**6,
                                                   105 * 10**6, 10**6)])
        co = c.trade(opened.channel_id, "ETH-27DEC26-3000-C", is_buy=True, price=105 * 10**6,
                     amount=10**6)
        c.close(opened.channel_id)

Units as everywhere: money and prices in collateral base units (USDC x 10^6), amounts in
contracts x 10^6. `key` signs the X-Optrollup-* headers: the owner's account key, or the
service's own key; `account` is the owner's account (default: asked from `GET /v1/identity`).
Errors are the SDK's typed errors (optrollup_client._errors): an answer 4xx/5xx is an `ApiError`
subclass carrying the service's `code`, `message` and `status`; no answer is `TransportError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx

from cext import to_checksum
from channels._auth import AuthHeaders, request_binding
from channels._proto import cosigned_from_json
from channels._sign import KeySigner
from channels.rules import QuoteLine
from optrollup_client._errors import ClientError, TransportError, error_from_answer
from sequencer.core.channelmsg import (
    ChannelOpen,
    ChannelPosition,
    ChannelState,
    json_address,
    json_bytes,
    open_from_json,
    position_from_json,
)

__all__ = ["ChannelClient", "ChannelInfo", "Closed", "CoState", "Identity", "Opened"]


def _cid(channel_id: str | bytes) -> str:
    if isinstance(channel_id, bytes):
        return "0x" + channel_id.hex()
    json_bytes(channel_id, "channelId", 32)
    return channel_id.lower()


class Identity(NamedTuple):
    account: str
    signer: str
    chain_id: int
    rollup: str


class CoState(NamedTuple):
    """A co-signed state: both signatures, and its EIP-712 digest (as the service reported it)."""

    state: ChannelState
    sig_a: bytes
    sig_b: bytes
    digest: bytes

    @property
    def channel_id(self) -> str:
        return "0x" + self.state.channelId.hex()

    @property
    def turn(self) -> int:
        return self.state.turnNum

    @classmethod
    def from_json(cls, d: Any) -> CoState:
        state, sa, sb = cosigned_from_json({k: d[k] for k in ("channelState", "signatures")})
        digest = json_bytes(d["digest"], "digest", 32) if d.get("digest") else b""
        return cls(state, sa, sb, digest)


@dataclass(frozen=True)
class ChannelInfo:
    """One channel as its service sees it (`side` "a" when this party opened it)."""

    channel_id: str
    side: str
    peer: str | None
    open: ChannelOpen
    turn: int
    is_final: bool
    balance_a: int
    balance_b: int
    positions: tuple[ChannelPosition, ...]
    rollup_status: str
    pending: bool

    @classmethod
    def from_json(cls, d: Any) -> ChannelInfo:
        return cls(d["channelId"], d["side"], d.get("peer"), open_from_json(d["channelOpen"]),
                   int(d["turnNum"]), bool(d["isFinal"]), int(d["balanceA"]), int(d["balanceB"]),
                   tuple(position_from_json(p) for p in d["positions"]), d["rollupStatus"],
                   bool(d.get("pending")))


@dataclass(frozen=True)
class Opened:
    channel_id: str
    channel: dict[str, Any]  # the rollup's view (GET /v1/channels/{id} of the sequencer)
    state: CoState           # turn 0, co-signed


@dataclass(frozen=True)
class Closed:
    channel: dict[str, Any]  # the rollup's view after the close
    state: CoState           # the final state


def _quote_json(lines: Sequence[QuoteLine]) -> list[dict[str, Any]]:
    return [{"instrument": q.instrument, "bid": str(q.bid), "bidAmount": str(q.bidAmount),
             "ask": str(q.ask), "askAmount": str(q.askAmount)} for q in lines]


def _quotes(d: Any) -> tuple[QuoteLine, ...]:
    return tuple(QuoteLine(q["instrument"], int(q["bid"]), int(q["bidAmount"]), int(q["ask"]),
                           int(q["askAmount"])) for q in d["quotes"])


class ChannelClient:
    """Owner client of one channel service. `key`: an eth-account LocalAccount, 32 raw bytes or
    0x hex; `http` injects an httpx.Client (tests)."""

    def __init__(self, url: str, *, key: Any, account: str | bytes | None = None,
                 timeout: float = 30.0, http: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(key, str):
            key = bytes.fromhex(key.removeprefix("0x"))
        try:
            self.signer = KeySigner(key)
        except (ValueError, TypeError) as exc:
            raise ClientError(f"not a valid secp256k1 private key: {exc}", code="invalid_key") from None
        self.url = url.rstrip("/")
        self.clock = clock
        self._account = json_address(account, "account") if isinstance(account, str) else account
        self._auth: AuthHeaders | None = None
        self._own_http = http is None
        self.http = http if http is not None else httpx.Client(base_url=self.url, timeout=timeout)

    def __enter__(self) -> ChannelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_http()

    def close_http(self) -> None:
        if self._own_http:
            self.http.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _headers(self, binding: str | None = None) -> dict[str, str]:
        if self._auth is None:
            account = self._account
            if account is None:
                account = json_address(self.identity().account, "identity.account")
            self._auth = AuthHeaders(self.signer, account, self.clock)
        return self._auth(binding)

    def _call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {}
        if auth:  # an owner write's headers are bound to it (channels._auth.request_binding)
            headers = self._headers(request_binding(method, path, content or b"")
                                    if method.upper() == "POST" else None)
        if content is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            r = self.http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {self.url}{path}: {exc}") from exc
        try:
            answer = r.json() if r.content else None
        except ValueError:
            answer = None
            if r.status_code < 400:
                raise ClientError(f"HTTP {r.status_code} answer is not JSON: {r.content[:200]!r}",
                                  code="bad_answer") from None
        if r.status_code >= 400:
            raise error_from_answer(r.status_code, answer, r.headers)
        return answer

    # -- endpoints --------------------------------------------------------------------------

    def identity(self) -> Identity:
        """`GET /v1/identity` (public): the party's account, signer, chain id and rollup."""
        d = self._call("GET", "/v1/identity", auth=False)
        return Identity(d["account"], d["signer"], int(d["chainId"]), d["rollup"])

    @property
    def account(self) -> str:
        self._headers()
        assert self._auth is not None
        return to_checksum(self._auth.account)

    def channels(self) -> list[ChannelInfo]:
        return [ChannelInfo.from_json(d) for d in self._call("GET", "/v1/channels")["channels"]]

    def channel(self, channel_id: str | bytes) -> ChannelInfo:
        return ChannelInfo.from_json(self._call("GET", f"/v1/channels/{_cid(channel_id)}"))

    def open(self, peer: str, deposit_a: int, deposit_b: int, challenge_period: int = 3600,
             nonce: int | None = None) -> Opened:
        """Open a channel with the service at `peer` (this party is `a`, depositing `deposit_a`;
        the peer deposits `deposit_b`), submitted to the rollup."""
        body: dict[str, Any] = {"peer": peer, "depositA": str(deposit_a), "depositB": str(deposit_b),
                                "challengePeriod": challenge_period}
        if nonce is not None:
            body["nonce"] = str(nonce)
        d = self._call("POST", "/v1/channels", body)
        return Opened(d["channelId"], d["channel"], CoState.from_json(d["state"]))

    def set_quotes(self, channel_id: str | bytes, lines: Sequence[QuoteLine]) -> tuple[QuoteLine, ...]:
        """Replace this owner's standing quotes in the channel (an empty list withdraws them)."""
        return _quotes(self._call("POST", f"/v1/channels/{_cid(channel_id)}/quotes", _quote_json(lines)))

    def quotes(self, channel_id: str | bytes) -> tuple[QuoteLine, ...]:
        """The standing quotes with what remains of each side."""
        return _quotes(self._call("GET", f"/v1/channels/{_cid(channel_id)}/quotes"))

    def trade(self, channel_id: str | bytes, instrument: str, is_buy: bool, price: int,
              amount: int) -> CoState:
        """Buy (`is_buy`) or sell `amount` of `instrument` at `price` from the peer: the
        co-signed state that holds it (durable on both sides when returned)."""
        d = self._call("POST", f"/v1/channels/{_cid(channel_id)}/trade",
                       {"instrument": instrument, "isBuy": bool(is_buy), "price": str(price),
                        "amount": str(amount)})
        return CoState.from_json(d)

    def state(self, channel_id: str | bytes) -> CoState:
        """The latest co-signed state with both signatures."""
        return CoState.from_json(self._call("GET", f"/v1/channels/{_cid(channel_id)}/state"))

    def close(self, channel_id: str | bytes) -> Closed:
        """Co-sign the final state with the peer and close the channel on the rollup."""
        d = self._call("POST", f"/v1/channels/{_cid(channel_id)}/close", {})
        final = d.pop("finalState")
        return Closed(d, CoState.from_json(final))

    def set_peer(self, channel_id: str | bytes, url: str) -> ChannelInfo:
        """Point the channel at the peer service's new URL."""
        return ChannelInfo.from_json(self._call("POST", f"/v1/channels/{_cid(channel_id)}/peer",
                                                {"url": url}))
