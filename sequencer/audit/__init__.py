"""Compliance tooling that reads a chain's blocks and a node's input log, off the node's hot
path (docs/compliance.md): `optrollup audit export|verify` (sequencer.audit.export,
sequencer.audit.verify; the file format is sequencer.core.audit) and per-account statements
(sequencer.audit.sources.build_statement, served at GET /v1/accounts/{a}/statement)."""
