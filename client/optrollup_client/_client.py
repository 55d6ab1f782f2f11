"""`Client` (sync, httpx) and `AsyncClient` (asyncio) for the optrollup HTTP API and stream.

Both share one sans-I/O core: every operation is a generator that yields `_Req`s and receives
the decoded JSON answers, so the sync and async drivers differ only in how they send. Signed
writes use the EIP-712 domain and types fetched once from `GET /v1/info`.

Units: `price` collateral base units (USDC × 10^6) per contract; `amount` contracts × 10^6;
balances collateral base units; times unix seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

from optrollup_client._errors import ApiError, ClientError, ConflictError, TransportError, error_from_answer
from optrollup_client._errors import OptrollupError
from optrollup_client._compliance import ComplianceOps, ComplianceState
from optrollup_client._liquidation import LiquidationOps, Liquidations, LiquidationTake
from optrollup_client._mmp import MmpOps, MmpPair, MmpResetAck, MmpState
from optrollup_client._signing import Signer, message_json
from optrollup_client._stream import AsyncStream, Stream, stream_url
from optrollup_client._types import (Account, Block, Book, CancelResult, Info, Instrument, NewOrder,
                                    L1Message, OpenOrder, OrderAck, OrderStatus, TimeInForce, Trade,
                                    Withdrawal, WithdrawalAck)

__all__ = ["AsyncClient", "Client", "DEFAULT_ORDER_TTL", "ORDER_ENTRY_ROUTES"]

MARGIN_MODES = {"standard": 0, "portfolio": 1}  # SetMarginMode.mode
DEFAULT_ORDER_TTL = 3600          # seconds an order lives unless `expiry` is given
T = TypeVar("T")
Op = Generator["_Req", Any, T]
# the signed write routes a node's ingress workers serve on their order-entry port
# (`optrollup serve --ingress-workers N --ingress-port P`, `optrollup devnet --ingress-workers N`):
# with `order_url=` a client POSTs these there and sends everything else to `url`
ORDER_ENTRY_ROUTES = frozenset({
    "/v1/orders", "/v1/orders/batch", "/v1/orders/replace", "/v1/quotes", "/v1/cancel",
    "/v1/cancel_all", "/v1/withdrawals", "/v1/session_keys", "/v1/oracle/feeds",
    "/v1/admin/instruments", "/v1/margin_mode"})


@dataclass
class _Req:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    auth: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def _uint(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ClientError(f"{name} must be a non-negative int (base units), got {value!r}",
                          code="invalid_argument")
    return value


def _side(side: str | bool) -> bool:
    if isinstance(side, bool):
        return side
    s = str(side).lower()
    if s not in ("buy", "sell"):
        raise ClientError(f"side must be 'buy' or 'sell', got {side!r}", code="invalid_argument")
    return s == "buy"


def _hash32(value: str, name: str) -> str:
    raw = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        ok = len(bytes.fromhex(raw)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise ClientError(f"{name} must be 32 bytes of hex, got {value!r}", code="invalid_argument")
    return "0x" + raw.lower()


class _Core(MmpOps, LiquidationOps, ComplianceOps):
    """Signing, request building and answer parsing shared by both clients (market-maker
    protection's plans in optrollup_client._mmp, liquidation's in optrollup_client._liquidation)."""

    def __init__(self, url: str, *, private_key: str | bytes | None = None,
                 keystore: str | Path | None = None, password: str | None = None,
                 account: str | None = None, clock: Callable[[], float] = time.time,
                 order_ttl: int = DEFAULT_ORDER_TTL, key: Any = None,
                 order_url: str | None = None) -> None:
        if sum(x is not None for x in (private_key, keystore, key)) > 1:
            raise ClientError("give one of private_key, keystore or key", code="invalid_argument")
        if key is not None:  # an opened key: sequencer.keys.load_key (a keystore's or an HSM's)
            self.signer: Signer | None = Signer(key, account)
        elif keystore is not None:
            if password is None:
                raise ClientError("a keystore needs its password", code="invalid_argument")
            self.signer = Signer.from_keystore(keystore, password, account)
        elif private_key is not None:
            self.signer = Signer.from_private_key(private_key, account)
        else:
            self.signer = None
            if account is not None:
                raise ClientError("account= needs a key that signs for it", code="invalid_argument")
        self.url = url.rstrip("/")
        self.order_url = (order_url or url).rstrip("/")
        self.clock = clock
        self.order_ttl = order_ttl
        self._info: Info | None = None
        self._nonce = 0
        self._last_cancel_all = 0

    # -- identity -----------------------------------------------------------------------------

    @property
    def account_address(self) -> str:
        """The account this client acts for (EIP-55); ClientError if it has no key."""
        return self._signer().account

    def _signer(self) -> Signer:
        if self.signer is None:
            raise ClientError("this client has no key: pass private_key= or keystore=",
                              code="no_key")
        return self.signer

    def _now(self) -> int:
        return int(self.clock())

    def next_nonce(self) -> int:
        """A fresh order nonce: microseconds of the clock, strictly increasing per client."""
        self._nonce = max(self._nonce + 1, int(self.clock() * 1_000_000))
        return self._nonce

    # -- answers --------------------------------------------------------------------------------

    @staticmethod
    def _answer(status: int, headers: Any, content: bytes) -> Any:
        if status < 400 and str(headers.get("content-type", "")).startswith("text/csv"):
            return content.decode()  # a statement (docs/compliance.md)
        try:
            body = json.loads(content) if content else None
        except ValueError:
            body = None
            if status < 400:
                raise ClientError(f"HTTP {status} answer is not JSON: {content[:200]!r}",
                                  code="bad_answer") from None
        if status >= 400:
            raise error_from_answer(status, body, headers)
        return body

    def _headers(self, req: _Req) -> dict[str, str]:
        h = dict(req.headers)
        if req.auth:
            h.update(self._signer().auth_headers(self._now()))
        return h

    # -- operations (sans-I/O) ------------------------------------------------------------------

    def _op_info(self, refresh: bool = False) -> Op[Info]:
        if self._info is None or refresh:
            self._info = Info.from_json((yield _Req("GET", "/v1/info")))
        return self._info

    def _signed(self, primary: str, message: dict[str, Any]) -> Op[dict[str, Any]]:
        """The body `{"<lowerCamel primary>": {...}, "signature"}` of a signed write."""
        info = yield from self._op_info()
        sig = self._signer().sign_typed(info.domain, info.types, primary, message)
        key = primary[0].lower() + primary[1:]
        return {key: message_json(info.types, primary, message), "signature": sig}

    def _order_message(self, info: Info, o: NewOrder) -> dict[str, Any]:
        now = self._now()
        ttl = min(self.order_ttl, int(info.limits.get("maxOrderTtl", self.order_ttl)))
        return {"account": self._signer().account, "instrument": o.instrument,
                "isBuy": _side(o.side), "price": _uint(o.price, "price"),
                "amount": _uint(o.amount, "amount"),
                "nonce": self.next_nonce() if o.nonce is None else _uint(o.nonce, "nonce"),
                "expiry": now + ttl if o.expiry is None else _uint(o.expiry, "expiry"),
                "timeInForce": int(TimeInForce.parse(o.time_in_force)),
                "postOnly": bool(o.post_only), "reduceOnly": bool(o.reduce_only)}

    def _op_place_order(self, o: NewOrder) -> Op[OrderAck]:
        info = yield from self._op_info()
        body = yield from self._signed("Order", self._order_message(info, o))
        return OrderAck.from_json((yield _Req("POST", "/v1/orders", json=body)))

    def _op_place_orders(self, orders: Sequence[NewOrder]) -> Op[list[OrderAck | ApiError]]:
        info = yield from self._op_info()
        bodies = []
        for o in orders:
            bodies.append((yield from self._signed("Order", self._order_message(info, o))))
        cap = max(1, int(info.limits.get("maxBatch", 500)))
        out: list[OrderAck | ApiError] = []
        for i in range(0, len(bodies), cap):
            answer = yield _Req("POST", "/v1/orders/batch", json={"orders": bodies[i:i + cap]})
            for r in answer["results"]:
                if "error" in r:
                    # A per-item error has no HTTP status of its own: status 0.
                    out.append(error_from_answer(0, r))
                else:
                    out.append(OrderAck.from_json(r))
        return out

    def _replace_body(self, info: Info, old_hash: str, o: NewOrder) -> Op[dict[str, Any]]:
        cancel = yield from self._signed("Cancel", {"account": self._signer().account,
                                                    "orderHash": _hash32(old_hash, "old_hash")})
        order = yield from self._signed("Order", self._order_message(info, o))
        return {"cancel": cancel, "order": order}

    def _op_replace_order(self, old_hash: str, o: NewOrder) -> Op[OrderAck]:
        info = yield from self._op_info()
        body = yield from self._replace_body(info, old_hash, o)
        return OrderAck.from_json((yield _Req("POST", "/v1/orders/replace", json=body)))

    def _op_mass_quote(self, pairs: Sequence[tuple[str, NewOrder]]) -> Op[list[OrderAck | ApiError]]:
        info = yield from self._op_info()
        bodies = []
        for old_hash, o in pairs:
            bodies.append((yield from self._replace_body(info, old_hash, o)))
        cap = max(1, int(info.limits.get("maxBatch", 500)))
        out: list[OrderAck | ApiError] = []
        for i in range(0, len(bodies), cap):
            answer = yield _Req("POST", "/v1/quotes", json={"quotes": bodies[i:i + cap]})
            for r in answer["results"]:
                out.append(error_from_answer(0, r) if "error" in r else OrderAck.from_json(r))
        return out

    def _op_requote(self, hashes: Sequence[str | None],
                    orders: Sequence[NewOrder]) -> Op[list[OrderAck | ApiError]]:
        if len(hashes) != len(orders):
            raise ClientError(f"requote needs one old hash (or None) per order: {len(hashes)} hashes, "
                              f"{len(orders)} orders", code="invalid_argument")
        out: list[OrderAck | ApiError | None] = [None] * len(orders)
        amend = [i for i, h in enumerate(hashes) if h]
        if amend:
            res = yield from self._op_mass_quote([(hashes[i], orders[i]) for i in amend])  # type: ignore[misc]
            for i, r in zip(amend, res):
                out[i] = r
        # a level whose old order is gone (filled, cancelled, expired) or that had none: place it
        fresh = [i for i, r in enumerate(out)
                 if r is None or (isinstance(r, ApiError) and r.code == "unknown_order")]
        if fresh:
            for i, r in zip(fresh, (yield from self._op_place_orders([orders[i] for i in fresh]))):
                out[i] = r
        return out  # type: ignore[return-value]

    def _op_cancel(self, order_hash: str) -> Op[CancelResult]:
        msg = {"account": self._signer().account, "orderHash": _hash32(order_hash, "order_hash")}
        body = yield from self._signed("Cancel", msg)
        return CancelResult.from_json((yield _Req("POST", "/v1/cancel", json=body)))

    def _op_cancel_all(self, instrument: str) -> Op[int]:
        # CancelAll timestamps must increase per account; another client of the same account
        # may have used this second already, so a replayed timestamp is retried one later.
        for attempt in range(4):
            ts = max(self._now(), self._last_cancel_all + 1)
            self._last_cancel_all = ts
            msg = {"account": self._signer().account, "instrument": instrument, "timestamp": ts}
            body = yield from self._signed("CancelAll", msg)
            try:
                return int((yield _Req("POST", "/v1/cancel_all", json=body))["cancelled"])
            except ConflictError as exc:
                if exc.code != "cancel_all_replayed" or attempt == 3:
                    raise
        raise AssertionError("unreachable")

    def _op_account(self, address: str | None = None) -> Op[Account]:
        who = address or self._signer().account
        return Account.from_json((yield _Req("GET", f"/v1/accounts/{who}", auth=True)))

    def _op_withdraw(self, amount: int, recipient: str | None) -> Op[WithdrawalAck]:
        acct = yield from self._op_account()
        msg = {"account": self._signer().account, "recipient": recipient or self._signer().account,
               "amount": _uint(amount, "amount"), "nonce": acct.withdrawal_nonce}
        body = yield from self._signed("Withdraw", msg)
        return WithdrawalAck.from_json((yield _Req("POST", "/v1/withdrawals", json=body)))

    def _op_margin_mode(self, mode: str) -> Op[str]:
        if mode not in MARGIN_MODES:
            raise ValueError(f"margin mode must be one of {sorted(MARGIN_MODES)}, got {mode!r}")
        acct = yield from self._op_account()
        msg = {"account": self._signer().account, "mode": MARGIN_MODES[mode],
               "nonce": acct.margin_nonce}
        body = yield from self._signed("SetMarginMode", msg)
        return str((yield _Req("POST", "/v1/margin_mode", json=body))["marginMode"])

    def _op_session_key(self, key: str, expiry: int) -> Op[None]:
        msg = {"account": self._signer().account, "key": key, "expiry": _uint(expiry, "expiry")}
        body = yield from self._signed("SessionKey", msg)
        yield _Req("POST", "/v1/session_keys", json=body)

    def _post(self, path: str, body: Any) -> _Req:
        return _Req("POST", path, json=body)

    def _order_entry(self, req: _Req) -> bool:
        """Does `req` go to `order_url` (a signed write, when an order-entry port is given)?"""
        return req.method == "POST" and req.path in ORDER_ENTRY_ROUTES and self.order_url != self.url

    def _get_auth(self, path: str) -> _Req:
        return _Req("GET", path, auth=True)

    def _op_get(self, path: str, parse: Callable[[Any], T], params: dict[str, Any] | None = None,
                auth: bool = False) -> Op[T]:
        return parse((yield _Req("GET", path, params=params, auth=auth)))

    # plain reads as request plans
    def _op_order(self, order_hash: str) -> Op[OrderStatus]:
        return (yield from self._op_get(f"/v1/orders/{_hash32(order_hash, 'order_hash')}",
                                        OrderStatus.from_json, auth=True))

    def _op_open_orders(self) -> Op[list[OpenOrder]]:
        return (yield from self._op_get(f"/v1/accounts/{self._signer().account}/orders",
                                        lambda d: [OpenOrder.from_json(o) for o in d["openOrders"]],
                                        auth=True))

    def _op_book(self, instrument: str, depth: int) -> Op[Book]:
        return (yield from self._op_get(f"/v1/book/{instrument}", Book.from_json, {"depth": depth}))

    def _op_trades(self, instrument: str | None, limit: int) -> Op[list[Trade]]:
        params: dict[str, Any] = {"limit": limit}
        if instrument is not None:
            params["instrument"] = instrument
        return (yield from self._op_get("/v1/trades", lambda d: [Trade.from_json(t) for t in d["trades"]],
                                        params))

    def _op_instruments(self) -> Op[list[Instrument]]:
        return (yield from self._op_get("/v1/instruments",
                                        lambda d: [Instrument.from_json(i) for i in d["instruments"]]))

    def _op_instrument(self, name: str) -> Op[Instrument]:
        return (yield from self._op_get(f"/v1/instruments/{name}", Instrument.from_json))

    def _op_block(self, n: int | Literal["latest"]) -> Op[Block]:
        if n != "latest" and (type(n) is not int or n < 0):
            raise ClientError(f"block must be an int >= 0 or 'latest', got {n!r}", code="invalid_argument")
        return (yield from self._op_get(f"/v1/blocks/{n}", Block.from_json))

    def _op_withdrawal(self, withdrawal_hash: str) -> Op[Withdrawal]:
        return (yield from self._op_get(f"/v1/withdrawals/{_hash32(withdrawal_hash, 'withdrawal_hash')}",
                                        Withdrawal.from_json))

    def _op_l1_message(self, nonce: int) -> Op[L1Message]:
        return (yield from self._op_get(f"/v1/l1-messages/{_uint(nonce, 'nonce')}", L1Message.from_json))

    def _stream_auth(self) -> dict[str, str] | None:
        return None if self.signer is None else self.signer.auth_object(self._now())

    def _channels(self, channels: Sequence[str]) -> list[str]:
        """`orders` alone means `orders.<this client's account>`."""
        return [f"orders.{self._signer().account}" if c == "orders" else c for c in channels]


class Client(_Core):
    """Synchronous client. `Client(url, private_key="0x..")`, `keystore=PATH, password=..` or
    `key=` an opened key (sequencer.keys.load_key: a keystore's, or one in an HSM);
    `account=` makes the key a session key signing for that account. `order_url=` a node's
    order-entry port (its ingress workers): the signed writes (ORDER_ENTRY_ROUTES) go there,
    reads and everything else to `url`. `http` / `order_http` inject httpx clients (tests);
    `clock` gives unix seconds (auth timestamps, default expiries, nonces)."""

    def __init__(self, url: str, *, private_key: str | bytes | None = None,
                 keystore: str | Path | None = None, password: str | None = None,
                 account: str | None = None, timeout: float = 10.0,
                 http: httpx.Client | None = None, clock: Callable[[], float] = time.time,
                 order_ttl: int = DEFAULT_ORDER_TTL, key: Any = None,
                 order_url: str | None = None, order_http: httpx.Client | None = None) -> None:
        super().__init__(url, private_key=private_key, keystore=keystore, password=password,
                         account=account, clock=clock, order_ttl=order_ttl, key=key,
                         order_url=order_url)
        self._own_http = http is None
        self.http = http if http is not None else httpx.Client(base_url=self.url, timeout=timeout)
        self._own_order_http = order_http is None and self.order_url != self.url
        self.order_http = (order_http if order_http is not None else
                           httpx.Client(base_url=self.order_url, timeout=timeout)
                           if self._own_order_http else self.http)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pools (those this client created)."""
        if self._own_http:
            self.http.close()
        if self._own_order_http:
            self.order_http.close()

    def _send(self, req: _Req) -> Any:
        http = self.order_http if self._order_entry(req) else self.http
        try:
            r = http.request(req.method, req.path, json=req.json, params=req.params,
                             headers=self._headers(req))
        except httpx.HTTPError as exc:
            raise TransportError(f"{req.method} {req.path}: {exc}") from exc
        return self._answer(r.status_code, r.headers, r.content)

    def _run(self, op: Op[T]) -> T:
        try:
            req = next(op)
            while True:
                try:
                    answer = self._send(req)
                except OptrollupError as exc:   # the operation may handle it (retries)
                    req = op.throw(exc)
                    continue
                req = op.send(answer)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    # -- public API -----------------------------------------------------------------------------

    def info(self, refresh: bool = False) -> Info:
        """`GET /v1/info` (cached; `refresh=True` fetches again)."""
        return self._run(self._op_info(refresh))

    def place_order(self, instrument: str, side: str, price: int, amount: int, *,
                    time_in_force: TimeInForce | int | str = TimeInForce.GTC, post_only: bool = False,
                    reduce_only: bool = False, expiry: int | None = None,
                    nonce: int | None = None) -> OrderAck:
        """Sign and place one order: `price` base units per contract, `amount` contracts × 10^6,
        `expiry` unix s (default now + order_ttl). Returns once the order is durable."""
        return self._run(self._op_place_order(NewOrder(instrument, side, price, amount, time_in_force,
                                                       post_only, reduce_only, expiry, nonce)))

    def place_orders(self, orders: Sequence[NewOrder]) -> list[OrderAck | ApiError]:
        """Sign and place many orders through /v1/orders/batch (split at the server's maxBatch).
        One result per order, in order: an OrderAck, or the ApiError (not raised) that refused it."""
        return self._run(self._op_place_orders(orders))

    def cancel(self, order_hash: str) -> CancelResult:
        """Cancel one open order by its hash."""
        return self._run(self._op_cancel(order_hash))

    def replace_order(self, old_hash: str, order: NewOrder) -> OrderAck:
        """Amend: cancel open order `old_hash` and place `order`, both or neither (the new
        order has no time priority from the old). Raises the ApiError of whichever failed."""
        return self._run(self._op_replace_order(old_hash, order))

    def mass_quote(self, pairs: Sequence[tuple[str, NewOrder]]) -> list[OrderAck | ApiError]:
        """Requote many levels at once through /v1/quotes: each (old order hash, new order) is
        an independent amend; one result per pair, an OrderAck or the ApiError that refused it."""
        return self._run(self._op_mass_quote(pairs))

    def requote(self, hashes: Sequence[str | None], orders: Sequence[NewOrder]) -> list[OrderAck | ApiError]:
        """Keep a ladder: level i's open order `hashes[i]` becomes `orders[i]` (one mass quote
        for all); a level whose order is gone (filled, cancelled, expired: `unknown_order`) or
        whose hash is None is placed fresh. One result per level: an OrderAck (its `order_hash`
        is the level's next hash) or the ApiError that refused it (keep the old hash then)."""
        return self._run(self._op_requote(hashes, orders))

    def cancel_all(self, instrument: str = "") -> int:
        """Cancel the account's open orders in `instrument` ("" = all); returns how many."""
        return self._run(self._op_cancel_all(instrument))

    def withdraw(self, amount: int, recipient: str | None = None) -> WithdrawalAck:
        """Withdraw `amount` collateral base units to L1 `recipient` (default: the account),
        with the account's current withdrawalNonce."""
        return self._run(self._op_withdraw(amount, recipient))

    def register_session_key(self, key: str, expiry: int) -> None:
        """Let address `key` sign orders and cancels for this account until `expiry` (unix s)."""
        self._run(self._op_session_key(key, expiry))

    def set_margin_mode(self, mode: str) -> str:
        """Switch the account to margin `mode` ("standard" or "portfolio"), with its current
        marginNonce; signed by the account's own key (not a session key). Refused
        (insufficient_margin) if the account cannot meet the new mode's initial margin."""
        return self._run(self._op_margin_mode(mode))

    def account(self, address: str | None = None) -> Account:
        """The account view (auth headers signed by this client's key)."""
        return self._run(self._op_account(address))

    def set_mmp(self, underlying: str, *, interval_ms: int, frozen_ms: int, amount_limit: int = 0,
                delta_limit: int = 0, vega_limit: int = 0, nonce: int | None = None) -> MmpPair:
        """Market-maker protection in `underlying` (docs/mmp.md): when this account's maker
        fills within `interval_ms` of block time pass a limit (`amount_limit` contracts × 10^6,
        `delta_limit` contracts × 10^6 of delta, `vega_limit` base units per vol point; 0 = no
        limit), its orders there are cancelled and new ones refused for `frozen_ms` (0: until
        `reset_mmp`). `nonce` must exceed the last config's (default: the client's clock)."""
        return self._run(self._op_set_mmp(underlying, interval_ms, frozen_ms, amount_limit,
                                          delta_limit, vega_limit, nonce))

    def reset_mmp(self, underlying: str) -> MmpResetAck:
        """Lift the MMP freeze in `underlying` (and empty its window)."""
        return self._run(self._op_reset_mmp(underlying))

    def mmp(self, address: str | None = None) -> MmpState:
        """This account's MMP configs, window totals and freezes (auth headers)."""
        return self._run(self._op_mmp(address))

    def liquidations(self) -> Liquidations:
        """Open liquidation auctions with their current prices, and the insurance fund."""
        return self._run(self._op_liquidations())

    def liquidate(self, account: str, fraction_ppm: int, max_price: int, *,
                  nonce: int | None = None) -> LiquidationTake:
        """Bid in the auction of `account`: take `fraction_ppm` / 10^6 of its positions and
        collateral, paying at most `max_price` base units (negative: be paid at least that).
        `nonce` at least this liquidator's next (default: the client's clock)."""
        return self._run(self._op_liquidate(account, fraction_ppm, max_price, nonce))

    def order(self, order_hash: str) -> OrderStatus:
        """Status of one of this account's orders."""
        return self._run(self._op_order(order_hash))

    def open_orders(self) -> list[OpenOrder]:
        """This account's resting orders."""
        return self._run(self._op_open_orders())

    def statement(self, first: int | None = None, last: int | None = None,
                  address: str | None = None) -> str:
        """`GET /v1/accounts/{a}/statement` as CSV text: this account's (or `address`'s, if this
        key signs for it) trades, fees, deposits, withdrawals, settlements, liquidations and
        channel moves over blocks first..last (default: all), with a running balance."""
        return self._run(self._op_statement(first, last, address))

    def compliance(self) -> ComplianceState:
        """`GET /v1/compliance`: the next compliance nonce, frozen accounts, the L1 deny list."""
        return self._run(self._op_compliance())

    def freeze(self, account: str, nonce: int | None = None) -> dict[str, Any]:
        """Operator only: freeze `account` (its open orders are cancelled; `nonce` defaults to
        the node's next compliance nonce)."""
        return self._run(self._op_compliance_action("Freeze", "/v1/admin/freeze",
                                                    {"account": account}, nonce))

    def unfreeze(self, account: str, nonce: int | None = None) -> dict[str, Any]:
        """Operator only: lift the freeze of `account`."""
        return self._run(self._op_compliance_action("Unfreeze", "/v1/admin/unfreeze",
                                                    {"account": account}, nonce))

    def deny_l1(self, l1_address: str, denied: bool = True,
                nonce: int | None = None) -> dict[str, Any]:
        """Operator only: put L1 address `l1_address` on the deny list (or take it off)."""
        return self._run(self._op_compliance_action(
            "DenyL1", "/v1/admin/deny", {"l1Address": l1_address, "denied": bool(denied)}, nonce))

    def book(self, instrument: str, depth: int = 20) -> Book:
        """Aggregated levels (best first) and the book's sequence number."""
        return self._run(self._op_book(instrument, depth))

    def trades(self, instrument: str | None = None, limit: int = 100) -> list[Trade]:
        """Recent trades, newest first."""
        return self._run(self._op_trades(instrument, limit))

    def instruments(self) -> list[Instrument]:
        """Every listed instrument with its mark."""
        return self._run(self._op_instruments())

    def instrument(self, name: str) -> Instrument:
        """One listed instrument with its mark."""
        return self._run(self._op_instrument(name))

    def block(self, n: int | Literal["latest"] = "latest") -> Block:
        """A sealed block by number, or the latest."""
        return self._run(self._op_block(n))

    def withdrawal(self, withdrawal_hash: str) -> Withdrawal:
        """Status (and, once final, the L1 finalize call) of a withdrawal."""
        return self._run(self._op_withdrawal(withdrawal_hash))

    def l1_message(self, nonce: int) -> L1Message:
        """How the node processed L1 message `nonce` (e.g. `L1Wallet.deposit(...).nonce`);
        NotFoundError `unknown_l1_message` until it has."""
        return self._run(self._op_l1_message(nonce))

    def wait_withdrawal(self, withdrawal_hash: str, until: Sequence[str] = ("final", "paid"), *,
                        timeout: float = 600.0, poll: float = 1.0,
                        on_status: Callable[[Withdrawal], None] | None = None) -> Withdrawal:
        """Poll a withdrawal until its status is in `until` (pending -> batched -> final ->
        paid); `on_status` sees each new status. ClientError `timeout` after `timeout` s (real
        seconds: finality is an L1 matter, not this client's clock)."""
        deadline, last = time.monotonic() + timeout, None
        while True:
            w = self.withdrawal(withdrawal_hash)
            if w.status != last and on_status is not None:
                on_status(w)
            last = w.status
            if w.status in until:
                return w
            if time.monotonic() > deadline:
                raise ClientError(f"withdrawal {withdrawal_hash} still {w.status} after {timeout:.0f} s",
                                  code="timeout")
            time.sleep(poll)

    def stream(self, *channels: str, cancel_on_disconnect: bool = False, heartbeats: bool = False,
               check_gaps: bool = True, open_timeout: float = 10.0) -> Stream:
        """Open `/v1/stream` and subscribe to `channels` ("book.<instrument>", "trades.<instrument>",
        "blocks", "marks", "liquidations", "orders.<account>" or just "orders" for this client's account). Use as a
        context manager and iterate for StreamMessages."""
        chans = self._channels(channels)
        return Stream(stream_url(self.url), chans, auth=self._stream_auth,
                      cancel_on_disconnect=cancel_on_disconnect, heartbeats=heartbeats,
                      check_gaps=check_gaps, open_timeout=open_timeout)


class AsyncClient(_Core):
    """The asyncio twin of `Client`: the same constructor and methods, as coroutines."""

    def __init__(self, url: str, *, private_key: str | bytes | None = None,
                 keystore: str | Path | None = None, password: str | None = None,
                 account: str | None = None, timeout: float = 10.0,
                 http: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.time,
                 order_ttl: int = DEFAULT_ORDER_TTL, key: Any = None,
                 order_url: str | None = None, order_http: httpx.AsyncClient | None = None) -> None:
        super().__init__(url, private_key=private_key, keystore=keystore, password=password,
                         account=account, clock=clock, order_ttl=order_ttl, key=key,
                         order_url=order_url)
        self._own_http = http is None
        self.http = http if http is not None else httpx.AsyncClient(base_url=self.url, timeout=timeout)
        self._own_order_http = order_http is None and self.order_url != self.url
        self.order_http = (order_http if order_http is not None else
                           httpx.AsyncClient(base_url=self.order_url, timeout=timeout)
                           if self._own_order_http else self.http)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pools (those this client created)."""
        if self._own_http:
            await self.http.aclose()
        if self._own_order_http:
            await self.order_http.aclose()

    async def _send(self, req: _Req) -> Any:
        http = self.order_http if self._order_entry(req) else self.http
        try:
            r = await http.request(req.method, req.path, json=req.json, params=req.params,
                                   headers=self._headers(req))
        except httpx.HTTPError as exc:
            raise TransportError(f"{req.method} {req.path}: {exc}") from exc
        return self._answer(r.status_code, r.headers, r.content)

    async def _run(self, op: Op[T]) -> T:
        try:
            req = next(op)
            while True:
                try:
                    answer = await self._send(req)
                except OptrollupError as exc:   # the operation may handle it (retries)
                    req = op.throw(exc)
                    continue
                req = op.send(answer)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    async def info(self, refresh: bool = False) -> Info:
        """`GET /v1/info` (cached; `refresh=True` fetches again)."""
        return await self._run(self._op_info(refresh))

    async def place_order(self, instrument: str, side: str, price: int, amount: int, *,
                          time_in_force: TimeInForce | int | str = TimeInForce.GTC,
                          post_only: bool = False, reduce_only: bool = False,
                          expiry: int | None = None, nonce: int | None = None) -> OrderAck:
        """See `Client.place_order`."""
        return await self._run(self._op_place_order(NewOrder(instrument, side, price, amount,
                                                             time_in_force, post_only, reduce_only,
                                                             expiry, nonce)))

    async def place_orders(self, orders: Sequence[NewOrder]) -> list[OrderAck | ApiError]:
        """See `Client.place_orders`."""
        return await self._run(self._op_place_orders(orders))

    async def cancel(self, order_hash: str) -> CancelResult:
        """See `Client.cancel`."""
        return await self._run(self._op_cancel(order_hash))

    async def statement(self, first: int | None = None, last: int | None = None,
                        address: str | None = None) -> str:
        """See `Client.statement`."""
        return await self._run(self._op_statement(first, last, address))

    async def compliance(self) -> ComplianceState:
        """See `Client.compliance`."""
        return await self._run(self._op_compliance())

    async def freeze(self, account: str, nonce: int | None = None) -> dict[str, Any]:
        """See `Client.freeze`."""
        return await self._run(self._op_compliance_action("Freeze", "/v1/admin/freeze",
                                                          {"account": account}, nonce))

    async def unfreeze(self, account: str, nonce: int | None = None) -> dict[str, Any]:
        """See `Client.unfreeze`."""
        return await self._run(self._op_compliance_action("Unfreeze", "/v1/admin/unfreeze",
                                                          {"account": account}, nonce))

    async def deny_l1(self, l1_address: str, denied: bool = True,
                      nonce: int | None = None) -> dict[str, Any]:
        """See `Client.deny_l1`."""
        return await self._run(self._op_compliance_action(
            "DenyL1", "/v1/admin/deny", {"l1Address": l1_address, "denied": bool(denied)}, nonce))

    async def replace_order(self, old_hash: str, order: NewOrder) -> OrderAck:
        """See `Client.replace_order`."""
        return await self._run(self._op_replace_order(old_hash, order))

    async def mass_quote(self, pairs: Sequence[tuple[str, NewOrder]]) -> list[OrderAck | ApiError]:
        """See `Client.mass_quote`."""
        return await self._run(self._op_mass_quote(pairs))

    async def requote(self, hashes: Sequence[str | None],
                      orders: Sequence[NewOrder]) -> list[OrderAck | ApiError]:
        """See `Client.requote`."""
        return await self._run(self._op_requote(hashes, orders))

    async def cancel_all(self, instrument: str = "") -> int:
        """See `Client.cancel_all`."""
        return await self._run(self._op_cancel_all(instrument))

    async def withdraw(self, amount: int, recipient: str | None = None) -> WithdrawalAck:
        """See `Client.withdraw`."""
        return await self._run(self._op_withdraw(amount, recipient))

    async def register_session_key(self, key: str, expiry: int) -> None:
        """See `Client.register_session_key`."""
        await self._run(self._op_session_key(key, expiry))

    async def set_margin_mode(self, mode: str) -> str:
        """See `Client.set_margin_mode`."""
        return await self._run(self._op_margin_mode(mode))

    async def account(self, address: str | None = None) -> Account:
        """See `Client.account`."""
        return await self._run(self._op_account(address))

    async def set_mmp(self, underlying: str, *, interval_ms: int, frozen_ms: int,
                      amount_limit: int = 0, delta_limit: int = 0, vega_limit: int = 0,
                      nonce: int | None = None) -> MmpPair:
        """See `Client.set_mmp`."""
        return await self._run(self._op_set_mmp(underlying, interval_ms, frozen_ms, amount_limit,
                                                delta_limit, vega_limit, nonce))

    async def reset_mmp(self, underlying: str) -> MmpResetAck:
        """See `Client.reset_mmp`."""
        return await self._run(self._op_reset_mmp(underlying))

    async def mmp(self, address: str | None = None) -> MmpState:
        """See `Client.mmp`."""
        return await self._run(self._op_mmp(address))

    async def liquidations(self) -> Liquidations:
        """See `Client.liquidations`."""
        return await self._run(self._op_liquidations())

    async def liquidate(self, account: str, fraction_ppm: int, max_price: int, *,
                        nonce: int | None = None) -> LiquidationTake:
        """See `Client.liquidate`."""
        return await self._run(self._op_liquidate(account, fraction_ppm, max_price, nonce))

    async def order(self, order_hash: str) -> OrderStatus:
        """See `Client.order`."""
        return await self._run(self._op_order(order_hash))

    async def open_orders(self) -> list[OpenOrder]:
        """See `Client.open_orders`."""
        return await self._run(self._op_open_orders())

    async def book(self, instrument: str, depth: int = 20) -> Book:
        """See `Client.book`."""
        return await self._run(self._op_book(instrument, depth))

    async def trades(self, instrument: str | None = None, limit: int = 100) -> list[Trade]:
        """See `Client.trades`."""
        return await self._run(self._op_trades(instrument, limit))

    async def instruments(self) -> list[Instrument]:
        """See `Client.instruments`."""
        return await self._run(self._op_instruments())

    async def instrument(self, name: str) -> Instrument:
        """See `Client.instrument`."""
        return await self._run(self._op_instrument(name))

    async def block(self, n: int | Literal["latest"] = "latest") -> Block:
        """See `Client.block`."""
        return await self._run(self._op_block(n))

    async def withdrawal(self, withdrawal_hash: str) -> Withdrawal:
        """See `Client.withdrawal`."""
        return await self._run(self._op_withdrawal(withdrawal_hash))

    async def l1_message(self, nonce: int) -> L1Message:
        """See `Client.l1_message`."""
        return await self._run(self._op_l1_message(nonce))

    async def wait_withdrawal(self, withdrawal_hash: str, until: Sequence[str] = ("final", "paid"), *,
                              timeout: float = 600.0, poll: float = 1.0,
                              on_status: Callable[[Withdrawal], None] | None = None) -> Withdrawal:
        """See `Client.wait_withdrawal`."""
        deadline, last = time.monotonic() + timeout, None
        while True:
            w = await self.withdrawal(withdrawal_hash)
            if w.status != last and on_status is not None:
                on_status(w)
            last = w.status
            if w.status in until:
                return w
            if time.monotonic() > deadline:
                raise ClientError(f"withdrawal {withdrawal_hash} still {w.status} after {timeout:.0f} s",
                                  code="timeout")
            await asyncio.sleep(poll)

    def stream(self, *channels: str, cancel_on_disconnect: bool = False, heartbeats: bool = False,
               check_gaps: bool = True, open_timeout: float = 10.0) -> AsyncStream:
        """See `Client.stream`; use with `async with` and `async for`."""
        chans = self._channels(channels)
        return AsyncStream(stream_url(self.url), chans, auth=self._stream_auth,
                           cancel_on_disconnect=cancel_on_disconnect, heartbeats=heartbeats,
                           check_gaps=check_gaps, open_timeout=open_timeout)
