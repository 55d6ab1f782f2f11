"""Tests of the light SDK, optrollup_client (client/ in this repository)."""
