"""The node's page (issue 16): static files under sequencer/api/page/, served at `/` (index.html)
and `/page/...` (ES modules, CSS), with no build step and nothing fetched from elsewhere; its
chart library, uPlot (pinned in package.json, installed by `npm ci`), served from node_modules at
`/page/vendor/uPlot.esm.js` and `/page/vendor/uPlot.min.css` (404 when it is not installed: the
page then shows a note in place of its charts); and the read-only routes its views show that no
other part of the API answers:

- `GET /v1/blocks/{number}/status`: a block's L1 batch status, from the node's L1 follower;
- `GET /v1/channels[?account=A&status=open|closed|concluded&limit=N]`: `{"channels": [...]}`,
  the rollup's state channels (as GET /v1/channels/{id} answers each), newest first;
- `GET /v1/accounts/{address}/withdrawals[?limit=N]`: `{"withdrawals": [...]}`, the account's
  sealed signed withdrawals, nonce 0 up, newest first, each as GET /v1/withdrawals/{address}/{nonce}
  answers it (public, as that route is; a page listing them gets no 404s to probe with);
- `GET /v1/solvency`: what the rollup owes against what the Bridge holds, as this node sees it:
  `{"block", "collateralTotal", "shortfall", "owed", "insuranceFund", "l1MessageCursor",
  "l1": null | {"bridge", "collateralToken", "bridgeBalance", "covered", "error"}}`, where
  `owed` = collateralTotal − shortfall (open channels' deposits are part of collateralTotal) and
  `covered` = bridgeBalance >= owed. The Bridge also holds unpaid withdrawals and deposits not
  credited yet, so this is a lower bound on what it must hold; the complete check, replayed
  from L1 alone, is `optrollup monitor`'s solvency alert (sequencer/monitor/_l1.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

from cext import parse_address, to_checksum
from sequencer.api import views, wire
from sequencer.api.channels import channel_json
from sequencer.api.liquidation import insurance_json
from sequencer.api.withdrawals import withdrawal_proof_status
from sequencer.core.channelstate import STATUS
from sequencer.core.eip712 import Withdraw
from sequencer.errors import InvalidRequest, NotFound
from sequencer.l1 import Contract, L1Error, L1Unavailable

PAGE_DIR = Path(__file__).with_name("page")
# the page's npm packages: node_modules of the repository, or $OPTROLLUP_PAGE_VENDOR (a
# node_modules directory elsewhere); URL name under /page/vendor/ -> path in node_modules
VENDOR_ENV = "OPTROLLUP_PAGE_VENDOR"
VENDOR_FILES = {"uPlot.esm.js": "uplot/dist/uPlot.esm.js", "uPlot.min.css": "uplot/dist/uPlot.min.css"}
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}


def vendor_dir() -> Path:
    """The node_modules directory the page's vendored packages are served from."""
    return Path(os.environ.get(VENDOR_ENV) or Path(__file__).resolve().parents[2] / "node_modules")


