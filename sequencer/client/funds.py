"""`optrollup deposit`: collateral from L1 into the L2 account, from a terminal.

    optrollup deposit --url L2_URL --l1-rpc L1_URL --keystore KEY --amount USDC
        [--to L2_ACCOUNT] [--no-wait] [--max-wait SECONDS]

The key (keystore or pkcs11: URI) holds the USDC and the ETH for gas on L1. The Bridge, the
token and the L1 chain id come from the node (`GET /v1/info` `l1`), and the L1 node must be on
that chain. It approves the Bridge when the allowance is short, sends `Bridge.deposit`, reads the
L1 message nonce from the Bridge's Deposited event, then waits until the node has processed that
message (GET /v1/l1-messages/{nonce}: credited, or refunded with a reason), which it does a
confirmation or so after it sees it; so fills at the same time cannot blur it, and a deposit for
another L2 account (`--to`) is followed as well. `withdraw` (the way back) is prover/withdrawcli.py.
"""

from __future__ import annotations

import argparse
import time

from optrollup_client import Client, L1Message, L1Wallet, NotFoundError

from sequencer.client import cli
from sequencer.errors import InvalidRequest, OptrollupError
from sequencer.keys import load_key, refuse_raw_key_option
from sequencer.units import format_units, parse_address, parse_units

__all__ = ["register"]


def _processed(c: Client, nonce: int) -> L1Message | None:
    """L1 message `nonce` once its L2 block is durable (credited or refunded), else None."""
    try:
        m = c.l1_message(nonce)
    except NotFoundError:  # not seen yet (confirmations, or earlier messages first)
        return None
    return None if m.status == "pending" else m


def _deposit(args: argparse.Namespace) -> int:
    amount = parse_units(args.amount, "--amount (USDC)")
    if not (args.poll > 0 and args.max_wait >= 0):   # NaN fails both
        raise InvalidRequest(f"--max-wait must not be negative and --poll must be positive, got --max-wait "
                             f"{args.max_wait:g} --poll {args.poll:g}", code="invalid_number")
    to_arg = parse_address(args.to, "--to") if args.to else None
    key = load_key(args.keystore, password_file=args.password_file, password_env=args.password_env,
                   prompt="Keystore password: ")
    with Client(args.url, key=key, clock=lambda: cli.CLOCK(), timeout=args.timeout) as c, \
            L1Wallet(args.l1_rpc, key) as wallet:
        l1 = wallet.node_l1(c.info())
        to = to_arg or key.address
        have = wallet.token_balance(l1["collateralToken"])
        if have < amount:
            raise InvalidRequest(f"{key.address} holds {format_units(have)} USDC on L1, less than "
                                 f"{format_units(amount)}", code="insufficient_l1_balance")
        if int(wallet.rpc("eth_getBalance", key.address, "latest"), 16) == 0:
            raise InvalidRequest(f"{key.address} has no ETH on L1 to pay gas", code="no_l1_gas")
        print(f"depositing {format_units(amount)} USDC from {key.address} on L1 for L2 account {to}",
              flush=True)
        dep = wallet.deposit(l1["bridge"], l1["collateralToken"], amount, to)
        print(f"deposit sent: L1 tx {dep.receipt.tx_hash} (block {dep.receipt.block}), L1 message "
              f"{dep.nonce}", flush=True)
        if args.no_wait:
            return 0
        deadline = time.monotonic() + args.max_wait
        while (m := _processed(c, dep.nonce)) is None:  # in nonce order, after confirmations
            if time.monotonic() > deadline:
                raise OptrollupError(f"the deposit is on L1 (tx {dep.receipt.tx_hash}, message {dep.nonce}) "
                                     f"but the node has not processed it after {args.max_wait:.0f} s; "
                                     f"follow it at GET /v1/l1-messages/{dep.nonce}", code="timeout")
            time.sleep(args.poll)
        if m.status != "credited":
            raise OptrollupError(f"the node did not credit L1 message {dep.nonce}: {m.status}"
                                 f"{' (' + m.reason + ')' if m.reason else ''}; a refund is paid on L1 "
                                 "like a withdrawal", code="deposit_not_credited")
        print(f"credited on L2 in block {m.block}: {format_units(m.amount)} USDC to {m.account}", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("deposit", help="deposit USDC from L1 (approve + Bridge.deposit) and wait for the "
                                       "L2 credit",
                       description="Sends approve (if needed) and Bridge.deposit from the key's L1 address, "
                                   "then waits until the node has processed the deposit's L1 message (credited, or refunded). "
                                   "Bridge, token and chain come from the node's /v1/info.")
    d.add_argument("--url", required=True, help="the node's HTTP API, e.g. http://127.0.0.1:8080")
    d.add_argument("--keystore", required=True, metavar="KEY",
                   help="the L1 key that pays (USDC and gas): an encrypted JSON keystore or a pkcs11: URI")
    refuse_raw_key_option(d)
    cli._password_args(d)
    d.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    d.add_argument("--l1-rpc", required=True, metavar="URL", help="the L1 JSON-RPC endpoint")
    d.add_argument("--amount", required=True, help="USDC, up to 6 decimals, e.g. 250.5")
    d.add_argument("--to", metavar="ADDRESS", help="credit this L2 account (default: the key's own)")
    d.add_argument("--no-wait", action="store_true", help="stop once the L1 deposit is mined (print its L1 message nonce)")
    d.add_argument("--max-wait", type=float, default=600.0, metavar="SECONDS",
                   help="how long to wait for the L2 credit (default 600)")
    d.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help=argparse.SUPPRESS)
    d.set_defaults(func=_deposit)
