"""`optrollup monitor`: the L1 monitor as a process of its own (docs/monitoring.md).

    optrollup monitor --l1-rpc URL --rollup ADDR [--adjudicator ADDR] [--webhook URL]
        [--sequencer URL] [--confirmations N] [--poll SECONDS] [--scan-from BLOCK|latest]
        [--allow-sender ADDR ...] [--no-solvency] [--once]

Every alert firing is printed on stdout as one JSON line, `{"source": "l1-monitor", "alert":
{...}}` (the webhook's body); logs go to stderr. `--once`: one round, exit 1 if it fired a
critical alert, else 0.

The solvency ledger is the state replayed from L1 by the replay verifier (prover.verifier): an
auditor trusts L1, not the sequencer's own account of what it owes. That is why the command
lives in prover; the L1 detectors, the alert format and the webhook are sequencer.monitor's.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from prover import verifier
from sequencer.monitor import (CRITICAL, Alert, AlertStore, Firing, L1Monitor, Ledger,
                               LedgerSource, ReplayFailed, Webhook, WebhookSettings, webhook_body)

SOURCE = "l1-monitor"
log = logging.getLogger("optrollup.monitor")


def replay_ledger(client: Any, rollup: str, *, adjudicator: str | None = None,
                  confirmations: int = 1) -> LedgerSource:
    """A LedgerSource over prover.verifier.Verifier: each call syncs the replay to the given L1
    block (incrementally) and sums what the replayed state owes. ReplayFailed on a mismatch."""
    failed = verifier.VerificationFailed
    try:
        v = verifier.Verifier(client, rollup, log=lambda m: log.info("replay: %s", m),
                              confirmations=confirmations, adjudicator=adjudicator)
    except failed as exc:
        raise ReplayFailed(exc.message, exc.batch) from None
    cache: dict[str, Any] = {}

    def at(block: int) -> Ledger:
        try:
            v.sync(at=block)
        except failed as exc:
            raise ReplayFailed(exc.message, exc.batch) from None
        st, head = v.state, v.head
        if cache.get("head") != head:  # sums over every account: only when the state moved
            cache["head"] = head
            cache["collateral"] = sum(a.collateral for a in st.accounts.values())
            cache["channels"] = sum(ch.open.depositA + ch.open.depositB
                                    for ch in st.channels.values() if ch.status == 0)
            cache["withdrawals"] = {(bytes(acc), nonce): hit[3].amount
                                    for (acc, nonce), hit in v.payouts.items()}

        def collateral_of(account: bytes) -> int:
            a = st.accounts.get(account)
            return 0 if a is None else a.collateral

        def channel_funds_of(channel_id: bytes) -> int:
            ch = st.channels.get(channel_id)
            return 0 if ch is None or ch.status != 0 else ch.open.depositA + ch.open.depositB

        return Ledger(head.number, len(v.verified), cache["collateral"], cache["channels"],
                      st.shortfall, st.message_cursor, cache["withdrawals"], collateral_of,
                      channel_funds_of)

    return at


def sequencer_info(url: str) -> Any:
    import httpx

    client = httpx.Client(base_url=url.rstrip("/"), timeout=10.0)

    def get() -> dict[str, Any]:
        r = client.get("/v1/info")
        r.raise_for_status()
        return r.json()

    return get


def run(args: argparse.Namespace) -> int:
    from sequencer.l1 import L1Client, L1Error, L1Unavailable

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    store = AlertStore()
    critical: list[Alert] = []

    def emit(a: Alert) -> None:
        print(json.dumps(webhook_body(SOURCE, a), separators=(",", ":")), flush=True)
        if a.severity == CRITICAL:
            critical.append(a)

    store.sinks.append(emit)
    hook = Webhook(WebhookSettings(url=args.webhook), SOURCE) if args.webhook else None
    if hook is not None:
        store.sinks.append(hook)
    try:
        with L1Client(args.l1_rpc) as client:
            scan_from = None
            if args.scan_from == "latest":
                scan_from = client.block_number() + 1
            elif args.scan_from is not None:
                scan_from = int(args.scan_from)
            ledger = None if args.no_solvency else replay_ledger(
                client, args.rollup, adjudicator=args.adjudicator, confirmations=args.confirmations)
            mon = L1Monitor(client, args.rollup, adjudicator=args.adjudicator,
                            confirmations=args.confirmations, scan_from=scan_from,
                            allow=args.allow_sender or (), ledger=ledger, store=store,
                            sequencer_info=sequencer_info(args.sequencer) if args.sequencer else None)
            last_down = 0.0
            while True:
                try:
                    mon.poll()
                except (L1Unavailable, L1Error, OSError) as exc:
                    now = time.time()
                    if now - last_down >= 600:  # say it once per 10 minutes while it lasts
                        last_down = now
                        store.fire(Firing("l1_unavailable", "warning", args.l1_rpc,
                                          f"reading L1 failed (will retry): {exc}", now))
                if args.once:
                    return 1 if critical else 0
                time.sleep(args.poll)
    except KeyboardInterrupt:
        return 1 if critical else 0
    finally:
        if hook is not None:
            hook.close()


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    p = sub.add_parser(
        "monitor", help="watch L1 for anomalies (guardian actions, disputes, unexpected senders, "
                        "solvency); alerts as JSON lines",
        description="Follows the Rollup, its Bridge and the Adjudicator from L1 alone (no "
                    "sequencer needed): guardian actions, Adjudicator challenges, batches and "
                    "calls from unexpected senders, reverted calls, and the solvency invariant "
                    "(the Bridge's token balance against the state replayed from L1). Alerts "
                    "go to stdout as JSON lines and to --webhook. See docs/monitoring.md.")
    p.add_argument("--l1-rpc", required=True, metavar="URL", help="L1 JSON-RPC endpoint")
    p.add_argument("--rollup", required=True, metavar="ADDRESS", help="the Rollup contract")
    p.add_argument("--adjudicator", metavar="ADDRESS",
                   help="the state channels' Adjudicator: watch its challenges (and let the "
                        "replay check channel conclusions)")
    p.add_argument("--webhook", metavar="URL", help="POST each alert here as JSON")
    p.add_argument("--sequencer", metavar="URL",
                   help="also check the sequencer's GET /v1/info: that it serves this Rollup, "
                        "and the shortfall it publishes")
    p.add_argument("--confirmations", type=int, default=1, metavar="N",
                   help="read L1 only N-1 blocks behind the head (default 1: the head)")
    p.add_argument("--poll", type=float, default=5.0, metavar="SECONDS", help="pause between rounds")
    p.add_argument("--scan-from", metavar="BLOCK|latest",
                   help="first L1 block whose transactions are checked one by one (default: the "
                        "deployment block; events are always read from it)")
    p.add_argument("--allow-sender", action="append", metavar="ADDRESS",
                   help="an address that may call the Rollup besides the poster, the guardians and "
                        "the deployer (e.g. the relayer of guardian actions); repeatable")
    p.add_argument("--no-solvency", action="store_true",
                   help="skip the solvency check (and the replay it needs)")
    p.add_argument("--once", action="store_true",
                   help="one round, then exit: 1 if a critical alert fired, else 0")
    p.add_argument("--verbose", action="store_true", help="log progress to stderr")
    p.set_defaults(func=run)
