"""`optrollup deposit`: collateral from L1 into the L2 account, from a terminal.

    optrollup deposit --url L2_URL --l1-rpc L1_URL --keystore KEY --amount USDC
        [--to L2_ACCOUNT] [--no-wait] [--max-wait SECONDS]

The key (keystore or pkcs11: URI) holds the USDC and the ETH for gas on L1. The Bridge, the
token and the L1 chain id come from the node (`GET /v1/info` `l1`), and the L1 node must be on
that chain. It approves the Bridge when the allowance is short, sends `Bridge.deposit`, then waits
until the L2 account's collateral has risen by the amount (the node credits a deposit a
confirmation or so after it sees it). `withdraw` (the way back) is prover/withdrawcli.py.
"""

from __future__ import annotations

import argparse
import time

from eth_utils import to_checksum_address
from optrollup_client import Client, L1Wallet, NotFoundError

from sequencer.client import cli
from sequencer.errors import InvalidRequest, OptrollupError
from sequencer.keys import load_key, refuse_raw_key_option
from sequencer.units import format_units, parse_units

__all__ = ["register"]


def address(text: str, what: str) -> str:
    """`text` as an EIP-55 address, or InvalidRequest naming `what`."""
    try:
        if text.startswith("0x") and len(text) == 42:
            return to_checksum_address(text)
    except ValueError:
        pass
    raise InvalidRequest(f"{what} must be an address (0x + 40 hex digits), got {text!r}",
                         code="invalid_address")


def _collateral(c: Client) -> int:
    try:
        return c.account().collateral
    except NotFoundError:  # no deposit yet: the account does not exist on L2
        return 0


def _deposit(args: argparse.Namespace) -> int:
    amount = parse_units(args.amount, "--amount (USDC)")
    to_arg = address(args.to, "--to") if args.to else None
    key = load_key(args.keystore, password_file=args.password_file, password_env=args.password_env,
                   prompt="Keystore password: ")
    with Client(args.url, key=key, clock=lambda: cli.CLOCK(), timeout=args.timeout) as c, \
            L1Wallet(args.l1_rpc, key) as wallet:
        l1 = wallet.node_l1(c.info())
        to = to_arg or key.address
        mine = to.lower() == key.address.lower()
        have = wallet.token_balance(l1["collateralToken"])
        if have < amount:
            raise InvalidRequest(f"{key.address} holds {format_units(have)} USDC on L1, less than "
                                 f"{format_units(amount)}", code="insufficient_l1_balance")
        if int(wallet.rpc("eth_getBalance", key.address, "latest"), 16) == 0:
            raise InvalidRequest(f"{key.address} has no ETH on L1 to pay gas", code="no_l1_gas")
        before = _collateral(c) if mine else None
        print(f"depositing {format_units(amount)} USDC from {key.address} on L1 for L2 account {to}",
              flush=True)
        receipt = wallet.deposit(l1["bridge"], l1["collateralToken"], amount, to)
        print(f"deposit sent: L1 tx {receipt.tx_hash} (block {receipt.block})", flush=True)
        if args.no_wait:
            return 0
        if not mine:
            print(f"not waiting: the credit of {to} is visible only to that account", flush=True)
            return 0
        assert before is not None
        deadline = time.monotonic() + args.max_wait
        while (now := _collateral(c)) < before + amount:
            if time.monotonic() > deadline:
                raise OptrollupError(f"the deposit is on L1 (tx {receipt.tx_hash}) but L2 collateral is still "
                                     f"{format_units(now)} USDC after {args.max_wait:.0f} s (was "
                                     f"{format_units(before)}); the node credits it once it sees the "
                                     f"deposit: check again with `optrollup account`", code="timeout")
            time.sleep(args.poll)
        print(f"credited on L2: collateral {format_units(before)} -> {format_units(now)} USDC", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("deposit", help="deposit USDC from L1 (approve + Bridge.deposit) and wait for the "
                                       "L2 credit",
                       description="Sends approve (if needed) and Bridge.deposit from the key's L1 address, "
                                   "then waits until the L2 account's collateral has risen by the amount. "
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
    d.add_argument("--no-wait", action="store_true", help="stop once the L1 deposit is mined")
    d.add_argument("--max-wait", type=float, default=600.0, metavar="SECONDS",
                   help="how long to wait for the L2 credit (default 600)")
    d.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help=argparse.SUPPRESS)
    d.set_defaults(func=_deposit)
