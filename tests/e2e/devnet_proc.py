"""Run `optrollup devnet` as a real process and read what it prints."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from sequencer.api.auth import auth_message


class Devnet:
    """One `optrollup devnet` supervisor process; its output goes to `<data_dir>.out` (appended,
    so several runs on one data dir keep one transcript; `self.output()` is this run's part)."""

    def __init__(self, data_dir: Path, *extra: str, port: int = 0, l1_port: int = 0,
                 env: dict[str, str] | None = None, timeout: float = 120, demo_market: bool = False) -> None:
        self.data_dir = data_dir
        self.out_path = data_dir.parent / f"{data_dir.name}.out"
        self.out = open(self.out_path, "ab")
        self.offset = self.out.tell()
        self.http: httpx.Client | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sequencer.cli", "devnet", "--data-dir", str(data_dir),
             "--port", str(port), "--l1-port", str(l1_port), "--feed-seconds", "1",
             *([] if demo_market else ["--no-demo-market"]),
             # the start-up probe of `auto` (the default) spins a CPU for ~1-2 s: tests ask for it
             *([] if "--kick-disk-irq" in extra else ["--kick-disk-irq", "off"]), *extra],
            stdout=self.out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            self._ready(timeout)
        except BaseException:
            self.stop(timeout=10)
            raise

    def _ready(self, timeout: float) -> None:
        self.banner = self._wait_banner(timeout)
        self.api = re.search(r"L2 API\s+(\S+)", self.banner).group(1)
        self.l1 = re.search(r"L1 RPC\s+(\S+)", self.banner).group(1)
        self.rollup = re.search(r"Rollup\s+(\S+)", self.banner).group(1)
        self.bridge = re.search(r"Bridge\s+(\S+)", self.banner).group(1)
        self.usdc = re.search(r"USDC\s+(\S+)", self.banner).group(1)
        self.keys = re.findall(r"key (0x[0-9a-f]{64})", self.banner)
        entry = re.search(r"^\s+orders\s+(http\S+)", self.banner, re.MULTILINE)
        self.order_url = entry.group(1) if entry else self.api  # --ingress-workers N: the gateways
        self.http = httpx.Client(base_url=self.api, timeout=10)
        self.info = self.http.get("/v1/info").json()

    def output(self) -> str:
        """What this run printed so far."""
        with open(self.out_path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def _wait_banner(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if "Ctrl-C stops everything" in text:
                return text
            if self.proc.poll() is not None:
                raise RuntimeError(f"devnet exited {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"devnet not ready in {timeout}s:\n{self.output()[-3000:]}")

    def child_pids(self) -> dict[str, int]:
        """The supervised processes, from the devnet's pid files (name -> pid)."""
        out = {}
        for p in (self.data_dir / "run").glob("*.pid"):
            try:
                out[p.stem] = json.loads(p.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                pass
        return out

    def kill(self) -> None:
        """kill -9 the supervisor only (its children are left to their own devices)."""
        self.proc.kill()
        self.proc.wait(10)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sequencer.cli", *args], capture_output=True,
                              text=True, timeout=timeout)

    def sign(self, primary: str, message: dict, key: str) -> str:
        msg = encode_typed_data(domain_data=self.info["eip712"]["domain"],
                                message_types={primary: self.info["eip712"]["types"][primary]},
                                message_data=message)
        return "0x" + bytes(Account.from_key(key).sign_message(msg).signature).hex()

    def auth(self, key: str) -> dict:
        acct = Account.from_key(key)
        ts = int(time.time())
        sig = acct.sign_message(encode_defunct(auth_message(bytes.fromhex(acct.address[2:]), ts))).signature
        return {"X-Optrollup-Account": acct.address, "X-Optrollup-Timestamp": str(ts),
                "X-Optrollup-Signature": "0x" + bytes(sig).hex()}

    def wait(self, what: str, fn, timeout: float = 60):  # noqa: ANN001, ANN201
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

    def stop(self, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.http is not None:
            self.http.close()
        self.out.close()
        return self.proc.returncode
