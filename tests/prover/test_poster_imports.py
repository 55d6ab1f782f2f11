"""A cron-run `optrollup post-batches --once` stays light: a fresh interpreter that opens the
poster's keystore, builds its TxManager and signs never imports eth-account, eth-keyfile or py_ecc
(their import alone cost ~0.8 s of CPU a run). No L1 needed: the sequencer URL is dead, so the
real `run_cli` stops right after opening the key. (test_poster.py runs a whole post with L1.)"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from eth_account import Account

HEAVY = ("eth_account", "eth_keyfile", "py_ecc")
SECRET = b"\x5a" * 32

CODE = r"""
import json, sys
from sequencer.cli import main
rc = main(sys.argv[1:])  # the real command: opens the key, then finds no sequencer
from sequencer.cli import build_parser
args = build_parser("post-batches").parse_args(sys.argv[1:])
from prover.poster import L1Client, TxConfig, TxManager
from sequencer.keys import load_tx_key
key = load_tx_key(args.keystore, password_file=args.password_file, password_env=args.password_env)
with L1Client(args.l1_rpc) as client:
    sender = TxManager(client, key, TxConfig(confirmations=args.confirmations, label="poster"))
    signed = key.sign_transaction({"type": 2, "chainId": 31337, "nonce": 1, "value": 0, "data": b"\x01" * 99,
                                   "gas": 90_000, "maxFeePerGas": 3, "maxPriorityFeePerGas": 1,
                                   "to": sender.address})
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("eth_account", "eth_keyfile", "py_ecc"))
print(json.dumps({"rc": rc, "address": sender.address, "raw": signed.raw_transaction.hex(), "heavy": heavy}))
"""


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_keystore_poster_run_never_imports_eth_account(tmp_path: Path) -> None:
    ks = tmp_path / "poster.json"  # as the devnet writes it (sequencer.devnet.dev_keystore)
    ks.write_text(json.dumps(Account.encrypt(SECRET, "s3cret", kdf="scrypt", iterations=2**14)))
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    dead = _dead_url()
    argv = ["post-batches", "--sequencer", dead, "--l1-rpc", dead, "--rollup", "0x" + "12" * 20,
            "--keystore", str(ks), "--password-file", str(pw), "--once", "--lock-dir", str(tmp_path)]
    r = subprocess.run([sys.executable, "-c", CODE, *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "error [sequencer_unavailable]" in r.stderr  # it got past the key
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["heavy"] == [], f"a poster run imports {out['heavy']}: keep eth-account off its path"
    acct = Account.from_key(SECRET)
    assert out["rc"] == 2 and out["address"] == acct.address
    theirs = acct.sign_transaction({"type": 2, "chainId": 31337, "nonce": 1, "value": 0, "data": b"\x01" * 99,
                                    "gas": 90_000, "maxFeePerGas": 3, "maxPriorityFeePerGas": 1,
                                    "to": acct.address})
    assert bytes.fromhex(out["raw"]) == bytes(theirs.raw_transaction)


def test_the_check_sees_eth_account_when_it_is_imported(tmp_path: Path) -> None:
    """The same probe in an interpreter that opens the key the eth-account way finds it."""
    code = ("import sys; from sequencer.keys import load_key; import prover.poster; "
            f"load_key({str(tmp_path / 'k.json')!r}, password='pw'); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    (tmp_path / "k.json").write_text(json.dumps(Account.encrypt(SECRET, "pw", kdf="pbkdf2", iterations=2)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "eth_account" in r.stdout and "eth_keyfile" in r.stdout
