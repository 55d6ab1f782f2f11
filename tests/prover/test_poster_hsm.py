"""The batch poster with its key in SoftHSM: `optrollup post-batches --keystore pkcs11:...` posts
batches the Rollup on anvil accepts (only its poster may submit), each transaction signed in the
token."""

from __future__ import annotations

from pathlib import Path

from prover.verifier import verify
from sequencer.cli import main as optrollup
from sequencer.keys import load_key
from sequencer.l1 import L1Client
from tests.hsmkit import softhsm  # noqa: F401 - the session fixture
from tests.prover.conftest import new_world, rolled_back
from tests.prover.l2chain import serve_blocks
from tests.sequencer.core.core_world import USERS


def test_cli_post_batches_with_the_poster_key_in_softhsm(client: L1Client, accounts, softhsm,  # noqa: F811
                                                         tmp_path: Path, capsys) -> None:
    with load_key(softhsm.uri("poster")) as key:
        poster = key.address
    with rolled_back(client):
        world = new_world(client, accounts, poster=poster)
        d, ch = world.system.deployment, world.chain
        assert world.system.rollup.call("poster") == poster
        for i in range(5):
            ch.deposit(USERS[i], 1_000 * 10**6)
            ch.seal()
        uri = softhsm.uri("poster")
        argv = ["--l1-rpc", client.url, "--rollup", d.rollup, "--keystore", uri, "--once",
                "--max-blocks", "2", "--lock-dir", str(tmp_path)]
        info = {"chainId": d.l1_chain_id, "rollup": d.rollup, "bridge": d.bridge, "collateralToken": d.collateral_token}
        with serve_blocks(ch, info) as url:
            assert optrollup(["post-batches", "--sequencer", url, *argv]) == 2  # no gas yet
            assert "error [l1_insufficient_funds]" in capsys.readouterr().err
            client.set_balance(poster, 10**19)
            assert optrollup(["post-batches", "--sequencer", url, *argv]) == 0
        assert capsys.readouterr().out.startswith("posted 3 batches")
        batches = world.system.rollup.call("batchCount")
        assert batches == 3 and client.get_transaction_count(poster, "latest") == batches
        assert verify(client, d.rollup).head == ch.header(ch.head())
