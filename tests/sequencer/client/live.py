"""A real uvicorn on 127.0.0.1 (port 0) in a thread, serving the app over a Kit's node."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from sequencer.api.app import create_app
from sequencer.node import Limits
from tests.sequencer.node.kit import USERS, Kit

U = 10**6


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` on uvicorn in a thread; yields its http:// URL; stops it (and the node) after."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           ws="websockets-sansio", lifespan="on"))
    t = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not t.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=20)


class Live:
    """A funded Kit (USERS[0..5] hold 50,000 USDC, oracle feeds in) behind a live server."""

    def __init__(self, kit: Kit, app: Any, url: str) -> None:
        self.kit, self.app, self.url = kit, app, url

    @property
    def clock(self) -> Any:
        return self.kit.clock


@contextmanager
def live_node(tmp_path: Path, limits: Limits | None = None, tick_seconds: float = 0.05) -> Iterator[Live]:
    k = Kit(tmp_path, limits=limits or Limits())
    for u in USERS[:6]:
        k.fund(u, 50_000 * U)
    k.feeds()
    app = create_app(k.node, tick_seconds=tick_seconds, monotonic=k.clock)  # limits on test time
    with serve(app) as url:
        yield Live(k, app, url)
