"""cext speed, accelerated vs pure twin vs peer libraries, one group per issue target.

Run: make bench ARGS=benchmarks/test_cext.py   (or .venv/bin/python -m pytest benchmarks/test_cext.py)
Each group's summary line reports accel's speed-up over every other entry.
"""

from __future__ import annotations

import random

import coincurve
import pytest
from Crypto.Hash import keccak as pcd_keccak
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak as eth_hash_keccak
from eth_keys import KeyAPI
from eth_keys.backends import NativeECCBackend

import cext
from cext import ORDER_FIELDS, Order, _pure
from benchmarks.conftest import target

accel = pytest.importorskip("cext._accel") if cext.ACCELERATED else None
pytestmark = pytest.mark.skipif(accel is None, reason="benchmarks compare the accelerated twin")

rng = random.Random(1234)
KEYS = [Account.from_key(rng.randbytes(32)) for _ in range(16)]

N_SIGS = 10_000
DIGESTS = [rng.randbytes(32) for _ in range(N_SIGS)]
SIGS = [bytes(KEYS[i % 16].unsafe_sign_hash(d).signature) for i, d in enumerate(DIGESTS)]

CHAIN_ID, ROLLUP = 412346, "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = {"name": "optrollup", "version": "1", "chainId": CHAIN_ID, "verifyingContract": ROLLUP}
TYPES = {"Order": [{"name": n, "type": t} for n, t in ORDER_FIELDS]}
SEP = cext.domain_separator(CHAIN_ID, ROLLUP)
ORDERS = [Order(bytes.fromhex(KEYS[i % 16].address[2:]), f"ETH-27DEC26-{2000 + 100 * (i % 20)}-C",
                i % 2 == 0, 100_000 * (1 + i % 300), 10_000 * (1 + i % 50), i, 1_800_000_000, 0,
                False, False) for i in range(N_SIGS)]
ORDER_DIGESTS = _pure.order_digests(SEP, ORDERS)
ORDER_SIGS = [bytes(KEYS[i % 16].unsafe_sign_hash(d).signature) for i, d in enumerate(ORDER_DIGESTS)]

ITEMS = [rng.randbytes(64) for _ in range(100_000)]
LEAVES = [rng.randbytes(32) for _ in range(1 << 20)]


def run(benchmark, fn, rounds: int = 5):
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


# ---- recover_addresses over 10,000 signatures -------------------------------------------
target("recover-10k", "coincurve_loop", 1.8)
target("recover-10k", "eth_account_recover_hash", 10.0)


def _coincurve_loop() -> list[bytes]:
    out = []
    for d, s in zip(DIGESTS, SIGS):
        pub = coincurve.PublicKey.from_signature_and_message(s[:64] + bytes([s[64] - 27]), d, hasher=None)
        out.append(eth_hash_keccak(pub.format(compressed=False)[1:])[12:])
    return out


@pytest.mark.benchmark(group="recover-10k")
@pytest.mark.parametrize("impl", ["accel", "accel_1_thread", "pure_twin", "coincurve_loop",
                                  "eth_account_recover_hash"])
def test_recover(benchmark, impl: str) -> None:
    fns = {
        "accel": lambda: accel.recover_addresses(DIGESTS, SIGS),
        "accel_1_thread": lambda: accel.recover_addresses(DIGESTS, SIGS, threads=1),
        "pure_twin": lambda: _pure.recover_addresses(DIGESTS, SIGS),
        "coincurve_loop": _coincurve_loop,
        "eth_account_recover_hash": lambda: [Account._recover_hash(d, signature=s)
                                             for d, s in zip(DIGESTS, SIGS)],
    }
    out = run(benchmark, fns[impl], rounds=3 if impl.startswith("eth") else 5)
    assert len(out) == N_SIGS


# eth-account recovers through eth-keys, which uses coincurve (libsecp256k1) when it is installed,
# as it is here. Its pure-Python backend (what eth-account does without coincurve) is compared on
# 1,000 signatures to keep the run short.
target("recover-1k", "eth_keys_native_backend", 10.0)


@pytest.mark.benchmark(group="recover-1k")
@pytest.mark.parametrize("impl", ["accel", "eth_keys_native_backend"])
def test_recover_vs_native_backend(benchmark, impl: str) -> None:
    keys = KeyAPI(NativeECCBackend)
    d1k, s1k = DIGESTS[:1000], SIGS[:1000]

    def native() -> list[bytes]:
        return [keys.Signature(s[:64] + bytes([s[64] - 27])).recover_public_key_from_msg_hash(d)
                .to_canonical_address() for d, s in zip(d1k, s1k)]

    fn = (lambda: accel.recover_addresses(d1k, s1k)) if impl == "accel" else native
    out = run(benchmark, fn, rounds=2 if impl != "accel" else 10)
    assert len(out) == 1000


# ---- order_digests + recover_addresses for 10,000 orders -------------------------------
target("orders-10k", "eth_account_typed_data", 15.0)


def _eth_account_orders() -> list[str]:
    out = []
    for o, s in zip(ORDERS, ORDER_SIGS):
        msg = dict(o._asdict(), account=cext.to_checksum(o.account))
        signable = encode_typed_data(domain_data=DOMAIN, message_types=TYPES, message_data=msg)
        out.append(Account.recover_message(signable, signature=s))
    return out


@pytest.mark.benchmark(group="orders-10k")
@pytest.mark.parametrize("impl", ["accel", "pure_twin", "eth_account_typed_data"])
def test_orders(benchmark, impl: str) -> None:
    mod = {"accel": accel, "pure_twin": _pure}.get(impl)
    if mod is None:
        out = run(benchmark, _eth_account_orders, rounds=1)
    else:
        out = run(benchmark, lambda: mod.recover_addresses(mod.order_digests(SEP, ORDERS), ORDER_SIGS))
    assert len(out) == N_SIGS


# ---- keccak256_many over 100,000 64-byte items ------------------------------------------
target("keccak-100k", "pycryptodome_loop", 8.0)


@pytest.mark.benchmark(group="keccak-100k")
@pytest.mark.parametrize("impl", ["accel", "pure_twin", "pycryptodome_loop", "eth_hash_loop"])
def test_keccak_many(benchmark, impl: str) -> None:
    fns = {
        "accel": lambda: accel.keccak256_many(ITEMS),
        "pure_twin": lambda: _pure.keccak256_many(ITEMS),
        "pycryptodome_loop": lambda: [pcd_keccak.new(digest_bits=256, data=x).digest() for x in ITEMS],
        "eth_hash_loop": lambda: [eth_hash_keccak(x) for x in ITEMS],
    }
    out = run(benchmark, fns[impl])
    assert len(out) == len(ITEMS)


# ---- merkle_root of 2^20 leaves ---------------------------------------------------------
target("merkle-2^20", "pure_twin", 15.0)


@pytest.mark.benchmark(group="merkle-2^20")
@pytest.mark.parametrize("impl", ["accel", "pure_twin"])
def test_merkle_root(benchmark, impl: str) -> None:
    mod = accel if impl == "accel" else _pure
    out = run(benchmark, lambda: mod.merkle_root(LEAVES), rounds=5 if impl == "accel" else 1)
    assert len(out) == 32
