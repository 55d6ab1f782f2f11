"""`optrollup channels ...`: the state-channel service and its owner's commands.

    optrollup channels serve --data-dir D --keystore K --sequencer URL [--account ADDR] [--port P]
        [--host H] [--public-url URL] [--max-deposit USDC] [--l1-rpc URL --adjudicator ADDR]
    optrollup channels open --peer URL --deposit USDC [--peer-deposit USDC]
        [--challenge-period S] [--nonce N]
    optrollup channels list
    optrollup channels quote CHANNEL [--line INSTRUMENT,BID,BID_AMOUNT,ASK,ASK_AMOUNT ...]
        [--file QUOTES.json] [--clear]          (no line: print the standing quotes)
    optrollup channels trade CHANNEL --instrument I --side buy|sell --price USDC --amount CONTRACTS
    optrollup channels state CHANNEL
    optrollup channels close CHANNEL
    optrollup channels challenge CHANNEL --l1-rpc URL --adjudicator ADDR [--data-dir D]
    optrollup channels conclude CHANNEL --l1-rpc URL --adjudicator ADDR [--data-dir D]
    optrollup channels watch ...               (channels/watcher.py)

The owner commands talk to the party's own service (`--service URL`, default
http://127.0.0.1:8750, or $OPTROLLUP_CHANNEL_SERVICE) with the X-Optrollup-* headers signed by
`--keystore` (the owner's account key, or the service's key); `--account` names the owner when
the key is not the account itself (default: the service's `GET /v1/identity`).

`challenge` registers (or, while a dispute is open, refutes with) the latest co-signed state at
the L1 Adjudicator; a final state concludes at once. `conclude` ends a dispute whose window
has passed. Both read the channel from the running service, or with `--data-dir D` from the
store of a stopped one (LevelDB lets one process hold it); the L1 transaction is paid by
`--l1-keystore` (default: `--keystore`).

Human units in, exact integers on the wire: prices and deposits in USDC (up to 6 decimals),
amounts in contracts (up to 6 decimals); anything inexact is refused. `--json` prints the
service's JSON answer instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from channels.rules import QuoteLine
from channels.watcher import add_watch_parser
from sequencer.errors import InvalidRequest, OptrollupError
from sequencer.units import format_units, parse_units

__all__ = ["register"]

SERVICE_ENV = "OPTROLLUP_CHANNEL_SERVICE"
DEFAULT_SERVICE = "http://127.0.0.1:8750"


# -- helpers --------------------------------------------------------------------------------------

def _key(path: str, args: argparse.Namespace) -> Any:
    from sequencer.keys import load_key

    return load_key(path, password_file=args.password_file, password_env=args.password_env,
                    prompt="Keystore password: ")


def _client(args: argparse.Namespace) -> Any:
    from channels.client import ChannelClient

    return ChannelClient(args.service, key=_key(args.keystore, args), account=args.account,
                         timeout=args.timeout)


def _units(text: str, what: str, *, zero: bool = False) -> int:
    t = text.strip()
    if zero and t.replace("0", "").replace(".", "") == "" and t.count(".") <= 1 and t[:1] == "0":
        return 0
    return parse_units(t, what)


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=1))


def _state_lines(co: Any) -> list[str]:
    s = co.state
    out = [f"channel {co.channel_id} turn {s.turnNum}{' FINAL' if s.isFinal else ''}",
           f"  balance A {format_units(s.balanceA):>14} USDC",
           f"  balance B {format_units(s.balanceB):>14} USDC"]
    out += [f"  A holds {format_units(p.amount):>10} {p.instrument} (B {format_units(-p.amount)})"
            for p in s.positions]
    out.append(f"  digest 0x{co.digest.hex()}")
    out.append(f"  sigA 0x{co.sig_a.hex()}")
    out.append(f"  sigB 0x{co.sig_b.hex()}")
    return out


def _costate_json(co: Any) -> dict[str, Any]:
    from channels._proto import cosigned_to_json
    from channels.store import Cosigned

    return cosigned_to_json(Cosigned(co.state, co.digest, co.sig_a, co.sig_b))


# -- owner commands -------------------------------------------------------------------------------

def _open(args: argparse.Namespace) -> int:
    dep = _units(args.deposit, "--deposit (USDC)", zero=True)
    peer_dep = _units(args.peer_deposit, "--peer-deposit (USDC)", zero=True)
    with _client(args) as c:
        o = c.open(args.peer, dep, peer_dep, args.challenge_period, args.nonce)
    if args.json:
        _print({"channelId": o.channel_id, "channel": o.channel, "state": _costate_json(o.state)})
    else:
        print(o.channel_id)
        print(f"opened on the rollup ({o.channel['status']}): A deposits {format_units(dep)} USDC, "
              f"B {format_units(peer_dep)} USDC, challenge period {args.challenge_period} s",
              file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    with _client(args) as c:
        chans = c.channels()
    if args.json:
        _print([{"channelId": i.channel_id, "side": i.side, "peer": i.peer, "turnNum": str(i.turn),
                 "isFinal": i.is_final, "balanceA": str(i.balance_a), "balanceB": str(i.balance_b),
                 "rollupStatus": i.rollup_status} for i in chans])
        return 0
    if not chans:
        print("no channels")
    for i in chans:
        print(f"{i.channel_id} side {i.side} turn {i.turn}{' FINAL' if i.is_final else ''} "
              f"A {format_units(i.balance_a)} B {format_units(i.balance_b)} USDC, "
              f"{len(i.positions)} position(s), rollup {i.rollup_status}, peer {i.peer}")
    return 0


def _parse_line(text: str) -> QuoteLine:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 5:
        raise InvalidRequest(f"--line {text!r} must be INSTRUMENT,BID,BID_AMOUNT,ASK,ASK_AMOUNT "
                             "(prices in USDC, amounts in contracts; 0 amount: no quote on that side)",
                             code="invalid_argument")
    name, bid, bid_amt, ask, ask_amt = parts
    return QuoteLine(name, _units(bid, "bid (USDC)", zero=True),
                     _units(bid_amt, "bid amount (contracts)", zero=True),
                     _units(ask, "ask (USDC)", zero=True), _units(ask_amt, "ask amount (contracts)", zero=True))


def _quote(args: argparse.Namespace) -> int:
    from channels._wire import quote_from_json

    lines: list[QuoteLine] = []
    if args.file:
        lines += list(quote_from_json(json.loads(Path(args.file).read_text()), "--file"))
    lines += [_parse_line(t) for t in args.line or ()]
    with _client(args) as c:
        if lines or args.clear:
            quotes = c.set_quotes(args.channel, lines)
        else:
            quotes = c.quotes(args.channel)
    if args.json:
        _print([q._asdict() for q in quotes])
        return 0
    if not quotes:
        print("no standing quotes")
    for q in quotes:
        print(f"{q.instrument:<22} bid {format_units(q.bid):>10} x {format_units(q.bidAmount):<8} "
              f"ask {format_units(q.ask):>10} x {format_units(q.askAmount)}")
    return 0


def _trade(args: argparse.Namespace) -> int:
    price = _units(args.price, "--price (USDC)", zero=True)
    amount = _units(args.amount, "--amount (contracts)")
    with _client(args) as c:
        co = c.trade(args.channel, args.instrument, args.side == "buy", price, amount)
    if args.json:
        _print(_costate_json(co))
    else:
        print("\n".join(_state_lines(co)))
    return 0


def _state(args: argparse.Namespace) -> int:
    with _client(args) as c:
        co = c.state(args.channel)
    if args.json:
        _print(_costate_json(co))
    else:
        print("\n".join(_state_lines(co)))
    return 0


def _close(args: argparse.Namespace) -> int:
    with _client(args) as c:
        closed = c.close(args.channel)
    if args.json:
        _print({**closed.channel, "finalState": _costate_json(closed.state)})
    else:
        print("\n".join(_state_lines(closed.state)))
        print(f"rollup: {closed.channel['status']} at turn {closed.channel['closedTurnNum']}")
    return 0


# -- L1 -------------------------------------------------------------------------------------------

def _channel_and_latest(args: argparse.Namespace, need_state: bool) -> tuple[Any, Any]:
    """(ChannelOpen, (state, sigA, sigB) or None) from the service or from --data-dir."""
    from sequencer.core.channelmsg import json_bytes

    cid = json_bytes(args.channel, "CHANNEL", 32)
    if args.data_dir:
        from channels.store import ChannelStore

        path = Path(args.data_dir) / "db"
        if not path.exists():
            raise OptrollupError(f"no channel store at {path}", code="no_channel_store")
        with ChannelStore(path) as store:
            ch = store.channel(cid)
            if ch is None:
                raise OptrollupError(f"channel {args.channel} is not in {path}", code="unknown_channel")
            co = store.latest(cid)
        if need_state and co is None:
            raise OptrollupError(f"no co-signed state of {args.channel} in {path}", code="no_state")
        return ch.open, None if co is None else (co.state, co.sigA, co.sigB)
    with _client(args) as c:
        info = c.channel(args.channel)
        co = c.state(args.channel) if need_state else None
    return info.open, None if co is None else (co.state, co.sig_a, co.sig_b)


def _status_line(st: Any) -> str:
    if not st.registered:
        return "no dispute registered"
    if st.concluded:
        return f"concluded at turn {st.turn_num} (stateHash 0x{st.state_hash.hex()})"
    return f"turn {st.turn_num} registered, the window ends at {st.finalizes_at} (L1 time)"


def _l1(args: argparse.Namespace, need_state: bool) -> int:
    from sequencer.core.channelmsg import fixed_of
    from sequencer.l1.adjudicator import Adjudicator
    from sequencer.l1.client import L1Client

    opened, latest = _channel_and_latest(args, need_state)
    sender = _key(args.l1_keystore or args.keystore, args)
    with L1Client(args.l1_rpc) as client:
        adj = Adjudicator.at(client, args.adjudicator)
        if need_state:
            state, sig_a, sig_b = latest
            r = adj.challenge(fixed_of(opened), state, sig_a, sig_b, sender=sender, timeout=args.timeout)
        else:
            r = adj.conclude(fixed_of(opened), sender=sender, timeout=args.timeout)
        st = adj.status(args.channel)
    if args.json:
        _print({"txHash": r.tx_hash, "blockNumber": r.block_number,
                "status": {"turnNum": str(st.turn_num), "finalizesAt": st.finalizes_at,
                           "stateHash": "0x" + st.state_hash.hex(), "concluded": st.concluded}})
    else:
        what = f"turn {latest[0].turnNum}" if need_state else "conclude"
        print(f"{what}: included in L1 block {r.block_number} ({r.tx_hash}); {_status_line(st)}")
    return 0


def _challenge(args: argparse.Namespace) -> int:
    return _l1(args, True)


def _conclude(args: argparse.Namespace) -> int:
    return _l1(args, False)


# -- parsers --------------------------------------------------------------------------------------

def _password_args(p: argparse.ArgumentParser) -> None:
    from sequencer.keys import PASSWORD_ENV

    p.add_argument("--password-file", metavar="FILE",
                   help=f"keystore password: first line of FILE (else --password-env, else "
                        f"${PASSWORD_ENV}, else prompted)")
    p.add_argument("--password-env", metavar="NAME", help="read the keystore password from variable NAME")


def _owner_args(p: argparse.ArgumentParser, *, keystore_required: bool = True) -> None:
    from sequencer.keys import refuse_raw_key_option

    p.add_argument("--service", default=os.environ.get(SERVICE_ENV, DEFAULT_SERVICE), metavar="URL",
                   help=f"this party's channel service (default ${SERVICE_ENV} or {DEFAULT_SERVICE})")
    p.add_argument("--keystore", required=keystore_required, metavar="FILE",
                   help="keystore of the owner's account key or of the service's key")
    _password_args(p)
    p.add_argument("--account", metavar="ADDR",
                   help="the owner's account when the key is not it (default: the service's identity)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer")
    p.add_argument("--json", action="store_true", help="print JSON")
    refuse_raw_key_option(p)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `channels` (serve, open, list, quote, trade, state, close, challenge, conclude, watch)
    to the `optrollup` parser."""
    from channels.service import (
        SERVE_DESCRIPTION,
        SERVE_HELP,
        add_serve_arguments,
        serve_command,
    )

    ch = sub.add_parser("channels", help="state channels: the service, trading in a channel, L1 disputes",
                        description=__doc__.split("\n\n")[0])
    cs = ch.add_subparsers(dest="channels_command", required=True, metavar="ACTION")

    p = cs.add_parser("serve", help=SERVE_HELP, description=SERVE_DESCRIPTION)
    add_serve_arguments(p)
    p.set_defaults(func=serve_command)

    p = cs.add_parser("open", help="open a channel with a peer's service (this party is A)")
    _owner_args(p)
    p.add_argument("--peer", required=True, metavar="URL", help="the peer's channel service")
    p.add_argument("--deposit", required=True, metavar="USDC", help="what this party locks")
    p.add_argument("--peer-deposit", default="0", metavar="USDC", help="what the peer locks (default 0)")
    p.add_argument("--challenge-period", type=int, default=3600, metavar="S",
                   help="L1 challenge window in seconds (default 3600)")
    p.add_argument("--nonce", type=int, help="the open's nonce (default: a fresh one)")
    p.set_defaults(func=_open)

    p = cs.add_parser("list", help="this party's channels")
    _owner_args(p)
    p.set_defaults(func=_list)

    p = cs.add_parser("quote", help="replace (or print) this owner's standing quotes in a channel")
    _owner_args(p)
    p.add_argument("channel", metavar="CHANNEL", help="channel id (0x + 64 hex)")
    p.add_argument("--line", action="append", metavar="I,BID,BID_AMT,ASK,ASK_AMT",
                   help="one quote line (USDC, contracts; repeat for more instruments)")
    p.add_argument("--file", metavar="FILE", help="JSON list of {instrument, bid, bidAmount, ask, "
                                                  "askAmount} in base units")
    p.add_argument("--clear", action="store_true", help="withdraw every standing quote")
    p.set_defaults(func=_quote)

    p = cs.add_parser("trade", help="trade with the peer inside a channel")
    _owner_args(p)
    p.add_argument("channel", metavar="CHANNEL")
    p.add_argument("--instrument", required=True, help="e.g. ETH-27DEC26-3000-C")
    p.add_argument("--side", required=True, choices=("buy", "sell"))
    p.add_argument("--price", required=True, metavar="USDC", help="per contract")
    p.add_argument("--amount", required=True, metavar="CONTRACTS")
    p.set_defaults(func=_trade)

    p = cs.add_parser("state", help="the latest co-signed state with both signatures")
    _owner_args(p)
    p.add_argument("channel", metavar="CHANNEL")
    p.set_defaults(func=_state)

    p = cs.add_parser("close", help="co-sign the final state and close the channel on the rollup")
    _owner_args(p)
    p.add_argument("channel", metavar="CHANNEL")
    p.set_defaults(func=_close)

    for name, func, text in (
            ("challenge", _challenge, "register the latest co-signed state at the L1 Adjudicator "
                                      "(or refute a stale one; a final state concludes at once)"),
            ("conclude", _conclude, "conclude an L1 dispute whose challenge window has passed")):
        p = cs.add_parser(name, help=text, description=text)
        _owner_args(p)
        p.add_argument("channel", metavar="CHANNEL")
        p.add_argument("--l1-rpc", required=True, metavar="URL")
        p.add_argument("--adjudicator", required=True, metavar="ADDR")
        p.add_argument("--data-dir", metavar="DIR",
                       help="read the channel from the store of a stopped service instead of --service")
        p.add_argument("--l1-keystore", metavar="FILE", help="the key paying L1 gas (default --keystore)")
        p.set_defaults(func=func)

    add_watch_parser(cs)
