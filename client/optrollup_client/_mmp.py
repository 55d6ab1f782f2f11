"""Market-maker protection in the SDK: typed answers and the request plans `Client` and
`AsyncClient` share (docs/mmp.md; the HTTP side is sequencer/api/mmp.py).

Units: `amount_limit` contracts × 10^6; `delta_limit` contracts × 10^6 of underlying delta;
`vega_limit` collateral base units per vol point (0.01); 0 = no limit on that measure. Times
in ms of block time (unix ms). Greek window totals are rounded away from zero (display).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optrollup_client._errors import ClientError, ConflictError

if TYPE_CHECKING:
    from optrollup_client._signing import Signer

__all__ = ["MmpConfigInfo", "MmpFreeze", "MmpOps", "MmpPair", "MmpResetAck", "MmpState"]


@dataclass(frozen=True)
class MmpConfigInfo:
    """The pair's last config (limits in the units above, 0 = none)."""

    interval_ms: int
    frozen_ms: int
    amount_limit: int
    delta_limit: int
    vega_limit: int
    nonce: int

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> "MmpConfigInfo | None":
        if d is None:
            return None
        return cls(int(d["intervalMs"]), int(d["frozenMs"]), int(d["amountLimit"]),
                   int(d["deltaLimit"]), int(d["vegaLimit"]), int(d["nonce"]))


@dataclass(frozen=True)
class MmpFreeze:
    """A breach: `measure` (amount | delta | vega) reached `value` > `limit` at block time
    `at_ms`; frozen until `until_ms` (None: until a reset)."""

    measure: str
    value: int
    limit: int
    at_ms: int
    until_ms: int | None

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> "MmpFreeze | None":
        if d is None:
            return None
        return cls(d["measure"], int(d["value"]), int(d["limit"]), int(d["atMs"]),
                   None if d["untilMs"] is None else int(d["untilMs"]))


@dataclass(frozen=True)
class MmpPair:
    """MMP of the account in one underlying: config, window totals, current freeze."""

    underlying: str
    enabled: bool
    config: MmpConfigInfo | None
    amount: int
    delta: int
    vega: int
    freeze: MmpFreeze | None

    @property
    def frozen(self) -> bool:
        return self.freeze is not None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "MmpPair":
        w = d["window"]
        return cls(d["underlying"], bool(d["enabled"]), MmpConfigInfo.from_json(d["config"]),
                   int(w["amount"]), int(w["delta"]), int(w["vega"]),
                   MmpFreeze.from_json(d["freeze"]))


@dataclass(frozen=True)
class MmpResetAck:
    """The answer to a reset: the freeze it lifted (None if there was none) and the pair."""

    lifted: MmpFreeze | None
    pair: MmpPair

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "MmpResetAck":
        return cls(MmpFreeze.from_json(d["lifted"]), MmpPair.from_json(d))


@dataclass(frozen=True)
class MmpState:
    """`GET /v1/accounts/{address}/mmp`: every pair of the account at block time `time_ms`."""

    account: str
    time_ms: int
    underlyings: list[MmpPair]

    def pair(self, underlying: str) -> MmpPair | None:
        return next((p for p in self.underlyings if p.underlying == underlying), None)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "MmpState":
        return cls(d["account"], int(d["timeMs"]), [MmpPair.from_json(p) for p in d["underlyings"]])


def _limit(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ClientError(f"{name} must be a non-negative int (0 = no limit), got {value!r}",
                          code="invalid_argument")
    return value


class MmpOps:
    """Request plans (sans-I/O generators, see optrollup_client._client) mixed into its core."""

    _last_mmp_reset: int = 0

    if TYPE_CHECKING:  # provided by the client core (optrollup_client._client._Core)
        def _signer(self) -> Signer: ...
        def _now(self) -> int: ...
        def next_nonce(self) -> int: ...
        def _signed(self, primary: str,
                    message: dict[str, Any]) -> Generator[Any, Any, dict[str, Any]]: ...
        def _post(self, path: str, body: Any) -> Any: ...
        def _get_auth(self, path: str) -> Any: ...

    def _op_set_mmp(self, underlying: str, interval_ms: int, frozen_ms: int, amount_limit: int,
                    delta_limit: int, vega_limit: int,
                    nonce: int | None) -> Generator[Any, Any, MmpPair]:
        msg = {"account": self._signer().account, "underlying": underlying,
               "intervalMs": _limit(interval_ms, "interval_ms"),
               "frozenMs": _limit(frozen_ms, "frozen_ms"),
               "amountLimit": _limit(amount_limit, "amount_limit"),
               "deltaLimit": _limit(delta_limit, "delta_limit"),
               "vegaLimit": _limit(vega_limit, "vega_limit"),
               "nonce": self.next_nonce() if nonce is None else _limit(nonce, "nonce")}
        body = yield from self._signed("MmpConfig", msg)
        try:
            return MmpPair.from_json((yield self._post("/v1/mmp/config", body)))
        except ConflictError as exc:
            if exc.code != "mmp_nonce_replayed" or nonce is not None:
                raise
        # another client of the account set a later nonce: go above the node's last one, once
        state = yield from self._op_mmp(None)
        last = state.pair(underlying)
        known = last.config.nonce if last is not None and last.config is not None else 0
        msg["nonce"] = max(self.next_nonce(), known + 1)
        body = yield from self._signed("MmpConfig", msg)
        return MmpPair.from_json((yield self._post("/v1/mmp/config", body)))

    def _op_reset_mmp(self, underlying: str) -> Generator[Any, Any, MmpResetAck]:
        # Reset timestamps must increase per pair; as for cancel-all, a second already used
        # (by another client of the account) is retried one later.
        for attempt in range(4):
            ts = max(self._now(), self._last_mmp_reset + 1)
            self._last_mmp_reset = ts
            msg = {"account": self._signer().account, "underlying": underlying, "timestamp": ts}
            body = yield from self._signed("MmpReset", msg)
            try:
                return MmpResetAck.from_json((yield self._post("/v1/mmp/reset", body)))
            except ConflictError as exc:
                if exc.code != "mmp_reset_replayed" or attempt == 3:
                    raise
        raise AssertionError("unreachable")

    def _op_mmp(self, address: str | None) -> Generator[Any, Any, MmpState]:
        who = address or self._signer().account
        return MmpState.from_json((yield self._get_auth(f"/v1/accounts/{who}/mmp")))
