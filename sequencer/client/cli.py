"""The terminal client, for a person at a terminal: `optrollup keys new|show`, `order
place|cancel|cancel-all|replace|list`, `account [show|margin-mode]`, `session-key add|revoke`,
`book`, `trades` (and `deposit`, sequencer/client/funds.py; `withdraw` is prover/withdrawcli.py).

Every read prints a table (sequencer/client/table.py) or, with `--json`, one JSON document whose
money and amounts (base units, contracts × 10^6) are decimal strings (`account show --json` keeps
the SDK's `Account` fields as they always were: integers).

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
from itertools import zip_longest
from pathlib import Path
from typing import Any

from eth_account import Account as EthAccount
from eth_utils import to_checksum_address
from optrollup_client._client import Client
from optrollup_client._errors import ClientError
from optrollup_client._signing import Signer
from optrollup_client._types import NewOrder, OpenOrder, OrderAck

from sequencer.client.table import show, table, usd, utc
from sequencer.errors import InvalidRequest
from sequencer.keys import (
    PASSWORD_ENV,
    load_key,
    read_keystore,
    read_password,
    refuse_raw_key_option,
)
from sequencer.units import DECIMALS, format_units, parse_address, parse_units

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
    return Client(args.url, key=key, account=args.account, clock=lambda: CLOCK(), timeout=args.timeout,
                  order_url=getattr(args, "order_url", None))


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


def _order_rows(orders: list[OpenOrder]) -> list[list[str]]:
    return [[o.order_hash, o.order.instrument, "buy" if o.order.is_buy else "sell", usd(o.order.price),
             format_units(o.remaining), format_units(o.order.amount), utc(o.order.expiry)] for o in orders]


ORDER_COLUMNS = [("order hash", "<"), ("instrument", "<"), ("side", "<"), ("price USDC", ">"),
                 ("remaining", ">"), ("amount", ">"), ("expires (UTC)", "<")]


def _order_json(o: OpenOrder) -> dict[str, Any]:
    return {"orderHash": o.order_hash, "instrument": o.order.instrument,
            "side": "buy" if o.order.is_buy else "sell", "price": str(o.order.price),
            "amount": str(o.order.amount), "remaining": str(o.remaining)}


def _order_list(args: argparse.Namespace) -> int:
    with _client(args) as c:
        orders = c.open_orders()
    show(args.json, [_order_json(o) for o in orders],
         lambda: table(ORDER_COLUMNS, _order_rows(orders), empty="no open orders"))
    return 0


def _order_cancel_all(args: argparse.Namespace) -> int:
    with _client(args) as c:
        n = c.cancel_all(args.instrument or "")
    where = f"in {args.instrument}" if args.instrument else "in every instrument"
    show(args.json, {"cancelled": n, "instrument": args.instrument or ""},
         lambda: f"cancelled {n} open order{'' if n == 1 else 's'} {where}")
    return 0


def _order_replace(args: argparse.Namespace) -> int:
    if args.price is None and args.amount is None:
        raise InvalidRequest("give the new --price, the new --amount, or both", code="missing_option")
    price = None if args.price is None else parse_units(args.price, "--price (USDC)")
    amount = None if args.amount is None else parse_units(args.amount, "--amount (contracts)")
    with _client(args) as c:
        old = c.order(args.hash)
        if old.status not in ("open", "partially_filled"):
            raise InvalidRequest(f"order {old.order_hash} is {old.status}, not open: nothing to replace",
                                 code="order_not_open")
        o = old.order
        expiry = None if args.expiry_seconds is None else int(CLOCK()) + args.expiry_seconds
        new = NewOrder(o.instrument, "buy" if o.is_buy else "sell",
                       o.price if price is None else price,
                       o.amount - old.filled_amount if amount is None else amount,
                       o.time_in_force, o.post_only, o.reduce_only, expiry)
        ack = c.replace_order(old.order_hash, new)
    if not args.json:
        print(f"replaced {old.order_hash} ({o.instrument} {'buy' if o.is_buy else 'sell'} "
              f"{format_units(o.amount - old.filled_amount)} @ {format_units(o.price)} USDC) by "
              f"{format_units(new.amount)} @ {format_units(new.price)} USDC:")
    _print_ack(ack, args.json)
    return 0


# -- session keys: SessionKey(account, key, expiry), signed by the account's own key ---------------

def _session_key_address(text: str) -> str:
    """An address, or the file of an encrypted keystore (its address is read, not decrypted)."""
    if text.startswith("0x") and len(text) == 42:
        return parse_address(text, "the session key")
    if not Path(text).exists():
        raise InvalidRequest(f"the session key must be an address (0x + 40 hex) or a keystore file; "
                             f"{text!r} is neither", code="invalid_address")
    blob = read_keystore(text)
    if "address" not in blob:
        raise InvalidRequest(f"keystore {text} does not name its address; give the address",
                             code="invalid_address")
    return to_checksum_address("0x" + str(blob["address"]).removeprefix("0x"))


def _session_key_add(args: argparse.Namespace) -> int:
    key = _session_key_address(args.key)
    if args.expiry_seconds <= 0:
        raise InvalidRequest("--expiry-seconds must be positive (session-key revoke ends a key)",
                             code="invalid_number")
    with _client(args) as c:
        expiry = int(CLOCK()) + args.expiry_seconds
        c.register_session_key(key, expiry)
        account = c.account_address
    show(args.json, {"account": account, "key": key, "expiry": expiry},
         lambda: f"session key {key} may sign orders and cancels for {account} until "
                 f"{utc(expiry)} UTC (use it with --keystore <its keystore> --account {account})")
    return 0


#: how far in the past a revocation's expiry lies: the node revokes a key whose new expiry is at or
#: before its block time, so a client clock up to this far ahead of the node still revokes
REVOKE_BACKDATE = 3600


def _session_key_revoke(args: argparse.Namespace) -> int:
    key = _session_key_address(args.key)
    with _client(args) as c:
        # the node has no separate revoke: a SessionKey whose expiry is already past removes the
        # key (sequencer/core/transition.py); each SessionKey digest is accepted once, so the
        # expiry is a past time that differs per second rather than a constant such as 0
        expiry = max(1, int(CLOCK()) - REVOKE_BACKDATE)
        c.register_session_key(key, expiry)
        account = c.account_address
    show(args.json, {"account": account, "key": key, "expiry": expiry, "revoked": True},
         lambda: f"session key {key} revoked: it no longer signs for {account}")
    return 0


# -- public reads: book and trades (no key) -------------------------------------------------------

def _public_client(args: argparse.Namespace) -> Client:
    return Client(args.url, clock=lambda: CLOCK(), timeout=args.timeout)


def _book(args: argparse.Namespace) -> int:
    if args.depth <= 0:
        raise InvalidRequest(f"--depth must be positive, got {args.depth}", code="invalid_number")
    with _public_client(args) as c:
        b = c.book(args.instrument, args.depth)
    data = {"instrument": b.instrument, "sequence": b.sequence,
            "bids": [[str(lv.price), str(lv.amount)] for lv in b.bids],
            "asks": [[str(lv.price), str(lv.amount)] for lv in b.asks]}

    def text() -> str:
        rows = [[format_units(bid.amount) if bid else "", usd(bid.price) if bid else "",
                 usd(ask.price) if ask else "", format_units(ask.amount) if ask else ""]
                for bid, ask in zip_longest(b.bids, b.asks)]
        head = f"{b.instrument} (sequence {b.sequence})"
        return head + "\n" + table([("bid size", ">"), ("bid USDC", ">"), ("ask USDC", ">"),
                                     ("ask size", ">")], rows, empty="the book is empty")

    show(args.json, data, text)
    return 0


def _trades(args: argparse.Namespace) -> int:
    if args.limit <= 0:
        raise InvalidRequest(f"--limit must be positive, got {args.limit}", code="invalid_number")
    with _public_client(args) as c:
        trades = c.trades(args.instrument, args.limit)
    data = [{"instrument": t.instrument, "price": str(t.price), "amount": str(t.amount),
             "takerSide": t.taker_side, "timestamp": t.timestamp, "makerOrder": t.maker_order,
             "takerOrder": t.taker_order} for t in trades]
    rows = [[utc(t.timestamp), t.instrument, t.taker_side, usd(t.price), format_units(t.amount)]
            for t in trades]
    show(args.json, data, lambda: table([("time (UTC)", "<"), ("instrument", "<"), ("taker", "<"),
                                         ("price USDC", ">"), ("amount", ">")], rows, empty="no trades"))
    return 0


def _account_show(args: argparse.Namespace) -> int:
    if not (args.url and args.keystore):
        raise InvalidRequest("optrollup account needs --url URL and --keystore KEY (or an action: "
                             "show, margin-mode)", code="missing_option")
    with _client(args) as c:
        a = c.account()
    if args.json:
        print(json.dumps(dataclasses.asdict(a), default=str))
        return 0
    print(f"{a.account}  {a.margin_mode} margin"
          f"{'  IN LIQUIDATION since ' + utc(a.liquidation_started_at) + ' UTC' if a.liquidation_started_at else ''}"
          f"{'  FROZEN since ' + utc(a.frozen_at) + ' UTC' if a.frozen_at else ''}")
    print(table([("", "<"), ("USDC", ">")],
                [[label, usd(v)] for label, v in (
                    ("collateral", a.collateral), ("equity", a.equity), ("initial margin", a.initial_margin),
                    ("maintenance margin", a.maintenance_margin), ("available", a.available))]))
    for s in a.portfolio:
        print(f"{s.underlying}: worst scenario spot {s.spot_shock_pct:+d}% vol {s.vol_shock_pct:+d}% "
              f"loses {usd(s.worst_loss)} USDC; IM {usd(s.initial_margin)}, MM {usd(s.maintenance_margin)}")
    print("\npositions")
    print(table([("instrument", "<"), ("amount", ">"), ("mark USDC", ">"), ("value USDC", ">")],
                [[p.instrument, format_units(p.amount), usd(p.mark),
                  "-" if p.mark is None else format_units(p.amount * p.mark, 2 * DECIMALS)] for p in a.positions],
                empty="no positions"))
    print("\nopen orders")
    print(table(ORDER_COLUMNS, _order_rows(a.open_orders), empty="no open orders"))
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


def _conn_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--url", required=required, help="the node's HTTP API, e.g. http://127.0.0.1:8080")
    p.add_argument("--order-url", metavar="URL",
                   help="the node's order-entry port (its ingress workers, `devnet --ingress-workers "
                        "N` prints it): signed writes go there, reads to --url")
    p.add_argument("--keystore", required=required, metavar="KEY",
                   help="the signing key: an encrypted JSON keystore (optrollup keys new) or a "
                        "pkcs11: URI (optrollup keys hsm-new)")
    refuse_raw_key_option(p)
    _password_args(p)
    p.add_argument("--account", help="act for this account with a registered session key")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _public_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the node's HTTP API, e.g. http://127.0.0.1:8080")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `keys`, `order`, `account`, `session-key`, `book`, `trades` and `deposit` to the
    `optrollup` parser (`withdraw` is prover's: prover/withdrawcli.py)."""
    keys_cmd = sub.add_parser("keys", help="create and inspect keys: encrypted JSON keystores, and "
                                           "secp256k1 keys in a PKCS#11 token (hsm-*)")
    ks = keys_cmd.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = ks.add_parser("new", help="create a key, write it encrypted, print its address")
    new.add_argument("--out", help="keystore file to write (default: ./<address>.json)")
    _password_args(new, "prompted twice")
    new.set_defaults(func=_keys_new)
    kshow = ks.add_parser("show", help="print a keystore's address")
    kshow.add_argument("file")
    kshow.add_argument("--private", action="store_true", help="also print the secret key")
    kshow.add_argument("--yes-show-private-key", action="store_true", help="confirm --private")
    _password_args(kshow)
    kshow.set_defaults(func=_keys_show)

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
    ca = os_.add_parser("cancel-all", help="cancel every open order of the account (or in one instrument)")
    _conn_args(ca)
    ca.add_argument("--instrument", help="only this instrument (default: all)")
    ca.set_defaults(func=_order_cancel_all)
    rp = os_.add_parser("replace", help="amend an open order: cancel it and place the new one, both or "
                                        "neither (the new one loses time priority)")
    _conn_args(rp)
    rp.add_argument("hash", help="the open order's hash, 0x + 64 hex digits")
    rp.add_argument("--price", help="new price, USDC per contract (default: unchanged)")
    rp.add_argument("--amount", help="new amount, contracts (default: what is still open)")
    rp.add_argument("--expiry-seconds", type=int, help="the new order's lifetime in seconds")
    rp.set_defaults(func=_order_replace)

    account = sub.add_parser("account", help="the account's figures, positions, open orders, margin mode "
                                             "(`optrollup account --url U --keystore K` = account show)")
    _conn_args(account, required=False)
    account.set_defaults(func=_account_show)
    acs = account.add_subparsers(dest="account_command", metavar="ACTION")
    show_ = acs.add_parser("show", help="collateral, equity, margins, worst scenarios, positions, open orders")
    _conn_args(show_)
    show_.set_defaults(func=_account_show)
    mm = acs.add_parser("margin-mode", help="switch between standard and portfolio margin "
                                            "(signed by the account key itself)")
    _conn_args(mm)
    mm.add_argument("mode", choices=("standard", "portfolio"))
    mm.set_defaults(func=_account_margin_mode)

    sk = sub.add_parser("session-key", help="let another key sign orders and cancels for the account "
                                            "(a bot's key), or stop it")
    sks = sk.add_subparsers(dest="session_key_command", required=True, metavar="ACTION")
    add = sks.add_parser("add", help="register a session key, signed by the account's own key")
    _conn_args(add)
    add.add_argument("key", help="the session key: its address, or its keystore file (only the address "
                                 "is read)")
    add.add_argument("--expiry-seconds", type=int, default=86400,
                     help="how long it may sign, in seconds (default 86400)")
    add.set_defaults(func=_session_key_add)
    rv = sks.add_parser("revoke", help="stop a session key now (it is registered again with an expiry in "
                                       "the past, which the node applies as removal)")
    _conn_args(rv)
    rv.add_argument("key", help="the session key: its address or its keystore file")
    rv.set_defaults(func=_session_key_revoke)

    bk = sub.add_parser("book", help="an instrument's order book: aggregated levels, best first")
    _public_args(bk)
    bk.add_argument("instrument", help="e.g. ETH-27DEC26-3000-C")
    bk.add_argument("--depth", type=int, default=20, help="levels per side (default 20)")
    bk.set_defaults(func=_book)
    tr = sub.add_parser("trades", help="recent trades, newest first")
    _public_args(tr)
    tr.add_argument("--instrument", help="only this instrument")
    tr.add_argument("--limit", type=int, default=50, help="at most this many (default 50, at most 1000)")
    tr.set_defaults(func=_trades)

    from sequencer.client import (
        funds,  # it builds on this module's key and connection options
    )

    funds.register(sub)  # deposit: approve + Bridge.deposit on L1, then wait for the L2 credit
