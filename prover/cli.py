"""prover's subcommands of `optrollup` (registered through the optrollup.commands entry point).

    optrollup verify --l1-rpc URL --rollup ADDRESS [--watch] [--poll SECONDS]
    optrollup post-batches --sequencer URL --l1-rpc URL --rollup ADDRESS --keystore FILE
        [--password-file F | --password-env NAME] [--once] [--max-blocks N] [--max-bytes N]
        [--confirmations N] [--lock-dir DIR] [--poll SECONDS]
    optrollup escape --l1-rpc URL --rollup ADDRESS --account A
        [--keystore FILE [--password-file F | --password-env NAME]]
    optrollup escape --l1-rpc URL --rollup ADDRESS --channel CHANNEL_ID [--state FILE]
        [--keystore FILE [--password-file F | --password-env NAME]] [--recipient R]
    optrollup withdraw --force --amount USDC [--recipient R] --keystore FILE
        --l1-rpc URL --rollup ADDRESS [--poll SECONDS] [--no-wait]
    optrollup withdraw --url URL --l1-rpc URL --keystore FILE --amount USDC [--recipient R]
        [--no-finalize] [--max-wait SECONDS] [--poll SECONDS]      (prover/withdrawcli.py)

Keys follow sequencer.keys: --keystore is an encrypted keystore, its password from --password-file,
the variable named by --password-env, or OPTROLLUP_PASSWORD; or a pkcs11: URI of a key in a
hardware security module (its PIN from the URI's pin-source / pin-value, else by the same rule).
"""

from __future__ import annotations

import argparse
import sys
import time


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _verify(args: argparse.Namespace) -> int:
    from prover.verifier import VerificationFailed, Verifier
    from sequencer.l1 import L1Client, L1Unavailable

    with L1Client(args.l1_rpc) as client:
        try:
            v = Verifier(client, args.rollup, log=_err, adjudicator=args.adjudicator,
                         conclusion_deadline=args.conclusion_deadline)
        except VerificationFailed as exc:
            print(f"MISMATCH: {exc.message}", flush=True)
            return 1

        def summary() -> str:
            h = v.head
            return (f"OK: {len(v.verified)} batches, L2 blocks 0..{h.number} replayed from L1; "
                    f"header 0x{h.hash().hex()} state root 0x{h.state_root.hex()}")

        if not args.watch:
            try:
                v.sync()
            except VerificationFailed as exc:
                print(f"MISMATCH: {exc.message}", flush=True)
                return 1
            print(summary(), flush=True)
            return 0

        bad: str | None = None
        try:
            while True:
                try:
                    if v.sync():
                        print(summary(), flush=True)
                    if bad is not None:
                        _err("the mismatching batch is gone from L1; all live batches match")
                    bad = None
                except VerificationFailed as exc:
                    seen, bad = bad, exc.message  # before printing: a Ctrl-C right after the
                    if exc.message != seen:        # line must still exit 1
                        print(f"MISMATCH: {exc.message}", flush=True)
                except L1Unavailable as exc:
                    _err(f"L1 unavailable, retrying: {exc.message}")
                time.sleep(args.poll)
        except KeyboardInterrupt:
            return 1 if bad is not None else 0


def _post(args: argparse.Namespace) -> int:
    from prover.poster import run_cli

    return run_cli(args)


def _key_args(p: argparse.ArgumentParser, *, required: bool, what: str) -> None:
    from sequencer.keys import PASSWORD_ENV, refuse_raw_key_option

    p.add_argument("--keystore", required=required, metavar="KEY",
                   help=f"{what}: an encrypted JSON keystore, or a pkcs11: URI (a key in an HSM)")
    refuse_raw_key_option(p)
    p.add_argument("--password-file", metavar="FILE",
                   help=f"keystore password (or token PIN): the first line of FILE (else --password-env, "
                        f"else ${PASSWORD_ENV})")
    p.add_argument("--password-env", metavar="NAME",
                   help="read the keystore password (or token PIN) from the environment variable NAME")


