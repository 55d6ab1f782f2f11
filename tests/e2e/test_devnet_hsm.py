"""`optrollup devnet --hsm`: the batch poster's and the oracle feeds' keys are generated in a
SoftHSM token under the data dir; the poster (a `post-batches` run per cron tick) and the feeder
sign through their pkcs11: URIs, and a restart resumes with the same token."""

from __future__ import annotations

import re
from pathlib import Path

from sequencer.l1 import Contract, L1Client
from tests.e2e.devnet_proc import Devnet
from tests.hsmkit import need_softhsm


def _hsm_keys(banner: str) -> tuple[str, list[str]]:
    m = re.search(r"keys\s+poster (0x[0-9a-fA-F]{40}) and oracle feeds ((?:0x[0-9a-fA-F]{40}(?:, )?)+) live in SoftHSM",
                  banner)
    assert m, banner
    return m.group(1), m.group(2).split(", ")


def test_devnet_hsm_poster_and_feeds_sign_in_softhsm(tmp_path: Path) -> None:
    need_softhsm()
    data = tmp_path / "devnet"
    args = ("--hsm", "--no-liquidator", "--channel-services", "0", "--post-seconds", "2")
    d = Devnet(data, *args, timeout=150)
    try:
        poster, oracles = _hsm_keys(d.banner)
        assert "pkcs11:token=optrollup-devnet;object=poster" in d.banner
        assert [k.lower() for k in d.info["oracleKeys"]] == [k.lower() for k in oracles]
        # the feeds signed in the token are accepted: instruments get marks
        d.wait("marks from the oracle feeds", lambda: any(
            i["mark"] is not None for i in d.http.get("/v1/instruments").json()["instruments"]))
        with L1Client(d.l1) as client:
            rollup = Contract.at(client, "Rollup", d.rollup)
            assert rollup.call("poster") == poster
            d.wait("a batch posted by the HSM poster", lambda: rollup.call("batchCount") > 0, timeout=90)
            assert client.get_transaction_count(poster, "latest") >= rollup.call("batchCount")
        assert "feed rejected" not in d.output()
        assert not (data / "poster-keystore.json").exists()  # no poster key outside the token
        assert (data / "hsm" / "softhsm2.conf").exists() and (data / "hsm" / "pin").stat().st_mode & 0o077 == 0
    finally:
        assert d.stop() == 0
    # resumed without the flag: still the token's keys
    d = Devnet(data, "--no-liquidator", "--channel-services", "0", "--post-seconds", "2", timeout=150)
    try:
        assert _hsm_keys(d.banner) == (poster, oracles) and "resumed" in d.banner
        with L1Client(d.l1) as client:
            rollup = Contract.at(client, "Rollup", d.rollup)
            n = rollup.call("batchCount")
            d.wait("another batch after the restart", lambda: rollup.call("batchCount") > n, timeout=90)
    finally:
        assert d.stop() == 0


def test_a_devnet_keeps_the_kind_it_was_made_with(tmp_path: Path) -> None:
    import pytest

    from sequencer.devnet import DevnetFiles, devnet_hsm
    from sequencer.errors import InvalidRequest

    files = DevnetFiles(tmp_path)
    files.keys.write_text('{"oracles": ["0x01"]}')  # made without --hsm
    assert devnet_hsm(files, False, fresh=False) is None
    with pytest.raises(InvalidRequest) as info:
        devnet_hsm(files, True, fresh=False)
    assert info.value.code == "devnet_not_hsm"
    assert devnet_hsm(files, False, fresh=True) is None  # a new devnet without --hsm: dev keys
