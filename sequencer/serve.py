"""`optrollup serve`: one node over a data dir, its HTTP API on uvicorn, and the L1 follower."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import uvicorn

from sequencer import irqkick, monitor
from sequencer.api.app import create_app
from sequencer.gctune import tune_gc, watch_gc
from sequencer.ingress import core as ingress_core
from sequencer.ingress import gateway
from sequencer.ingress.protocol import socket_path
from sequencer.node import Node, NodeConfig
from sequencer.node.l1follower import L1Follower
from sequencer.node.snapshotter import snapshot_mode
from sequencer.procs import stop_child


def build_app(data_dir: str | Path, config: str | Path):  # noqa: ANN201 - FastAPI
    cfg = NodeConfig.load(config)
    follower = (L1Follower(cfg.l1, cfg.rollup, domain=cfg.genesis.config.domain)
                if cfg.l1 is not None else None)
    app = create_app(Node(data_dir, cfg, l1=follower), watch_loop=True)
    monitor.attach(app)  # the detectors' worker and the alert webhook (docs/monitoring.md)
    return app


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def reexec_for_fast_fork() -> None:
    """With OPTROLLUP_SNAPSHOT_MODE=fork, snapshots fork the node (sequencer.node.snapshotter).
    Forking a heap of several GB copies its page tables: ~17 ms per GB here with 4 KiB pages,
    which every request waits for. With glibc malloc on transparent huge pages the fork takes
    ~1-4 ms at 1M orders (benchmarks/test_snapshot_stall.py) for ~5% of core throughput. Both
    must be chosen before the interpreter starts, so in fork mode `serve` re-executes itself
    once with them; OPTROLLUP_FAST_FORK=0 keeps the current process as it is. The default
    writer (a worker process) never forks the node, so it does not pay that 5%."""
    if (sys.platform != "linux" or os.environ.get("OPTROLLUP_FAST_FORK", "1") == "0"
            or os.environ.get("PYTHONMALLOC") == "malloc" or snapshot_mode() != "fork"):
        return
    tunables = os.environ.get("GLIBC_TUNABLES")
    env = {**os.environ, "PYTHONMALLOC": "malloc", "GLIBC_TUNABLES":
           "glibc.malloc.hugetlb=1" + (f":{tunables}" if tunables else "")}
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def serve(args: argparse.Namespace) -> int:
    reexec_for_fast_fork()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter() if args.log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = build_app(args.data_dir, args.config)
    workers = getattr(args, "ingress_workers", 0)
    if workers > 0 or getattr(args, "ingress_socket", False):
        # DATA_DIR/ingress.sock (0600): whoever connects submits records whose signatures it
        # says it checked, so it listens only when asked to
        if not ingress_path_fits(args.data_dir):
            raise SystemExit(f"ingress socket path {socket_path(args.data_dir)} is longer than "
                             "a Unix socket path may be (107 bytes): use a shorter --data-dir")
        ingress_core.attach(app, args.data_dir)
    tune_gc()  # after recovery: the recovered state is long-lived
    gc_pause = app.state.api.node.metrics.gc_pause
    watch_gc(lambda gen, seconds: gc_pause.labels(str(gen)).observe(seconds))
    reserve, children = None, []
    kick_mode = getattr(args, "kick_disk_irq", "off")
    if kick_mode == "auto":
        wanted, why = irqkick.delayed_interrupts(args.data_dir, interval_us=args.kick_interval_us)
        logging.getLogger("optrollup").warning("--kick-disk-irq auto: %s: %s", why,
                                               "kickers wanted" if wanted else "no kickers")
        kick_mode = "on" if wanted else "off"
    if kick_mode == "on":
        children += _start_kickers(args.kick_interval_us)
    if workers > 0:  # ingress workers (sequencer/ingress): the signed writes in N processes
        reserve, gateways = gateway.spawn_workers(
            workers, args.data_dir, args.ingress_host or args.host, args.ingress_port,
            main_url=f"http://{args.host}:{args.port}", log_level="warning")
        children += gateways
        logging.getLogger("optrollup").warning(
            "order entry (%d ingress workers): http://%s:%d", workers,
            args.ingress_host or args.host, reserve.getsockname()[1])
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    access_log=args.access_log, timeout_graceful_shutdown=5)
    finally:
        for c in children:
            stop_child(c, timeout=5)
        if reserve is not None:
            reserve.close()
    return 0


KICK_MODES = ("on", "off", "auto")


def _start_kickers(interval_us: int) -> list:
    """Kickers (sequencer.irqkick) on the CPUs that take the disk's interrupts, if any."""
    log = logging.getLogger("optrollup")
    cpus = irqkick.disk_irq_cpus()
    if not cpus:
        log.warning("--kick-disk-irq: no CPU has taken a block-device interrupt (/proc/interrupts); "
                    "no kicker started")
        return []
    allowed = os.sched_getaffinity(0)
    usable = [c for c in cpus if c in allowed]
    if not usable:
        log.warning("--kick-disk-irq: the disk's interrupt CPUs %s are outside this process's CPUs %s; "
                    "no kicker started", cpus, sorted(allowed))
        return []
    kickers = irqkick.spawn(usable, interval_us)
    log.warning("disk-interrupt kickers on CPU %s every %d µs (sequencer/irqkick.py)",
                ",".join(map(str, usable)), interval_us)
    return kickers


def ingress_path_fits(data_dir: str | Path) -> bool:
    return len(os.fsencode(str(socket_path(data_dir)))) <= 107


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = sub.add_parser("serve", help="run a sequencer node and its HTTP API")
    p.add_argument("--data-dir", required=True, help="the node's data dir (LevelDB lives in DIR/db)")
    p.add_argument("--config", required=True, help="node config JSON (see sequencer/node/config.py)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--log-level", default="info")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="json: one structured object per line")
    p.add_argument("--ingress-workers", type=int, default=0, metavar="N",
                   help="also serve the signed write routes from N gateway processes on "
                        "--ingress-port (HTTP, JSON, decoding and signature recovery off the "
                        "core's process; sequencer/ingress)")
    p.add_argument("--ingress-port", type=int, default=8081, metavar="P",
                   help="the ingress workers' shared port (SO_REUSEPORT; 0: any free port)")
    p.add_argument("--ingress-host", default=None, help="default: --host")
    p.add_argument("--ingress-socket", action="store_true",
                   help="listen on DATA_DIR/ingress.sock for `optrollup gateway` processes started "
                        "separately (implied by --ingress-workers)")
    p.add_argument("--kick-disk-irq", nargs="?", const="on", default="off", choices=KICK_MODES,
                   help="on: wake the CPUs that take the disk's interrupts every --kick-interval-us, for "
                        "VMs that deliver an interrupt to a busy vCPU only at its next timer tick "
                        "(synced log writes 8-10 ms late there; sequencer/irqkick.py); auto: only if a "
                        "probe at start-up finds that (~1-2 s); alone: on; default off")
    p.add_argument("--kick-interval-us", type=irqkick.interval_arg, default=irqkick.DEFAULT_INTERVAL_US,
                   metavar="US", help=f"default {irqkick.DEFAULT_INTERVAL_US}")
    p.set_defaults(func=serve)
