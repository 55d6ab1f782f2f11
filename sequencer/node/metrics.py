"""Prometheus metrics of one node (own registry, so several nodes can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("optrollup_requests_accepted_total", "Accepted requests", ["kind"], registry=r)
        self.rejected = Counter("optrollup_requests_rejected_total", "Rejected requests by error code",
                                ["kind", "code"], registry=r)
        self.fsync = Histogram("optrollup_log_fsync_seconds", "Input-log synced write latency",
                               buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .5), registry=r)
        self.fsync_batch = Histogram("optrollup_log_fsync_records", "Records per synced write",
                                     buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000), registry=r)
        # the two hops of a durable acknowledgement besides the fsync itself, once per synced
        # batch: the oldest record's wait for its write to start (behind the previous write,
        # then the log writer's wake-up), and the event loop's wake-up after the write
        self.log_queue = Histogram("optrollup_log_queue_seconds",
                                   "Input-log batch: oldest record's wait from append to write start",
                                   buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .5), registry=r)
        self.durable_wake = Histogram("optrollup_durable_wake_seconds",
                                      "Synced write end to the event loop answering its requests",
                                      buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .5), registry=r)
        self.failed = Gauge("optrollup_node_failed",
                            "1 once the node refuses requests after a storage fault", registry=r)
        self.height = Gauge("optrollup_block_height", "Newest sealed L2 block", registry=r)
        self.book_depth = Gauge("optrollup_book_orders", "Open orders per instrument", ["instrument"], registry=r)
        self.latency = Histogram("optrollup_http_request_seconds", "HTTP request latency", ["route"],
                                 buckets=(.001, .002, .005, .01, .02, .05, .1, .25, 1), registry=r)
        self.l1_deposits = Counter("optrollup_l1_deposits_credited_total", "L1 deposits credited", registry=r)
        self.l1_messages = Counter("optrollup_l1_messages_total",
                                   "L1 messages processed, by kind and outcome", ["kind", "outcome"],
                                   registry=r)

        # liquidation (docs/liquidation.md): the fund, the shortfall, open auctions, status txs
        self.insurance_fund = Gauge("optrollup_insurance_fund_balance",
                                    "Insurance fund collateral, base units", registry=r)
        self.shortfall = Gauge("optrollup_shortfall",
                               "Loss the insurance fund could not absorb, base units (0 = none)",
                               registry=r)
        self.auctions = Gauge("optrollup_liquidation_auctions_open",
                              "Accounts in liquidation", registry=r)
        self.liquidation_steps = Counter("optrollup_liquidation_steps_total",
                                         "Liquidation status txs by step (start, takeover, end)",
                                         ["step"], registry=r)
        # detectors (sequencer.monitor, docs/monitoring.md): every firing of an alert
        self.alerts = Counter("optrollup_alerts_total", "Alert firings by kind and severity",
                              ["kind", "severity"], registry=r)

        # the process's cyclic-GC passes (sequencer.gctune.watch_gc, installed by `serve`): a
        # pass stops the thread that triggered it, the event loop's included
        self.gc_pause = Histogram("optrollup_gc_pause_seconds", "Cyclic garbage-collector passes",
                                  ["generation"],
                                  buckets=(.001, .002, .005, .01, .02, .05, .1, .25, 1), registry=r)

        # how late the event loop ran a callback due every 10 ms (sequencer.loopwatch, started
        # by NodeRunner(watch_loop=True), i.e. by `serve`): what every request waited meanwhile
        self.loop_lag = Histogram("optrollup_loop_lag_seconds", "Event-loop lag (a 10 ms beat, how late)",
                                  buckets=(.001, .002, .005, .01, .02, .05, .1, .25, 1), registry=r)

        # a block boundary on the event loop (Node.seal: the touched accounts' leaves, the
        # header, the next block's start with its liquidation scan): every request waits for it
        self.seal = Histogram("optrollup_seal_seconds", "Block seal and next block's start, on the event loop",
                              buckets=(.001, .002, .005, .01, .02, .05, .1, .25, 1), registry=r)
        # the part of it done just before (Node.seal_ahead: tx and account leaves, the next
        # block's liquidation margins), requests running in between
        self.seal_ahead = Histogram("optrollup_seal_ahead_seconds",
                                    "Seal work done just before the seal, on the event loop",
                                    buckets=(.001, .002, .005, .01, .02, .05, .1, .25, 1), registry=r)

        self._accepted: dict[str, Counter] = {}

    def accepted_kind(self, kind: str) -> Counter:
        """The accepted counter of `kind` (labels() per order showed up in profiles)."""
        c = self._accepted.get(kind)
        if c is None:
            c = self._accepted[kind] = self.accepted.labels(kind)
        return c

    def on_sync(self, seconds: float, records: int) -> None:
        self.fsync.observe(seconds)
        self.fsync_batch.observe(records)
