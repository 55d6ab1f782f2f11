"""`optrollup keys new|show` and `optrollup order place|cancel|list`, for a person at a terminal.

Human units in, exact integers out: `--price` in USDC (up to 6 decimals, converted to base
units), `--amount` in contracts (up to 6 decimals, converted to contracts × 10^6); anything that
does not convert exactly is refused. Errors are OptrollupErrors: `optrollup` prints
`error [code]: message` and exits non-zero.

Keys: `--keystore FILE` with the password rule of `sequencer.keys` (`--password-file`,
`--password-env NAME`, `OPTROLLUP_PASSWORD`, else a prompt), or `--keystore pkcs11:...` for a
key in a hardware security module (its PIN from the URI or by the same rule). No raw private
key on the command line: these commands talk to any node, not only the devnet.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from eth_account import Account as EthAccount
from eth_utils import to_checksum_address

from optrollup_client._client import Client
from optrollup_client._errors import ClientError
from optrollup_client._signing import Signer
from optrollup_client._types import OrderAck
from sequencer.units import DECIMALS, format_units, parse_units  # noqa: F401 - re-exported
from sequencer.keys import PASSWORD_ENV, load_key, read_keystore, read_password, refuse_raw_key_option

__all__ = ["format_units", "parse_units", "register"]

CLOCK: Callable[[], float] = time.time   # unix seconds; tests replace it


# -- passwords and keys (the rule of sequencer.keys) ----------------------------------------------

def _password(args: argparse.Namespace, *, confirm: bool = False) -> str:
    """--password-file, else --password-env NAME, else OPTROLLUP_PASSWORD, else a prompt."""
    return read_password(args.password_file, args.password_env, prompt="Keystore password: ",
                              confirm=confirm)


def _password_args(p: argparse.ArgumentParser, prompted: str = "prompted") -> None:
    p.add_argument("--password-file", metavar="FILE",
                   help=f"keystore password: the first line of FILE (else --password-env, else "
                        f"${PASSWORD_ENV}, else {prompted})")
    p.add_argument("--password-env", metavar="NAME",
                   help="read the keystore password from the environment variable NAME")


def _keys_new(args: argparse.Namespace) -> int:
    acct = EthAccount.create()
    out = Path(args.out) if args.out else Path(f"{acct.address}.json")
    if out.exists():
        raise ClientError(f"{out} exists; not overwriting a keystore", code="file_exists")
    blob = EthAccount.encrypt(acct.key, _password(args, confirm=True))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(blob, f)
    print(acct.address)
    print(f"keystore written to {out}", file=sys.stderr)
    return 0


def _keys_show(args: argparse.Namespace) -> int:
    blob = read_keystore(args.file)
    if args.private and not args.yes_show_private_key:
        raise ClientError("--private prints the secret key; add --yes-show-private-key to confirm",
                          code="confirmation_required")
    if args.private or "address" not in blob:
        acct = Signer.from_keystore(args.file, _password(args)).key
        print(acct.address)
        if args.private:
            print("0x" + bytes(acct.key).hex())
        return 0
    print(to_checksum_address("0x" + str(blob["address"]).removeprefix("0x")))
    return 0


# -- orders ---------------------------------------------------------------------------------------

def _client(args: argparse.Namespace) -> Client:
    key = load_key(args.keystore, password_file=args.password_file, password_env=args.password_env,
                        prompt="Keystore password: ")
    return Client(args.url, key=key, account=args.account, clock=lambda: CLOCK(), timeout=args.timeout)


def _print_ack(ack: OrderAck, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"orderHash": ack.order_hash, "status": ack.status,
                          "filledAmount": str(ack.filled_amount),
                          "fills": [{"price": str(f.price), "amount": str(f.amount),
                                     "makerOrder": f.maker_order} for f in ack.fills]}))
        return
    print(f"{ack.order_hash} {ack.status}, filled {format_units(ack.filled_amount)} contracts")
    for f in ack.fills:
        print(f"  fill {format_units(f.amount)} @ {format_units(f.price)} USDC (maker {f.maker_order})")


def _order_place(args: argparse.Namespace) -> int:
    price = parse_units(args.price, "--price (USDC)")
    amount = parse_units(args.amount, "--amount (contracts)")
    with _client(args) as c:
        expiry = None if args.expiry_seconds is None else int(CLOCK()) + args.expiry_seconds
        ack = c.place_order(args.instrument, args.side, price, amount, time_in_force=args.tif,
                            post_only=args.post_only, reduce_only=args.reduce_only, expiry=expiry)
    _print_ack(ack, args.json)
    return 0


def _order_cancel(args: argparse.Namespace) -> int:
    with _client(args) as c:
        r = c.cancel(args.hash)
    if args.json:
        print(json.dumps({"orderHash": r.order_hash, "status": r.status, "remaining": str(r.remaining)}))
    else:
        print(f"{r.order_hash} {r.status} ({format_units(r.remaining)} contracts were open)")
    return 0


def _order_list(args: argparse.Namespace) -> int:
    with _client(args) as c:
        orders = c.open_orders()
    if args.json:
        print(json.dumps([{"orderHash": o.order_hash, "instrument": o.order.instrument,
                           "side": "buy" if o.order.is_buy else "sell", "price": str(o.order.price),
                           "amount": str(o.order.amount), "remaining": str(o.remaining)} for o in orders]))
        return 0
    if not orders:
        print("no open orders")
        return 0
    print(f"{'order hash':<66}  {'instrument':<20} {'side':<4} {'price USDC':>12} {'remaining':>12} {'amount':>12}")
    for o in orders:
        print(f"{o.order_hash:<66}  {o.order.instrument:<20} {'buy' if o.order.is_buy else 'sell':<4} "
              f"{format_units(o.order.price):>12} {format_units(o.remaining):>12} "
              f"{format_units(o.order.amount):>12}")
    return 0


def _account_show(args: argparse.Namespace) -> int:
    with _client(args) as c:
        a = c.account()
    if args.json:
        print(json.dumps(dataclasses.asdict(a), default=str))
        return 0
    print(f"{a.account}  {a.margin_mode} margin"
          f"{'  IN LIQUIDATION since ' + str(a.liquidation_started_at) if a.liquidation_started_at else ''}")
    for label, v in (("collateral", a.collateral), ("equity", a.equity),
                     ("initial margin", a.initial_margin), ("maintenance margin", a.maintenance_margin),
                     ("available", a.available)):
        print(f"  {label:<19} {format_units(v):>16} USDC")
    for s in a.portfolio:
        print(f"  {s.underlying}: worst scenario spot {s.spot_shock_pct:+d}% vol {s.vol_shock_pct:+d}% "
              f"loses {format_units(s.worst_loss)} USDC; IM {format_units(s.initial_margin)}, "
              f"MM {format_units(s.maintenance_margin)}")
    for p in a.positions:
        print(f"  {p.instrument:<22} {format_units(p.amount):>12} @ mark "
              f"{'-' if p.mark is None else format_units(p.mark)}")
    return 0


def _account_margin_mode(args: argparse.Namespace) -> int:
    with _client(args) as c:
        mode = c.set_margin_mode(args.mode)
        a = c.account()
    print(json.dumps({"marginMode": mode, "initialMargin": str(a.initial_margin),
                      "maintenanceMargin": str(a.maintenance_margin)}) if args.json else
          f"{a.account} is now in {mode} margin: IM {format_units(a.initial_margin)}, "
          f"MM {format_units(a.maintenance_margin)}, equity {format_units(a.equity)} USDC")
    return 0


def _conn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the node's HTTP API, e.g. http://127.0.0.1:8080")
    p.add_argument("--keystore", required=True, metavar="KEY",
                   help="the signing key: an encrypted JSON keystore (optrollup keys new) or a "
                        "pkcs11: URI (optrollup keys hsm-new)")
    refuse_raw_key_option(p)
    _password_args(p)
    p.add_argument("--account", help="act for this account with a registered session key")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Add `keys`, `order` and `account` to the `optrollup` parser."""
    keys_cmd = sub.add_parser("keys", help="create and inspect keys: encrypted JSON keystores, and "
                                           "secp256k1 keys in a PKCS#11 token (hsm-*)")
    ks = keys_cmd.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = ks.add_parser("new", help="create a key, write it encrypted, print its address")
    new.add_argument("--out", help="keystore file to write (default: ./<address>.json)")
    _password_args(new, "prompted twice")
    new.set_defaults(func=_keys_new)
    show = ks.add_parser("show", help="print a keystore's address")
    show.add_argument("file")
    show.add_argument("--private", action="store_true", help="also print the secret key")
    show.add_argument("--yes-show-private-key", action="store_true", help="confirm --private")
    _password_args(show)
    show.set_defaults(func=_keys_show)

    order = sub.add_parser("order", help="place, cancel and list orders")
    os_ = order.add_subparsers(dest="order_command", required=True, metavar="ACTION")
    place = os_.add_parser("place", help="sign and place one order")
    _conn_args(place)
    place.add_argument("--instrument", required=True, help="e.g. ETH-27DEC26-3000-C")
    place.add_argument("--side", required=True, choices=("buy", "sell"))
    place.add_argument("--price", required=True, help="USDC per contract, up to 6 decimals, e.g. 125.5")
    place.add_argument("--amount", required=True, help="contracts, up to 6 decimals, e.g. 0.25")
    place.add_argument("--tif", choices=("gtc", "ioc", "fok"), default="gtc", help="time in force")
    place.add_argument("--post-only", action="store_true")
    place.add_argument("--reduce-only", action="store_true")
    place.add_argument("--expiry-seconds", type=int, help="order lifetime in seconds (default 3600 or "
                                                            "the node's maximum, whichever is less)")
    place.set_defaults(func=_order_place)
    cancel = os_.add_parser("cancel", help="cancel one open order by its hash")
    _conn_args(cancel)
    cancel.add_argument("hash", help="order hash, 0x + 64 hex digits")
    cancel.set_defaults(func=_order_cancel)
    lst = os_.add_parser("list", help="list the account's open orders")
    _conn_args(lst)
    lst.set_defaults(func=_order_list)

    account = sub.add_parser("account", help="the account's figures and its margin mode")
    acs = account.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    show = acs.add_parser("show", help="collateral, equity, margins, worst scenarios, positions")
    _conn_args(show)
    show.set_defaults(func=_account_show)
    mm = acs.add_parser("margin-mode", help="switch between standard and portfolio margin "
                                            "(signed by the account key itself)")
    _conn_args(mm)
    mm.add_argument("mode", choices=("standard", "portfolio"))
    mm.set_defaults(func=_account_margin_mode)
