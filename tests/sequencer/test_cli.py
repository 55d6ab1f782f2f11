"""`optrollup`'s wiring: which plugin adds which command."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import entry_points

from sequencer.cli import OWNERS, PLUGIN_GROUP, build_parser


def test_owners_table_is_what_the_plugins_register() -> None:
    registered = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        sub = argparse.ArgumentParser().add_subparsers()
        ep.load()(sub)
        registered.update(dict.fromkeys(sub.choices, ep.name))
    assert registered == OWNERS


def test_a_command_loads_its_plugin_alone_and_parses_as_with_all() -> None:
    argv = ["post-batches", "--sequencer", "http://x", "--l1-rpc", "http://y", "--rollup",
            "0x" + "11" * 20, "--keystore", "k.json", "--once"]
    one, every = build_parser("post-batches"), build_parser()
    assert one.parse_args(argv) == every.parse_args(argv)
    assert set(one._subparsers._group_actions[0].choices) == {  # noqa: SLF001
        "info", "escape", "post-batches", "verify", "withdraw"}
    assert "serve" in every._subparsers._group_actions[0].choices  # noqa: SLF001


def test_post_batches_does_not_import_the_node_server() -> None:
    """The poster runs from cron: its start-up must not pay for FastAPI, uvicorn or the app."""
    code = ("import sys; from sequencer.cli import main\n"
            "try: main(['post-batches', '--help'])\n"
            "except SystemExit: pass\n"
            "bad = [m for m in ('fastapi', 'uvicorn', 'sequencer.api.app', 'sequencer.serve') if m in sys.modules]\n"
            "print('BAD:' + ','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "BAD:", out.stdout
