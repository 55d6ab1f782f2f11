"""Escape hatch end to end on anvil: the proof comes from L1 data alone and the Bridge pays it once."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from cext import merkle_verify, to_checksum
from prover.escape import escape_claim, send_escape
from sequencer.core.chain import mark_table
from sequencer.core.state import account_leaf
from sequencer.l1 import ContractRevert, TxManager
from tests.contracts.l1_testkit import CHALLENGE_WINDOW, ESCAPE_DELAY
from tests.prover.conftest import World
from tests.prover.test_verifier import run_cli, submit


def test_escape_pays_the_leaf_collateral_once(world: World, tmp_path, monkeypatch, capsys) -> None:
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
    _, _, final_root, marks_root = sys_.rollup.call("lastFinalState")
    assert claim.state_root == bytes(final_root) == ch.header(mid).state_root
    assert claim.marks_root == bytes(marks_root) == ch.marks_root(mid)
    assert len(claim.proof) == 32

    sys_.advance(CHALLENGE_WINDOW + ESCAPE_DELAY + 2)   # batch 1 final too, then nothing for the delay
    claim = escape_claim(world.client, sys_.deployment.rollup, rich)
    assert claim.final_batches == 2
    # independent of the replay: the L2 chain's own state at its head
    assert claim.collateral == state.accounts[rich].collateral > 0
    leaf = account_leaf(rich, state.accounts[rich])
    assert merkle_verify(claim.state_root, leaf, claim.index, claim.proof)
    # positions valued at the final marks, as the L2's equity rounds them (against the holder)
    acct = state.accounts[rich]
    assert [(p.instrument, p.amount) for p in claim.positions] == sorted((n, q) for n, q in acct.positions.items() if q)
    marks = {n: (lo, hi) for n, lo, hi in mark_table(state, ch.header(head).timestamp)}
    expect = acct.collateral + sum((q * marks[n][0] if q > 0 else q * marks[n][1]) // 10**6
                                   for n, q in acct.positions.items() if q)
    assert claim.value() == max(0, expect)

    # the CLI replays the same claim from L1 alone and sends it from a keystore (anyone may)
    payer = sys_.users[0]
    ks = tmp_path / "payer.json"
    ks.write_text(json.dumps(Account.encrypt(payer.key, "pw", kdf="pbkdf2", iterations=2)))
    monkeypatch.setenv("PAYER_PW", "pw")
    before = sys_.token.call("balanceOf", to_checksum(rich))
    assert run_cli("escape", "--l1-rpc", world.client.url, "--rollup", sys_.deployment.rollup,
                   "--account", to_checksum(rich), "--keystore", str(ks), "--password-env", "PAYER_PW") == 0
    out = capsys.readouterr().out
    assert f'"value": "{claim.value()}"' in out and '"escape"' in out and "escape paid in L1 tx" in out
    assert sys_.token.call("balanceOf", to_checksum(rich)) == before + claim.value()
    with pytest.raises(ContractRevert) as info:
        send_escape(sys_.bridge, claim, TxManager(world.client, payer))
    assert info.value.error == "AlreadyEscaped"
    assert sys_.token.call("balanceOf", to_checksum(rich)) == before + claim.value()


def test_escape_takes_no_raw_key(capsys) -> None:
    with pytest.raises(SystemExit):
        run_cli("escape", "--l1-rpc", "http://127.0.0.1:1", "--rollup", "0x" + "11" * 20,
                "--account", "0x" + "22" * 20, "--key", "0x" + "33" * 32)
    assert "raw private keys on a command line are for the devnet only" in capsys.readouterr().err
