"""`optrollup audit export`: the input-log records and the blocks of a block range as a
hash-chained, operator-signed JSON-lines file (format: sequencer.core.audit).

Why both: the input log is the complete audit trail (every accepted order, cancel, amend,
session key, MMP action, operator cancel, L1 message, in the order the node processed them,
including orders that never traded: the evidence for spoofing or wash-trading reviews), while
the blocks are what L1 commits to. Putting each block right after the records that produced it
lets a verifier re-execute the records and get exactly the committed blocks, and check the
blocks against the chain without trusting the node.

The records are mapped to blocks by replaying the node's log from genesis through the node's
own DB-free replay path (sequencer.node.node.CoreApplier), each re-sealed block checked against
the stored one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cext import parse_address
from sequencer.audit.sources import DataDirSource, Replayer
from sequencer.core.audit import FORMAT, Writer, hx, record_json, record_type
from sequencer.errors import InvalidRequest, NotFound, OptrollupError
from sequencer.node.records import decode_record


def export(source: DataDirSource, first: int, last: int, signer: bytes,
           sign: Callable[[bytes], bytes]) -> bytes:
    """The audit file of blocks first..last of the data dir `source`; `sign(message)` signs the
    end line's text with EIP-191 personal_sign by `signer` (the operator key: refused if it is
    not the genesis operator)."""
    g = source.genesis
    if signer != g.config.operator:
        raise InvalidRequest(f"{hx(signer)} is not this chain's operator "
                             f"{hx(g.config.operator)}: only the operator key signs exports",
                             code="operator_required")
    head = source.head()
    if not 1 <= first <= last:
        raise InvalidRequest(f"block range {first}..{last}: need 1 <= from <= to",
                             code="bad_range")
    if last > head:
        raise NotFound(f"block {last} is not sealed (the data dir's head is {head})",
                       code="block_not_found")
    rep = Replayer(g)
    b0 = source.block(0)
    if b0 is None or b0.header != rep.core.head:
        raise InvalidRequest("the data dir's block 0 is not its config's genesis",
                             code="bad_source")
    segment: list[tuple[int, bytes, Any]] = []
    out: list[tuple[int, list[tuple[int, bytes, Any]], Any]] = []  # (number, records, block)
    first_seq = 0
    for seq, raw in source.records():
        rec = decode_record(raw)
        try:
            block = rep.apply_record(rec)
        except OptrollupError as exc:
            raise OptrollupError(f"input-log record {seq} does not replay: [{exc.code}] "
                                 f"{exc.message}", code="bad_log") from None
        segment.append((seq, raw, rec))
        if block is None:
            continue
        n = block.header.number
        stored = source.block(n)
        if stored is None or stored != block:
            raise OptrollupError(f"the log re-seals block {n} differently from the stored one",
                                 code="bad_log")
        if n == first - 1:
            first_seq = seq + 1
        if first <= n <= last:
            out.append((n, segment, block))
        segment = []
        if n == last:
            break
    else:
        raise OptrollupError(f"the input log ends before block {last} is sealed", code="bad_log")
    w = Writer()
    w.add({"kind": "header", "format": FORMAT, "chainId": g.config.chain_id,
           "rollup": hx(g.config.verifying_contract), "operator": hx(g.config.operator),
           "genesis": hx(b0.header.hash()), "fromBlock": first, "toBlock": last,
           "firstSeq": first_seq})
    for n, records, block in out:
        for seq, raw, rec in records:
            w.add({"kind": "record", "seq": seq, "block": n, "type": record_type(rec),
                   "raw": hx(raw), "record": record_json(raw)})
        w.add({"kind": "block", "number": n, "header": block.header.to_json(),
               "txs": [hx(t) for t in block.txs]})
    return w.finish(signer, sign)


def keystore_signer(key: Any) -> tuple[bytes, Callable[[bytes], bytes]]:
    """(address, sign) of an eth-account LocalAccount: EIP-191 personal_sign of a message."""
    from eth_account.messages import encode_defunct

    def sign(message: bytes) -> bytes:
        return bytes(key.sign_message(encode_defunct(primitive=message)).signature)

    return parse_address(key.address), sign


__all__ = ["export", "keystore_signer"]
