"""Time from order acknowledgement to L1 inclusion on the devnet (real processes, defaults:
1 s blocks, `post-batches --once` every 10 s like cron, 1 L1 confirmation).

Run: .venv/bin/python -m pytest benchmarks/test_devnet.py -q -s
Each round: a maker rests, a taker crosses; the clock starts at the taker's acknowledgement
(the fill is durable) and stops when the Rollup's tip covers the L2 block holding the fill.
"""

from __future__ import annotations

import random
import time

import pytest
from eth_account import Account

from sequencer.l1 import Contract, L1Client
from tests.e2e.devnet_proc import Devnet

U = 10**6


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory):
    d = Devnet(tmp_path_factory.mktemp("bench") / "devnet")
    yield d
    d.stop()


def test_ack_to_l1_inclusion(benchmark, devnet: Devnet) -> None:
    d = devnet
    alice, bob = d.keys[0], d.keys[1]
    a, b = Account.from_key(alice).address, Account.from_key(bob).address
    d.wait("funded", lambda: d.http.get(f"/v1/accounts/{b}", headers=d.auth(bob)).status_code == 200)
    name = next(i["name"] for i in d.http.get("/v1/instruments").json()["instruments"]
                if i["type"] == "call" and i["strike"] == str(3000 * U))
    d.wait("marks", lambda: d.http.get(f"/v1/instruments/{name}").json()["mark"] is not None)
    rollup = Contract.at(L1Client(d.l1), "Rollup", d.rollup)
    nonce = iter(range(1, 10**6))

    def place(key: str, addr: str, is_buy: bool, tif: int) -> dict:
        m = {"account": addr, "instrument": name, "isBuy": is_buy, "price": str(150 * U),
             "amount": "10000", "nonce": next(nonce), "expiry": int(time.time()) + 3600,
             "timeInForce": tif, "postOnly": False, "reduceOnly": False}
        r = d.http.post("/v1/orders", json={"order": m, "signature": d.sign("Order", m, key)})
        assert r.status_code == 200, r.text
        return r.json()

    samples: list[float] = []

    rng = random.Random(7)

    def one_trade() -> float:
        time.sleep(rng.uniform(0, 10))  # do not sample in step with the 10 s poster cycle
        place(alice, a, False, 0)
        head = d.http.get("/v1/blocks/latest").json()["header"]["number"]
        taker = place(bob, b, True, 1)
        t_ack = time.monotonic()
        assert taker["status"] == "filled"
        fill_block = head + 1  # the open block at the ack is sealed next
        while rollup.call("tip")[0] < fill_block:
            time.sleep(0.05)
        samples.append(time.monotonic() - t_ack)
        return samples[-1]

    benchmark.pedantic(one_trade, rounds=8, iterations=1)
    samples.sort()
    print(f"\nack -> L1 inclusion over {len(samples)} trades: min {samples[0]:.2f}s, "
          f"median {samples[len(samples) // 2]:.2f}s, max {samples[-1]:.2f}s")
