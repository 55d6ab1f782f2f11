"""Run `optrollup devnet` as a real process and read what it prints."""

from __future__ import annotations

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
    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.out_path = data_dir.parent / f"{data_dir.name}.out"
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sequencer.cli", "devnet", "--data-dir", str(data_dir),
             "--port", "0", "--l1-port", "0", "--feed-seconds", "1", *extra],
            stdout=self.out, stderr=subprocess.STDOUT)
        self.banner = self._wait_banner(120)
        self.api = re.search(r"L2 API\s+(\S+)", self.banner).group(1)
        self.l1 = re.search(r"L1 RPC\s+(\S+)", self.banner).group(1)
        self.rollup = re.search(r"Rollup\s+(\S+)", self.banner).group(1)
        self.bridge = re.search(r"Bridge\s+(\S+)", self.banner).group(1)
        self.usdc = re.search(r"USDC\s+(\S+)", self.banner).group(1)
        self.keys = re.findall(r"key (0x[0-9a-f]{64})", self.banner)
        self.http = httpx.Client(base_url=self.api, timeout=10)
        self.info = self.http.get("/v1/info").json()

    def _wait_banner(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.out_path.read_text(errors="replace")
            if "Ctrl-C stops everything" in text:
                return text
            if self.proc.poll() is not None:
                raise RuntimeError(f"devnet exited {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"devnet not ready in {timeout}s:\n{self.out_path.read_text()[-3000:]}")

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

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.http.close()
        self.out.close()
        return self.proc.returncode
