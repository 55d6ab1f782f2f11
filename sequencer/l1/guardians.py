"""Guardian actions on the Rollup: EIP-712 typed data, signing, and sorting by signer.

The Rollup checks M-of-N guardian signatures over EIP-712 messages in the domain
`{name: "optrollup.guardians", version: "2", chainId: <L1 chain id>, verifyingContract: <Rollup>}`
(deliberately not the L2 order domain). Each action carries its own `deadline` (unix seconds,
inclusive) and works once (the Rollup records its digest), so quorums gathered in parallel do
not cancel each other and an unused one expires. Signatures must be passed sorted by signer
address (ascending). Any EIP-712 signer (hardware wallet, ethers, viem) can produce them from
`typed_data(...)`.

`send_reject` / `send_pause` / `send_unpause` / `send_rotation` sign with a quorum of keys
(deadline: now + `lifetime` seconds of L1 time) and send the action through the sender's
TxManager (anyone may send a signed action); `execute_rotation` applies an approved rotation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sequencer.l1.abi import checksum_address
from sequencer.l1.client import Receipt
from sequencer.l1.contracts import Contract
from sequencer.l1.typed import _SECP256K1_N, domain, sign_typed, typed_message  # noqa: F401 - _SECP256K1_N re-exported for tests

if TYPE_CHECKING:
    from eth_account.signers.base import BaseAccount

    from sequencer.l1.txmanager import TxManager

GUARDIAN_DOMAIN_NAME = "optrollup.guardians"
GUARDIAN_DOMAIN_VERSION = "2"
DEFAULT_LIFETIME = 3600  # seconds a signed action stays valid when the helpers below sign it

GUARDIAN_TYPES: dict[str, list[dict[str, str]]] = {
    "Reject": [
        {"name": "batchIndex", "type": "uint256"},
        {"name": "lastHeaderHash", "type": "bytes32"},
        {"name": "deadline", "type": "uint256"},
    ],
    "Pause": [{"name": "deadline", "type": "uint256"}],
    "Unpause": [{"name": "deadline", "type": "uint256"}],
    "Rotate": [
        {"name": "poster", "type": "address"},
        {"name": "guardians", "type": "address[]"},
        {"name": "threshold", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}



def guardian_domain(l1_chain_id: int, rollup: str) -> dict[str, Any]:
    return domain(GUARDIAN_DOMAIN_NAME, GUARDIAN_DOMAIN_VERSION, l1_chain_id, rollup)


def typed_data(l1_chain_id: int, rollup: str, primary_type: str, message: dict[str, Any]) -> dict[str, Any]:
    """The full EIP-712 object (eth_signTypedData_v4 shape) of one guardian action."""
    return typed_message(guardian_domain(l1_chain_id, rollup), GUARDIAN_TYPES[primary_type], primary_type, message)


def reject_message(batch_index: int, last_header_hash: bytes, deadline: int) -> dict[str, Any]:
    return {"batchIndex": batch_index, "lastHeaderHash": bytes(last_header_hash), "deadline": deadline}


def rotate_message(poster: str, guardians: Sequence[str], threshold: int, deadline: int) -> dict[str, Any]:
    return {"poster": checksum_address(poster), "guardians": [checksum_address(g) for g in guardians],
            "threshold": threshold, "deadline": deadline}


def sign_action(
    keys: Iterable[BaseAccount | str | bytes],
    l1_chain_id: int,
    rollup: str,
    primary_type: str,
    message: dict[str, Any],
) -> list[bytes]:
    """65-byte (r ‖ s ‖ v, v in {27, 28}, low s) signatures by each key, sorted by signer
    address ascending, as the Rollup's guardian actions expect."""
    full = typed_data(l1_chain_id, rollup, primary_type, message)
    out = []
    for key in keys:
        address, sig = sign_typed(key, full)
        out.append((int(address, 16), sig))
    return [sig for _, sig in sorted(out)]


