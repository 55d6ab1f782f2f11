"""Compliance in the SDK (docs/compliance.md): an account's CSV statement, and the operator's
Freeze / Unfreeze / DenyL1 (a client whose key is the genesis operator's). Request plans
(sans-I/O generators, see optrollup_client._client) mixed into its core."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optrollup_client._errors import ClientError

if TYPE_CHECKING:
    from optrollup_client._signing import Signer


@dataclass(frozen=True)
class ComplianceState:
    """`GET /v1/compliance`: the operator's next compliance nonce, frozen accounts (address ->
    block time frozen) and the L1 deny list (address -> block time denied)."""

    nonce: int
    operator: str
    frozen: dict[str, int]
    denied: dict[str, int]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ComplianceState":
        return cls(int(d["complianceNonce"]), d["operator"],
                   {x["account"]: int(x["frozenAt"]) for x in d["frozen"]},
                   {x["l1Address"]: int(x["deniedAt"]) for x in d["denied"]})


def _block(n: int | None, name: str) -> int | None:
    if n is not None and (type(n) is not int or n < 0):
        raise ClientError(f"{name} must be a block number >= 0, got {n!r}", code="invalid_argument")
    return n


class ComplianceOps:
    """Plans: statement (any account's own), freeze/unfreeze/deny (the operator's key)."""

    if TYPE_CHECKING:  # provided by the client core (optrollup_client._client._Core)
        def _signer(self) -> Signer: ...
        def _signed(self, primary: str,
                    message: dict[str, Any]) -> Generator[Any, Any, dict[str, Any]]: ...
        def _post(self, path: str, body: Any) -> Any: ...

    def _op_statement(self, first: int | None, last: int | None,
                      address: str | None) -> Generator[Any, Any, str]:
        from optrollup_client._client import _Req

        params = {k: v for k, v in (("from", _block(first, "first")),
                                    ("to", _block(last, "last"))) if v is not None}
        who = address or self._signer().account
        return str((yield _Req("GET", f"/v1/accounts/{who}/statement", params=params or None,
                               auth=True)))

    def _op_compliance(self) -> Generator[Any, Any, ComplianceState]:
        from optrollup_client._client import _Req

        return ComplianceState.from_json((yield _Req("GET", "/v1/compliance")))

    def _op_compliance_action(self, primary: str, path: str, message: dict[str, Any],
                              nonce: int | None) -> Generator[Any, Any, dict[str, Any]]:
        if nonce is None:
            nonce = (yield from self._op_compliance()).nonce
        body = yield from self._signed(primary, {**message, "nonce": nonce})
        return dict((yield self._post(path, body)))
