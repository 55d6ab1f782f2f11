"""The L1 side of the monitor (`optrollup monitor`): what an auditor watches with nothing but an
L1 endpoint and the Rollup's address.

`L1Monitor.poll()` reads L1 up to the safe head and returns the alerts it fired:

- events (one chunked, reorg-aware `EventTracker`, from the deployment block): guardian actions
  on the Rollup (`RollupPaused`, `RollupUnpaused`, `BatchesRejected`, `RotationApproved`,
  `Rotated`, `RollupFrozen`), Adjudicator disputes (`ChallengeRegistered`, `Concluded`), and a
  `BatchSubmitted` whose transaction was not sent by the poster registered at that block;
- calls (every transaction to the Rollup or the Bridge, block by block from `scan_from`, with
  its receipt): a reverted call, a call with an unknown selector, a Rollup call from an address
  that holds no role in the deployment (the poster or a guardian at that block, the deployer,
  or an address given with `allow`), a `submitBatch` from anyone but the poster;
- solvency, at the same L1 block: the Bridge's token balance must cover what L2 owes,

      balance >= Σ collateral + Σ open channel deposits − shortfall
                 + unpaid withdrawal leaves + deposits not yet processed,

  where the first three and the withdrawal leaves come from a `Ledger` (the state replayed
  from L1 by the replay verifier: `optrollup monitor` builds it with prover.verifier; a test
  may pass any function), "unpaid" removes the leaves the Bridge paid (`WithdrawalFinalized`),
  and "not yet processed" are the `Deposited` messages at or after the replayed state's message
  cursor that were not refunded (`DepositRefunded`). Accounts that escaped (`Escaped`) owe
  nothing more, nor do channels that escaped (`ChannelEscaped`, where the Bridge has it). A
  shortfall (a loss the insurance fund could not absorb, recorded in the state) is its own
  alert: the collateral it inflates is not backed by design;
- with `sequencer_info` (the sequencer's `GET /v1/info`), that the sequencer serves this
  Rollup, and the shortfall it publishes (which may not be posted yet).

Solvency, shortfall and sequencer alerts fire at most once per `repeat_seconds` each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cext import parse_address
from sequencer.errors import OptrollupError
from sequencer.l1 import Contract, Event, EventTracker, L1Client, read_deployment
from sequencer.l1.abi import checksum_address
from sequencer.l1.errors import ContractRevert
from sequencer.l1.rolluptracker import with_message_events
from sequencer.monitor._alerts import CRITICAL, INFO, WARNING, Alert, AlertStore, Firing
from sequencer.monitor._detectors import Episodes

ROLLUP_EVENTS = ("BatchSubmitted", "BatchesRejected", "RollupFrozen", "RollupPaused",
                 "RollupUnpaused", "RotationApproved", "Rotated")
BRIDGE_EVENTS = ("Deposited", "WithdrawalFinalized", "DepositRefunded", "Escaped")
CHANNEL_ESCAPED = "ChannelEscaped"  # followed when the Bridge's ABI has it (channel escapes)
ADJUDICATOR_EVENTS = ("ChallengeRegistered", "Concluded")
GUARDIAN = {"RollupPaused": ("pause", CRITICAL), "RollupUnpaused": ("unpause", WARNING),
            "BatchesRejected": ("reject", CRITICAL), "RotationApproved": ("rotation_approved", WARNING),
            "Rotated": ("rotated", WARNING), "RollupFrozen": ("frozen", CRITICAL)}


def _usdc(v: int) -> str:
    return f"{v / 10**6:,.6f} USDC"


class ReplayFailed(OptrollupError):
    """The L1 data does not replay to the posted roots (`batch`: the first bad one)."""

    code = "replay_failed"

    def __init__(self, message: str, batch: int | None = None) -> None:
        super().__init__(message)
        self.batch = batch


@dataclass(frozen=True)
class Ledger:
    """What L2 owes as of a state replayed from L1 (`l2_block`, after `batches` batches)."""

    l2_block: int
    batches: int
    collateral: int                               # Σ account collateral (fund and fee account too)
    channel_funds: int                            # Σ deposits of the channels still open
    shortfall: int
    message_cursor: int                           # L1 messages the state processed
    withdrawals: dict[tuple[bytes, int], int]     # every withdrawal leaf: (account, nonce) -> amount
    collateral_of: Callable[[bytes], int]
    channel_funds_of: Callable[[bytes], int] = lambda _channel_id: 0  # an open channel's deposits


LedgerSource = Callable[[int], Ledger]
"""`source(l1_block)`: the ledger of the live batches as of that L1 block; ReplayFailed."""


class L1Monitor:
    def __init__(self, client: L1Client, rollup: str, *, adjudicator: str | None = None,
                 confirmations: int = 1, scan_from: int | None = None,
                 allow: Iterable[str] = (), ledger: LedgerSource | None = None,
                 sequencer_info: Callable[[], dict[str, Any]] | None = None,
                 store: AlertStore | None = None, clock: Callable[[], float] = time.time,
                 max_blocks: int = 2000, repeat_seconds: float = 600.0) -> None:
        self.client, self.clock = client, clock
        self.d = read_deployment(client, rollup, adjudicator=adjudicator)
        self.rollup = self.d.rollup_contract(client)
        self.bridge = with_message_events(self.d.bridge_contract(client))
        self.token = self.d.token_contract(client)
        bridge_events = BRIDGE_EVENTS + ((CHANNEL_ESCAPED,) if CHANNEL_ESCAPED in self.bridge.abi.events
                                         else ())
        subs: list[tuple[Contract, tuple[str, ...]]] = [(self.rollup, ROLLUP_EVENTS),
                                                        (self.bridge, bridge_events)]
        self.adjudicator: Contract | None = None
        if self.d.adjudicator is not None:
            self.adjudicator = Contract.at(client, "Adjudicator", self.d.adjudicator)
            subs.append((self.adjudicator, ADJUDICATOR_EVENTS))
        self.events = EventTracker(client, subs, start_block=self.d.deployment_block,
                                   confirmations=confirmations)
        self.scanned = (self.d.deployment_block if scan_from is None else scan_from) - 1
        self.max_blocks = max_blocks
        self.targets = {self.rollup.address.lower(): self.rollup,
                        self.bridge.address.lower(): self.bridge}
        self.allow = {checksum_address(a) for a in allow}
        self.deployer = self._deployer()
        self.ledger, self.sequencer_info = ledger, sequencer_info
        self.store = store if store is not None else AlertStore()
        self.repeat = Episodes(repeat_seconds)
        # what the Bridge's events say, by L1 block (dropped again on a reorg)
        self.deposits: dict[int, tuple[int, int]] = {}           # nonce -> (amount, block)
        self.refunded: dict[int, int] = {}                       # nonce -> block
        self.paid: dict[tuple[bytes, int], int] = {}             # (account, nonce) -> block
        self.escaped: dict[bytes, int] = {}                      # account -> block
        self.escaped_channels: dict[bytes, int] = {}             # channel id -> block
        self._roles: dict[int, frozenset[str]] = {}
        self._posters: dict[int, str] = {}
        self.solvency: dict[str, Any] | None = None              # the last check's figures

    def _deployer(self) -> str | None:
        evs = self.rollup.events("RollupDeployed", from_block=self.d.deployment_block,
                                 to_block=self.d.deployment_block)
        tx = self.client.get_transaction(evs[0].tx_hash) if evs else None
        return checksum_address(tx["from"]) if tx else None

    # -- one round ---------------------------------------------------------------------------

    def poll(self) -> list[Alert]:
        """Read L1 up to the safe head; the alerts fired (also in the store and its sinks)."""
        out: list[Firing] = []
        up = self.events.poll()
        at = up.cursor.block
        if up.rewound_to is not None:
            r = up.rewound_to
            for table in (self.deposits, self.refunded, self.paid, self.escaped,
                          self.escaped_channels):
                for k in [k for k, v in table.items() if (v[1] if isinstance(v, tuple) else v) > r]:
                    del table[k]
            self.scanned = min(self.scanned, r)
        for ev in up.events:
            out += self._event(ev)
        out += self._scan(min(at, self.scanned + self.max_blocks))
        if self.ledger is not None and at >= self.d.deployment_block:
            out += self._solvency(at)
        if self.sequencer_info is not None:
            out += self._sequencer()
        return self.store.fire_all(out)

    # -- events ------------------------------------------------------------------------------

    def _sender(self, tx_hash: str) -> str:
        tx = self.client.get_transaction(tx_hash)
        return checksum_address(tx["from"]) if tx else "?"

    def _poster(self, block: int) -> str:
        p = self._posters.get(block)
        if p is None:
            p = self._posters[block] = checksum_address(self.rollup.call("poster", block=block))
        return p

    def _event(self, ev: Event) -> list[Firing]:
        now, n, where = self.clock(), ev.name, f"L1 block {ev.block_number}, tx {ev.tx_hash}"
        if n == "Deposited":
            self.deposits[int(ev["nonce"])] = (int(ev["amount"]), ev.block_number)
        elif n == "WithdrawalFinalized":
            self.paid[(parse_address(ev["account"]), int(ev["nonce"]))] = ev.block_number
        elif n == "DepositRefunded":
            self.refunded[int(ev["nonce"])] = ev.block_number
        elif n == "Escaped":
            self.escaped[parse_address(ev["account"])] = ev.block_number
        elif n == CHANNEL_ESCAPED:
            self.escaped_channels[bytes(ev["channelId"])] = ev.block_number
        elif n == "BatchSubmitted":
            sender, poster = self._sender(ev.tx_hash), self._poster(ev.block_number)
            if sender != poster:
                return [Firing("unexpected_poster", CRITICAL, sender,
                               f"batch {ev['batchIndex']} (L2 blocks {ev['firstBlock']}.."
                               f"{ev['lastBlock']}) was submitted by {sender}, not the registered "
                               f"poster {poster} ({where})", now)]
        elif n in GUARDIAN:
            action, sev = GUARDIAN[n]
            args = ", ".join(f"{k}={_show(v)}" for k, v in ev.args.items())
            return [Firing("guardian_action", sev, action,
                           f"{n}({args}) sent by {self._sender(ev.tx_hash)} ({where})", now)]
        elif n == "ChallengeRegistered":
            cid = "0x" + bytes(ev["channelId"]).hex()
            return [Firing("channel_challenge", WARNING, cid,
                           f"a state of channel {cid} at turn {ev['turnNum']} was registered on the "
                           f"Adjudicator by {self._sender(ev.tx_hash)}; it finalizes at "
                           f"{ev['finalizesAt']} unless refuted ({where})", now)]
        elif n == "Concluded":
            cid = "0x" + bytes(ev["channelId"]).hex()
            return [Firing("channel_concluded", INFO, cid,
                           f"channel {cid} concluded on the Adjudicator at turn {ev['turnNum']}, "
                           f"state hash 0x{bytes(ev['stateHash']).hex()} ({where})", now)]
        return []

    # -- calls -------------------------------------------------------------------------------

    def _roles_at(self, block: int) -> frozenset[str]:
        """Who may call the Rollup as of the state before `block`."""
        r = self._roles.get(block)
        if r is None:
            before = max(self.d.deployment_block, block - 1)
            people = {self._poster(before), *(checksum_address(g) for g in
                                              self.rollup.call("guardians", block=before))}
            if self.deployer:
                people.add(self.deployer)
            r = self._roles[block] = frozenset(people | self.allow)
            if len(self._roles) > 256:
                del self._roles[next(iter(self._roles))]
        return r

    def _scan(self, to: int) -> list[Firing]:
        out: list[Firing] = []
        while self.scanned < to:
            n = self.scanned + 1
            blk = self.client.get_block(n, full=True) or {}
            for tx in blk.get("transactions") or ():
                target = self.targets.get((tx.get("to") or "").lower())
                if target is not None:
                    out += self._call(target, tx, n)
            self.scanned = n
        return out

    def _call(self, c: Contract, tx: dict[str, Any], block: int) -> list[Firing]:
        now, out = self.clock(), []
        data = bytes.fromhex((tx.get("input") or tx.get("data") or "0x")[2:])
        f = c.abi.function_by_selector(data[:4]) if len(data) >= 4 else None
        fn = f.name if f is not None else f"selector 0x{data[:4].hex()}"
        sender = checksum_address(tx["from"])
        receipt = self.client.get_receipt(tx["hash"])
        ok = receipt is not None and receipt.ok
        where = f"L1 block {block}, tx {tx['hash']}"
        if f is None:
            out.append(Firing("unexpected_call", WARNING, f"{c.name}.{fn}",
                              f"{sender} called {c.name} with {fn}, which is none of its functions "
                              f"({where})", now))
        if c is self.rollup:
            poster = self._poster(max(self.d.deployment_block, block - 1))
            if fn == "submitBatch":
                if not ok and sender != poster:  # a mined batch is checked by its event
                    out.append(Firing("unexpected_poster", CRITICAL, sender,
                                      f"{sender} tried to submit a batch (reverted); the registered "
                                      f"poster is {poster} ({where})", now))
            elif sender not in self._roles_at(block):
                out.append(Firing("unexpected_sender", WARNING, sender,
                                  f"{sender}, which holds no role in the deployment, called "
                                  f"Rollup.{fn} ({'succeeded' if ok else 'reverted'}; {where})", now))
        if not ok:
            why = "status 0"
            if receipt is not None:
                err = self.client.explain_failure(receipt, sender, c.address, data,
                                                  int(tx.get("value") or "0x0", 16))
                why = err.error if isinstance(err, ContractRevert) else str(err)
            out.append(Firing("l1_call_reverted", WARNING, f"{c.name}.{fn}",
                              f"{c.name}.{fn} from {sender} reverted ({why}; {where})", now))
        return out

    # -- solvency ----------------------------------------------------------------------------

    def _solvency(self, at: int) -> list[Firing]:
        now = self.clock()
        assert self.ledger is not None
        try:
            led = self.ledger(at)
        except ReplayFailed as exc:
            subject = "L1 data" if exc.batch is None else f"batch {exc.batch}"
            if not self.repeat.ready(("replay", subject), now):
                return []
            return [Firing("replay_mismatch", CRITICAL, subject,
                           f"replaying L1 fails, solvency cannot be checked: {exc.message}", now)]
        balance = int(self.token.call("balanceOf", self.bridge.address, block=at))
        unpaid = sum(a for k, a in led.withdrawals.items() if k not in self.paid)
        pending = sum(a for nonce, (a, _) in self.deposits.items()
                      if nonce >= led.message_cursor and nonce not in self.refunded)
        escaped = (sum(led.collateral_of(a) for a in self.escaped)
                   + sum(led.channel_funds_of(c) for c in self.escaped_channels))
        owed = led.collateral + led.channel_funds - led.shortfall - escaped + unpaid + pending
        self.solvency = {"l1Block": at, "l2Block": led.l2_block, "batches": led.batches,
                         "balance": balance, "owed": owed, "collateral": led.collateral,
                         "channelFunds": led.channel_funds, "shortfall": led.shortfall,
                         "escaped": escaped, "unpaidWithdrawals": unpaid, "pendingDeposits": pending}
        out = []
        if balance < owed and self.repeat.ready("solvency", now):
            out.append(Firing("solvency", CRITICAL, self.bridge.address,
                              f"the Bridge holds {_usdc(balance)} but owes {_usdc(owed)} "
                              f"(missing {_usdc(owed - balance)}) at L1 block {at}: collateral "
                              f"{_usdc(led.collateral)} + channels {_usdc(led.channel_funds)} - "
                              f"shortfall {_usdc(led.shortfall)} - escaped {_usdc(escaped)} + unpaid "
                              f"withdrawals {_usdc(unpaid)} + deposits not yet credited "
                              f"{_usdc(pending)}, as of L2 block {led.l2_block} "
                              f"({led.batches} batches replayed)", now))
        if led.shortfall > 0 and self.repeat.ready("shortfall", now):
            out.append(Firing("shortfall", CRITICAL, "insurance fund",
                              f"the replayed state (L2 block {led.l2_block}) records a shortfall of "
                              f"{_usdc(led.shortfall)}: a loss the insurance fund could not absorb",
                              now))
        return out

    # -- the sequencer's published view --------------------------------------------------------

    def _sequencer(self) -> list[Firing]:
        now = self.clock()
        assert self.sequencer_info is not None
        try:
            info = self.sequencer_info()
        except Exception as exc:  # noqa: BLE001 - any failure to read it is the finding
            if not self.repeat.ready("sequencer_unreachable", now):
                return []
            return [Firing("sequencer_unreachable", WARNING, "sequencer",
                           f"GET /v1/info failed: {type(exc).__name__}: {exc}", now)]
        out = []
        theirs = ((info.get("l1") or {}).get("rollup") or "").lower()
        if theirs != self.rollup.address.lower() and self.repeat.ready("sequencer_mismatch", now):
            out.append(Firing("sequencer_mismatch", CRITICAL, "sequencer",
                              f"the sequencer serves Rollup {theirs or 'none'}, not "
                              f"{self.rollup.address}", now))
        short = int((info.get("insuranceFund") or {}).get("shortfall") or 0)
        if short > 0 and self.repeat.ready("sequencer_shortfall", now):
            out.append(Firing("shortfall", CRITICAL, "insurance fund",
                              f"the sequencer publishes a shortfall of {_usdc(short)} "
                              "(GET /v1/info)", now))
        return out


def _show(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)
