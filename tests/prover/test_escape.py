"""Escape hatch end to end on anvil: the proof comes from L1 data alone and the Bridge pays it once."""

from __future__ import annotations

import pytest

from cext import merkle_verify, to_checksum
from prover.escape import escape_claim
from sequencer.core.state import account_leaf
from sequencer.l1 import ContractRevert
from tests.contracts.l1_testkit import CHALLENGE_WINDOW, ESCAPE_DELAY
from tests.prover.conftest import World
from tests.prover.test_verifier import run_cli, submit


def test_escape_pays_the_leaf_collateral_once(world: World, capsys) -> None:
    ch, sys_ = world.chain, world.system
    head = ch.head()
    mid = head // 2
    submit(world, 1, mid)
    sys_.advance(CHALLENGE_WINDOW + 1)            # batch 0 final
    submit(world, mid + 1, head)                   # batch 1 not final yet
    state = ch.engine.state
    rich = max((a for a in state.accounts if a != state.config.fee_account),
               key=lambda a: state.accounts[a].collateral)
    claim = escape_claim(world.client, sys_.deployment.rollup, rich)
    assert claim.final_batches == 1
    _, _, final_root = sys_.rollup.call("lastFinalState")
    assert claim.state_root == bytes(final_root) == ch.header(mid).state_root
    assert len(claim.proof) == 32

    sys_.advance(CHALLENGE_WINDOW + ESCAPE_DELAY + 2)   # batch 1 final too, then nothing for the delay
    claim = escape_claim(world.client, sys_.deployment.rollup, rich)
    assert claim.final_batches == 2
    # independent of the replay: the L2 chain's own state at its head
    assert claim.collateral == state.accounts[rich].collateral > 0
    leaf = account_leaf(rich, state.accounts[rich])
    assert merkle_verify(claim.state_root, leaf, claim.index, claim.proof)

    before = sys_.token.call("balanceOf", to_checksum(rich))
    payer = sys_.users[0]
    sys_.bridge.transact("escape", *claim.args(), sender=payer)   # anyone may send it
    assert sys_.token.call("balanceOf", to_checksum(rich)) == before + claim.collateral
    with pytest.raises(ContractRevert) as info:
        sys_.bridge.transact("escape", *claim.args(), sender=payer)
    assert info.value.error == "AlreadyEscaped"

    # the CLI prints the same claim (and would send it with --key)
    assert run_cli("escape", "--l1-rpc", world.client.url, "--rollup", sys_.deployment.rollup,
                   "--account", to_checksum(rich)) == 0
    out = capsys.readouterr().out
    assert f'"collateral": "{claim.collateral}"' in out and '"escape"' in out
