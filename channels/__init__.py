"""optrollup channels (see design.md)."""
