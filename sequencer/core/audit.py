"""The audit-export file format, `optrollup-audit/1` (docs/compliance.md, "Audit export"). Pure:
bytes in, parsed lines or the first bad line out.

A file is JSON lines, each one object in canonical form (keys sorted, no spaces, ASCII,
lower-case hex for bytes, integers as JSON integers) and ending in "\\n". Every line has `prev`,
the keccak-256 of the previous line's bytes (without its "\\n"); the first line's `prev` is
32 zero bytes. Lines, in order:

- `{"kind": "header", "format": "optrollup-audit/1", "chainId", "rollup", "operator",
  "genesis" (block 0's header hash), "fromBlock", "toBlock", "firstSeq", "prev"}`;
- for each block F..T: the input-log records applied while it was open, then the block.
  A record line is `{"kind": "record", "seq", "block", "type", "raw" (the record's log bytes),
  "record" (the same bytes as JSON: msgpack decoded, bytes as hex), "prev"}`; the records of
  block n run from just after the Seal record that sealed block n-1 (or from record 0) up to
  and including the Seal record that sealed block n. A block line is `{"kind": "block",
  "number", "header" (Header.to_json()), "txs" (tx bytes), "prev"}`;
- `{"kind": "end", "lines" (how many lines precede it), "signer", "signature", "prev"}`.

The end line's signature is EIP-191 `personal_sign` (version 0x45) by the operator key over
the text `end_message(...)`, which names the chain, the Rollup, the block range, the line count
and the hash chain's head (the end line's `prev`): one signature covers every byte before it,
and the end line's own bytes are pinned by being canonical. So a one-byte edit anywhere breaks
either the JSON, its canonical form, the hash chain, or the signature.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import msgpack

from cext import keccak256, recover_addresses
from sequencer.core.header import Header, tx_root
from sequencer.errors import InvalidRequest, OptrollupError

FORMAT = "optrollup-audit/1"
ZERO = "0x" + "00" * 32


class AuditError(InvalidRequest):
    """An audit file that does not verify: `line` is the 1-based number of the first bad line
    (0: the file as a whole, e.g. empty)."""

    code = "audit_invalid"

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line, self.reason = line, reason


class AuditFile(NamedTuple):
    """A file whose form, hash chain and signature check: its header, its record and block
    lines (each with its 1-based line number) and the recovered signer."""

    header: dict[str, Any]
    records: list[tuple[int, dict[str, Any]]]
    blocks: list[tuple[int, dict[str, Any]]]
    signer: bytes
    lines: int


def hx(b: bytes) -> str:
    return "0x" + b.hex()


def jsonable(v: Any) -> Any:
    """msgpack-decoded data as JSON: bytes as 0x hex, tuples as lists."""
    if isinstance(v, (bytes, bytearray)):
        return hx(bytes(v))
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return v


def record_json(raw: bytes) -> Any:
    """The `record` field of a record line: the log bytes, msgpack-decoded, as JSON."""
    return jsonable(msgpack.unpackb(raw, raw=False))


def canonical(obj: dict[str, Any]) -> bytes:
    """The one byte form of a line (without its newline)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def line_hash(line: bytes) -> str:
    return hx(keccak256(line))


def end_message(header: dict[str, Any], lines: int, head: str) -> bytes:
    """The text the operator signs (EIP-191 personal_sign) in the end line."""
    return (f"optrollup audit export {FORMAT}\nchainId {header['chainId']}\n"
            f"rollup {header['rollup']}\nblocks {header['fromBlock']}-{header['toBlock']}\n"
            f"lines {lines}\nhead {head}").encode()


def eip191_digest(message: bytes) -> bytes:
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)


