"""A real local HTTP server that records webhook POSTs (and a dead one that never answers)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.cv = threading.Condition()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        with self.cv:
            self.cv.wait_for(lambda: len(self.bodies) >= n, timeout)
            return list(self.bodies)


@contextmanager
def recording_server(fail_first: int = 0) -> Iterator[tuple[str, Recorder]]:
    rec = Recorder(fail_first)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with rec.cv:
                rec.attempts += 1
                failing = rec.attempts <= rec.fail_first
                if not failing:
                    rec.bodies.append(json.loads(body))
                    rec.cv.notify_all()
            self.send_response(500 if failing else 204)
            self.send_header("content-length", "0")
            self.end_headers()

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/hook", rec
    finally:
        srv.shutdown()
        srv.server_close()


@contextmanager
def dead_server() -> Iterator[str]:
    """Accepts TCP connections (the kernel's backlog) and never answers a byte."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    finally:
        s.close()
