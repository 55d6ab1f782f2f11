"""Deploying optrollup's L1 contracts and describing a deployment.

`deploy(...)` deploys MockUSDC (unless a collateral token is given) and the Rollup, whose
constructor creates the state channels' Adjudicator and the Bridge. The result is a
`Deployment`, JSON-serialisable, which the devnet writes to its data dir.
`read_deployment(client, rollup)` rebuilds the same record from the Rollup alone, which is all a
replay verifier is given: the immutables by eth_call, and the canonical genesis configuration
bytes (`sequencer.core.chainspec.Genesis.to_bytes()`) from the `RollupDeployed` event of the
deployment block (the Rollup emits them but does not store them).
The Rollup records both contracts it created (`bridge()`, `adjudicator()`), so `read_deployment`
discovers the one canonical Adjudicator; `Deployment.adjudicator` is None only in records of
deployments made before the Rollup created it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sequencer.l1.abi import checksum_address
from sequencer.l1.adjudicator import Adjudicator
from sequencer.l1.client import L1Client
from sequencer.l1.contracts import Contract, deploy_contract
from sequencer.l1.errors import L1Error

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from sequencer.l1.txmanager import TxManager

FORMAT_VERSION = 2


def _hex32(b: bytes) -> str:
    if len(b) != 32:
        raise L1Error(f"expected 32 bytes, got {len(b)}")
    return "0x" + b.hex()


@dataclass(frozen=True)
class Deployment:
    """Where optrollup lives on L1 and how it was configured. Addresses are EIP-55."""

    l1_chain_id: int
    rollup: str
    bridge: str
    collateral_token: str
    deployment_block: int
    poster: str
    guardians: tuple[str, ...]
    guardian_threshold: int
    challenge_window: int
    escape_delay: int
    posting_interval: int
    inclusion_delay: int
    rotation_delay: int
    l2_chain_id: int
    genesis_header_hash: bytes
    genesis_state_root: bytes
    genesis_config: bytes = b""  # canonical Genesis.to_bytes() (from the RollupDeployed event)
    # the state channels' Adjudicator, created by the Rollup's constructor (Rollup.adjudicator());
    # None only in records of older deployments whose Rollup did not create one
    adjudicator: str | None = None
    deployer: str | None = field(default=None, compare=False)  # provenance, not identity
    tx_hashes: dict[str, str] = field(default_factory=dict, compare=False)  # provenance, not identity

    # -- bindings -------------------------------------------------------------------------------

    def rollup_contract(self, client: L1Client) -> Contract:
        return Contract.at(client, "Rollup", self.rollup)

    def bridge_contract(self, client: L1Client) -> Contract:
        return Contract.at(client, "Bridge", self.bridge)

    def adjudicator_contract(self, client: L1Client) -> Adjudicator:
        """The typed Adjudicator client (L1Error when this deployment has none)."""
        if self.adjudicator is None:
            raise L1Error("this deployment has no Adjudicator")
        return Adjudicator.at(client, self.adjudicator)

    def token_contract(self, client: L1Client) -> Contract:
        """The collateral token bound with the MockUSDC ABI (a superset of the ERC-20 we use)."""
        return Contract.at(client, "MockUSDC", self.collateral_token)

    # -- JSON -----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = FORMAT_VERSION
        d["guardians"] = list(self.guardians)
        d["genesis_header_hash"] = _hex32(self.genesis_header_hash)
        d["genesis_state_root"] = _hex32(self.genesis_state_root)
        d["genesis_config"] = "0x" + self.genesis_config.hex()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Deployment:
        if d.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            raise L1Error(f"unsupported deployment format {d.get('format')}")
        try:
            return cls(
                l1_chain_id=int(d["l1_chain_id"]),
                rollup=checksum_address(d["rollup"]),
                bridge=checksum_address(d["bridge"]),
                collateral_token=checksum_address(d["collateral_token"]),
                deployment_block=int(d["deployment_block"]),
                poster=checksum_address(d["poster"]),
                guardians=tuple(checksum_address(g) for g in d["guardians"]),
                guardian_threshold=int(d["guardian_threshold"]),
                challenge_window=int(d["challenge_window"]),
                escape_delay=int(d["escape_delay"]),
                posting_interval=int(d["posting_interval"]),
                inclusion_delay=int(d["inclusion_delay"]),
                rotation_delay=int(d["rotation_delay"]),
                l2_chain_id=int(d["l2_chain_id"]),
                genesis_header_hash=bytes.fromhex(d["genesis_header_hash"].removeprefix("0x")),
                genesis_state_root=bytes.fromhex(d["genesis_state_root"].removeprefix("0x")),
                genesis_config=bytes.fromhex(str(d.get("genesis_config") or "").removeprefix("0x")),
                adjudicator=checksum_address(d["adjudicator"]) if d.get("adjudicator") else None,
                deployer=checksum_address(d["deployer"]) if d.get("deployer") else None,
                tx_hashes=dict(d.get("tx_hashes") or {}),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise L1Error(f"malformed deployment record: {exc!r}") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the JSON atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Deployment:
        return cls.from_json(json.loads(Path(path).read_text()))


def deploy(
    client: L1Client,
    deployer: LocalAccount | TxManager,
    *,
    poster: str,
    guardians: Sequence[str],
    threshold: int,
    challenge_window: int = 60,
    posting_interval: int = 3600,
    inclusion_delay: int = 2 * 3600,
    escape_delay: int = 7 * 24 * 3600,
    rotation_delay: int | None = None,
    l2_chain_id: int,
    genesis_header_hash: bytes,
    genesis_state_root: bytes,
    genesis_config: bytes,
    collateral_token: str | None = None,
    adjudicator: bool = True,
) -> Deployment:
    """Deploys MockUSDC (when `collateral_token` is None) and the Rollup, whose constructor
    creates the state channels' Adjudicator (for this Rollup and `l2_chain_id`) and the Bridge;
    both addresses are read back from the Rollup. `adjudicator` must stay True (kept for
    callers that passed it: every Rollup now creates its Adjudicator).

    `genesis_config` is the canonical genesis (`Genesis.to_bytes()`) whose block 0 has header
    hash `genesis_header_hash` and state root `genesis_state_root`; the Rollup emits it in
    `RollupDeployed` (not stored) so that `optrollup verify` needs only the Rollup address.

    Timing, in seconds (the Rollup's constructor enforces, with ALLOWANCE = 1 hour):
    `escape_delay >= 2·challenge_window + posting_interval + ALLOWANCE`,
    `inclusion_delay >= posting_interval + ALLOWANCE`, and `rotation_delay >= inclusion_delay +
    challenge_window` (the default when None).
    Constructor checks revert with ContractRevert (e.g. InvalidThreshold) before anything is
    sent for the Rollup. Transactions go through `deployer`'s TxManager."""
    if not adjudicator:
        raise L1Error("the Rollup's constructor always creates its Adjudicator: adjudicator=False is not possible")
    txm = client.tx_manager(deployer)
    txs: dict[str, str] = {}
    if collateral_token is None:
        token, receipt = deploy_contract(client, txm, "MockUSDC")
        collateral_token = token.address
        txs["MockUSDC"] = receipt.tx_hash
    rollup, receipt = deploy_contract(
        client, txm, "Rollup",
        (poster, list(guardians), threshold, challenge_window, posting_interval, inclusion_delay,
         escape_delay, rotation_delay if rotation_delay is not None else inclusion_delay + challenge_window,
         l2_chain_id, bytes(genesis_header_hash), bytes(genesis_state_root), collateral_token),
        bytes(genesis_config),
    )
    txs["Rollup"] = receipt.tx_hash  # also created the Adjudicator and the Bridge
    d = read_deployment(client, rollup.address)
    return Deployment(**{**asdict(d), "guardians": d.guardians, "deployer": txm.address, "tx_hashes": txs})


def read_deployment(client: L1Client, rollup_address: str, *, adjudicator: str | None = None) -> Deployment:
    """The Deployment of the Rollup at `rollup_address`, read from L1 alone (the genesis
    configuration bytes from the `RollupDeployed` event of the deployment block; the Bridge and
    the Adjudicator from `Rollup.bridge()` / `Rollup.adjudicator()`, the contracts its
    constructor created). `adjudicator`, when given (e.g. a `--adjudicator` option), must be
    that one: L1Error otherwise."""
    r = Contract.at(client, "Rollup", rollup_address)
    if not client.get_code(r.address):
        raise L1Error(f"no contract at {r.address}")
    deployment_block = r.call("deploymentBlock")
    l2_chain_id = r.call("l2ChainId")
    return Deployment(
        l1_chain_id=client.chain_id,
        rollup=r.address,
        bridge=r.call("bridge"),
        collateral_token=r.call("collateralToken"),
        deployment_block=deployment_block,
        poster=r.call("poster"),
        guardians=tuple(r.call("guardians")),
        guardian_threshold=r.call("guardianThreshold"),
        challenge_window=r.call("challengeWindow"),
        escape_delay=r.call("escapeDelay"),
        posting_interval=r.call("postingInterval"),
        inclusion_delay=r.call("inclusionDelay"),
        rotation_delay=r.call("rotationDelay"),
        l2_chain_id=l2_chain_id,
        genesis_header_hash=r.call("genesisHeaderHash"),
        genesis_state_root=r.call("genesisStateRoot"),
        genesis_config=read_genesis_config(client, r.address, deployment_block),
        adjudicator=_canonical_adjudicator(client, r, l2_chain_id, adjudicator),
    )


def _canonical_adjudicator(client: L1Client, rollup: Contract, l2_chain_id: int, given: str | None) -> str:
    """`Rollup.adjudicator()`, checked to be an Adjudicator for this Rollup and L2 chain id, and
    to be `given` when one is given."""
    address = rollup.call("adjudicator")
    adj = Adjudicator.at(client, address)
    if given is not None and checksum_address(given) != adj.address:
        raise L1Error(f"the Adjudicator at {checksum_address(given)} is not the Rollup's: Rollup "
                      f"{rollup.address} created {adj.address} (its only Adjudicator)")
    if not client.get_code(adj.address):
        raise L1Error(f"no contract at {adj.address}")
    if adj.rollup() != rollup.address or adj.l2_chain_id() != l2_chain_id:
        raise L1Error(f"the Adjudicator at {adj.address} is not for the Rollup {rollup.address} on L2 chain "
                      f"{l2_chain_id}")
    return adj.address


def read_genesis_config(client: L1Client, rollup_address: str, deployment_block: int | None = None) -> bytes:
    """The canonical genesis bytes the Rollup emitted in `RollupDeployed` at its deployment."""
    r = Contract.at(client, "Rollup", rollup_address)
    if deployment_block is None:
        deployment_block = r.call("deploymentBlock")
    events = r.events("RollupDeployed", from_block=deployment_block, to_block=deployment_block)
    if len(events) != 1:
        raise L1Error(f"expected one RollupDeployed event of {r.address} in L1 block "
                      f"{deployment_block}, found {len(events)}")
    return bytes(events[0]["genesisConfig"])
