"""optrollup's L1 toolchain: the local anvil devnet, the one JSON-RPC client, contract
bindings over the compiled artifacts (contracts/artifacts), deployment, guardian signing.

Later pieces (batch poster, devnet command, deposits follower, replay verifier) build on:
- `Anvil` / `find_anvil` to run a devnet;
- `L1Client` for every L1 read and signed transaction (reverts raise `ContractRevert`
  naming the Solidity custom error);
- `Contract` to encode/decode calls (`encode`, `decode_input` for batch calldata), read state
  (`call`) and events (`events`, `decode_logs`);
- `deploy` / `read_deployment` / `read_genesis_config` / `Deployment` for addresses and
  configuration (the genesis bytes come from the RollupDeployed event);
- `sign_reject` / `sign_pause` / `sign_unpause` for guardian quorums.
"""

from sequencer.l1.abi import (
    AbiError,
    AbiEvent,
    AbiFunction,
    Artifact,
    ContractAbi,
    artifact_names,
    artifacts_dir,
    decode_revert,
    load_artifact,
)
from sequencer.l1.anvil import DEFAULT_CHAIN_ID, DEFAULT_MNEMONIC, Anvil, find_anvil
from sequencer.l1.client import L1Client, Log, Receipt
from sequencer.l1.contracts import Contract, Event, deploy_contract
from sequencer.l1.deploy import Deployment, deploy, read_deployment, read_genesis_config
from sequencer.l1.errors import (
    AnvilError,
    ContractRevert,
    L1Error,
    L1Unavailable,
    ReceiptTimeout,
    RpcError,
    TransactionFailed,
)
from sequencer.l1.guardians import (
    GUARDIAN_TYPES,
    guardian_domain,
    sign_action,
    sign_pause,
    sign_reject,
    sign_unpause,
    typed_data,
)

__all__ = [
    "DEFAULT_CHAIN_ID",
    "DEFAULT_MNEMONIC",
    "GUARDIAN_TYPES",
    "AbiError",
    "AbiEvent",
    "AbiFunction",
    "Anvil",
    "AnvilError",
    "Artifact",
    "Contract",
    "ContractAbi",
    "ContractRevert",
    "Deployment",
    "Event",
    "L1Client",
    "L1Error",
    "L1Unavailable",
    "Log",
    "Receipt",
    "ReceiptTimeout",
    "RpcError",
    "TransactionFailed",
    "artifact_names",
    "artifacts_dir",
    "decode_revert",
    "deploy",
    "deploy_contract",
    "find_anvil",
    "guardian_domain",
    "load_artifact",
    "read_deployment",
    "read_genesis_config",
    "sign_action",
    "sign_pause",
    "sign_reject",
    "sign_unpause",
    "typed_data",
]
