"""The README's ladder lines, run as written from the light SDK's empty venv against a real node,
while a taker lifts one level: every round requotes all ten levels, the lifted one is placed
again, and at the end the account rests exactly the ladder around the mark."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from eth_account import Account as EthAccount

from optrollup_client import Client
from sequencer.node import Limits
from tests.sequencer.client.live import live_node
from tests.sequencer.node.kit import CALL, USERS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.one_pass()  # a packaging test: never touches cext

# The node under test runs at a fixed test time; the client's default clock is pointed at it.
PRELUDE = """
import optrollup_client._client as _m
_init = _m._Core.__init__
def _at_node_time(self, *a, **kw):
    kw.setdefault("clock", lambda: {t0})
    _init(self, *a, **kw)
_m._Core.__init__ = _at_node_time
"""


def readme_ladder() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- ladder -->\n```python\n(.*?)```\n<!-- /ladder -->", text, re.S)
    assert m, "README.md lost its ladder block"
    return m.group(1)


def test_the_ladder_is_ten_lines_of_code() -> None:
    code = [ln for ln in readme_ladder().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(code) <= 15, len(code)  # ten lines of logic, plus imports and the `with`


def test_readme_ladder_runs_and_requotes_a_lifted_level(light_venv: Path, tmp_path: Path) -> None:
    mm, taker = USERS[0], USERS[1]
    ks = tmp_path / "mm.json"
    ks.write_text(__import__("json").dumps(EthAccount.encrypt(mm.hex, "pw", kdf="pbkdf2", iterations=2)))
    with live_node(tmp_path / "node", Limits(orders_per_second=1000, burst=1000)) as lv:
        node, t0 = lv.kit.node, lv.clock()
        lifted: list[int] = []

        def lift_one_level() -> None:
            with Client(lv.url, private_key=taker.hex, clock=lv.clock) as c:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    asks = c.book(CALL).asks
                    if len(asks) == 5:
                        best = asks[0]
                        c.place_order(CALL, "buy", best.price, best.amount)
                        lifted.append(best.price)
                        return
                    time.sleep(0.02)

        t = threading.Thread(target=lift_one_level)
        t.start()
        env = {**os.environ, "INSTRUMENT": CALL, "OPTROLLUP_URL": lv.url, "MM_KEYSTORE": str(ks),
               "MM_PASSWORD": "pw", "ROUNDS": "8", "PAUSE": "0.4"}
        r = subprocess.run([str(light_venv), "-c", PRELUDE.format(t0=t0) + readme_ladder()], env=env,
                           capture_output=True, text=True, timeout=120, cwd="/")
        t.join(10)
        assert r.returncode == 0, r.stdout + r.stderr
        assert lifted, "the taker never saw the ladder"

        ins = Client(lv.url, clock=lv.clock).instrument(CALL)
        mid = ins.mark // ins.tick_size * ins.tick_size
        with Client(lv.url, private_key=mm.hex, clock=lv.clock) as c:
            resting = sorted(("buy" if o.order.is_buy else "sell", o.order.price, o.remaining)
                             for o in c.open_orders())
            fills = [tr for tr in c.trades(CALL) if tr.price == lifted[0]]
        want = sorted([("buy", mid - k * ins.tick_size, 10**6) for k in range(1, 6)]
                      + [("sell", mid + k * ins.tick_size, 10**6) for k in range(1, 6)])
        assert resting == want          # the lifted level is back, nothing left over from old rounds
        assert len(fills) == 1          # the taker's trade at the best ask
        assert len(node.core.engine.open) == 10
