"""`optrollup deposit` then `optrollup withdraw` (no --force) on the real devnet (anvil + contracts +
node following L1 + poster, real processes), as a person runs them: the deposit is approved and
sent on L1 and credited on L2; the withdrawal goes pending -> batched -> final (the test moves L1
time past the challenge window), the command itself sends the finalize call, and the recipient's
L1 balance rises by exactly the amount."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from sequencer.l1 import Contract, L1Client
from tests.e2e.devnet_proc import Devnet

U = 10**6

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(420)]


@pytest.fixture
def devnet(tmp_path: Path):
    d = Devnet(tmp_path / "devnet", "--post-seconds", "2", "--channel-services", "0", "--no-liquidator")
    try:
        yield d
    finally:
        code = d.stop()
        assert code == 0, d.out_path.read_text()[-3000:]


def test_cli_deposit_then_withdraw_to_l1(devnet: Devnet, tmp_path: Path) -> None:
    d = devnet
    stores = re.findall(r"key 0x[0-9a-f]{64}\s+keystore (\S+)", d.banner)
    key, store = d.keys[1], stores[1]
    me = Account.from_key(key)
    who = ["--keystore", store, "--password-file", str(d.data_dir / "poster-password.txt")]
    l1 = L1Client(d.l1)
    usdc = Contract.at(l1, "MockUSDC", d.usdc)

    def collateral() -> int | None:
        r = d.http.get(f"/v1/accounts/{me.address}", headers=d.auth(key))
        return int(r.json()["collateral"]) if r.status_code == 200 else None

    assert d.wait("the faucet's deposit credited", lambda: (collateral() or 0) > 0)
    start = collateral()
    assert start is not None

    # deposit 250.5 USDC: minted on L1 first (mock token), then the CLI approves + deposits + waits
    usdc.transact("mint", me.address, 250_500_000, sender=me)
    dep = d.cli("deposit", "--url", d.api, "--l1-rpc", d.l1, *who, "--amount", "250.5", "--max-wait", "120")
    assert dep.returncode == 0, dep.stdout + dep.stderr
    assert "deposit sent: L1 tx 0x" in dep.stdout
    nonce = int(re.search(r"L1 message (\d+)", dep.stdout).group(1))
    assert "credited on L2 in block " in dep.stdout and f": 250.5 USDC to {me.address}" in dep.stdout
    msg = d.http.get(f"/v1/l1-messages/{nonce}").json()
    assert msg["status"] == "credited" and msg["amount"] == "250500000" and msg["account"] == me.address
    assert collateral() == start + 250_500_000
    assert usdc.call("balanceOf", me.address) == 0
    # for another L2 account: followed by its L1 message too (its collateral is not ours to read)
    other = Account.create().address
    usdc.transact("mint", me.address, 1_000_000, sender=me)
    dep2 = d.cli("deposit", "--url", d.api, "--l1-rpc", d.l1, *who, "--amount", "1", "--to", other,
                 "--max-wait", "120")
    assert dep2.returncode == 0 and f": 1 USDC to {other}" in dep2.stdout, dep2.stdout + dep2.stderr
    nonce2 = int(re.search(r"L1 message (\d+)", dep2.stdout).group(1))
    assert nonce2 == nonce + 1 and d.http.get(f"/v1/l1-messages/{nonce2}").json()["account"] == other
    # more than the key holds: a clear refusal before any transaction
    bad = d.cli("deposit", "--url", d.api, "--l1-rpc", d.l1, *who, "--amount", "1")
    assert bad.returncode == 2 and "error [insufficient_l1_balance]" in bad.stderr, bad.stderr

    # withdraw 100.25 USDC to a fresh L1 address, watched to the end by the command itself
    recipient = Account.create().address
    out_path = tmp_path / "withdraw.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sequencer.cli", "withdraw", "--url", d.api, "--l1-rpc",
                                 d.l1, *who, "--amount", "100.25", "--recipient", recipient, "--poll", "0.5",
                                 "--max-wait", "300"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if ": batched" in out_path.read_text():   # the poster put it on L1: let the window pass
                l1.increase_time(61)
                l1.mine()
            time.sleep(1)
        assert proc.wait(timeout=30) == 0, out_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out_path.read_text()
    wh = re.search(r"withdrawal (0x[0-9a-f]{64}): 100.25 USDC from \S+ to " + recipient + " requested", text)
    assert wh, text
    statuses = re.findall(rf"withdrawal {wh.group(1)}: (\w+)", text)
    seen = [s for s in statuses if s in ("pending", "batched", "final", "paid")]
    assert "batched" in seen and "final" in seen and seen.index("batched") < seen.index("final"), text
    assert "finalize sent: L1 tx 0x" in text and f"{recipient} holds 0 -> 100.25 USDC on L1" in text, text
    assert usdc.call("balanceOf", recipient) == 100_250_000
    assert collateral() == start + 250_500_000 - 100_250_000
    d.wait("paid", lambda: d.http.get(f"/v1/withdrawals/{wh.group(1)}").json()["status"] == "paid")

    # the same withdrawal followed again by hash: already paid, nothing sent
    again = d.cli("withdraw", "--url", d.api, "--l1-rpc", d.l1, *who, "--hash", wh.group(1))
    assert again.returncode == 0 and "already paid" in again.stdout, again.stdout + again.stderr
