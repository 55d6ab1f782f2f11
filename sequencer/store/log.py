"""The input log: every accepted request, in order, as opaque bytes under an 8-byte sequence.

`InputLog` is the storage; `GroupCommitter` is the write path: callers submit records in
processing order and get a future per record; one writer thread drains whatever is pending
into a single synced LevelDB write batch, so concurrent requests share one fsync. A future
resolves only after its record is on disk: acknowledge a request only then.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import plyvel

from sequencer.store.db import StoreError

PREFIX = b"log/"


def _key(seq: int) -> bytes:
    return PREFIX + seq.to_bytes(8, "big")


class LogBatch:
    """Records (and the puts that land with them) gathered into one LevelDB write batch as
    they are submitted, so the thread that commits it makes one call (the write, without the
    GIL) instead of a Python call per put. Not thread-safe: its owner serialises `add`."""

    __slots__ = ("wb", "first", "count")

    def __init__(self, wb: plyvel.WriteBatch) -> None:
        self.wb, self.first, self.count = wb, -1, 0

    def add(self, seq: int, record: bytes, extra: list[tuple[bytes, bytes]] = ()) -> None:
        """Record `seq` (the next after the ones added) and its `extra` puts; StoreError, with
        nothing added, for an extra key inside the log."""
        if self.count and seq != self.first + self.count:
            raise StoreError(f"log gap in a batch: {seq} after {self.first + self.count - 1}")
        self.add_extra(extra)
        self.wb.put(_key(seq), record)
        if not self.count:
            self.first = seq
        self.count += 1

    def add_extra(self, extra: list[tuple[bytes, bytes]]) -> None:
        if any(key.startswith(PREFIX) for key, _ in extra):
            raise StoreError("extra puts may not write into the log")
        for key, value in extra:
            self.wb.put(key, value)


class InputLog:
    """Append-only records keyed by sequence number (from 0, contiguous)."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db
        last = next(self._db.iterator(prefix=PREFIX, reverse=True, include_value=False), None)
        self.next_seq = int.from_bytes(last[len(PREFIX):], "big") + 1 if last else 0

    def batch(self, *, sync: bool = True) -> LogBatch:
        """An empty write batch (synced when committed, by default) for records from
        `next_seq` on (see `LogBatch`, `commit`)."""
        return LogBatch(self._db.write_batch(sync=sync))

    def commit(self, batch: LogBatch) -> None:
        """Write `batch` atomically; its records must start at next_seq."""
        if batch.count and batch.first != self.next_seq:
            raise StoreError(f"log gap: writing at {batch.first}, next is {self.next_seq}")
        batch.wb.write()
        self.next_seq += batch.count

    def write(self, first_seq: int, records: list[bytes], *, sync: bool = True,
              extra: list[tuple[bytes, bytes]] = ()) -> None:
        """Write `records` at first_seq.. and the `extra` puts (keys outside the log prefix,
        e.g. a sealed block) in one atomic batch, synced by default."""
        if first_seq != self.next_seq:
            raise StoreError(f"log gap: writing at {first_seq}, next is {self.next_seq}")
        b = self.batch(sync=sync)
        b.add_extra(extra)
        for i, rec in enumerate(records):
            b.add(first_seq + i, rec)
        self.commit(b)

    def read(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """(seq, record) from `start` to the end, in order."""
        for key, value in self._db.iterator(start=_key(start), stop=_key(2**64 - 1) + b"\xff"):
            yield int.from_bytes(key[len(PREFIX):], "big"), value


class GroupCommitter:
    """Batches appends from any thread into synced writes by one writer thread.

    `submit` assigns sequence numbers in call order (callers serialise processing, so log
    order is processing order), puts the record into the open write batch right away (a C
    call on the caller's thread) and returns a Future that resolves to the seq once durable,
    or to the write's exception. The writer takes whole batches and writes each with one call
    that releases the GIL: under load it used to wait for the GIL before every put (a synced
    write of ~70 records took 14 ms of wall time for 0.5 ms of CPU, benchmarks/README.md).
    Hooks, called on the writer thread once per synced batch rather than once per record:
    `on_sync(seconds, records)` observes each fsync (metrics), `on_durable(last_seq)` says
    every record up to `last_seq` is durable, `on_error(exc)` says a write failed (every later
    record fails too).
    """

    def __init__(self, log: InputLog, *, max_batch: int = 8192,
                 on_sync: Callable[[float, int], None] | None = None,
                 on_durable: Callable[[int], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self._log = log
        self._max_batch = max_batch
        self._on_sync = on_sync
        self._on_durable, self._on_error = on_durable, on_error
        self._cond = threading.Condition()
        # filled batches in seq order, each with its records' futures; the last one is open
        self._batches: deque[tuple[LogBatch, list[Future[int]]]] = deque()
        self._next = log.next_seq
        self._closed = False
        self._error: BaseException | None = None
        self.syncs = 0
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    @property
    def next_seq(self) -> int:
        """The seq the next submitted record will get."""
        with self._cond:
            return self._next

    def submit(self, record: bytes, extra: list[tuple[bytes, bytes]] = ()) -> Future[int]:
        """Queue `record` (and `extra` puts to land atomically with it); the future resolves
        to its seq once durable."""
        return self.submit_seq(record, extra)[1]

    def submit_seq(self, record: bytes, extra: list[tuple[bytes, bytes]] = ()
                   ) -> tuple[int, Future[int]]:
        """`submit`, also returning the seq the record gets. StoreError, with no seq used, for
        a closed or failed log or an extra put into the log's keys."""
        fut: Future[int] = Future()
        with self._cond:
            if self._closed:
                raise StoreError("input log is closed")
            if self._error is not None:
                raise StoreError(f"input log failed earlier: {self._error}")
            if not self._batches or len(self._batches[-1][1]) >= self._max_batch:
                self._batches.append((self._log.batch(), []))
            batch, futures = self._batches[-1]
            seq = self._next
            batch.add(seq, record, extra)
            futures.append(fut)
            self._next += 1
            self._cond.notify()
        return seq, fut

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._batches and not self._closed:
                    self._cond.wait()
                if not self._batches and self._closed:
                    return
                batch, futures = self._batches.popleft()  # submitters open a new one
            first = batch.first
            t0 = time.perf_counter()
            try:
                self._log.commit(batch)
            except BaseException as exc:  # noqa: BLE001 - every waiter must learn of it
                with self._cond:
                    self._error = exc
                    failed = futures + [f for _, fs in self._batches for f in fs]
                    self._batches.clear()
                if self._on_error is not None:
                    self._on_error(exc)
                for fut in failed:
                    fut.set_exception(StoreError(f"input log write failed: {exc}"))
                continue
            self.syncs += 1
            if self._on_sync is not None:
                self._on_sync(time.perf_counter() - t0, len(futures))
            if self._on_durable is not None:
                self._on_durable(first + len(futures) - 1)
            for i, fut in enumerate(futures):
                fut.set_result(first + i)

    def close(self) -> None:
        """Flush what is pending, then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
