"""Ctrl-C stops our commands even when they inherit SIGINT ignored (a backgrounded CI shell)."""

from __future__ import annotations

import signal
import subprocess
import sys


def test_an_inherited_ignored_sigint_is_restored() -> None:
    code = ("import signal; from sequencer.cli import honour_ctrl_c; "
            "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN; honour_ctrl_c(); "
            "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert run.returncode == 0, run.stderr
