"""Compliance over HTTP (sequencer.core.compliance; docs/compliance.md):

- `POST /v1/admin/freeze` `{"freeze": {account, nonce}, "signature"}` and `POST
  /v1/admin/unfreeze` `{"unfreeze": {account, nonce}, "signature"}`: operator-signed EIP-712
  `Freeze` / `Unfreeze` (block txs). A freeze answers `{"status": "frozen", "account",
  "frozenAt", "cancelled": [orderHash...], "complianceNonce"}` (the open orders it cancelled;
  `complianceNonce` is the next one), an unfreeze `{"status": "unfrozen", "account",
  "complianceNonce"}`.
- `POST /v1/admin/deny` `{"denyL1": {l1Address, denied, nonce}, "signature"}`: operator-signed
  deny-list update; answers `{"status": "denied"|"allowed", "l1Address", "complianceNonce"}`.
- `GET /v1/compliance` (public: all of it is on L1 anyway) answers `{"complianceNonce",
  "operator", "frozen": [{"account", "frozenAt"}], "denied": [{"l1Address", "deniedAt"}]}`.
- `GET /v1/accounts/{address}/statement?from=&to=` (auth headers, like the account view):
  the account's statement for blocks from..to (default 1..the newest durable block) as CSV
  (sequencer.core.statement.COLUMNS), built by replaying the node's sealed blocks.

The signed writes are refused with the state transition's codes (signer_mismatch for a
signature not by the operator, bad_compliance_nonce, account_already_frozen, ...).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from cext import to_checksum
from sequencer.api import schemas, views, wire
from sequencer.core.eip712 import FIELDS, DenyL1, FreezeAccount, UnfreezeAccount
from sequencer.core.statement import to_csv
from sequencer.errors import InvalidRequest, NotFound, OptrollupError

ROUTES = {"/v1/admin/freeze": ("freeze", "Freeze", FreezeAccount),
          "/v1/admin/unfreeze": ("unfreeze", "Unfreeze", UnfreezeAccount),
          "/v1/admin/deny": ("denyL1", "DenyL1", DenyL1)}


def _body_schema(key: str, primary: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {key: schemas.message(primary),
                                               "signature": {"type": "string",
                                                             "pattern": "^0[xX][0-9a-fA-F]{130}$"}},
              "required": [key, "signature"], "additionalProperties": False}
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}


def add_compliance_routes(app: FastAPI, api: Any) -> None:
    """Mount the compliance routes on `app` (`api` is sequencer.api.app.Api)."""
    node = api.node

    async def submit(msg: Any, sig: bytes) -> Any:
        # no per-account budget: the message names the account acted on, not its signer
        [result] = await node.submit([(msg, sig)])
        if isinstance(result, OptrollupError):
            raise result
        return result

    def nonce() -> str:
        return str(node.core.engine.state.compliance_nonce)

    def route(path: str, key: str, primary: str, cls: type) -> None:
        async def post(request: Request) -> Any:
            msg_json, sig = wire.signed(await api.body(request), key)
            msg = wire.message(msg_json, key, FIELDS[primary], cls)
            tx, cancelled = await submit(msg, sig)
            if isinstance(msg, FreezeAccount):
                return {"status": "frozen", "account": to_checksum(msg.account),
                        "frozenAt": node.core.engine.state.frozen.get(msg.account),
                        "cancelled": [views.h(d) for d in cancelled], "complianceNonce": nonce()}
            if isinstance(msg, UnfreezeAccount):
                return {"status": "unfrozen", "account": to_checksum(msg.account),
                        "complianceNonce": nonce()}
            return {"status": "denied" if msg.denied else "allowed",
                    "l1Address": to_checksum(msg.l1Address), "complianceNonce": nonce()}

        post.__name__ = f"post_admin_{key}"
        post.__doc__ = f"Operator-signed {primary} (a block transaction; docs/compliance.md)."
        app.post(path, openapi_extra=_body_schema(key, primary))(post)

    for path, (key, primary, cls) in ROUTES.items():
        route(path, key, primary, cls)

    @app.get("/v1/compliance")
    async def get_compliance(request: Request) -> Any:
        """The operator's next compliance nonce, the frozen accounts and the L1 deny list."""
        st = node.core.engine.state
        return {"complianceNonce": nonce(), "operator": to_checksum(st.config.operator),
                "frozen": [{"account": to_checksum(a), "frozenAt": t} for a, t in st.frozen.items()],
                "denied": [{"l1Address": to_checksum(a), "deniedAt": t}
                           for a, t in st.denied.items()]}

    @app.get("/v1/accounts/{address}/statement")
    async def get_statement(address: str, request: Request) -> Response:
        """The account's statement as CSV: trades with fees, deposits, withdrawals,
        settlements, liquidations, channel opens and closes, with a running balance."""
        a = api.authed_as(request, address)
        q = request.query_params
        head = node.durable_head()
        first = _block_param(q.get("from"), "from", 1)
        last = _block_param(q.get("to"), "to", head)
        if last > head:
            raise NotFound(f"block {last} is not sealed (the newest durable block is {head})",
                           code="block_not_found")
        if first < 1 or first > last + 1:
            raise InvalidRequest(f"statement range from={first} to={last}: need 1 <= from <= "
                                 "to + 1", code="bad_range")
        st = await asyncio.get_running_loop().run_in_executor(
            None, statement, node, a, first, last)
        name = f"statement-{to_checksum(a)}-{first}-{last}.csv"
        return Response(to_csv(st), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _block_param(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or len(value) > 19:
        raise InvalidRequest(f"{name} must be a block number, got {value!r}", code="bad_range")
    return int(value)


def statement(node: Any, account: bytes, first: int, last: int) -> Any:
    """The statement of `account` over the node's sealed blocks (runs off the event loop: the
    block store is read-only here, and the replay has its own state)."""
    from sequencer.audit.sources import build_statement

    def block(n: int) -> Any:
        got = node.store.get(n)
        return None if got is None else got[0]

    return build_statement(node.cfg.genesis, block, account, first, last)
