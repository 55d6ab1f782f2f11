"""optrollup's L1 layer: the local anvil devnet, the one JSON-RPC client, the one transaction
manager, the one event tracker, contract bindings over the compiled artifacts
(contracts/artifacts), deployment, guardian actions.

Everything that talks to L1 (node follower, batch poster, replay verifier, escape hatch,
devnet, deployment) builds on:
- `Anvil` / `find_anvil` to run a devnet;
- `L1Client` for every L1 read (JSON-RPC over an httpx transport; reverts raise
  `ContractRevert` naming the Solidity custom error);
- `TxManager` / `TxConfig` for every transaction: nonces, EIP-1559 fees and bumps, gas,
  confirmations, replacement, reorgs (`L1Client.transact` and `Contract.transact` use it);
- `EventTracker` (chunked, incremental, reorg-aware eth_getLogs) and `RollupTracker` (live
  batches and deposits of one rollup on top of it);
- `Contract` to encode/decode calls (`encode`, `decode_input` for batch calldata), read state
  (`call`) and events (`events`, `decode_logs`);
- `deploy` / `read_deployment` / `read_genesis_config` / `Deployment` for addresses and
  configuration (the genesis bytes come from the RollupDeployed event);
- `sign_reject` / `sign_pause` / `sign_unpause` / `sign_rotation` for guardian quorums, `send_*`
  to send them, `execute_rotation` to apply an approved rotation.
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
from sequencer.l1.client import L1Client, Log, Receipt, parse_quantity
from sequencer.l1.contracts import Contract, Event, deploy_contract
from sequencer.l1.deploy import Deployment, deploy, read_deployment, read_genesis_config
from sequencer.l1.errors import (
    AnvilError,
    ContractRevert,
    InsufficientFunds,
    L1Error,
    L1Unavailable,
    NonceTaken,
    ReceiptTimeout,
    RpcError,
    SendError,
    TransactionFailed,
)
from sequencer.l1.fees import Fees, bump, market_fees, replacement_fees
from sequencer.l1.typed import sign_escape_to, sign_refund_to
from sequencer.l1.guardians import (
    GUARDIAN_TYPES,
    execute_rotation,
    guardian_domain,
    send_pause,
    send_reject,
    send_rotation,
    send_unpause,
    sign_action,
    sign_pause,
    sign_reject,
    sign_rotation,
    sign_unpause,
    typed_data,
)
from sequencer.l1.rolluptracker import (DepositEvent, RollupTracker, RollupUpdate, SubmittedBatch,
                                         WithdrawalRequestEvent)
from sequencer.l1.tracker import Cursor, EventTracker, TrackerUpdate
from sequencer.l1.txmanager import Attempt, SendResult, TxConfig, TxManager

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
    "Attempt",
    "Contract",
    "ContractAbi",
    "ContractRevert",
    "Cursor",
    "DepositEvent",
    "Deployment",
    "Event",
    "EventTracker",
    "Fees",
    "InsufficientFunds",
    "L1Client",
    "L1Error",
    "L1Unavailable",
    "Log",
    "NonceTaken",
    "Receipt",
    "ReceiptTimeout",
    "RollupTracker",
    "RollupUpdate",
    "RpcError",
    "SendError",
    "SendResult",
    "SubmittedBatch",
    "TrackerUpdate",
    "TransactionFailed",
    "TxConfig",
    "TxManager",
    "WithdrawalRequestEvent",
    "artifact_names",
    "artifacts_dir",
    "bump",
    "decode_revert",
    "deploy",
    "deploy_contract",
    "find_anvil",
    "execute_rotation",
    "guardian_domain",
    "load_artifact",
    "market_fees",
    "parse_quantity",
    "read_deployment",
    "replacement_fees",
    "read_genesis_config",
    "send_pause",
    "send_reject",
    "send_rotation",
    "send_unpause",
    "sign_action",
    "sign_pause",
    "sign_escape_to",
    "sign_refund_to",
    "sign_reject",
    "sign_rotation",
    "sign_unpause",
    "typed_data",
]
