"""optrollup's L2 node: trading core, persistence, blocks, HTTP API, client and CLI."""
