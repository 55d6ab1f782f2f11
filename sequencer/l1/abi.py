"""Compiled contract artifacts and their ABIs: encode calls, decode results, events and
custom errors. Pure (no I/O but reading artifact files); `sequencer.l1.contracts` binds an ABI
to an address and an `L1Client`.

Values cross the boundary as eth-abi values: ints, `bytes`, checksum address strings, bools,
strings, lists; a Solidity struct (ABI tuple) is accepted as a dict by component name or a
sequence, and returned as a dict by component name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import eth_abi
from cext import keccak256, parse_address, to_checksum
from sequencer.l1.errors import L1Error

#: contracts/artifacts of the repository (override with OPTROLLUP_ARTIFACTS_DIR).
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "contracts" / "artifacts"



def keccak_text(text: str) -> bytes:
    return keccak256(text.encode())


def checksum_address(value: str | bytes) -> str:
    """EIP-55 form of a 0x-hex string or 20 raw bytes (a mixed-case string must be valid EIP-55)."""
    try:
        return to_checksum(parse_address(value, "address"))
    except (ValueError, TypeError) as exc:
        raise L1Error(str(exc)) from None


ERROR_STRING_SELECTOR = keccak_text("Error(string)")[:4]
PANIC_SELECTOR = keccak_text("Panic(uint256)")[:4]


def artifacts_dir() -> Path:
    env = os.environ.get("OPTROLLUP_ARTIFACTS_DIR")
    return Path(env) if env else ARTIFACTS_DIR


# ----------------------------------------------------------------------------------------------
# ABI type strings and value conversion
# ----------------------------------------------------------------------------------------------


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI parameter, tuples expanded: `(uint64,bytes32)[]`."""
    t = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){t[len('tuple'):]}"
    return t


def _array_dims(t: str) -> tuple[str, list[str]]:
    """`uint256[2][]` -> (`uint256`, [`2`, ``]) (outermost last)."""
    dims = []
    while t.endswith("]"):
        i = t.rindex("[")
        dims.append(t[i + 1 : -1])
        t = t[:i]
    return t, dims[::-1]


def to_abi_value(param: Mapping[str, Any], value: Any) -> Any:
    """Python value -> what eth-abi encodes (dicts become tuples, hex strings become bytes)."""
    return _in(param, param["type"], value)


def _in(param: Mapping[str, Any], t: str, value: Any) -> Any:
    base, dims = _array_dims(t)
    if dims:
        inner_t = t[: t.rindex("[")]
        return [_in(param, inner_t, v) for v in value]
    if base == "tuple":
        comps = param["components"]
        if isinstance(value, Mapping):
            missing = [c["name"] for c in comps if c["name"] not in value]
            if missing:
                raise L1Error(f"struct value lacks field(s) {missing}")
            value = [value[c["name"]] for c in comps]
        if len(value) != len(comps):
            raise L1Error(f"struct needs {len(comps)} fields, got {len(value)}")
        return tuple(_in(c, c["type"], v) for c, v in zip(comps, value, strict=True))
    if base.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    if base == "address" and isinstance(value, (bytes, bytearray)):
        return checksum_address(bytes(value))
    return value


def from_abi_value(param: Mapping[str, Any], value: Any) -> Any:
    """eth-abi decoded value -> Python value (tuples with named components become dicts)."""
    return _out(param, param["type"], value)


def _out(param: Mapping[str, Any], t: str, value: Any) -> Any:
    base, dims = _array_dims(t)
    if dims:
        inner_t = t[: t.rindex("[")]
        return [_out(param, inner_t, v) for v in value]
    if base == "tuple":
        comps = param["components"]
        if all(c.get("name") for c in comps):
            return {c["name"]: _out(c, c["type"], v) for c, v in zip(comps, value, strict=True)}
        return tuple(_out(c, c["type"], v) for c, v in zip(comps, value, strict=True))
    if base == "address":
        return checksum_address(value)
    return value


def _signature(name: str, inputs: Sequence[Mapping[str, Any]]) -> str:
    return f"{name}({','.join(abi_type(p) for p in inputs)})"


