"""Contract bindings: an artifact's ABI bound to an address and an `L1Client`.

    rollup = Contract.at(client, "Rollup", address)
    rollup.call("isFinal", 3)                          # eth_call, decoded result
    rollup.transact("submitBatch", *args, sender=acct) # through acct's TxManager, Receipt (raises on revert)
    rollup.encode("submitBatch", *args)                # calldata (for the poster, wallets)
    rollup.decode_input(tx_input)                      # {"firstBlock": ..., ...} (verifier)
    rollup.events("BatchSubmitted", from_block=n)      # decoded logs
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sequencer.l1.abi import Artifact, ContractAbi, checksum_address, load_artifact
from sequencer.l1.client import BlockId, L1Client, Log, Receipt
from sequencer.l1.errors import L1Error

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from sequencer.l1.txmanager import TxManager


@dataclass(frozen=True)
class Event:
    """A decoded event log."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


class Contract:
    """A deployed contract: ABI + address + client."""

    def __init__(self, client: L1Client, abi: ContractAbi, address: str, name: str = "") -> None:
        self.client = client
        self.abi = abi
        self.address = checksum_address(address)
        self.name = name or "contract"

    @classmethod
    def at(cls, client: L1Client, name: str, address: str) -> Contract:
        """Binds artifact `name` (contracts/artifacts/<name>.json) to `address`."""
        return cls(client, load_artifact(name).abi, address, name)

    def __repr__(self) -> str:
        return f"<{self.name} at {self.address}>"

    # -- calls ----------------------------------------------------------------------------------

    def encode(self, fn: str, *args: Any) -> bytes:
        """Calldata of `fn(args)`."""
        return self.abi.function(fn).encode(*args)

    def decode_input(self, calldata: bytes) -> dict[str, Any]:
        """Arguments by name of a call to this contract (the function is found by selector)."""
        f = self.abi.function_by_selector(bytes(calldata[:4]))
        if f is None:
            raise L1Error(f"calldata selector 0x{bytes(calldata[:4]).hex()} is not a {self.name} function")
        return f.decode_input(bytes(calldata))

    def call(self, fn: str, *args: Any, block: BlockId = "latest", sender: str | None = None) -> Any:
        """eth_call of `fn`; returns the single output, a tuple of outputs, or None."""
        f = self.abi.function(fn)
        out = self.client.call(self.address, f.encode(*args), sender=sender, block=block, context=f"{self.name}.{fn}")
        return f.decode_output(out)

    def transact(
        self,
        fn: str,
        *args: Any,
        sender: LocalAccount | TxManager,
        value: int = 0,
        gas: int | None = None,
        timeout: float = 30.0,
    ) -> Receipt:
        """Sends `fn(args)` through `sender`'s TxManager (or `sender` itself when it is one)
        and waits for the receipt. Raises ContractRevert (naming the custom error) if it would
        revert or did."""
        return self.client.transact(
            sender, self.address, self.encode(fn, *args), value=value, gas=gas, timeout=timeout,
            context=f"{self.name}.{fn}",
        )

    # -- events ---------------------------------------------------------------------------------

    def decode_log(self, log: Log) -> Event | None:
        """The decoded event, or None if the log is not one of this contract's events."""
        if log.address != self.address or not log.topics:
            return None
        ev = self.abi.event_by_topic(log.topics[0])
        if ev is None:
            return None
        return Event(ev.name, ev.decode(log.topics, log.data), log.address, log.block_number, log.tx_hash,
                     log.log_index)

    def decode_logs(self, receipt: Receipt, name: str | None = None) -> list[Event]:
        """This contract's events in a receipt (optionally only those called `name`)."""
        out = []
        for log in receipt.logs:
            ev = self.decode_log(log)
            if ev is not None and (name is None or ev.name == name):
                out.append(ev)
        return out

    def events(
        self,
        name: str,
        *,
        from_block: BlockId = 0,
        to_block: BlockId = "latest",
        topics: Sequence[bytes | Sequence[bytes] | None] = (),
    ) -> list[Event]:
        """Logs of event `name` in [from_block, to_block]; `topics` filters indexed args."""
        ev = self.abi.event(name)
        logs = self.client.get_logs(
            address=self.address, topics=[ev.topic0, *topics], from_block=from_block, to_block=to_block
        )
        return [e for e in (self.decode_log(log) for log in logs) if e is not None]


def deploy_contract(
    client: L1Client, sender: LocalAccount | TxManager, artifact: Artifact | str, *args: Any, gas: int | None = None
) -> tuple[Contract, Receipt]:
    """Deploys an artifact with constructor `args`; returns the bound contract and receipt."""
    art = load_artifact(artifact) if isinstance(artifact, str) else artifact
    receipt = client.transact(sender, None, art.deploy_data(*args), gas=gas, context=f"deploy {art.name}")
    if receipt.contract_address is None:
        raise L1Error(f"deploying {art.name}: receipt has no contract address")
    return Contract(client, art.abi, receipt.contract_address, art.name), receipt
