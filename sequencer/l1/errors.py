"""Errors of the L1 layer. Every one derives from `sequencer.errors.OptrollupError` with a
stable `code`, so callers (CLI, poster, HTTP layer) can map them without matching messages.

    L1Error
    ├── RpcError              the node answered with a JSON-RPC error object
    ├── ContractRevert        a call or transaction reverted (custom error decoded)
    ├── TransactionFailed     mined with status 0, no reason recoverable
    ├── SendError             the transaction manager could not see a transaction through
    │   ├── InsufficientFunds
    │   ├── NonceTaken        another transaction used our nonce: re-read the chain, re-plan
    │   └── ReceiptTimeout    not confirmed in time (may still be pending)
    └── AnvilError
    L1Unavailable (an `Unavailable`): the endpoint cannot be reached
"""

from __future__ import annotations

from typing import Any

from sequencer.errors import OptrollupError, Unavailable


class L1Error(OptrollupError):
    """Something on L1 went wrong that is not a contract revert (bad RPC answer, timeout)."""

    code = "l1_error"


class L1Unavailable(Unavailable):
    """The L1 JSON-RPC endpoint cannot be reached or keeps failing (HTTP 503 upstream)."""

    code = "l1_unavailable"


class RpcError(L1Error):
    """The node answered a JSON-RPC call with an error object."""

    code = "l1_rpc_error"

    def __init__(self, method: str, rpc_code: int, rpc_message: str, data: Any = None) -> None:
        super().__init__(f"{method}: JSON-RPC error {rpc_code}: {rpc_message}")
        self.method = method
        self.rpc_code = rpc_code
        self.rpc_message = rpc_message
        self.data = data


class ContractRevert(L1Error):
    """A call or transaction reverted. `error` names the Solidity custom error (or `Error` for
    `require(..., "msg")`, `Panic` for assertion/overflow, `<unknown>` when undecodable),
    `args` holds its decoded arguments by name, `data` the raw revert bytes."""

    code = "l1_revert"

    def __init__(
        self,
        error: str,
        args: dict[str, Any] | None = None,
        *,
        data: bytes = b"",
        tx_hash: str | None = None,
        context: str = "",
        receipt: Any = None,
    ) -> None:
        self.error = error
        self.receipt = receipt  # the mined Receipt when the revert happened on chain
        self.error_args = dict(args or {})
        self.data = bytes(data)
        self.tx_hash = tx_hash
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in self.error_args.items())
        where = f"{context} " if context else ""
        tx = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"{where}reverted with {error}({rendered}){tx}")


class TransactionFailed(L1Error):
    """A mined transaction has status 0 and no revert reason could be recovered."""

    code = "l1_tx_failed"

    def __init__(self, message: str, *, receipt: Any = None) -> None:
        super().__init__(message)
        self.receipt = receipt


class SendError(L1Error):
    """The transaction manager could not see a transaction through."""

    code = "l1_send_failed"


class InsufficientFunds(SendError):
    """The sender's ETH balance cannot pay for the transaction."""

    code = "l1_insufficient_funds"


class NonceTaken(SendError):
    """Another transaction (none of ours) used the nonce: re-read the chain and re-plan."""

    code = "l1_nonce_taken"


class ReceiptTimeout(SendError):
    """Not confirmed within the wait time (the transaction may still be pending; a later run
    with the same key takes it over). `tx_hash` is the latest attempt."""

    code = "l1_receipt_timeout"

    def __init__(self, tx_hash: str, seconds: float, detail: str = "") -> None:
        super().__init__(f"{detail or tx_hash} not confirmed after {seconds:.1f}s")
        self.tx_hash = tx_hash


class AnvilError(L1Error):
    """The local anvil devnet could not be found, started or stopped."""

    code = "anvil_error"


def _render(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_render(x) for x in v) + "]"
    return str(v)