# ----------------------------------------------------------------------------------------------
# ABI items
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbiFunction:
    """One function of a contract ABI."""

    name: str
    inputs: tuple[Mapping[str, Any], ...]
    outputs: tuple[Mapping[str, Any], ...]
    state_mutability: str
    signature: str
    selector: bytes

    @classmethod
    def from_abi(cls, item: Mapping[str, Any]) -> AbiFunction:
        sig = _signature(item["name"], item["inputs"])
        return cls(
            item["name"], tuple(item["inputs"]), tuple(item.get("outputs", ())),
            item.get("stateMutability", "nonpayable"), sig, keccak_text(sig)[:4],
        )

    @property
    def is_view(self) -> bool:
        return self.state_mutability in ("view", "pure")

    def encode_args(self, args: Sequence[Any]) -> bytes:
        if len(args) != len(self.inputs):
            raise L1Error(f"{self.signature} takes {len(self.inputs)} arguments, got {len(args)}")
        types = [abi_type(p) for p in self.inputs]
        values = [to_abi_value(p, a) for p, a in zip(self.inputs, args, strict=True)]
        return eth_abi.encode(types, values)

    def encode(self, *args: Any) -> bytes:
        """Calldata: selector ‖ abi.encode(args)."""
        return self.selector + self.encode_args(args)

    def decode_input(self, calldata: bytes) -> dict[str, Any]:
        """Calldata of this function -> arguments by name (positional `argN` when unnamed)."""
        if calldata[:4] != self.selector:
            raise L1Error(f"calldata is not a call to {self.signature}")
        values = eth_abi.decode([abi_type(p) for p in self.inputs], calldata[4:])
        return {
            (p.get("name") or f"arg{i}"): from_abi_value(p, v)
            for i, (p, v) in enumerate(zip(self.inputs, values, strict=True))
        }

    def decode_output(self, data: bytes) -> Any:
        """Return data -> the single value, a tuple of values, or None."""
        if not self.outputs:
            return None
        values = eth_abi.decode([abi_type(p) for p in self.outputs], data)
        out = [from_abi_value(p, v) for p, v in zip(self.outputs, values, strict=True)]
        return out[0] if len(out) == 1 else tuple(out)


@dataclass(frozen=True)
class AbiEvent:
    """One event of a contract ABI."""

    name: str
    inputs: tuple[Mapping[str, Any], ...]
    anonymous: bool
    signature: str
    topic0: bytes

    @classmethod
    def from_abi(cls, item: Mapping[str, Any]) -> AbiEvent:
        sig = _signature(item["name"], item["inputs"])
        return cls(item["name"], tuple(item["inputs"]), bool(item.get("anonymous")), sig, keccak_text(sig))

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        """Arguments by name. Indexed dynamic values (strings, arrays) come back as their hash."""
        indexed = [p for p in self.inputs if p.get("indexed")]
        plain = [p for p in self.inputs if not p.get("indexed")]
        topic_values = list(topics[0 if self.anonymous else 1 :])
        if len(topic_values) != len(indexed):
            raise L1Error(f"log does not match {self.signature}: {len(topic_values)} indexed topics")
        out: dict[str, Any] = {}
        for p, topic in zip(indexed, topic_values, strict=True):
            t = abi_type(p)
            if t in ("string", "bytes") or t.endswith("]") or t.startswith("("):
                out[p["name"]] = bytes(topic)
            else:
                out[p["name"]] = from_abi_value(p, eth_abi.decode([t], bytes(topic))[0])
        values = eth_abi.decode([abi_type(p) for p in plain], data) if plain else ()
        for p, v in zip(plain, values, strict=True):
            out[p["name"]] = from_abi_value(p, v)
        return {p["name"]: out[p["name"]] for p in self.inputs}


@dataclass(frozen=True)
class AbiError:
    """One custom error of a contract ABI."""

    name: str
    inputs: tuple[Mapping[str, Any], ...]
    signature: str
    selector: bytes

    @classmethod
    def from_abi(cls, item: Mapping[str, Any]) -> AbiError:
        sig = _signature(item["name"], item["inputs"])
        return cls(item["name"], tuple(item["inputs"]), sig, keccak_text(sig)[:4])

    def decode(self, data: bytes) -> dict[str, Any]:
        values = eth_abi.decode([abi_type(p) for p in self.inputs], data[4:]) if self.inputs else ()
        return {
            (p.get("name") or f"arg{i}"): from_abi_value(p, v)
            for i, (p, v) in enumerate(zip(self.inputs, values, strict=True))
        }