class Writer:
    """Builds a file line by line, chaining the hashes; `finish(sign)` appends the signed end
    line (`sign(message) -> 65-byte signature`, EIP-191 personal_sign)."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.prev = ZERO
        self.header: dict[str, Any] | None = None

    def add(self, obj: dict[str, Any]) -> None:
        line = canonical({**obj, "prev": self.prev})
        if self.header is None:
            self.header = obj
        self.out.append(line)
        self.prev = line_hash(line)

    def finish(self, signer: bytes, sign: Any) -> bytes:
        assert self.header is not None
        n = len(self.out)
        sig = sign(end_message(self.header, n, self.prev))
        self.add({"kind": "end", "lines": n, "signer": hx(signer), "signature": hx(sig)})
        return b"".join(line + b"\n" for line in self.out)


def _hex(v: Any, n: int | None, where: str, line: int) -> bytes:
    if not isinstance(v, str) or not v.startswith("0x"):
        raise AuditError(line, f"{where} is not 0x hex")
    try:
        b = bytes.fromhex(v[2:])
    except ValueError:
        raise AuditError(line, f"{where} is not 0x hex") from None
    if n is not None and len(b) != n:
        raise AuditError(line, f"{where} is not {n} bytes")
    return b


def _int(v: Any, where: str, line: int) -> int:
    if type(v) is not int or v < 0:
        raise AuditError(line, f"{where} is not a non-negative integer")
    return v


def check_file(data: bytes, decode_record: Any = None) -> AuditFile:
    """Check the form, the hash chain, the per-line rules and the end line's signature of an
    audit file; AuditError names the first bad line. `decode_record(raw)` (optional: the node's
    record decoder) must accept every record's bytes. The signer is returned, not judged: the
    caller compares it with the operator of a source it trusts."""
    if not data:
        raise AuditError(0, "the file is empty")
    if not data.endswith(b"\n"):
        raise AuditError(data.count(b"\n") + 1, "the last line does not end with a newline")
    raw_lines = data[:-1].split(b"\n")
    prev = ZERO
    header: dict[str, Any] | None = None
    records: list[tuple[int, dict[str, Any]]] = []
    blocks: list[tuple[int, dict[str, Any]]] = []
    seq = expect_block = None
    open_records = 0  # records of the block being collected
    last_type = ""
    for i, line in enumerate(raw_lines, start=1):
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AuditError(i, f"not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise AuditError(i, "not a JSON object")
        try:
            canon = canonical(obj)
        except (TypeError, ValueError) as exc:
            raise AuditError(i, f"not canonical JSON: {exc}") from None
        if canon != line:
            raise AuditError(i, "not in canonical form (sorted keys, no spaces, ASCII)")
        if obj.get("prev") != prev:
            raise AuditError(i, f"prev {obj.get('prev')} is not the hash of line {i - 1} "
                                f"({prev}): line {i - 1} or this line was changed"
                             if i > 1 else "prev of the first line must be 32 zero bytes")
        prev = line_hash(line)
        kind = obj.get("kind")
        if i == 1:
            if kind != "header" or obj.get("format") != FORMAT:
                raise AuditError(i, f"the first line must be a {FORMAT} header")
            for k in ("chainId", "fromBlock", "toBlock", "firstSeq"):
                _int(obj.get(k), k, i)
            for k, n in (("rollup", 20), ("operator", 20), ("genesis", 32)):
                _hex(obj.get(k), n, k, i)
            if not 1 <= obj["fromBlock"] <= obj["toBlock"]:
                raise AuditError(i, "the block range must be 1 <= fromBlock <= toBlock")
            header, seq, expect_block = obj, obj["firstSeq"], obj["fromBlock"]
            continue
        assert header is not None
        if kind == "record":
            if expect_block is None or expect_block > header["toBlock"]:
                raise AuditError(i, "a record after the last block")
            if _int(obj.get("seq"), "seq", i) != seq:
                raise AuditError(i, f"record seq {obj.get('seq')}, expected {seq} (records are "
                                    "contiguous)")
            if obj.get("block") != expect_block:
                raise AuditError(i, f"record of block {obj.get('block')}, expected {expect_block}")
            raw = _hex(obj.get("raw"), None, "raw", i)
            try:
                rj = record_json(raw)
            except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types
                raise AuditError(i, f"raw is not a msgpack record: {exc}") from None
            if obj.get("record") != rj:
                raise AuditError(i, "record does not match raw")
            if decode_record is not None:
                try:
                    rec = decode_record(raw)
                except OptrollupError as exc:
                    raise AuditError(i, f"raw is not an input-log record: {exc.message}") from None
                name = record_type(rec)
                if obj.get("type") != name:
                    raise AuditError(i, f"type {obj.get('type')!r}, the record is a {name}")
                last_type = name
            else:
                last_type = obj.get("type", "")
            seq += 1
            open_records += 1
            records.append((i, obj))
        elif kind == "block":
            n = obj.get("number")
            if n != expect_block or n is None or n > header["toBlock"]:
                raise AuditError(i, f"block {n}, expected block {expect_block}")
            if not open_records or last_type != "Seal":
                raise AuditError(i, f"block {n} is not preceded by its records, ending with the "
                                    "Seal record that sealed it")
            txs = obj.get("txs")
            if not isinstance(txs, list) or not txs:
                raise AuditError(i, "txs must be a non-empty list")
            tx_bytes = [_hex(t, None, f"txs[{k}]", i) for k, t in enumerate(txs)]
            try:
                h = Header.from_json(obj.get("header"))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise AuditError(i, f"header does not parse: {exc!r}") from None
            if h.to_json() != obj["header"]:
                raise AuditError(i, "header fields or hash are inconsistent")
            if h.number != n:
                raise AuditError(i, f"header number {h.number} is not the line's {n}")
            if h.tx_root != tx_root(tx_bytes):
                raise AuditError(i, "txRoot is not the Merkle root of txs")
            blocks.append((i, obj))
            expect_block += 1
            open_records = 0
        elif kind == "end":
            if i != len(raw_lines):
                raise AuditError(i, "an end line before the last line")
            if expect_block != header["toBlock"] + 1 or open_records:
                raise AuditError(i, f"the file ends before block {expect_block} "
                                    f"(its range ends at {header['toBlock']})")
            if obj.get("lines") != i - 1:
                raise AuditError(i, f"lines {obj.get('lines')}, but {i - 1} lines precede it")
            signer = _hex(obj.get("signer"), 20, "signer", i)
            sig = _hex(obj.get("signature"), 65, "signature", i)
            got = recover_addresses([eip191_digest(end_message(header, i - 1, obj["prev"]))],
                                    [sig], threads=1)[0]
            if got is None or got != signer:
                raise AuditError(i, "the signature does not recover to signer")
            if hx(signer) != header["operator"]:
                raise AuditError(i, f"signed by {hx(signer)}, not the header's operator "
                                    f"{header['operator']}")
            return AuditFile(header, records, blocks, signer, i)
        else:
            raise AuditError(i, f"unknown line kind {kind!r}")
    raise AuditError(len(raw_lines), "the file has no end line (truncated?)")


def record_type(rec: Any) -> str:
    """The `type` of a record line: the signed message's class name for signed requests
    (Order, Cancel, ..., FreezeAccount), else the record's (Seal, Deposit, ...)."""
    msg = getattr(rec, "msg", None)
    return type(msg).__name__ if msg is not None else type(rec).__name__
