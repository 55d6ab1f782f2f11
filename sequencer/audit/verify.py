"""`optrollup audit verify`: check an audit file (sequencer.core.audit) against a chain.

1. The file itself: canonical lines, the hash chain, the per-line rules and the end line's
   EIP-191 signature (`check_file`).
2. The source it is checked against, which the verifier trusts instead of the file: the chain
   id, Rollup, genesis and operator (the signer must be the genesis operator).
3. The blocks: replayed with sequencer.core.chain.replay_block from the state after block
   fromBlock-1 (itself replayed from genesis over the source's blocks) and compared with the
   source's block of that number.
4. With a data dir (which has the input log): every record line is the log's record of that
   seq, and the records, re-executed through the node's replay path from the node state just
   before the first of them, seal exactly the file's blocks.

The first failure is reported as an AuditError naming its 1-based line.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sequencer.audit.sources import DataDirSource, Replayer, replay_blocks
from sequencer.core.audit import AuditError, AuditFile, check_file, hx
from sequencer.core.chain import BadBlock, replay_block
from sequencer.core.header import Header
from sequencer.errors import OptrollupError
from sequencer.node.records import decode_record


class Report(NamedTuple):
    lines: int
    first: int
    last: int
    records: int
    reexecuted: bool


def verify(data: bytes, source: Any) -> Report:
    """Verify the audit file `data` against `source` (a DataDirSource or an HttpSource);
    AuditError at the first bad line."""
    af = check_file(data, decode_record)
    h, g = af.header, source.genesis
    c = g.config
    if h["chainId"] != c.chain_id or h["rollup"] != hx(c.verifying_contract):
        raise AuditError(1, f"the file is of chain {h['chainId']} / Rollup {h['rollup']}, the "
                            f"source's is {c.chain_id} / {hx(c.verifying_contract)}")
    b0 = source.block(0)
    if b0 is None or h["genesis"] != hx(b0.header.hash()):
        raise AuditError(1, "the file's genesis is not the source's block 0")
    if af.signer != c.operator:
        raise AuditError(af.lines, f"signed by {hx(af.signer)}, not the chain's operator "
                                   f"{hx(c.operator)}")
    _check_blocks(af, source)
    reexec = isinstance(source, DataDirSource)
    if reexec:
        _reexecute(af, source)
    return Report(af.lines, h["fromBlock"], h["toBlock"], len(af.records), reexec)


def _check_blocks(af: AuditFile, source: Any) -> None:
    first = af.header["fromBlock"]
    try:
        state, tree, head = replay_blocks(source.genesis, source.block, first - 1)
    except OptrollupError as exc:
        raise AuditError(1, f"cannot rebuild the state before block {first} from the source: "
                            f"{exc.message}") from None
    for line, obj in af.blocks:
        hdr = Header.from_json(obj["header"])
        txs = tuple(bytes.fromhex(t[2:]) for t in obj["txs"])
        try:
            got = replay_block(state, tree, head, hdr.timestamp, txs)
        except BadBlock as exc:
            raise AuditError(line, f"block {hdr.number} does not replay: {exc.message}") from None
        if got != hdr:
            raise AuditError(line, f"block {hdr.number} replays to another header (stateRoot "
                                   f"{hx(got.state_root)}, the file says {hx(hdr.state_root)})")
        stored = source.block(hdr.number)
        if stored is None or stored.header != hdr or tuple(stored.txs) != txs:
            raise AuditError(line, f"block {hdr.number} is not the chain's block {hdr.number}")
        head = got


def _reexecute(af: AuditFile, source: DataDirSource) -> None:
    rep = Replayer(source.genesis)
    first_seq = af.header["firstSeq"]
    for seq, raw in source.records():
        if seq >= first_seq:
            break
        rep.apply_record(decode_record(raw))
    log = source.records(first_seq)
    blocks = iter(af.blocks)
    for line, obj in af.records:
        raw = bytes.fromhex(obj["raw"][2:])
        logged = next(log, None)
        if logged is None or logged != (obj["seq"], raw):
            raise AuditError(line, f"record {obj['seq']} is not the input log's record "
                                   f"{obj['seq']}")
        try:
            sealed = rep.apply_record(decode_record(raw))
        except OptrollupError as exc:
            raise AuditError(line, f"record {obj['seq']} does not re-execute: [{exc.code}] "
                                   f"{exc.message}") from None
        if sealed is None:
            continue
        bline, bobj = next(blocks, (line, None))
        if bobj is None or sealed.header.to_json() != bobj["header"] \
                or [hx(t) for t in sealed.txs] != bobj["txs"]:
            raise AuditError(bline, f"the records re-execute to a block {sealed.header.number} "
                                    "other than this one")
    left = next(blocks, None)
    if left is not None:
        raise AuditError(left[0], "the records before this block do not seal it")
