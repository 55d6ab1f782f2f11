"""Frames between the gateways and the core, over the Unix socket DATA_DIR/ingress.sock (0600).

Every frame is a 4-byte big-endian length and that many bytes of msgpack:

- core -> gateway, once on connect: `HELLO` = {"domain": <32-byte EIP-712 domain separator>,
  "maxBatch", "maxBodyBytes"} (what a gateway needs to decode and verify like the node);
- gateway -> core: `[req_id, path, client_ip, payload]`; `payload` is `[error, items]`:
  `error` = `[status, body, headers]` when the request failed before any record could be built
  (it is still charged to the IP and answered by the core, so the budget and the fail-safe
  apply to it exactly as on the main port), else `None` and `items` lists, in request order,
  the `encode_record` bytes of each verified record (a `Signed` or a `Replace`, its digest and
  recovered signer included) or, for a batch item that failed to decode, its rendered error;
- core -> gateway: `[req_id, status, body, headers]`, `body` the JSON answer as a dict
  (the gateway only json-encodes it), `headers` a list of [name, value] (Retry-After).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import msgpack

SOCKET_NAME = "ingress.sock"
MAX_FRAME = 64 << 20
_LEN = struct.Struct(">I")


def socket_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / SOCKET_NAME


def pack(obj: Any) -> bytes:
    raw = msgpack.packb(obj, use_bin_type=True)
    return _LEN.pack(len(raw)) + raw


class FrameReader:
    """Feed it bytes as they arrive; `feed` returns the complete frames, decoded."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buf = self.buf
        buf += data
        out, pos, n = [], 0, len(buf)
        while n - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME}")
            if n - pos - 4 < size:
                break
            out.append(msgpack.unpackb(buf[pos + 4:pos + 4 + size], raw=False))
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out
