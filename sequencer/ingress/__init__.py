"""Ingress workers (issue 12): the signed write routes served by N gateway processes that do the
per-request work the core's loop need not do (HTTP, JSON, wire decoding, EIP-712 digests and
signature recovery) and feed the one single-threaded core, in order, over a Unix socket.

- `protocol`: the frames (length-prefixed msgpack) and the socket path, DATA_DIR/ingress.sock.
- `core`: the serve process's end: charges the per-IP budget and the per-account admit exactly
  as the HTTP front does, applies the pre-verified records with the node's own code, waits for
  durability and answers with the rendered body (the same dict the main port answers).
- `gateway`: `optrollup gateway`, one uvicorn (httptools/uvloop) process answering only the
  signed write routes; `serve --ingress-workers N --ingress-port P` starts N of them sharing the
  port (SO_REUSEPORT), each dying with the serve process.
"""
