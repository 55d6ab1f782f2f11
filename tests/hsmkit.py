"""SoftHSM2 for the tests: one private token directory per test process (SoftHSM reads
SOFTHSM2_CONF once, when the module is initialised), with keys generated in it once.

Tests that need it take the `softhsm` fixture (import it into the test module): it skips with the
reason when SoftHSM2 or python-pkcs11 is missing (scripts/bootstrap.sh installs both), except under
CI (CI=true), where a missing SoftHSM fails instead of hiding the tests behind a skip.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import pytest

TOKEN = "optrollup-test"
#: keys generated in the test token: a general signer, a batch poster, guardians, an oracle feed
LABELS = ("signer", "poster", "guardian0", "guardian1", "oracle", "sender")


def unavailable() -> str | None:
    """Why SoftHSM cannot be used here, or None."""
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        return "python-pkcs11 is not installed (scripts/bootstrap.sh installs it)"
    from sequencer.hsm import find_module
    from sequencer.keys import HsmModuleMissing

    try:
        find_module()
    except HsmModuleMissing:
        return "SoftHSM2 is not installed (Debian softhsm2; scripts/bootstrap.sh installs it)"
    return None


@functools.cache
def _softhsm():
    from sequencer.hsm import softhsm_dir

    root = tempfile.mkdtemp(prefix="optrollup-softhsm-")
    atexit.register(shutil.rmtree, root, True)
    return softhsm_dir(os.path.join(root, "hsm"), TOKEN, LABELS)


def need_softhsm() -> None:
    reason = unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the HSM tests")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def softhsm():
    """The test process's SoftHSM token (label TOKEN) with a key per label of LABELS; `.uri(label)`
    opens one (PIN from the directory's pin file)."""
    need_softhsm()
    return _softhsm()
