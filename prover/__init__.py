"""optrollup prover (see design.md)."""
