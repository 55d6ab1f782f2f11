"""sequencer's subcommands of `optrollup` (each defined next to what it runs)."""

from __future__ import annotations

import argparse

from sequencer import devnet, hsm, serve
from sequencer.audit import cli as audit_cli
from sequencer.client import cli as client_cli
from sequencer.client import liquidator, mmpcli
from sequencer.ingress import gateway
from sequencer.l1 import guardiancli


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Add the node's subcommands to the `optrollup` parser."""
    serve.register(sub)
    client_cli.register(sub)  # keys new|show, order place|cancel|list
    hsm.register(sub)  # keys hsm-init|hsm-new|hsm-list: keys in a PKCS#11 token (docs/keys.md)
    mmpcli.register(sub)  # mmp set|reset|show
    liquidator.register(sub)  # liquidator: the reference liquidation bidder
    devnet.register(sub)
    gateway.register(sub)  # optrollup gateway: an ingress worker (sequencer/ingress)
    audit_cli.register(sub)  # audit export|verify (docs/compliance.md)
    guardiancli.register(sub)  # guardians propose|sign|submit|execute (docs/keys.md)