def _zstd_level(text: str) -> int:
    try:
        level = int(text)
    except ValueError:
        level = 0
    if not 1 <= level <= 22:
        raise argparse.ArgumentTypeError(f"--zstd-level must be a whole number from 1 to 22, not {text!r}")
    return level


def _withdraw(args: argparse.Namespace) -> int:
    from cext import to_checksum
    from sequencer.errors import InvalidRequest
    from sequencer.keys import load_key
    from sequencer.units import format_units, parse_units

    if not args.force:  # the normal withdrawal, through the operator
        from prover.withdrawcli import run

        return run(args)
    if args.amount is None or args.hash or args.url or args.no_finalize or args.max_wait is not None:
        raise InvalidRequest("withdraw --force takes --amount, --l1-rpc and --rollup (--url, --hash, "
                             "--no-finalize and --max-wait are for the normal withdrawal)",
                             code="invalid_option")
    amount = parse_units(args.amount, "--amount")
    key = load_key(args.keystore, password_file=args.password_file, password_env=args.password_env)
    recipient = args.recipient or key.address
    if not (args.l1_rpc and args.rollup):
        raise InvalidRequest("--force needs --l1-rpc and --rollup", code="missing_option")
    from prover.forced import request_withdrawal, run_forced
    from prover.verifier import Verifier
    from sequencer.l1 import L1Client, TxConfig, TxManager, read_deployment

    with L1Client(args.l1_rpc) as client:
        bridge = read_deployment(client, args.rollup).bridge_contract(client)
        txm = TxManager(client, key, TxConfig(label="withdraw --force", timeout=300.0), log=_err)
        req = request_withdrawal(bridge, txm, amount, recipient)
        print(f"forced withdrawal #{req.nonce} queued on L1: {format_units(amount)} USDC from "
              f"{to_checksum(req.account)} to {to_checksum(req.recipient)}", flush=True)
        if args.no_wait:
            return 0
        v = Verifier(client, args.rollup, log=_err)
        try:
            step = run_forced(client, v, txm, req, poll=15.0 if args.poll is None else args.poll,
                              log=_err, sleep=time.sleep)
        except KeyboardInterrupt:
            return 130
        print(f"forced withdrawal #{req.nonce}: {step.value}", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Add prover's subcommands (escape, post-batches, verify, withdraw) to the `optrollup` parser."""
    w = sub.add_parser(
        "withdraw",
        help="withdraw to L1: through the node (request, watch, finalize), or --force through L1 alone",
        description="Without --force: sign a Withdraw and post it to the node (--url), watch it go pending -> "
                    "batched -> final, then send its finalize call on L1 (--l1-rpc) from the same key; "
                    "--no-finalize stops at final and prints the call; --hash H follows a withdrawal "
                    "already requested. With --force: queue Bridge.requestWithdrawal from the account's "
                    "key on L1, watch L1 (replaying batches, no sequencer needed) until a batch includes "
                    "it, then send finalizeWithdrawal once final; if the operator does not include it in "
                    "time, freeze the Rollup and escape with the account's value.")
    w.add_argument("--amount", help="USDC, up to 6 decimals")
    w.add_argument("--recipient", metavar="ADDRESS", help="L1 recipient (default: the account)")
    w.add_argument("--force", action="store_true", help="go through L1, without the operator")
    w.add_argument("--url", metavar="URL", help="the node's HTTP API (the normal withdrawal)")
    w.add_argument("--hash", metavar="WITHDRAWAL_HASH",
                   help="follow (and finalize) a withdrawal already requested, instead of --amount")
    w.add_argument("--no-finalize", action="store_true",
                   help="stop once final and print the L1 finalize call instead of sending it")
    w.add_argument("--max-wait", type=float, metavar="SECONDS",
                   help="give up watching after this long (default: wait until final)")
    w.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="HTTP timeout")
    w.add_argument("--l1-rpc", metavar="URL")
    w.add_argument("--rollup", metavar="ADDRESS", help="with --force: the Rollup contract")
    w.add_argument("--poll", type=float, metavar="SECONDS",
                   help="pause between checks (default 2; with --force 15, on L1)")
    w.add_argument("--no-wait", action="store_true", help="with --force: only queue the request on L1")
    _key_args(w, required=True, what="the L2 account (it also pays the L1 gas)")
    w.set_defaults(func=_withdraw)
    e = sub.add_parser(
        "escape",
        help="escape hatch: prove an account's collateral (or a channel's funds) in the last final state from L1 data",
        description="Replays the final batches from L1 (no sequencer needed), checks the state root "
                    "against Rollup.lastFinalState(), and prints Bridge.escape's arguments and calldata. "
                    "With --keystore, sends it from that key (the Bridge pays the account, once). "
                    "With --channel instead of --account: the funds of a state channel still open in the "
                    "final state, paid by Bridge.escapeChannel to both parties by the state the Rollup's "
                    "Adjudicator concluded it with; if the channel is not concluded yet, says what to do "
                    "(with --keystore it sends Adjudicator.conclude once the window has passed).")
    e.add_argument("--l1-rpc", required=True, metavar="URL")
    e.add_argument("--rollup", required=True, metavar="ADDRESS")
    who = e.add_mutually_exclusive_group(required=True)
    who.add_argument("--account", metavar="ADDRESS")
    who.add_argument("--channel", metavar="CHANNEL_ID", help="a state channel's id (0x + 64 hex)")
    e.add_argument("--state", metavar="FILE",
                   help="with --channel: the concluded channelState as JSON (as GET /v1/channels/{id}/state "
                        "gives it), only needed when L1 calldata does not carry it (it is checked against "
                        "the Adjudicator's stateHash)")
    e.add_argument("--recipient", metavar="ADDRESS",
                   help="pay the escape to this address instead of the account (e.g. the token "
                        "refuses to pay the account); --keystore must then be the account's key, "
                        "which signs EscapeTo(account, recipient); with --channel, the key of party A or "
                        "B, whose share goes to the recipient (ChannelEscapeTo(channelId, account, "
                        "recipient)), the other share to its account")
    _key_args(e, required=False, what="the L1 key that sends the escape transaction (optional)")
    e.set_defaults(func=_escape)
    v = sub.add_parser(
        "verify", help="rebuild the L2 chain from L1 data alone and check every root",
        description="Replays every live batch posted to the Rollup from L1 data only (deposit "
                    "events + batch calldata) and checks every state/withdrawal root and header "
                    "hash. Exit 0 only if all match; otherwise 1 with one line naming the first "
                    "bad L2 block and transaction.")
    v.add_argument("--l1-rpc", required=True, metavar="URL", help="L1 JSON-RPC endpoint")
    v.add_argument("--rollup", required=True, metavar="ADDRESS", help="the Rollup contract")
    v.add_argument("--adjudicator", metavar="ADDRESS",
                   help="the state channels' Adjudicator (default: the Rollup's own, read from L1) "
                        "whose Concluded events every ChannelConclude is checked against")
    v.add_argument("--conclusion-deadline", type=int, default=300, metavar="BLOCKS",
                   help="L1 blocks within which a conclusion must be applied (default 300)")
    v.add_argument("--watch", action="store_true", help="keep following new batches")
    v.add_argument("--poll", type=float, default=5.0, metavar="SECONDS",
                   help="poll interval with --watch (default 5)")
    v.set_defaults(func=_verify)

    p = sub.add_parser(
        "post-batches", help="post sealed L2 blocks missing on L1 as batches (cron-friendly)",
        description="Reads sealed blocks from the sequencer's HTTP API and posts what L1 lacks "
                    "with Rollup.submitBatch, waiting for confirmations; idempotent and "
                    "lock-protected, so overlapping runs never double-post.")
    p.add_argument("--sequencer", required=True, metavar="URL", help="sequencer HTTP API base URL")
    p.add_argument("--l1-rpc", required=True, metavar="URL", help="L1 JSON-RPC endpoint")
    p.add_argument("--rollup", required=True, metavar="ADDRESS", help="the Rollup contract")
    _key_args(p, required=True, what="the poster key")
    p.add_argument("--once", action="store_true", help="post what is missing, then exit")
    p.add_argument("--max-blocks", type=int, default=1000, metavar="N",
                   help="at most N L2 blocks per batch (default 1000)")
    p.add_argument("--max-bytes", type=int, default=120_000, metavar="N",
                   help="at most N bytes of batch data per transaction (default 120000)")
    p.add_argument("--confirmations", type=int, default=1, metavar="N",
                   help="L1 confirmations before a batch counts as posted (default 1)")
    p.add_argument("--zstd-level", type=_zstd_level, default=None, metavar="N",
                   help="zstd level of the batch data, 1-22 (default 19: the least calldata, "
                        "~1.2 s of CPU per 2.5 MB of blocks; 3 costs ~60x less for ~5%% more)")
    p.add_argument("--lock-dir", default=None, metavar="DIR",
                   help="directory of the run lock (default: the system temp dir)")
    p.add_argument("--poll", type=float, default=5.0, metavar="SECONDS",
                   help="pause between rounds without --once (default 5)")
    p.add_argument("--fee-bump-after", type=float, default=30.0, metavar="SECONDS",
                   help="replace a pending batch transaction with higher fees after this long")
    p.set_defaults(func=_post)


