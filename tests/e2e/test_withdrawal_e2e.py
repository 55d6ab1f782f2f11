"""End to end on the real devnet (anvil + contracts + node + feed + poster, real processes):
deposit on L1 -> trade on L2 -> post-batches --once -> verify -> challenge window passes ->
withdrawal finalized on L1 for exactly the amount -> and never paid twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account

from sequencer.l1 import Contract, ContractRevert, L1Client
from tests.e2e.devnet_proc import Devnet

U = 10**6


@pytest.fixture
def devnet(tmp_path: Path):
    d = Devnet(tmp_path / "devnet", "--post-seconds", "3600")
    try:
        yield d
    finally:
        code = d.stop()
        assert code == 0, d.out_path.read_text()[-3000:]


def test_deposit_trade_batch_verify_withdraw(devnet: Devnet, tmp_path: Path) -> None:
    d = devnet
    alice, bob = d.keys[0], d.keys[1]
    a_addr, b_addr = Account.from_key(alice).address, Account.from_key(bob).address

    # deposits made by the devnet faucet on L1 are credited on L2
    def collateral(key: str, addr: str) -> int | None:
        r = d.http.get(f"/v1/accounts/{addr}", headers=d.auth(key))
        return int(r.json()["collateral"]) if r.status_code == 200 else None
    assert d.wait("L2 deposit credit", lambda: collateral(bob, b_addr) == 100_000 * U)

    # a marked instrument to trade (the oracle feed is running)
    call = next(i for i in d.http.get("/v1/instruments").json()["instruments"]
                if i["type"] == "call" and i["strike"] == str(3000 * U))
    d.wait("marks", lambda: d.http.get(f"/v1/instruments/{call['name']}").json()["mark"] is not None)

    def order(key: str, addr: str, is_buy: bool, nonce: int, tif: int) -> dict:
        m = {"account": addr, "instrument": call["name"], "isBuy": is_buy, "price": str(150 * U),
             "amount": "100000", "nonce": nonce, "expiry": int(time.time()) + 3600,
             "timeInForce": tif, "postOnly": False, "reduceOnly": False}
        r = d.http.post("/v1/orders", json={"order": m, "signature": d.sign("Order", m, key)})
        assert r.status_code == 200, r.text
        return r.json()

    maker = order(alice, a_addr, False, 1, 0)
    taker = order(bob, b_addr, True, 2, 1)
    assert taker["status"] == "filled" and taker["fills"][0]["makerOrder"] == maker["orderHash"]

    # bob withdraws 1,000 USDC to a fresh L1 address
    recipient = Account.create().address
    amount = 1_000 * U
    w = {"account": b_addr, "recipient": recipient, "amount": str(amount), "nonce": 0}
    r = d.http.post("/v1/withdrawals", json={"withdraw": w, "signature": d.sign("Withdraw", w, bob)})
    assert r.status_code == 200, r.text
    wh = r.json()["withdrawalHash"]
    sealed = d.wait("withdrawal sealed", lambda: d.http.get(f"/v1/withdrawals/{wh}").json().get("block"))

    # the cron poster, once; then the replay verifier from L1 data only
    post = d.cli("post-batches", "--once", "--sequencer", d.api, "--l1-rpc", d.l1, "--rollup", d.rollup,
                 "--keystore", str(d.data_dir / "poster-keystore.json"),
                 "--password-file", str(d.data_dir / "poster-password.txt"),
                 "--lock-dir", str(tmp_path))
    assert post.returncode == 0, post.stdout + post.stderr
    ver = d.cli("verify", "--l1-rpc", d.l1, "--rollup", d.rollup)
    assert ver.returncode == 0, ver.stdout + ver.stderr
    st = d.wait("batched", lambda: (s := d.http.get(f"/v1/withdrawals/{wh}").json())["status"] == "batched" and s)
    assert st["block"] == sealed and len(st["proof"]["leafProof"]) >= 0

    # the challenge window (60 s on the devnet) passes on L1
    l1 = L1Client(d.l1)
    l1.increase_time(61)
    l1.mine()
    fin = d.wait("final", lambda: (s := d.http.get(f"/v1/withdrawals/{wh}").json())["status"] == "final" and s)
    call_ = fin["finalize"]
    assert call_["to"] == d.bridge

    usdc = Contract.at(l1, "MockUSDC", d.usdc)
    payer = Account.from_key(d.keys[2])      # anyone may send it
    assert usdc.call("balanceOf", recipient) == 0
    l1.transact(payer, call_["to"], bytes.fromhex(call_["data"][2:]))
    assert usdc.call("balanceOf", recipient) == amount
    with pytest.raises(ContractRevert) as info:
        l1.transact(payer, call_["to"], bytes.fromhex(call_["data"][2:]))
    assert info.value.error == "WithdrawalAlreadyPaid"
    assert usdc.call("balanceOf", recipient) == amount
    d.wait("paid", lambda: d.http.get(f"/v1/withdrawals/{wh}").json()["status"] == "paid")
    # and bob's L2 balance went down by exactly the withdrawal plus what he paid for the option
    left = collateral(bob, b_addr)
    assert left is not None and left <= 100_000 * U - amount - 15 * U


def test_the_printed_sample_order_works(devnet: Devnet) -> None:
    """The banner's `try:` command is what a newcomer runs first: it must work as printed."""
    import re
    import shlex
    import subprocess
    import sys
    cmd = re.search(r"^\s+(optrollup order place .*)$", devnet.banner, re.M).group(1)
    argv = shlex.split(cmd)
    assert "--key" not in argv  # keystores, never a raw key on a command line
    devnet.wait("marks", lambda: any(i["mark"] is not None
                                     for i in devnet.http.get("/v1/instruments").json()["instruments"]))
    run = subprocess.run([sys.executable, "-m", "sequencer.cli", *argv[1:]], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "open" in run.stdout or "filled" in run.stdout, run.stdout
