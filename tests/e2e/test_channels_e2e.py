"""End to end on the real devnet (anvil + contracts + node + feed + poster + two channel
services, real processes): open a channel between dev accounts 0 and 1 through their services,
1,000 co-signed trades, a cooperative close; the rollup accounts then hold exactly the last
state's balances and positions; the blocks are posted to L1 and `optrollup verify` replays them
(the channel txs included) from L1 data alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_account import Account

from channels.client import ChannelClient
from channels.rules import QuoteLine
from tests.e2e.devnet_proc import Devnet

U = 10**6


@pytest.fixture
def devnet(tmp_path: Path):
    d = Devnet(tmp_path / "dn", "--post-seconds", "3600", "--no-liquidator")
    try:
        yield d
    finally:
        d.stop()


def test_open_trade_1000_close_post_and_verify(devnet: Devnet) -> None:
    d = devnet
    services = re.findall(r"(http://127\.0\.0\.1:\d+) \(dev account (\d)\)", d.banner)
    assert [i for _, i in services] == ["0", "1"], d.banner
    (url_a, _), (url_b, _) = services
    key_a, key_b = d.keys[0], d.keys[1]
    addr_a, addr_b = Account.from_key(key_a).address, Account.from_key(key_b).address
    ins = next(i["name"] for i in d.http.get("/v1/instruments").json()["instruments"]
               if i["type"] == "call" and i["strike"] == str(3000 * U))

    def collateral(key: str, addr: str) -> tuple[int, dict[str, int]]:
        a = d.http.get(f"/v1/accounts/{addr}", headers=d.auth(key)).json()
        return int(a["collateral"]), {p["instrument"]: int(p["amount"]) for p in a["positions"]}

    with ChannelClient(url_a, key=key_a) as a, ChannelClient(url_b, key=key_b) as b:
        opened = a.open(url_b, 5_000 * U, 5_000 * U, challenge_period=600)
        cid = opened.channel_id
        assert opened.channel["status"] == "open" and opened.state.turn == 0
        before_a, pos_a0 = collateral(key_a, addr_a)
        before_b, pos_b0 = collateral(key_b, addr_b)
        b.set_quotes(cid, [QuoteLine(ins, 149 * U, 1_000 * U, 151 * U, 1_000 * U)])
        last = None
        for i in range(1_000):  # A buys and sells one contract against B's quote, alternately
            buy = i % 2 == 0
            last = a.trade(cid, ins, buy, (151 if buy else 149) * U, U)
        last = a.trade(cid, ins, True, 151 * U, 2 * U)  # A ends long 2 calls
        assert last is not None and last.turn >= 1_001 and a.state(cid) == last
        assert b.state(cid) == last
        closed = a.close(cid)
        final = closed.state.state
        assert closed.channel["status"] == "closed" and final.isFinal
        assert final.balanceA + final.balanceB == 10_000 * U
        assert final.balanceA == 5_000 * U - 500 * 2 * U - 302 * U  # 500 round trips, then 2 calls
        assert [(p.instrument, p.amount) for p in final.positions] == [(ins, 2 * U)]
    after_a, pos_a = collateral(key_a, addr_a)
    after_b, pos_b = collateral(key_b, addr_b)
    assert after_a == before_a + final.balanceA and after_b == before_b + final.balanceB
    held = {p.instrument: p.amount for p in final.positions}
    assert {n: q - pos_a0.get(n, 0) for n, q in pos_a.items() if q != pos_a0.get(n, 0)} == held
    assert {n: q - pos_b0.get(n, 0) for n, q in pos_b.items()
            if q != pos_b0.get(n, 0)} == {n: -q for n, q in held.items()}

    # everything to L1, then the replay verifier from L1 data alone (channel txs included)
    d.wait("sealed", lambda: d.http.get(f"/v1/channels/{cid}").json()["status"] == "closed")
    head = d.http.get("/v1/blocks/latest").json()["header"]["number"]
    d.wait("the close sealed", lambda: d.http.get("/v1/blocks/latest").json()["header"]["number"] > head)
    post = d.cli("post-batches", "--once", "--sequencer", d.api, "--l1-rpc", d.l1, "--rollup", d.rollup,
                 "--keystore", str(d.data_dir / "poster-keystore.json"),
                 "--password-file", str(d.data_dir / "poster-password.txt"), "--lock-dir", str(d.data_dir))
    assert post.returncode == 0, post.stdout + post.stderr
    ver = d.cli("verify", "--l1-rpc", d.l1, "--rollup", d.rollup)
    assert ver.returncode == 0 and ver.stdout.startswith("OK"), ver.stdout + ver.stderr


def test_dispute_drill_silent_party_challenged_and_concluded_once(devnet: Devnet) -> None:
    """A goes silent (its service is killed) after turn N; B challenges on L1 with turn N, waits
    out the window and concludes; the node's L1 follower applies the conclusion exactly once,
    and the verifier checks it against the Adjudicator."""
    import json
    import os
    import signal
    import time

    from sequencer.l1 import L1Client
    d = devnet
    (url_a, _), (url_b, _) = re.findall(r"(http://127\.0\.0\.1:\d+) \(dev account (\d)\)", d.banner)
    stores = re.findall(r"keystore (\S+\.json)", d.banner)
    password = re.search(r"keystore password \(devnet only\): (\S+)", d.banner).group(1)
    adjudicator = json.loads((d.data_dir / "deployment.json").read_text())["adjudicator"]
    key_a, key_b = d.keys[0], d.keys[1]
    addr_a, addr_b = Account.from_key(key_a).address, Account.from_key(key_b).address
    ins = next(i["name"] for i in d.http.get("/v1/instruments").json()["instruments"]
               if i["type"] == "call" and i["strike"] == str(3000 * U))

    def account(key: str, addr: str) -> tuple[int, dict[str, int]]:
        a = d.http.get(f"/v1/accounts/{addr}", headers=d.auth(key)).json()
        return int(a["collateral"]), {p["instrument"]: int(p["amount"]) for p in a["positions"]}

    with ChannelClient(url_a, key=key_a) as a, ChannelClient(url_b, key=key_b) as b:
        cid = a.open(url_b, 2_000 * U, 4_000 * U, challenge_period=10).channel_id
        b.set_quotes(cid, [QuoteLine(ins, 149 * U, 100 * U, 151 * U, 100 * U)])
        for _ in range(5):
            last = a.trade(cid, ins, True, 151 * U, U)
    n = last.turn
    before_a, pos_a0 = account(key_a, addr_a)
    before_b, _ = account(key_b, addr_b)
    os.kill(d.child_pids()["channels0"], signal.SIGKILL)  # A goes silent
    common = ["--service", url_b, "--keystore", stores[1], "--password-file", password,
              "--l1-rpc", d.l1, "--adjudicator", adjudicator, cid]
    ch = d.cli("channels", "challenge", *common)
    assert ch.returncode == 0, ch.stdout + ch.stderr
    time.sleep(11)                      # the window passes; an L1 block carries the new time
    with L1Client(d.l1) as l1:
        l1.rpc("evm_mine", [])
    co = d.cli("channels", "conclude", *common)
    assert co.returncode == 0, co.stdout + co.stderr
    got = d.wait("the rollup applies the conclusion",
                 lambda: (c := d.http.get(f"/v1/channels/{cid}").json())["status"] == "concluded" and c)
    assert got["closedTurnNum"] == str(n)
    after_a, pos_a = account(key_a, addr_a)
    after_b, _ = account(key_b, addr_b)
    final = last.state
    assert after_a == before_a + final.balanceA and after_b == before_b + final.balanceB
    assert pos_a.get(ins, 0) - pos_a0.get(ins, 0) == 5 * U          # merged once
    time.sleep(3)                       # later follower rounds see it again: nothing changes
    assert account(key_a, addr_a) == (after_a, pos_a)
    head = d.http.get("/v1/blocks/latest").json()["header"]["number"]
    d.wait("sealed", lambda: d.http.get("/v1/blocks/latest").json()["header"]["number"] > head)
    post = d.cli("post-batches", "--once", "--sequencer", d.api, "--l1-rpc", d.l1, "--rollup", d.rollup,
                 "--keystore", str(d.data_dir / "poster-keystore.json"),
                 "--password-file", str(d.data_dir / "poster-password.txt"), "--lock-dir", str(d.data_dir))
    assert post.returncode == 0, post.stdout + post.stderr
    ver = d.cli("verify", "--l1-rpc", d.l1, "--rollup", d.rollup)
    assert ver.returncode == 0 and ver.stdout.startswith("OK"), ver.stdout + ver.stderr
