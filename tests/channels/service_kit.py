"""Helpers of the channel-service tests and benchmark: a channel service in a thread (uvicorn on
127.0.0.1, port 0) or as a process (`python -m channels.service`), keystores, free ports, and
signing proposals by hand (to play a misbehaving peer)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eth_account import Account

from channels._app import create_app
from channels._proto import hexb
from channels._wire import trade_to_json
from channels.rules import Trade
from channels.service import ChannelService, ServiceConfig
from sequencer.core.channelmsg import ChannelState, state_digest, state_to_json

REPO = Path(__file__).resolve().parents[2]
PASSWORD_ENV = "OPTROLLUP_TEST_CHANNEL_PW"
PASSWORD = "channel-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_keystore(path: Path, secret: bytes) -> Path:
    """An encrypted keystore of `secret` (cheap KDF: tests decrypt it at every start)."""
    blob = Account.encrypt(secret, PASSWORD, kdf="pbkdf2", iterations=2)
    path.write_text(json.dumps(blob))
    return path


class Running:
    """A service in a uvicorn thread of this process."""

    def __init__(self, service: ChannelService, server: uvicorn.Server, thread: threading.Thread,
                 url: str) -> None:
        self.service, self.server, self.thread, self.url = service, server, thread, url


@contextmanager
def service_thread(data_dir: Path, secret: bytes, sequencer: str, *, account: bytes | None = None,
                   port: int = 0, **cfg: Any) -> Iterator[Running]:
    """A ChannelService behind uvicorn in a thread (its own event loop); stopped after."""
    service = ChannelService(ServiceConfig(data_dir=data_dir, sequencer=sequencer, **cfg), secret,
                             account)
    app = create_app(service)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", access_log=False))
    t = threading.Thread(target=server.run, name="channel-service", daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not t.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"channel service did not start: {app.state.startup_error!r}")
        time.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    service.public_url = url
    try:
        yield Running(service, server, t, url)
    finally:
        server.should_exit = True
        t.join(timeout=30)


class Proc:
    """`python -m channels.service` in a process group of its own."""

    def __init__(self, args: list[str], port: int, log: Path) -> None:
        self.args, self.port, self.log = args, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.p: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Proc:
        env = {**os.environ, PASSWORD_ENV: PASSWORD, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as out:
            self.p = subprocess.Popen([sys.executable, "-m", "sequencer.cli", "channels", "serve", *self.args],
                                      cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"channel service exited with {self.p.returncode}:\n"
                                   f"{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).json().get("status") == "ok":
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"channel service did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.p is not None
        if self.p.poll() is None:
            os.killpg(self.p.pid, sig)
        self.p.wait(timeout=30)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.kill(signal.SIGTERM)


def service_proc(data_dir: Path, keystore: Path, sequencer: str, port: int, log: Path,
                 *extra: str) -> Proc:
    return Proc(["--data-dir", str(data_dir), "--keystore", str(keystore), "--password-env",
                 PASSWORD_ENV, "--sequencer", sequencer, "--port", str(port), "--log-level",
                 "warning", *extra], port, log)


def proposal(domain: bytes, state: ChannelState, sign: Any, trade: Trade | None) -> dict[str, Any]:
    """The body of `POST /v1/channels/{id}/states` for `state` signed with `sign(digest)`."""
    sig = sign(state_digest(domain, state))
    return {"channelState": state_to_json(state), "signature": hexb(sig),
            "trade": None if trade is None else trade_to_json(trade)}