def _escape(args: argparse.Namespace) -> int:
    if args.channel is not None:
        return _escape_channel(args)
    import json

    from cext import to_checksum
    from prover.escape import escape_claim, send_escape
    from sequencer.errors import InvalidRequest
    from sequencer.keys import load_key
    from sequencer.l1 import L1Client, TxConfig, TxManager, read_deployment, sign_escape_to

    # open the key first: a wrong password should not cost a whole replay
    account = None if args.keystore is None else load_key(
        args.keystore, password_file=args.password_file, password_env=args.password_env)
    with L1Client(args.l1_rpc) as client:
        claim = escape_claim(client, args.rollup, args.account)
        bridge = read_deployment(client, args.rollup).bridge_contract(client)
        recipient, owner_sig = None, b""
        if args.recipient:
            if account is None or account.address.lower() != to_checksum(claim.account).lower():
                raise InvalidRequest("--recipient needs --keystore of the escaping account itself: it "
                                     "signs EscapeTo(account, recipient)", code="missing_option")
            recipient = args.recipient
            owner_sig = sign_escape_to(account, client.chain_id, bridge.address, recipient)
        data = bridge.encode("escape", *claim.args(recipient, owner_sig))
        print(json.dumps({"account": to_checksum(claim.account), "recipient": recipient or to_checksum(claim.account),
                          "collateral": str(claim.collateral),
                          "positions": [{"instrument": p.instrument, "amount": str(p.amount),
                                         "markLo": str(p.mark_lo), "markHi": str(p.mark_hi),
                                         "value": str(p.value())} for p in claim.positions],
                          "value": str(claim.value()), "accountIndex": claim.index,
                          "stateRoot": "0x" + claim.state_root.hex(), "marksRoot": "0x" + claim.marks_root.hex(),
                          "finalBatches": claim.final_batches,
                          "escape": {"to": bridge.address, "data": "0x" + data.hex()}}, indent=2))
        if account is not None:
            txm = TxManager(client, account, TxConfig(label="escape sender", timeout=300.0), log=_err)
            receipt = send_escape(bridge, claim, txm, recipient=recipient, owner_signature=owner_sig)
            print(f"escape paid in L1 tx {receipt.tx_hash}")
    return 0


