"""Local L1 devnet: find the anvil binary installed by npm and run it on loopback.

The npm package `@foundry-rs/anvil` ships a node wrapper; the real binary sits in the platform
package (`@foundry-rs/anvil-linux-amd64/bin/anvil`, ...). npm may skip install scripts, so we
never rely on them: `find_anvil()` looks the binary up in node_modules directly.

    with Anvil() as node:          # free port on 127.0.0.1, waits until it answers
        client = node.client()     # L1Client
        deployer = node.accounts[0]

Anvil listens on port 0 and we read the real port from its "Listening on" line, so starting
many nodes in parallel never races for a port. It runs in its own session (a terminal Ctrl-C
reaches only us) but dies with us (`sequencer.procs`: SIGTERM on our death, on Linux; call
`start()` from a thread that outlives anvil), and `pid_file` records it for a later cleanup.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sequencer import procs
from sequencer.l1.client import L1Client
from sequencer.l1.errors import AnvilError, L1Unavailable, RpcError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

#: anvil's well-known development mnemonic (accounts are public: devnet only).
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
#: chain id anvil uses by default.
DEFAULT_CHAIN_ID = 31337

_REPO_ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(rb"Listening on ([0-9.]+):(\d+)")

_PLATFORM_PACKAGES = {
    ("linux", "x86_64"): "anvil-linux-amd64",
    ("linux", "amd64"): "anvil-linux-amd64",
    ("linux", "aarch64"): "anvil-linux-arm64",
    ("linux", "arm64"): "anvil-linux-arm64",
    ("darwin", "x86_64"): "anvil-darwin-amd64",
    ("darwin", "arm64"): "anvil-darwin-arm64",
    ("win32", "amd64"): "anvil-win32-amd64",
    ("win32", "x86_64"): "anvil-win32-amd64",
}


def platform_package() -> str:
    """npm platform package holding the anvil binary for this machine."""
    key = (sys.platform, platform.machine().lower())
    try:
        return "@foundry-rs/" + _PLATFORM_PACKAGES[key]
    except KeyError:
        raise AnvilError(f"anvil has no npm build for platform {key}") from None


def find_anvil(start: Path | None = None) -> Path:
    """Path of the anvil binary: $OPTROLLUP_ANVIL if set, else
    node_modules/@foundry-rs/anvil-<platform>/bin/anvil in the repository or in `start` or one
    of its parents."""
    env = os.environ.get("OPTROLLUP_ANVIL")
    if env:
        p = Path(env)
        if not p.is_file():
            raise AnvilError(f"OPTROLLUP_ANVIL={env} is not a file")
        return p
    exe = "anvil.exe" if sys.platform == "win32" else "anvil"
    rel = Path("node_modules") / platform_package() / "bin" / exe
    roots = [_REPO_ROOT]
    here = (start or Path.cwd()).resolve()
    roots += [here, *here.parents]
    for root in roots:
        p = root / rel
        if p.is_file():
            return p
    raise AnvilError(f"anvil binary not found ({rel}); run `npm ci --no-audit --no-fund` at the repository root")


class Anvil:
    """An anvil process on loopback. Use as a context manager, or `start()` / `stop()`.

    `state_path` makes the chain persistent (anvil `--state`: loaded at start if present,
    dumped on stop and every `state_interval` seconds), which is how a devnet resumes.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        chain_id: int = DEFAULT_CHAIN_ID,
        accounts: int = 10,
        balance_eth: int = 10_000,
        mnemonic: str = DEFAULT_MNEMONIC,
        block_time: float | None = None,
        hardfork: str | None = None,
        state_path: str | os.PathLike[str] | None = None,
        state_interval: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        pid_file: str | os.PathLike[str] | None = None,
        extra_args: tuple[str, ...] = (),
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.chain_id = chain_id
        self.binary = Path(binary) if binary else find_anvil()
        self.startup_timeout = startup_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="optrollup-anvil-")
        self._config_out = Path(self._tmp.name) / "config.json"
        self.log_path = Path(log_path) if log_path else Path(self._tmp.name) / "anvil.log"
        self.pid_file = Path(pid_file) if pid_file else None
        args = [
            str(self.binary),
            "--host", host,
            "--port", str(port),
            "--chain-id", str(chain_id),
            "--accounts", str(accounts),
            "--balance", str(balance_eth),
            "--mnemonic", mnemonic,
            "--config-out", str(self._config_out),
        ]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        if hardfork:
            args += ["--hardfork", hardfork]
        if state_path is not None:
            args += ["--state", str(state_path)]
            if state_interval is not None:
                args += ["--state-interval", str(state_interval)]
        self.args = [*args, *extra_args]
        self.port: int | None = None
        self.accounts: list[LocalAccount] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._reader: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise AnvilError("anvil is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Anvil:
        if self._proc is not None:
            raise AnvilError("anvil already started")
        if not os.access(self.binary, os.X_OK):
            raise AnvilError(f"{self.binary} is not executable")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = procs.popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not anvil directly
            pid_file=self.pid_file,  # SIGTERM (anvil dumps --state) if we die first
        )
        found = threading.Event()
        self._reader = threading.Thread(target=self._pump, args=(found,), name="anvil-log", daemon=True)
        self._reader.start()
        try:
            if not found.wait(self.startup_timeout) or self.port is None:
                try:  # e.g. "Address already in use" on a fixed port: say it exited
                    code = self._proc.wait(1)
                except subprocess.TimeoutExpired:
                    code = None
                if code is not None:
                    raise AnvilError(f"anvil exited with code {code}; log: {self._tail()}")
                raise AnvilError(f"anvil did not start within {self.startup_timeout}s; log: {self._tail()}")
            self._wait_ready()
            self._load_accounts()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (anvil dumps `--state` then exits), SIGKILL after `timeout`."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if self.pid_file is not None:
                procs.remove_pid_file(self.pid_file, proc.pid)
        if self._reader is not None:
            self._reader.join(2)  # EOF once the process is gone
            self._reader = None
        if proc is not None and proc.stdout:
            proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.port = None

    def close(self) -> None:
        """stop() and remove the temporary directory."""
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------------------

    def client(self, **kwargs: object) -> L1Client:
        """A new L1Client on this node."""
        return L1Client(self.url, **kwargs)  # type: ignore[arg-type]

    # -- internals ------------------------------------------------------------------------------

    def _pump(self, found: threading.Event) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            if self._log is not None and not self._log.closed:
                self._log.write(line)
                self._log.flush()
            if not found.is_set():
                m = _LISTENING.search(line)
                if m:
                    self.port = int(m.group(2))
                    found.set()
        found.set()  # process ended: unblock start()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        with L1Client(self.url, timeout=2.0, retries=0) as c:
            while True:
                if not self.running:
                    raise AnvilError(f"anvil exited with {self._proc and self._proc.returncode}; log: {self._tail()}")
                try:
                    if c.chain_id != self.chain_id:
                        raise AnvilError(f"anvil answers chain id {c.chain_id}, expected {self.chain_id}")
                    return
                except (L1Unavailable, RpcError):
                    if time.monotonic() > deadline:
                        raise AnvilError(f"anvil at {self.url} does not answer; log: {self._tail()}") from None
                    time.sleep(0.05)

    def _load_accounts(self) -> None:
        deadline = time.monotonic() + 5
        while not self._config_out.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            cfg = json.loads(self._config_out.read_text())
        except (OSError, ValueError) as exc:
            raise AnvilError(f"cannot read anvil --config-out: {exc}") from exc
        from eth_account import Account  # lazily: importing eth-account costs ~0.8 s of CPU

        self.accounts = [Account.from_key(k) for k in cfg.get("private_keys", [])]

    def _tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return "<no log>"
