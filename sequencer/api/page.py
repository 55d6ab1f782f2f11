"""The node's page (issue 16): static files under sequencer/api/page/, served at `/` (index.html)
and `/page/...` (ES modules, CSS), with no build step and nothing fetched from elsewhere; and the
read-only `GET /v1/blocks/{number}/status` the chain view shows (a block's L1 batch status, from
the node's L1 follower)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

from sequencer.errors import InvalidRequest, NotFound

PAGE_DIR = Path(__file__).with_name("page")
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}


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
    `final` (the batch is final on L1); 404 for a block that is not durable yet."""
    if not 0 <= number < 2**64:
        raise InvalidRequest(f"block number must be in [0, 2^64), got {number}", code="invalid_number")
    if number > node.durable_head() or node.block(number) is None:
        raise NotFound(f"block {number} is not sealed (head is {node.head.number})",
                       code="block_not_found")
    l1 = node.l1
    batch = l1.view.batch_of(number) if l1 is not None else None
    if batch is None:
        return {"block": number, "status": "sealed", "batch": None}
    final = batch.index < l1.view.final_count
    return {"block": number, "status": "final" if final else "posted", "batch": batch.index}


def add_page_routes(app: FastAPI, api: Any) -> None:
    """`/` (the page), `/page/...` (its assets) and `GET /v1/blocks/{number}/status`."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", media_type=MEDIA[".html"],
                            headers={"cache-control": "no-cache"})

    @app.get("/v1/blocks/{number}/status")
    async def get_block_status(number: int) -> Any:
        """A block's L1 status: `{"block", "status": "sealed"|"posted"|"final", "batch": N|null}`
        (as the node's L1 follower sees L1; `sealed` on a node that does not follow L1)."""
        return block_status(api.node, number)

    app.mount("/page", _PageFiles(directory=PAGE_DIR), name="page")
