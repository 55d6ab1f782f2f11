"""The page's own signing code (sequencer/api/page/crypto.js, eip712.js), run in Node.js, against
Python: keccak-256 against cext, SHA-256 and HMAC against hashlib, keys and addresses, EIP-191
and EIP-712 signatures against eth-account (byte for byte: both sign with RFC 6979 nonces), and
the node's own checks (auth headers, order digests)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from cext import Order, domain_separator, keccak256, parse_address
from sequencer.api.auth import authenticate
from sequencer.api.page import PAGE_DIR
from sequencer.core.channelmsg import channel_types
from sequencer.core.eip712 import eip712_types, order_digest

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

RUNNER = """
import { readFileSync } from "node:fs";
const C = await import(process.argv[2] + "/crypto.js");
const E = await import(process.argv[2] + "/eip712.js");
const cases = JSON.parse(readFileSync(process.argv[3], "utf8"));
const hex = C.bytesToHex, bytes = C.hexToBytes;
const out = {
  keccak: cases.data.map((d) => hex(C.keccak256(bytes(d)))),
  sha256: cases.data.map((d) => hex(C.sha256(bytes(d)))),
  hmac: cases.data.map((d) => hex(C.hmacSha256(bytes(cases.hmacKey), bytes(d)))),
  address: cases.keys.map((k) => C.address(k)),
  digestSig: cases.keys.map((k, i) => hex(C.signDigest(bytes(cases.digests[i]), k))),
  personal: cases.keys.map((k, i) => E.signPersonal(k, cases.texts[i])),
  typed: cases.typed.map((t) => E.signTyped(t.key, t.domain, cases.types, t.primary, t.message)),
  typedDigest: cases.typed.map((t) => hex(E.typedDigest(t.domain, cases.types, t.primary, t.message))),
  random: C.address(C.randomKey()),
};
console.log(JSON.stringify(out));
"""

DOMAIN = {"name": "optrollup", "version": "1", "chainId": 31337,
          "verifyingContract": "0x4242424242424242424242424242424242424242"}
TYPES = {**eip712_types(), **channel_types()}


def as_api(v: Any) -> Any:
    """Integers as the JSON API writes them: decimal strings (a JS number is a double)."""
    if isinstance(v, dict):
        return {k: as_api(x) for k, x in v.items()}
    if isinstance(v, list):
        return [as_api(x) for x in v]
    return str(v) if type(v) is int else v


def run_js(tmp_path: Path, cases: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "run.mjs").write_text(RUNNER)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    r = subprocess.run(["node", str(tmp_path / "run.mjs"), PAGE_DIR.as_uri(),
                        str(tmp_path / "cases.json")], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def needed_types(primary: str) -> dict[str, Any]:
    """primary, the struct types it refers to, and EIP712Domain (what eth-account expects)."""
    out, todo = {"EIP712Domain": TYPES["EIP712Domain"]}, [primary]
    while todo:
        t = todo.pop()
        if t not in out:
            out[t] = TYPES[t]
            todo += [f["type"].removesuffix("[]") for f in TYPES[t] if f["type"].removesuffix("[]") in TYPES]
    return out


def typed_cases(rng: random.Random, keys: list[str]) -> list[dict[str, Any]]:
    acct = Account.from_key(keys[0]).address
    return [
        {"key": keys[0], "domain": DOMAIN, "primary": "Order", "message": {
            "account": acct, "instrument": "ETH-27DEC26-3000-C", "isBuy": True,
            "price": 123400000, "amount": 2_500_000, "nonce": 2**63 + 5, "expiry": 1_900_000_000,
            "timeInForce": 0, "postOnly": False, "reduceOnly": True}},
        {"key": keys[1], "domain": {**DOMAIN, "chainId": 10**12}, "primary": "SessionKey",
         "message": {"account": Account.from_key(keys[1]).address,
                     "key": Account.from_key(keys[2]).address, "expiry": 1_800_000_000}},
        {"key": keys[2], "domain": DOMAIN, "primary": "Cancel",
         "message": {"account": Account.from_key(keys[2]).address, "orderHash": "0x" + rng.randbytes(32).hex()}},
        {"key": keys[3], "domain": DOMAIN, "primary": "Liquidate",
         "message": {"liquidator": Account.from_key(keys[3]).address, "account": acct,
                     "fractionPpm": 500000, "maxPrice": -7_000_000, "nonce": 3}},
        {"key": keys[4], "domain": DOMAIN, "primary": "ChannelState",
         "message": {"channelId": "0x" + rng.randbytes(32).hex(), "turnNum": 7, "balanceA": 10**9,
                     "balanceB": 0, "isFinal": True,
                     "positions": [{"instrument": "ETH-27DEC26-3000-C", "amount": -10**6},
                                   {"instrument": "ETH-27DEC26-3000-P", "amount": 25 * 10**4}]}},
        {"key": keys[5], "domain": DOMAIN, "primary": "Feed",
         "message": {"underlying": "ETH", "spot": 3_000_000_000, "timestamp": 1_700_000_000,
                     "expiries": [1_700_100_000, 1_800_000_000], "vols": [800_000, 750_000]}},
    ]


def test_hashes_keys_and_signatures_match_python(tmp_path: Path) -> None:
    rng = random.Random(16)
    data = [b"", b"abc", bytes(range(256))] + [rng.randbytes(n) for n in (1, 55, 56, 63, 64, 135, 136, 137, 272, 1000)]
    keys = ["0x" + (1).to_bytes(32, "big").hex(),
            "0x" + (0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140).to_bytes(32, "big").hex()]
    keys += ["0x" + rng.randbytes(32).hex() for _ in range(10)]
    digests = ["0x" + rng.randbytes(32).hex() for _ in keys]
    texts = [f"optrollup auth {Account.from_key(k).address} {1_700_000_000 + i}" for i, k in enumerate(keys)]
    texts[1] = "ünïcode ✓ " * 20
    hmac_key = rng.randbytes(80)  # longer than the block: hashed first
    typed = typed_cases(rng, keys)
    got = run_js(tmp_path, {"data": ["0x" + d.hex() for d in data], "hmacKey": "0x" + hmac_key.hex(),
                            "keys": keys, "digests": digests, "texts": texts,
                            "typed": [{**t, "message": as_api(t["message"])} for t in typed],
                            "types": TYPES})

    assert got["keccak"] == ["0x" + keccak256(d).hex() for d in data]
    assert got["sha256"] == ["0x" + hashlib.sha256(d).hexdigest() for d in data]
    assert got["hmac"] == ["0x" + hmac.new(hmac_key, d, hashlib.sha256).hexdigest() for d in data]
    assert got["address"] == [Account.from_key(k).address for k in keys]
    assert got["digestSig"] == ["0x" + Account.unsafe_sign_hash(bytes.fromhex(d[2:]), k).signature.hex().removeprefix("0x")
                                for k, d in zip(keys, digests)]
    assert got["personal"] == ["0x" + Account.sign_message(encode_defunct(text=t), k).signature.hex().removeprefix("0x")
                               for k, t in zip(keys, texts)]
    for t, sig, dig in zip(typed, got["typed"], got["typedDigest"]):
        full = {"types": needed_types(t["primary"]), "primaryType": t["primary"],
                "domain": t["domain"], "message": t["message"]}
        want = Account.sign_message(encode_typed_data(full_message=full), t["key"])
        assert sig == "0x" + want.signature.hex().removeprefix("0x"), t["primary"]
        assert Account._recover_hash(bytes.fromhex(dig[2:]), signature=bytes.fromhex(sig[2:])) \
            == Account.from_key(t["key"]).address
    assert got["random"].startswith("0x") and len(got["random"]) == 42

    # what the node itself computes: the order digest, and auth headers it accepts
    m = typed[0]["message"]
    dom = domain_separator(DOMAIN["chainId"], parse_address(DOMAIN["verifyingContract"]))
    o = Order(parse_address(m["account"]), m["instrument"], m["isBuy"], m["price"], m["amount"],
              m["nonce"], m["expiry"], m["timeInForce"], m["postOnly"], m["reduceOnly"])
    assert got["typedDigest"][0] == "0x" + order_digest(dom, o).hex()
    for i, k in [(i, keys[i]) for i in (0, 2, 3, 4)]:  # texts[1] is not an auth message
        a = Account.from_key(k).address
        headers = {"X-Optrollup-Account": a, "X-Optrollup-Timestamp": str(1_700_000_000 + i),
                   "X-Optrollup-Signature": got["personal"][i]}
        assert authenticate(headers, 1_700_000_000 + i, lambda acct, signer: acct == signer) == parse_address(a)
