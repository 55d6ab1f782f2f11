"""EIP-712 typed data for L1 contracts: the envelope, one signing rule, and the Bridge's owner
redirects.

Both L1 domains (guardian actions on the Rollup, owner redirects on the Bridge) use the
standard `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`
and the contracts' one signature rule (`Signatures.sol`: 65 bytes r ‖ s ‖ v, v in {27, 28},
low s). Any EIP-712 signer can produce these from `typed_message(...)`.

Bridge redirects (contracts/README.md, "What the system assumes of the collateral token"): an
account whose address the token refuses to pay signs `EscapeTo(account, recipient)` to have its
escape paid elsewhere; a depositor signs `RefundTo(nonce, recipient)` for a refund.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sequencer.l1.abi import checksum_address

if TYPE_CHECKING:  # eth-account is imported where keys are used (it costs ~0.8 s of CPU to import)
    from eth_account.signers.base import BaseAccount

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

BRIDGE_DOMAIN_NAME = "optrollup.bridge"
BRIDGE_DOMAIN_VERSION = "1"
BRIDGE_TYPES: dict[str, list[dict[str, str]]] = {
    "EscapeTo": [{"name": "account", "type": "address"}, {"name": "recipient", "type": "address"}],
    "RefundTo": [{"name": "nonce", "type": "uint256"}, {"name": "recipient", "type": "address"}],
}


def domain(name: str, version: str, chain_id: int, contract: str) -> dict[str, Any]:
    return {"name": name, "version": version, "chainId": chain_id,
            "verifyingContract": checksum_address(contract)}


def typed_message(dom: dict[str, Any], fields: list[dict[str, str]], primary_type: str,
                  message: dict[str, Any]) -> dict[str, Any]:
    """The full EIP-712 object (eth_signTypedData_v4 shape) of one message."""
    return {"types": {"EIP712Domain": EIP712_DOMAIN, primary_type: fields},
            "primaryType": primary_type, "domain": dom, "message": message}


def _account(key: BaseAccount | str | bytes) -> BaseAccount:
    """`key` itself if it is an eth-account account, else the account of that raw private key."""
    from eth_account import Account
    from eth_account.signers.base import BaseAccount

    return key if isinstance(key, BaseAccount) else Account.from_key(key)


def sign_typed(key: BaseAccount | str | bytes, full: dict[str, Any]) -> tuple[str, bytes]:
    """(signer address, 65-byte r ‖ s ‖ v signature with v in {27, 28} and low s). `key`: any
    eth-account account (a keystore's, a key in a PKCS#11 token: sequencer.keys.load_key) or a
    raw private key."""
    from eth_account.messages import encode_typed_data

    acct = _account(key)
    sig = acct.sign_message(encode_typed_data(full_message=full))
    r, s, v = sig.r, sig.s, sig.v
    if s > _SECP256K1_N // 2:  # normalise to low s (the contracts refuse high s)
        s, v = _SECP256K1_N - s, 55 - v  # 27 <-> 28
    return acct.address, r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def sign_escape_to(key: BaseAccount | str | bytes, l1_chain_id: int, bridge: str, recipient: str) -> bytes:
    """The account's (`key`'s) EscapeTo signature: pay its escape to `recipient`."""
    acct = _account(key)
    full = typed_message(domain(BRIDGE_DOMAIN_NAME, BRIDGE_DOMAIN_VERSION, l1_chain_id, bridge),
                         BRIDGE_TYPES["EscapeTo"], "EscapeTo",
                         {"account": acct.address, "recipient": checksum_address(recipient)})
    return sign_typed(acct, full)[1]


def sign_refund_to(key: BaseAccount | str | bytes, l1_chain_id: int, bridge: str, nonce: int,
                   recipient: str) -> bytes:
    """The depositor's (`key`'s) RefundTo signature: refund deposit `nonce` to `recipient`."""
    full = typed_message(domain(BRIDGE_DOMAIN_NAME, BRIDGE_DOMAIN_VERSION, l1_chain_id, bridge),
                         BRIDGE_TYPES["RefundTo"], "RefundTo",
                         {"nonce": nonce, "recipient": checksum_address(recipient)})
    return sign_typed(key, full)[1]