Keys = Iterable["BaseAccount | str | bytes"]  # (a string: eth-account is imported only for type checks)


def sign_reject(keys: Keys, l1_chain_id: int, rollup: str, batch_index: int, last_header_hash: bytes,
                deadline: int) -> list[bytes]:
    return sign_action(keys, l1_chain_id, rollup, "Reject", reject_message(batch_index, last_header_hash, deadline))


def sign_pause(keys: Keys, l1_chain_id: int, rollup: str, deadline: int) -> list[bytes]:
    return sign_action(keys, l1_chain_id, rollup, "Pause", {"deadline": deadline})


def sign_unpause(keys: Keys, l1_chain_id: int, rollup: str, deadline: int) -> list[bytes]:
    return sign_action(keys, l1_chain_id, rollup, "Unpause", {"deadline": deadline})


def sign_rotation(keys: Keys, l1_chain_id: int, rollup: str, poster: str, guardians: Sequence[str],
                  threshold: int, deadline: int) -> list[bytes]:
    return sign_action(keys, l1_chain_id, rollup, "Rotate", rotate_message(poster, guardians, threshold, deadline))


# -- sending ---------------------------------------------------------------------------------------

def _deadline(rollup: Contract, lifetime: int) -> int:
    return rollup.client.get_block_timestamp() + lifetime


def send_reject(rollup: Contract, keys: Keys, batch_index: int, *, sender: BaseAccount | TxManager,
                lifetime: int = DEFAULT_LIFETIME) -> Receipt:
    """Drop batch `batch_index` and every later one: signs Reject over the batch's stored
    `lastHeaderHash` with `keys`, and sends it."""
    last_header_hash = bytes(rollup.call("getBatch", batch_index)["lastHeaderHash"])
    deadline = _deadline(rollup, lifetime)
    sigs = sign_reject(keys, rollup.client.chain_id, rollup.address, batch_index, last_header_hash, deadline)
    return rollup.transact("reject", batch_index, last_header_hash, deadline, sigs, sender=sender)


def send_pause(rollup: Contract, keys: Keys, *, sender: BaseAccount | TxManager,
               lifetime: int = DEFAULT_LIFETIME) -> Receipt:
    """Pause the Rollup with a quorum of guardian `keys`."""
    deadline = _deadline(rollup, lifetime)
    sigs = sign_pause(keys, rollup.client.chain_id, rollup.address, deadline)
    return rollup.transact("pause", deadline, sigs, sender=sender)


def send_unpause(rollup: Contract, keys: Keys, *, sender: BaseAccount | TxManager,
                 lifetime: int = DEFAULT_LIFETIME) -> Receipt:
    """Lift a pause with a quorum of guardian `keys`."""
    deadline = _deadline(rollup, lifetime)
    sigs = sign_unpause(keys, rollup.client.chain_id, rollup.address, deadline)
    return rollup.transact("unpause", deadline, sigs, sender=sender)


def send_rotation(rollup: Contract, keys: Keys, poster: str, guardians: Sequence[str], threshold: int, *,
                  sender: BaseAccount | TxManager, lifetime: int = DEFAULT_LIFETIME) -> Receipt:
    """Approve replacing the poster and guardian set (applied by `execute_rotation` after the
    Rollup's `rotationDelay`)."""
    deadline = _deadline(rollup, lifetime)
    sigs = sign_rotation(keys, rollup.client.chain_id, rollup.address, poster, guardians, threshold, deadline)
    return rollup.transact("approveRotation", checksum_address(poster), [checksum_address(g) for g in guardians],
                           threshold, deadline, sigs, sender=sender)


def execute_rotation(rollup: Contract, poster: str, guardians: Sequence[str], threshold: int, *,
                     sender: BaseAccount | TxManager) -> Receipt:
    """Apply the approved rotation once due (anyone may send it)."""
    return rollup.transact("executeRotation", checksum_address(poster), [checksum_address(g) for g in guardians],
                           threshold, sender=sender)
