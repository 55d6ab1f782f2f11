"""The input log: every accepted request, in order, as opaque bytes numbered from 0.

`InputLog` is the storage; `GroupCommitter` is the write path: callers submit records in
processing order and get a future per record; one writer thread drains whatever is pending
into a single synced LevelDB write batch, so concurrent requests share one fsync. A future
resolves only after its record is on disk: acknowledge a request only then.

Layout: the records of one write are stored as groups of up to `GROUP_RECORDS` consecutive
records, each group one LevelDB value under `log/` + its first record's seq (8 bytes, big
endian): `0xC1`, the record count (u32), each record's length (u32 each), then the records.
One put per group rather than one per record: plyvel releases the GIL around every put, and
with a busy event loop each re-acquisition can wait a whole switch interval (measured under
the ladder flow: building a 77-record batch took longer than its synced write). A value that
does not start with `0xC1` (a byte msgpack never uses) is one record under its own seq, as
logs written before groups stored every record: those are still read.
"""

from __future__ import annotations

import heapq
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import plyvel

from sequencer.store.db import StoreError

PREFIX = b"log/"
GROUP = 0xC1  # first byte of a group value; never the first byte of a msgpack record
GROUP_RECORDS = 1024  # records per group value at most (a write of more stores several)
_U32 = struct.Struct(">I")


def _key(seq: int) -> bytes:
    return PREFIX + seq.to_bytes(8, "big")


def pack_group(records: list[bytes]) -> bytes:
    """One group value: 0xC1, count (u32), the lengths (u32 each), the records."""
    n = len(records)
    return b"".join((bytes((GROUP,)), struct.pack(f">I{n}I", n, *map(len, records)), *records))


def unpack_group(value: bytes) -> list[bytes]:
    """The records of a value stored under one key: a group's, or a legacy single record."""
    if not value or value[0] != GROUP:
        return [value]
    n = _U32.unpack_from(value, 1)[0] if len(value) >= 5 else 0
    if len(value) < 5 + 4 * n or n == 0:
        raise StoreError(f"input log group of {len(value)} bytes is cut short or empty")
    lengths = struct.unpack_from(f">{n}I", value, 5)
    out, at = [], 5 + 4 * n
    for length in lengths:
        out.append(value[at:at + length])
        at += length
    if at != len(value):
        raise StoreError(f"input log group of {n} records is {len(value)} bytes, expected {at}")
    return out


def group_count(value: bytes) -> int:
    """How many records a stored value holds, without slicing them out."""
    return _U32.unpack_from(value, 1)[0] if value and value[0] == GROUP else 1


