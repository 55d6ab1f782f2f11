"""Guardian actions on the Rollup: EIP-712 typed data, signing, and sorting by signer.

The Rollup checks M-of-N guardian signatures over EIP-712 messages in the domain
`{name: "optrollup.guardians", version: "1", chainId: <L1 chain id>, verifyingContract: <Rollup>}`
(deliberately not the L2 order domain). Each action carries the Rollup's `guardianNonce`, so a
signature set is usable once. Signatures must be passed sorted by signer address (ascending).
Any EIP-712 signer (hardware wallet, ethers, viem) can produce them from `typed_data(...)`.

`send_reject` / `send_pause` / `send_unpause` read the nonce, sign with a quorum of keys and send
the action through the sender's TxManager (anyone may send a signed action).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from sequencer.l1.abi import checksum_address
from sequencer.l1.client import Receipt
from sequencer.l1.contracts import Contract

if TYPE_CHECKING:
    from sequencer.l1.txmanager import TxManager

GUARDIAN_DOMAIN_NAME = "optrollup.guardians"
GUARDIAN_DOMAIN_VERSION = "1"

GUARDIAN_TYPES: dict[str, list[dict[str, str]]] = {
    "Reject": [
        {"name": "batchIndex", "type": "uint256"},
        {"name": "lastHeaderHash", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
    "Pause": [{"name": "nonce", "type": "uint256"}],
    "Unpause": [{"name": "nonce", "type": "uint256"}],
}

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def guardian_domain(l1_chain_id: int, rollup: str) -> dict[str, Any]:
    return {
        "name": GUARDIAN_DOMAIN_NAME,
        "version": GUARDIAN_DOMAIN_VERSION,
        "chainId": l1_chain_id,
        "verifyingContract": checksum_address(rollup),
    }


def typed_data(l1_chain_id: int, rollup: str, primary_type: str, message: dict[str, Any]) -> dict[str, Any]:
    """The full EIP-712 object (eth_signTypedData_v4 shape) of one guardian action."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary_type: GUARDIAN_TYPES[primary_type],
        },
        "primaryType": primary_type,
        "domain": guardian_domain(l1_chain_id, rollup),
        "message": message,
    }


def reject_message(batch_index: int, last_header_hash: bytes, nonce: int) -> dict[str, Any]:
    return {"batchIndex": batch_index, "lastHeaderHash": bytes(last_header_hash), "nonce": nonce}


def sign_action(
    keys: Iterable[LocalAccount | str | bytes],
    l1_chain_id: int,
    rollup: str,
    primary_type: str,
    message: dict[str, Any],
) -> list[bytes]:
    """65-byte (r ‖ s ‖ v, v in {27, 28}, low s) signatures by each key, sorted by signer
    address ascending, as `Rollup.reject/pause/unpause` expect."""
    signable = encode_typed_data(full_message=typed_data(l1_chain_id, rollup, primary_type, message))
    out: list[tuple[int, bytes]] = []
    for key in keys:
        acct = key if isinstance(key, LocalAccount) else Account.from_key(key)
        sig = acct.sign_message(signable)
        r, s, v = sig.r, sig.s, sig.v
        if s > _SECP256K1_N // 2:  # normalise to low s (the contract rejects high s)
            s, v = _SECP256K1_N - s, 55 - v  # 27 <-> 28
        out.append((int(acct.address, 16), r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])))
    return [sig for _, sig in sorted(out)]


def sign_reject(
    keys: Iterable[LocalAccount | str | bytes],
    l1_chain_id: int,
    rollup: str,
    batch_index: int,
    last_header_hash: bytes,
    nonce: int,
) -> list[bytes]:
    return sign_action(keys, l1_chain_id, rollup, "Reject", reject_message(batch_index, last_header_hash, nonce))


def sign_pause(keys: Iterable[LocalAccount | str | bytes], l1_chain_id: int, rollup: str, nonce: int) -> list[bytes]:
    return sign_action(keys, l1_chain_id, rollup, "Pause", {"nonce": nonce})


def sign_unpause(keys: Iterable[LocalAccount | str | bytes], l1_chain_id: int, rollup: str, nonce: int) -> list[bytes]:
    return sign_action(keys, l1_chain_id, rollup, "Unpause", {"nonce": nonce})


# -- sending ---------------------------------------------------------------------------------------

def send_reject(rollup: Contract, keys: Iterable[LocalAccount | str | bytes], batch_index: int, *,
                sender: LocalAccount | TxManager) -> Receipt:
    """Drop batch `batch_index` and every later one: signs Reject over the batch's stored
    `lastHeaderHash` and the current `guardianNonce` with `keys`, and sends it."""
    last_header_hash = bytes(rollup.call("getBatch", batch_index)["lastHeaderHash"])
    sigs = sign_reject(keys, rollup.client.chain_id, rollup.address, batch_index, last_header_hash,
                       rollup.call("guardianNonce"))
    return rollup.transact("reject", batch_index, last_header_hash, sigs, sender=sender)


def send_pause(rollup: Contract, keys: Iterable[LocalAccount | str | bytes], *,
               sender: LocalAccount | TxManager) -> Receipt:
    """Pause the Rollup with a quorum of guardian `keys`."""
    sigs = sign_pause(keys, rollup.client.chain_id, rollup.address, rollup.call("guardianNonce"))
    return rollup.transact("pause", sigs, sender=sender)


def send_unpause(rollup: Contract, keys: Iterable[LocalAccount | str | bytes], *,
                 sender: LocalAccount | TxManager) -> Receipt:
    """Lift a pause with a quorum of guardian `keys`."""
    sigs = sign_unpause(keys, rollup.client.chain_id, rollup.address, rollup.call("guardianNonce"))
    return rollup.transact("unpause", sigs, sender=sender)
