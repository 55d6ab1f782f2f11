"""Shared helpers for the trading-core tests: deterministic keys, a config, signing helpers and
a small world (engine with funded accounts, listed instruments and a fresh oracle)."""

from __future__ import annotations

import calendar

import coincurve
from cext import Order, keccak256
from sequencer.core import (CoreConfig, Engine, Feed, OracleParams, digest, genesis,
                            make_instrument, order_digest)
from sequencer.core.rules import DEFAULT_SCHEDULE, Schedule

T0 = calendar.timegm((2026, 11, 1, 8, 0, 0))
EXPIRY = calendar.timegm((2026, 12, 27, 8, 0, 0))
CALL = "ETH-27DEC26-3000-C"
PUT = "ETH-27DEC26-3000-P"
SPOT = 3000 * 10**6


class Key:
    """A secp256k1 key with its address; `sign(digest)` -> 65-byte r||s||v (v in 27/28)."""

    def __init__(self, seed: int) -> None:
        self.priv = coincurve.PrivateKey(keccak256(seed.to_bytes(32, "big")))
        self.hex = "0x" + self.priv.secret.hex()
        self.address = keccak256(self.priv.public_key.format(compressed=False)[1:])[12:]

    def sign(self, d: bytes) -> bytes:
        sig = self.priv.sign_recoverable(d, hasher=None)
        return sig[:64] + bytes([sig[64] + 27])


KEYS = [Key(i) for i in range(1, 40)]
OPERATOR, FEE, ORACLES, USERS = KEYS[0], KEYS[1], KEYS[2:5], KEYS[5:]


def make_config(quorum: int = 2, schedule: Schedule = DEFAULT_SCHEDULE) -> CoreConfig:
    return CoreConfig(chain_id=31337, verifying_contract=b"\x42" * 20, operator=OPERATOR.address,
                      fee_account=FEE.address,
                      oracle=OracleParams(keys=tuple(k.address for k in ORACLES), quorum=quorum),
                      rules_schedule=schedule)


def order(key: Key, instrument: str = CALL, is_buy: bool = True, price: int = 100 * 10**6,
          amount: int = 10**6, nonce: int = 0, expiry: int = T0 + 3600, tif: int = 0,
          post_only: bool = False, reduce_only: bool = False) -> Order:
    return Order(key.address, instrument, is_buy, price, amount, nonce, expiry, tif, post_only,
                 reduce_only)


class World:
    """An engine at block time T0 with CALL and PUT listed, ETH at 3000 from all oracle keys, and
    funded USERS."""

    def __init__(self, funds: int = 1_000_000 * 10**6, quorum: int = 2,
                 schedule: Schedule = DEFAULT_SCHEDULE) -> None:
        self.config = make_config(quorum, schedule)
        self.state = genesis(self.config, [make_instrument(CALL), make_instrument(PUT)])
        self.engine = Engine(self.state)
        self.engine.begin_block(T0)
        self.deposits = 0
        for u in USERS:
            self.fund(u, funds)
        self.feed_all(SPOT, T0)

    def fund(self, key: Key, amount: int) -> None:
        self.engine.deposit(key.address, amount, self.deposits)
        self.deposits += 1

    def feed(self, key: Key, spot: int, ts: int, vol: int = 800_000) -> Feed:
        f = Feed("ETH", spot, ts, (EXPIRY - 86400 * 30, EXPIRY), (vol, vol))
        self.engine.feed(f, key.sign(digest(self.config.domain, f)))
        return f

    def feed_all(self, spot: int, ts: int, vol: int = 800_000) -> None:
        for k in ORACLES:
            self.feed(k, spot, ts, vol)

    def sign(self, key: Key, msg: object) -> bytes:
        if isinstance(msg, Order):
            return key.sign(order_digest(self.config.domain, msg))
        return key.sign(digest(self.config.domain, msg))  # type: ignore[arg-type]

    def place(self, key: Key, **kw: object):
        o = order(key, **kw)  # type: ignore[arg-type]
        return self.engine.place_order(o, self.sign(key, o))

    def total(self) -> int:
        return sum(a.collateral for a in self.state.accounts.values())