@dataclass(frozen=True)
class ContractAbi:
    """A contract's ABI, indexed by function, event and error."""

    items: tuple[Mapping[str, Any], ...]
    functions: Mapping[str, AbiFunction] = field(default_factory=dict)
    events: Mapping[str, AbiEvent] = field(default_factory=dict)
    errors: Mapping[str, AbiError] = field(default_factory=dict)
    constructor_inputs: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_abi(cls, abi: Sequence[Mapping[str, Any]]) -> ContractAbi:
        functions: dict[str, AbiFunction] = {}
        events: dict[str, AbiEvent] = {}
        errors: dict[str, AbiError] = {}
        ctor: tuple[Mapping[str, Any], ...] = ()
        for item in abi:
            kind = item["type"]
            if kind == "function":
                if item["name"] in functions:  # overloads are not used by our contracts
                    raise L1Error(f"overloaded function {item['name']} is not supported")
                functions[item["name"]] = AbiFunction.from_abi(item)
            elif kind == "event":
                events[item["name"]] = AbiEvent.from_abi(item)
            elif kind == "error":
                errors[item["name"]] = AbiError.from_abi(item)
            elif kind == "constructor":
                ctor = tuple(item["inputs"])
        return cls(tuple(abi), functions, events, errors, ctor)

    def function(self, name: str) -> AbiFunction:
        try:
            return self.functions[name]
        except KeyError:
            raise L1Error(f"no function {name!r} in this ABI") from None

    def event(self, name: str) -> AbiEvent:
        try:
            return self.events[name]
        except KeyError:
            raise L1Error(f"no event {name!r} in this ABI") from None

    def encode_constructor(self, *args: Any) -> bytes:
        if len(args) != len(self.constructor_inputs):
            raise L1Error(f"constructor takes {len(self.constructor_inputs)} arguments, got {len(args)}")
        types = [abi_type(p) for p in self.constructor_inputs]
        values = [to_abi_value(p, a) for p, a in zip(self.constructor_inputs, args, strict=True)]
        return eth_abi.encode(types, values)

    def event_by_topic(self, topic0: bytes) -> AbiEvent | None:
        for ev in self.events.values():
            if ev.topic0 == topic0:
                return ev
        return None

    def function_by_selector(self, selector: bytes) -> AbiFunction | None:
        for fn in self.functions.values():
            if fn.selector == selector:
                return fn
        return None


# ----------------------------------------------------------------------------------------------
# Artifacts
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """contracts/artifacts/<name>.json, as written by scripts/compile_contracts.js."""

    name: str
    abi: ContractAbi
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str
    sources_hash: str
    path: Path

    def deploy_data(self, *args: Any) -> bytes:
        """Creation code ‖ abi.encode(constructor args)."""
        return self.bytecode + self.abi.encode_constructor(*args)


@lru_cache(maxsize=None)
def _load(path: Path) -> Artifact:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise L1Error(f"no artifact {path} (run `node scripts/compile_contracts.js`)") from None
    return Artifact(
        name=raw["contractName"],
        abi=ContractAbi.from_abi(raw["abi"]),
        bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(raw["deployedBytecode"].removeprefix("0x")),
        compiler_version=raw["compiler"]["version"],
        sources_hash=raw["sourcesHash"],
        path=path,
    )


def load_artifact(name: str, directory: Path | None = None) -> Artifact:
    """The compiled artifact of contract `name` (cached per file)."""
    return _load((directory or artifacts_dir()) / f"{name}.json")


def artifact_names(directory: Path | None = None) -> list[str]:
    """Names of every compiled contract, sorted."""
    return sorted(p.stem for p in (directory or artifacts_dir()).glob("*.json"))


# ----------------------------------------------------------------------------------------------
# Revert data
# ----------------------------------------------------------------------------------------------

_PANIC_REASONS = {
    0x01: "assert(false)",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array",
    0x31: "pop() on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to a zero-initialised internal function",
}


@lru_cache(maxsize=8)
def _error_table(directory: Path) -> dict[bytes, AbiError]:
    table: dict[bytes, AbiError] = {}
    for name in artifact_names(directory):
        for err in load_artifact(name, directory).abi.errors.values():
            table.setdefault(err.selector, err)
    return table


def decode_revert(data: bytes, directory: Path | None = None) -> tuple[str, dict[str, Any]]:
    """Revert bytes -> (error name, arguments by name), using every artifact's custom errors,
    plus `Error(string)` and `Panic(uint256)`. Unknown data -> ("<unknown>", {"data": data})."""
    data = bytes(data)
    if not data:
        return "<empty>", {}
    sel = data[:4]
    try:
        if sel == ERROR_STRING_SELECTOR:
            return "Error", {"message": eth_abi.decode(["string"], data[4:])[0]}
        if sel == PANIC_SELECTOR:
            code = eth_abi.decode(["uint256"], data[4:])[0]
            return "Panic", {"code": code, "reason": _PANIC_REASONS.get(code, "unknown panic")}
        err = _error_table(directory or artifacts_dir()).get(sel)
        if err is not None:
            return err.name, err.decode(data)
    except Exception:  # noqa: BLE001 - malformed revert data is reported as unknown, not raised
        pass
    return "<unknown>", {"data": data}
