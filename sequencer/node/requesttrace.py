"""Where a slow write request's time went.

The HTTP front (`sequencer.api.fastpath.FastWrites`) opens a trace per write request (`begin`);
the API and the node mark the end of each stage on it (`mark`, a no-op outside a trace):

    read    the body read and parsed            decode  wire decoding, up to Node.submit
    verify  digests and signer recovery         tick    the block-time check (a seal, if due)
    apply   the engine, the log record queued   queue   waiting for the log write to start
    fsync   the synced write of its batch       wake    the event loop back on the request
    answer  rendering and sending (the end)

`RequestStages.observe` sums a sample of the requests' stages (the mean of each) and counts
a request slower than its threshold by the stage that took longest
(`optrollup_slow_requests_total{stage}`), logging it, every stage in ms, at most once a second.
The node opens traces only with OPTROLLUP_REQUEST_STAGES=1 (slow: over OPTROLLUP_SLOW_REQUEST_MS,
default 10). Times are `time.perf_counter()` seconds; `queue` and `fsync` come from the log
writer's thread (the batch holding the request's last record) and may be absent (already durable).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily

log = logging.getLogger("optrollup.node")

Marks = list[tuple[str, float]]  # (stage that ends here, perf_counter seconds)

_TRACE: contextvars.ContextVar[Marks | None] = contextvars.ContextVar("optrollup_trace", default=None)


def begin() -> contextvars.Token[Marks | None]:
    """Open a trace for the current request (its context); `end` closes it."""
    return _TRACE.set([])


def end(token: contextvars.Token[Marks | None]) -> Marks:
    """The marks of the trace `token` opened, which is closed."""
    marks = _TRACE.get() or []
    _TRACE.reset(token)
    return marks


def mark(stage: str, at: float | None = None) -> None:
    """`stage` ended now (or at perf_counter time `at`), if a trace is open."""
    marks = _TRACE.get()
    if marks is not None:
        marks.append((stage, time.perf_counter() if at is None else at))


def active() -> bool:
    return _TRACE.get() is not None


def stages(start: float, marks: Marks, finish: float) -> list[tuple[str, float]]:
    """Each stage's duration in seconds, in time order, from `start` to `finish` (the last
    stage, `answer`, ends there). Marks out of that range are clipped to it; a stage named
    twice (a request with several log batches) adds up."""
    out: dict[str, float] = {}
    prev = start
    for stage, t in sorted(marks, key=lambda m: m[1]):
        t = min(max(t, prev), finish)
        out[stage] = out.get(stage, 0.0) + (t - prev)
        prev = t
    out["answer"] = out.get("answer", 0.0) + (finish - prev)
    return list(out.items())


class RequestStages:
    """The stages of every `sample_every`-th traced request summed by stage
    (`optrollup_request_stage_seconds_total`, over `optrollup_request_traced_total` requests:
    the mean of each stage; sampled, since working them out costs ~10 us); a request over
    `threshold` seconds also counted by its longest stage (`optrollup_slow_requests_total`)
    and logged with all of them (at most once per `log_every` seconds)."""

    def __init__(self, registry: CollectorRegistry, threshold: float, *, log_every: float = 1.0,
                 sample_every: int = 8, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.log_every, self.clock = threshold, log_every, clock
        self.sample_every = sample_every
        self.counter = Counter("optrollup_slow_requests_total",
                               "Write requests over the slow threshold, by their longest stage",
                               ["stage"], registry=registry)
        self.seconds: dict[str, float] = {}  # stage -> seconds over the sampled requests
        self.requests = 0  # sampled
        self._seen = 0
        registry.register(self)
        self._logged = -float("inf")

    def collect(self) -> Iterator[CounterMetricFamily]:
        """For the registry: the stage sums and the number of requests they are over."""
        c = CounterMetricFamily("optrollup_request_stage_seconds",
                                "Seconds of traced write requests, summed by stage", labels=["stage"])
        for stage, v in sorted(self.seconds.items()):
            c.add_metric([stage], v)
        yield c
        yield CounterMetricFamily("optrollup_request_traced", "Write requests whose stages are summed",
                                  value=self.requests)

    def observe(self, path: str, start: float, marks: Marks, finish: float) -> str | None:
        """Add a request's stages to the sums; the longest stage of a slow one (counted, maybe
        logged), None if it was not slow."""
        self._seen += 1
        slow = finish - start >= self.threshold
        if not slow and self._seen % self.sample_every:
            return None
        parts = stages(start, marks, finish)
        if self._seen % self.sample_every == 0:
            sums = self.seconds
            for stage, d in parts:
                sums[stage] = sums.get(stage, 0.0) + d
            self.requests += 1
        if not slow:
            return None
        worst = max(parts, key=lambda p: p[1])[0]
        self.counter.labels(worst).inc()
        now = self.clock()
        if now - self._logged >= self.log_every:
            self._logged = now
            log.warning("slow request POST %s: %.1f ms (%s)", path, (finish - start) * 1e3,
                        ", ".join(f"{s} {d * 1e3:.1f}" for s, d in parts))
        return worst