class InputLog:
    """Append-only records numbered from 0, contiguous, stored in groups (see the module)."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db
        last = next(self._db.iterator(prefix=PREFIX, reverse=True), None)
        self.next_seq = (int.from_bytes(last[0][len(PREFIX):], "big") + group_count(last[1])
                         if last else 0)

    def write(self, first_seq: int, records: list[bytes], *, sync: bool = True,
              extra: list[tuple[bytes, bytes]] = ()) -> None:
        """Write `records` at first_seq.. and the `extra` puts (keys outside the log prefix,
        e.g. a sealed block) in one atomic batch, synced by default."""
        if first_seq != self.next_seq:
            raise StoreError(f"log gap: writing at {first_seq}, next is {self.next_seq}")
        for key, _ in extra:
            if key.startswith(PREFIX):
                raise StoreError("extra puts may not write into the log")
        with self._db.write_batch(sync=sync) as wb:
            for i in range(0, len(records), GROUP_RECORDS):
                wb.put(_key(first_seq + i), pack_group(records[i:i + GROUP_RECORDS]))
            for key, value in extra:
                wb.put(key, value)
        self.next_seq += len(records)

    def read(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """(seq, record) from `start` to the end, in order."""
        # the group holding `start` begins at the last key <= start
        first = next(self._db.iterator(start=PREFIX, stop=_key(start) + b"\0", reverse=True,
                                       include_value=False), None)
        begin = first if first is not None else _key(start)
        for key, value in self._db.iterator(start=begin, stop=_key(2**64 - 1) + b"\xff"):
            seq = int.from_bytes(key[len(PREFIX):], "big")
            if seq + group_count(value) <= start:
                continue
            for i, rec in enumerate(unpack_group(value)):
                if seq + i >= start:
                    yield seq + i, rec


class GroupCommitter:
    """Batches appends from any thread into synced writes by one writer thread.

    `submit` assigns sequence numbers in call order (callers serialise processing, so log
    order is processing order) and returns a Future that resolves to the seq once durable, or
    to the write's exception. Hooks, called on the writer thread once per synced batch rather
    than once per record: `on_sync(seconds, records)` observes each fsync (metrics),
    `on_queue(seconds)` how long the batch's oldest record waited from its append to the start
    of the write (behind the previous write, then the writer thread's wake-up),
    `on_durable(last_seq)` says every record up to `last_seq` is durable, `on_error(exc)` says
    a write failed (every later record fails too).
    """

    def __init__(self, log: InputLog, *, max_batch: int = 8192,
                 on_sync: Callable[[float, int], None] | None = None,
                 on_queue: Callable[[float], None] | None = None,
                 on_durable: Callable[[int], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self._log = log
        self._max_batch = max_batch
        self._on_sync, self._on_queue = on_sync, on_queue
        self._oldest_t = 0.0  # perf_counter() at the append of the oldest pending record
        self._on_durable, self._on_error = on_durable, on_error
        self._cond = threading.Condition()
        self._pending: list[tuple[bytes, list[tuple[bytes, bytes]], Future[int] | None]] = []  # None: `append`
        self._next = log.next_seq
        self._durable_next = log.next_seq  # every record below this seq is durable
        self._seq_waiters: list[tuple[int, int, Future[int]]] = []  # when_durable, a heap
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
        """`submit`, also returning the seq the record gets."""
        fut: Future[int] = Future()
        return self._enqueue(record, extra, fut), fut

    def append(self, record: bytes, extra: list[tuple[bytes, bytes]] = ()) -> int:
        """`submit` without a future: the seq the record gets. Its durability (or the write's
        failure) shows in `on_durable` / `on_error`, or in `when_durable(seq)` on demand: for
        a caller that waits on those, a Future (and its lock) per record is pure overhead."""
        return self._enqueue(record, extra, None)

    def _enqueue(self, record: bytes, extra: list[tuple[bytes, bytes]],
                 fut: Future[int] | None) -> int:
        with self._cond:
            if self._closed:
                raise StoreError("input log is closed")
            if self._error is not None:
                raise StoreError(f"input log failed earlier: {self._error}")
            if not self._pending:
                self._oldest_t = time.perf_counter()
            self._pending.append((record, list(extra) if extra else [], fut))
            seq = self._next
            self._next += 1
            self._cond.notify()
        return seq

    def when_durable(self, seq: int) -> Future[int]:
        """A future that resolves to `seq` once record `seq` (already submitted) is durable,
        or to the StoreError of the write that failed it."""
        fut: Future[int] = Future()
        with self._cond:
            if seq < self._durable_next:
                fut.set_result(seq)
            elif self._error is not None:
                fut.set_exception(StoreError(f"input log write failed: {self._error}"))
            else:
                heapq.heappush(self._seq_waiters, (seq, id(fut), fut))
        return fut

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                t0 = time.perf_counter()
                queued = t0 - self._oldest_t
                self._oldest_t = t0  # what a cut-off batch leaves waits from here (a bound)
            first = self._log.next_seq
            try:
                self._log.write(first, [r for r, _, _ in batch],
                                extra=[kv for _, ex, _ in batch for kv in ex])
            except BaseException as exc:  # noqa: BLE001 - every waiter must learn of it
                with self._cond:
                    self._error = exc
                    failed = batch + self._pending
                    self._pending = []
                    waiting, self._seq_waiters = self._seq_waiters, []
                if self._on_error is not None:
                    self._on_error(exc)
                for fut in [f for _, _, f in failed if f is not None] + [f for _, _, f in waiting]:
                    fut.set_exception(StoreError(f"input log write failed: {exc}"))
                continue
            self.syncs += 1
            last = first + len(batch) - 1
            ready = []
            with self._cond:
                self._durable_next = last + 1
                while self._seq_waiters and self._seq_waiters[0][0] <= last:
                    ready.append(heapq.heappop(self._seq_waiters))
            if self._on_queue is not None:
                self._on_queue(queued)
            if self._on_sync is not None:
                self._on_sync(time.perf_counter() - t0, len(batch))
            if self._on_durable is not None:
                self._on_durable(last)
            for i, (_, _, fut) in enumerate(batch):
                if fut is not None:
                    fut.set_result(first + i)
            for seq, _, fut in ready:
                fut.set_result(seq)

    def close(self) -> None:
        """Flush what is pending, then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
