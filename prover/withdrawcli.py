"""`optrollup withdraw` without `--force`: the normal withdrawal, through the operator.

    optrollup withdraw --url L2_URL --l1-rpc L1_URL --keystore KEY --amount USDC [--recipient R]
        [--no-finalize] [--max-wait SECONDS] [--poll SECONDS]
    optrollup withdraw --url L2_URL --l1-rpc L1_URL --keystore KEY --hash WITHDRAWAL_HASH   (resume)

1. signs a `Withdraw` with the account's own key (a session key may not withdraw) and posts it
   to the node (`POST /v1/withdrawals`, the account's next withdrawal nonce);
2. watches `GET /v1/withdrawals/{hash}`: pending (sealed in an L2 block) -> batched (its batch
   is on L1) -> final (the challenge window has passed), printing each step;
3. once final, sends the node's ready-made `finalize` call (to the Bridge) on L1 from the same
   key and prints the recipient's USDC rising; with `--no-finalize` it prints that call instead,
   for any wallet to send.

The Bridge, the token and the L1 chain come from the node's `/v1/info`; the L1 RPC must be on
that chain, and the finalize call must go to that Bridge. Interrupted (Ctrl-C) it says how to
resume with `--hash`. `--force` (prover/cli.py) is the other way out: through L1 alone.
Built on the light SDK (`optrollup_client`), not on `sequencer.client`: prover may not import it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from optrollup_client import (
    Client,
    ClientError,
    L1Wallet,
    TransportError,
    UnavailableError,
    Withdrawal,
)

from sequencer.errors import InvalidRequest, OptrollupError
from sequencer.keys import load_key
from sequencer.units import format_units, parse_address, parse_units

__all__ = ["CLOCK", "run"]

CLOCK = time.time   # unix seconds, for the request's auth headers; tests replace it

STEPS = {
    "pending": "in the node: sealed into an L2 block, waiting for its batch to be posted to L1",
    "batched": "its batch is on L1: final once the challenge window has passed",
    "final": "final: the Bridge pays it on the finalize call",
    "paid": "paid on L1",
}


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _hash(text: str) -> str:
    h = text.lower()
    if not (h.startswith("0x") and len(h) == 66 and all(c in "0123456789abcdef" for c in h[2:])):
        raise InvalidRequest(f"--hash must be a withdrawal hash (0x + 64 hex digits), got {text!r}",
                             code="invalid_hash")
    return h


def _step(w: Withdrawal) -> None:
    where = [f"L2 block {w.block}" if w.block is not None else "",
             f"L1 batch {w.batch}" if w.batch is not None else ""]
    extra = ", ".join(x for x in where if x)
    print(f"withdrawal {w.withdrawal_hash}: {w.status}{f' ({extra})' if extra else ''} - "
          f"{STEPS.get(w.status, '')}", flush=True)


def _watch(c: Client, wh: str, until: tuple[str, ...], max_wait: float, poll: float) -> Withdrawal:
    """Client.wait_withdrawal, carrying on through a node that is briefly unreachable."""
    deadline = time.monotonic() + max_wait
    while True:
        try:
            return c.wait_withdrawal(wh, until, timeout=max(0.0, deadline - time.monotonic()), poll=poll,
                                     on_status=_step)
        except (TransportError, UnavailableError) as exc:
            if time.monotonic() > deadline:
                raise
            _err(f"node unavailable, retrying: {exc.message}")
            time.sleep(poll)


def run(args: argparse.Namespace) -> int:
    """The normal withdrawal (args from prover.cli's `withdraw` parser, without --force)."""
    if args.rollup or args.no_wait:
        raise InvalidRequest("--rollup and --no-wait belong to withdraw --force; the normal withdrawal "
                             "takes --url (the node) and --l1-rpc", code="invalid_option")
    if not args.url:
        raise InvalidRequest("withdraw needs --url URL (the node's API); or --force to leave through L1 "
                             "without the operator", code="missing_option")
    if (args.hash is None) == (args.amount is None):
        raise InvalidRequest("give --amount USDC for a new withdrawal, or --hash H to follow one",
                             code="missing_option")
    if not args.no_finalize and not args.l1_rpc:
        raise InvalidRequest("withdraw needs --l1-rpc URL to send the finalize call once final (or "
                             "--no-finalize to print it instead)", code="missing_option")
    amount = None if args.amount is None else parse_units(args.amount, "--amount (USDC)")
    recipient = None if args.recipient is None else parse_address(args.recipient, "--recipient")
    wh = None if args.hash is None else _hash(args.hash)
    if wh is not None and recipient is not None:
        raise InvalidRequest("--recipient is fixed by the withdrawal when following --hash",
                             code="invalid_option")
    poll = 2.0 if args.poll is None else args.poll
    max_wait = math.inf if args.max_wait is None else args.max_wait
    if not (poll > 0 and max_wait >= 0):   # NaN fails both
        raise InvalidRequest(f"--poll must be positive and --max-wait not negative, got --poll {poll:g} "
                             f"--max-wait {max_wait:g}", code="invalid_number")
    key = load_key(args.keystore, password_file=args.password_file, password_env=args.password_env,
                   prompt="Keystore password: ")
    wallet = None if args.no_finalize else L1Wallet(args.l1_rpc, key)
    try:
        with Client(args.url, key=key, clock=lambda: CLOCK(), timeout=args.timeout) as c:
            l1 = None if wallet is None else wallet.node_l1(c.info())
            if wh is None:
                assert amount is not None
                ack = c.withdraw(amount, recipient)
                wh = ack.withdrawal_hash
                print(f"withdrawal {wh}: {format_units(amount)} USDC from {c.account_address} to "
                      f"{recipient or c.account_address} requested", flush=True)
            try:
                w = _watch(c, wh, ("final", "paid"), max_wait, poll)
            except ClientError as exc:
                if exc.code != "timeout":
                    raise
                raise OptrollupError(f"withdrawal {wh} is not final after --max-wait {max_wait:g} s (it goes "
                                     f"on); follow it later with: optrollup withdraw --hash {wh} ...",
                                     code="timeout") from None
            except KeyboardInterrupt:
                _err(f"stopped watching; the withdrawal goes on. Resume with: optrollup withdraw --url "
                     f"{args.url} --keystore ... --hash {wh}" + ("" if wallet is None else f" --l1-rpc {args.l1_rpc}"))
                return 130
            if w.status == "paid":
                print(f"withdrawal {wh} was already paid on L1", flush=True)
                return 0
            if not w.finalize:
                raise OptrollupError(f"withdrawal {wh} is final but the node gives no finalize call",
                                     code="no_finalize_call")
            if wallet is None:
                print(f"finalize call (send it on L1 from any account; it pays "
                      f"{w.recipient or 'the recipient'}):\n  to   {w.finalize['to']}\n  data {w.finalize['data']}",
                      flush=True)
                return 0
            assert l1 is not None
            if w.finalize["to"].lower() != str(l1["bridge"]).lower():
                raise OptrollupError(f"the node's finalize call goes to {w.finalize['to']}, not to the Bridge "
                                     f"{l1['bridge']} it names in /v1/info: not sending it", code="bad_finalize_call")
            payee = w.recipient or recipient or c.account_address
            token = l1["collateralToken"]
            before = wallet.token_balance(token, payee)
            receipt = wallet.finalize(w)
            after = wallet.token_balance(token, payee)
            print(f"finalize sent: L1 tx {receipt.tx_hash} (block {receipt.block}); {payee} holds "
                  f"{format_units(before)} -> {format_units(after)} USDC on L1", flush=True)
            try:  # the node marks it paid once it sees the L1 event: nice to show, not needed
                _step(_watch(c, wh, ("paid",), min(max_wait, 30.0), min(poll, 1.0)))
            except OptrollupError:
                pass
    finally:
        if wallet is not None:
            wallet.close()
    return 0
