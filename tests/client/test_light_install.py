"""The light SDK as a market maker installs it: `pip install ./client` into an empty venv (no
node, no Cython, no LevelDB), then a script in that venv quotes a two-sided ladder, requotes it
by mass quote, amends one order, uses a session key, withdraws and cancels everything against a
real node; the test checks the node's state against what the script was told.

Does not touch cext, so the pure-twin pass skips it (it installs from the network or pip's cache)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sequencer.node import Limits
from tests.sequencer.client.live import live_node
from tests.sequencer.node.kit import CALL, PUT, USERS

pytestmark = pytest.mark.one_pass()  # a packaging test: never touches cext

NODE_ONLY = ["sequencer", "cext", "prover", "channels", "plyvel", "fastapi", "uvicorn", "coincurve",
             "Cython", "websockets"]  # (py_ecc comes with eth-account)

SCRIPT = r"""
import json, sys
import optrollup_client as oc
from optrollup_client import Client, NewOrder, Signer

url, t0, key, call, put = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
clock = lambda: t0
U = 10**6
out = {}
with Client(url, private_key=key, clock=clock) as c:
    out["chain_id"] = c.info().chain_id
    # the ten lines of the README: a two-sided ladder, then a requote of every level
    ladder = [NewOrder(call, side, (100 + (-k if side == "buy" else k)) * U, 10_000, post_only=True)
              for k in range(1, 6) for side in ("buy", "sell")]
    acks = c.place_orders(ladder)
    out["placed"] = [a.order_hash for a in acks]
    requote = [(a.order_hash, NewOrder(o.instrument, o.side, o.price + (U if o.side == "sell" else -U),
                                       o.amount, post_only=True)) for a, o in zip(acks, ladder)]
    out["requoted"] = [a.order_hash for a in c.mass_quote(requote)]
    out["amended"] = c.replace_order(out["requoted"][0], NewOrder(call, "buy", 90 * U, 20_000,
                                                                   post_only=True)).order_hash
    # a session key signs orders for the account
    sk = Signer.from_private_key("0x" + "42" * 32, account=c.account_address)
    c.register_session_key(sk.address, int(t0) + 3600)
with Client(url, private_key="0x" + "42" * 32, account=oc.Signer.from_private_key(key).address,
            clock=clock) as s:
    out["session_order"] = s.place_order(put, "buy", 5 * U, 10_000, post_only=True).order_hash
with Client(url, private_key=key, clock=clock) as c:
    out["open_before_cancel_all"] = len(c.open_orders())
    w = c.withdraw(25 * U)
    out["withdrawal"] = [w.withdrawal_hash, c.withdrawal(w.withdrawal_hash).status]
    try:
        c.stream("blocks").open()
        out["stream"] = "opened"
    except oc.ClientError as exc:
        out["stream"] = exc.code
    try:
        c.place_order(call, "buy", 1, 10_000)
    except oc.BadRequestError as exc:
        out["bad_price"] = [exc.status, exc.code]
    except oc.ApiError as exc:
        out["bad_price"] = [exc.status, exc.code]
    out["cancelled"] = c.cancel_all()
    out["open_after"] = len(c.open_orders())
print(json.dumps(out))
"""


def test_installs_with_none_of_the_nodes_dependencies(light_venv: Path) -> None:
    code = ("import importlib.util, json, sys; "
            f"print(json.dumps([m for m in {NODE_ONLY!r} if importlib.util.find_spec(m)]))")
    r = subprocess.run([str(light_venv), "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    r = subprocess.run([str(light_venv), "-c", "import optrollup_client as o; print(o.__version__, len(o.__all__))"],
                       capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 0 and r.stdout.startswith("0.1.0"), r.stderr


def test_quotes_amends_withdraws_against_a_real_node(light_venv: Path, tmp_path: Path) -> None:
    a = USERS[0]
    with live_node(tmp_path, Limits(orders_per_second=500, burst=500)) as lv:
        r = subprocess.run([str(light_venv), "-c", SCRIPT, lv.url, str(lv.clock()), a.hex, CALL, PUT],
                           capture_output=True, text=True, timeout=120, cwd="/")
        assert r.returncode == 0, r.stdout + r.stderr
        out = json.loads(r.stdout)
        node = lv.kit.node
        assert out["chain_id"] == lv.kit.cfg.chain_id
        assert len(out["placed"]) == 10 and len(set(out["placed"])) == 10
        assert len(out["requoted"]) == 10 and not set(out["requoted"]) & set(out["placed"])
        assert out["open_before_cancel_all"] == 11        # 10 levels (one amended) + the session key's
        assert out["withdrawal"][1] == "pending"
        assert out["stream"] == "stream_unavailable"      # websockets is the `stream` extra
        assert out["bad_price"][0] == 400
        assert out["cancelled"] == 11 and out["open_after"] == 0
        # what the node holds agrees with what the script was told
        assert node.withdrawal_pending(bytes.fromhex(out["withdrawal"][0][2:])) or \
            node.withdrawal(bytes.fromhex(out["withdrawal"][0][2:])) is not None
        for h in out["placed"] + out["requoted"] + [out["amended"], out["session_order"]]:
            assert bytes.fromhex(h[2:]) not in node.core.engine.open


STREAM_SCRIPT = r"""
import json, sys
from optrollup_client import Client

url, t0, key, call = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
with Client(url, private_key=key, clock=lambda: t0) as c:
    with c.stream(f"book.{call}", "orders") as s:
        first = [s.recv(timeout=10) for _ in range(2)]      # the two snapshots
        ack = c.place_order(call, "sell", 500 * 10**6, 10_000, post_only=True)
        got = []
        while len(got) < 2:
            m = s.recv(timeout=10)
            if m.channel != "heartbeat":
                got.append(m)
    out["snapshots"] = sorted(m.channel.split(".")[0] for m in first)
    out["updates"] = sorted((m.channel.split(".")[0], m.seq) for m in got)
    out["order"] = ack.order_hash
print(json.dumps(out))
"""


def test_the_stream_extra_adds_websockets_and_streams(light_venv: Path, tmp_path: Path) -> None:
    """`pip install optrollup-client[stream]` adds websockets only; the stream then works."""
    src = light_venv.parents[2] / "src"
    r = subprocess.run([str(light_venv), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"{src}[stream]"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    a = USERS[2]
    with live_node(tmp_path, Limits(orders_per_second=500, burst=500)) as lv:
        r = subprocess.run([str(light_venv), "-c", STREAM_SCRIPT, lv.url, str(lv.clock()), a.hex, CALL],
                           capture_output=True, text=True, timeout=120, cwd="/")
        assert r.returncode == 0, r.stdout + r.stderr
        out = json.loads(r.stdout)
    assert out["snapshots"] == ["book", "orders"]
    assert out["updates"] == [["book", 2], ["orders", 2]]   # seq continues after each snapshot