def _escape_channel(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from cext import to_checksum
    from prover.escape import (
        ChannelNotConcluded,
        channel_escape_claim,
        conclude_channel,
        send_escape_channel,
        sign_channel_escape_to,
    )
    from sequencer.core.channelmsg import state_from_json, state_to_json
    from sequencer.errors import InvalidRequest
    from sequencer.keys import load_key
    from sequencer.l1 import L1Client, TxConfig, TxManager, read_deployment

    account = None if args.keystore is None else load_key(
        args.keystore, password_file=args.password_file, password_env=args.password_env)
    state = None
    if args.state:
        try:
            raw = json.loads(Path(args.state).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidRequest(f"--state {args.state}: {exc}", code="bad_state_file") from None
        state = state_from_json(raw.get("channelState", raw) if isinstance(raw, dict) else raw)
    with L1Client(args.l1_rpc) as client:
        dep = read_deployment(client, args.rollup)
        bridge = dep.bridge_contract(client)
        txm = None if account is None else TxManager(client, account, TxConfig(label="escape sender", timeout=300.0),
                                                     log=_err)
        try:
            claim = channel_escape_claim(client, args.rollup, args.channel, state=state)
        except ChannelNotConcluded as exc:
            st, now = exc.status, client.get_block_timestamp()
            if txm is None or not st.concludable(now):
                raise
            _err(f"channel {args.channel}: turn {st.turn_num} registered, window closed at {st.finalizes_at}: "
                 "sending Adjudicator.conclude")
            receipt = conclude_channel(client, dep.adjudicator, exc.fixed, txm)
            print(f"channel concluded on the Adjudicator in L1 tx {receipt.tx_hash}", flush=True)
            claim = channel_escape_claim(client, args.rollup, args.channel, state=state)
        ra = sa = rb = sb = None
        if args.recipient:
            me = None if account is None else account.address.lower()
            if me not in (to_checksum(claim.a).lower(), to_checksum(claim.b).lower()):
                raise InvalidRequest("--recipient needs --keystore of party A or B of the channel: it signs "
                                     "ChannelEscapeTo(channelId, account, recipient)", code="missing_option")
            sig = sign_channel_escape_to(account, client.chain_id, bridge.address, claim.channel_id, args.recipient)
            if me == to_checksum(claim.a).lower():
                ra, sa = args.recipient, sig
            else:
                rb, sb = args.recipient, sig
        payees = {"recipient_a": ra, "signature_a": sa or b"", "recipient_b": rb, "signature_b": sb or b""}
        data = bridge.encode("escapeChannel", *claim.args(**payees))
        print(json.dumps({
            "channelId": "0x" + claim.channel_id.hex(), "a": to_checksum(claim.a), "b": to_checksum(claim.b),
            "recipientA": ra or to_checksum(claim.a), "recipientB": rb or to_checksum(claim.b),
            "depositA": str(claim.deposit_a), "depositB": str(claim.deposit_b),
            "channelState": state_to_json(claim.state), "stateHash": "0x" + claim.state_hash.hex(),
            "positions": [{"instrument": p.instrument, "amount": str(p.amount), "listed": p.listed,
                           "markLo": str(p.mark_lo), "markHi": str(p.mark_hi), "value": str(p.value())}
                          for p in claim.positions],
            "valueA": str(claim.value_a()), "valueB": str(claim.value_b()), "channelIndex": claim.index,
            "stateRoot": "0x" + claim.state_root.hex(), "marksRoot": "0x" + claim.marks_root.hex(),
            "finalBatches": claim.final_batches,
            "escapeChannel": {"to": bridge.address, "data": "0x" + data.hex()}}, indent=2), flush=True)
        if txm is not None:
            receipt = send_escape_channel(bridge, claim, txm, **payees)
            print(f"channel escape paid in L1 tx {receipt.tx_hash}")
    return 0