class _PageFiles(StaticFiles):
    """StaticFiles with fixed content types (the host's mime table may lack or differ on .js,
    and a browser refuses an ES module served as anything but JavaScript)."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Any,
                      status_code: int = 200) -> Any:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media = MEDIA.get(Path(str(full_path)).suffix)
        if media is not None and response.status_code != 304:
            response.headers["content-type"] = media
        return response


def block_status(node: Any, number: int) -> dict[str, Any]:
    """`sealed` (not in a batch L1 knows of), `posted` (in L1 batch N, not final yet) or
    `final` (the batch is final on L1; block 0, the genesis the Rollup was deployed with, is
    always final, batch null); 404 for a block that is not durable yet."""
    if not 0 <= number < 2**64:
        raise InvalidRequest(f"block number must be in [0, 2^64), got {number}", code="invalid_number")
    if number > node.durable_head() or node.block(number) is None:
        raise NotFound(f"block {number} is not sealed (head is {node.head.number})",
                       code="block_not_found")
    l1 = node.l1
    if number == 0:  # genesis: committed by the Rollup's deployment, never in a batch
        return {"block": 0, "status": "final", "batch": None}
    batch = l1.view.batch_of(number) if l1 is not None else None
    if batch is None:
        return {"block": number, "status": "sealed", "batch": None}
    final = batch.index < l1.view.final_count
    return {"block": number, "status": "final" if final else "posted", "batch": batch.index}


def list_channels(node: Any, account: str | None, status: str | None, limit: int) -> dict[str, Any]:
    """The channels (of `account`, as party a or b, or signer), newest first."""
    who = None if account is None else wire.address(account, "account")
    if status is not None and status not in STATUS.values():
        raise InvalidRequest(f"status must be one of {sorted(STATUS.values())}, got {status!r}",
                             code="invalid_status")
    out = []
    for cid, c in node.core.engine.state.channels.items():
        o = c.open
        if who is not None and who not in (o.a, o.b, o.signerA, o.signerB):
            continue
        if status is not None and STATUS[c.status] != status:
            continue
        out.append(channel_json(cid, c))
    out.sort(key=lambda c: c["openedAt"], reverse=True)
    return {"channels": out[:max(1, min(limit, 1000))]}


L1_TIMEOUT_S = 3.0
CACHE_S = 5.0


class Solvency:
    """`GET /v1/solvency`; the Bridge's balance is read from L1 at most every CACHE_S seconds."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.cached: tuple[float, int | None, str | None] | None = None

    async def bridge_balance(self, l1: Any, bridge: str, token: str) -> tuple[int | None, str | None]:
        now = time.monotonic()
        if self.cached is not None and now - self.cached[0] < CACHE_S:
            return self.cached[1], self.cached[2]
        erc20 = Contract.at(l1.client, "MockUSDC", token)  # the ERC-20 ABI the monitor reads it with
        try:
            balance = await asyncio.wait_for(asyncio.to_thread(erc20.call, "balanceOf", bridge), L1_TIMEOUT_S)
            got: tuple[int | None, str | None] = (int(balance), None)
        except (L1Error, L1Unavailable, TimeoutError) as exc:  # L1 down, slow, reverting: shown, not an API error
            got = (None, f"reading the Bridge's balance failed: {type(exc).__name__}: {exc}"[:300])
        self.cached = (now, *got)
        return got

    async def json(self) -> dict[str, Any]:
        node = self.node
        st = node.core.engine.state
        owed = st.collateral_total - st.shortfall
        out: dict[str, Any] = {
            "block": node.durable_head(), "collateralTotal": views.money(st.collateral_total),
            "shortfall": views.money(st.shortfall), "owed": views.money(owed),
            "insuranceFund": insurance_json(node.insurance()),
            "l1MessageCursor": node.l1_message_cursor, "l1": None}
        l1 = node.l1  # the node's L1 follower (sequencer.node.l1follower), if it follows L1
        cfg = getattr(l1, "settings", None)
        if cfg is not None and getattr(l1, "client", None) is not None:
            bridge, token = to_checksum(parse_address(cfg.bridge)), to_checksum(parse_address(cfg.collateral_token))
            balance, error = await self.bridge_balance(l1, bridge, token)
            out["l1"] = {"bridge": bridge, "collateralToken": token,
                         "bridgeBalance": None if balance is None else views.money(balance),
                         "covered": None if balance is None else balance >= owed, "error": error}
        return out


def add_page_routes(app: FastAPI, api: Any) -> None:
    """`/` (the page), `/page/...` (its assets), `GET /v1/blocks/{number}/status`,
    `GET /v1/channels` and `GET /v1/solvency`."""
    solvency = app.state.solvency = Solvency(api.node)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", media_type=MEDIA[".html"],
                            headers={"cache-control": "no-cache"})

    vendor = vendor_dir()

    @app.get("/page/vendor/{name}", include_in_schema=False)
    async def vendor_file(name: str) -> FileResponse:
        rel = VENDOR_FILES.get(name)
        if rel is None or not (vendor / rel).is_file():
            raise NotFound(f"/page/vendor/{name} is not installed (run `npm ci` at the repository root)",
                           code="not_found")
        return FileResponse(vendor / rel, media_type=MEDIA[Path(name).suffix])

    @app.get("/v1/blocks/{number}/status")
    async def get_block_status(number: int) -> Any:
        """A block's L1 status: `{"block", "status": "sealed"|"posted"|"final", "batch": N|null}`
        (as the node's L1 follower sees L1; `sealed` on a node that does not follow L1)."""
        return block_status(api.node, number)

    @app.get("/v1/channels")
    async def get_channels(account: str | None = None, status: str | None = None,
                           limit: int = 100) -> Any:
        """The rollup's state channels, newest first: all, or those where `account` is a party
        or a signer, optionally of one `status` (open, closed, concluded)."""
        return list_channels(api.node, account, status, limit)

    @app.get("/v1/accounts/{address}/withdrawals")
    async def get_withdrawals(address: str, limit: int = 50) -> Any:
        """The account's sealed signed withdrawals (nonces 0, 1, ... up to the first not sealed),
        newest first, at most `limit`: status, proof and (once final) the finalize call."""
        node = api.node
        a = wire.address(address, "address")
        found = []
        nonce = 0
        while (got := node.withdrawal_by_nonce(a, nonce)) is not None:
            found.append(got)
            nonce += 1
        out = [await withdrawal_proof_status(api, got, node.digest(Withdraw(*got[2:])))
               for got in reversed(found[-max(1, min(limit, 1000)):])]
        return {"withdrawals": out}

    @app.get("/v1/solvency")
    async def get_solvency() -> Any:
        """Σ collateral − shortfall (what L2 owes) against the Bridge's token balance on L1."""
        return await solvency.json()

    app.mount("/page", _PageFiles(directory=PAGE_DIR), name="page")
