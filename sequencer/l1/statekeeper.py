"""Where a devnet's anvil keeps its chain between runs, without stalling the node's disk.

anvil's `--state FILE --state-interval N` rewrites the whole chain (every block and transaction
since genesis: 18 MB after a few minutes of the benchmark flows, growing without bound) every N
seconds. Written to the data dir's filesystem every 5 s, that burst of dirty pages held up the
node's synced log writes for 50-68 ms every 5.05 s (the node's "slow synced log write" warnings,
exactly at anvil's interval), and with them every order waiting for its acknowledgement.

`L1StateKeeper` gives anvil a file in RAM (tmpfs, `/dev/shm`) to dump into as often as it likes,
and copies it to the data dir (`durable`) every `every` seconds with `write_synced` (1 MB synced
at a time, so the node's fsyncs never wait behind more than that), and once more after anvil
has stopped (it dumps on SIGTERM). anvil rewrites the file in place, so only a file unchanged
for a second, the same before and after the read, and whole JSON is copied (a test caught a
copy of the empty file anvil had just truncated). The RAM file's place is a function of the
data dir, so a run whose supervisor was killed (kill -9) leaves it for the next run, which
takes it if it is newer than the durable copy; a machine crash loses at most the last `every`
seconds of L1 (as before, at most 5 s). Without a usable tmpfs (another OS, or too little room) anvil dumps straight to
`durable` as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import orjson

from sequencer.store.files import write_synced

log = logging.getLogger("optrollup.devnet")

RAM_ROOT = Path("/dev/shm")
MIN_FREE = 256 << 20  # bytes of tmpfs the keeper wants free before it puts the chain there


class L1StateKeeper:
    """anvil's `--state` file in RAM, copied durably to `durable` every `every` seconds.
    Call `prepare()` before anvil starts (it then loads `anvil_path`), `start()` once it runs,
    `close()` after it stopped."""

    def __init__(self, durable: str | Path, *, every: float = 30.0, ram_root: Path | None = RAM_ROOT,
                 min_free: int = MIN_FREE) -> None:
        self.durable = Path(durable)
        self.every = every
        self.ram: Path | None = None
        if ram_root is not None and _usable(ram_root, min_free):
            key = hashlib.sha256(str(self.durable.resolve()).encode()).hexdigest()[:16]
            self.ram = ram_root / f"optrollup-l1-{key}" / self.durable.name
        self._copied: tuple[int, int] | None = None  # (size, mtime_ns) of the RAM file last copied
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def anvil_path(self) -> Path:
        """The file anvil's `--state` gets."""
        return self.ram if self.ram is not None else self.durable

    def prepare(self) -> None:
        """Before anvil starts: a RAM file newer than the durable copy (left by a run whose
        supervisor was killed, once its anvil has dumped) is made durable; otherwise the
        durable copy is put in RAM for anvil to load."""
        if self.ram is None:
            return
        self.ram.parent.mkdir(mode=0o700, exist_ok=True)
        ram, disk = _stat(self.ram), _stat(self.durable)
        if ram is not None and (disk is None or ram[1] > disk[1]):
            if self.persist(settle=0.0):  # (only a whole dump is copied)
                log.warning("L1 state: took %s, left by the last run (newer than %s)",
                            self.ram, self.durable)
                return
            log.warning("L1 state: %s, left by the last run, is not a whole dump; not taken",
                        self.ram)
        if disk is not None:
            tmp = self.ram.with_name(self.ram.name + ".tmp")
            shutil.copyfile(self.durable, tmp)
            os.replace(tmp, self.ram)
            self._copied = _stat(self.ram)
        else:
            self.ram.unlink(missing_ok=True)

    def start(self) -> None:
        """Copy the RAM file to the data dir every `every` seconds (a daemon thread)."""
        if self.ram is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="l1-state", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = min(self.every, 6.0)  # the first copy soon: a new devnet's deployment in it
        while not self._stop.wait(wait):
            wait = self.every
            try:
                self.persist()
            except OSError as exc:  # keep trying: the next copy may succeed
                log.warning("L1 state: copying %s to %s failed: %s", self.ram, self.durable, exc)

    def persist(self, settle: float = 1.0) -> bool:
        """Copy the RAM file to `durable` if it changed since the last copy and is not being
        written (unchanged for `settle` s, and the same before and after it was read). True
        if a copy was made."""
        if self.ram is None:
            return False
        for _ in range(3):
            before = _stat(self.ram)
            if before is None or before == self._copied:
                return False
            age = time.time() - before[1] / 1e9
            if age < settle:
                time.sleep(settle - age)
                continue
            data = self.ram.read_bytes()
            if _stat(self.ram) != before or len(data) != before[0]:
                continue  # anvil dumped meanwhile: read it again
            if not _whole_json(data):  # truncated for a dump not written yet: the next call
                return False
            write_synced(self.durable, [data])
            self._copied = before
            return True
        return False

    def close(self) -> None:
        """After anvil stopped: the last copy, then the RAM file goes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self.ram is None:
            return
        try:
            self.persist(settle=0.0)
        except OSError as exc:
            log.warning("L1 state: the last copy of %s failed (%s); it stays there for the "
                        "next run", self.ram, exc)
            return
        shutil.rmtree(self.ram.parent, ignore_errors=True)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _whole_json(data: bytes) -> bool:
    """True iff `data` is one whole JSON document: a file anvil has truncated for a dump but
    not yet written (or written only in part, or a dump cut short by a kill) is not. ~50 ms
    for 18 MB, once per copy."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def _usable(root: Path, min_free: int) -> bool:
    try:
        st = os.statvfs(root)
    except OSError:
        return False
    return root.is_dir() and os.access(root, os.W_OK) and st.f_bavail * st.f_frsize >= min_free
