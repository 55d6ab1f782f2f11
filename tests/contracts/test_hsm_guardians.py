"""Guardians whose keys live in SoftHSM, on a real anvil: the Rollup accepts their signatures and
transactions signed in the token, and `optrollup guardians propose | sign | submit | execute`
gathers 3 of 5 signatures from keystores and HSM keys alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from sequencer.cli import main
from sequencer.keys import load_key
from sequencer.l1 import (
    ContractRevert,
    L1Client,
    TxConfig,
    TxManager,
    send_pause,
    send_unpause,
)
from sequencer.l1.guardiancli import (
    GuardianActionError,
    check_proposal,
    propose,
    sign_proposal,
    submit_args,
)
from tests.contracts.l1_testkit import (
    ROTATION_DELAY,
    THRESHOLD,
    System,
    deploy_system,
    make_batch,
)
from tests.hsmkit import softhsm  # noqa: F401 - the session fixture


@pytest.fixture
def hsm_keys(softhsm):  # noqa: F811
    """The two guardians and the transaction sender whose keys are in the token."""
    ks = {label: load_key(softhsm.uri(label)) for label in ("guardian0", "guardian1", "sender")}
    yield ks
    for k in ks.values():
        k.close()


@pytest.fixture
def mixed(chain: L1Client, accounts, hsm_keys) -> tuple[System, list]:
    """A Rollup with 5 guardians, threshold 3: two in SoftHSM, three anvil keys; the HSM sender
    funded for gas."""
    local = accounts[2:5]
    guardians = [hsm_keys["guardian0"], hsm_keys["guardian1"], *local]
    s = deploy_system(chain, accounts, guardians=[g.address for g in guardians])
    chain.set_balance(hsm_keys["sender"].address, 10 * 10**18)
    return s, guardians


def test_pause_signed_in_softhsm_is_accepted_and_sent_from_the_token(mixed, hsm_keys) -> None:
    s, guardians = mixed
    assert s.rollup.call("guardianThreshold") == THRESHOLD
    hsm0, hsm1, local = guardians[0], guardians[1], guardians[2]
    with pytest.raises(ContractRevert) as e:  # two HSM guardians are not a quorum
        send_pause(s.rollup, [hsm0, hsm1], sender=s.outsider)
    assert e.value.error == "InsufficientSignatures"
    # 2 HSM + 1 keystore guardian; the transaction itself signed in the token (EIP-1559)
    txm = TxManager(s.client, hsm_keys["sender"], TxConfig(poll=0.02, label="guardian relay"))
    r = send_pause(s.rollup, [hsm0, hsm1, local], sender=txm)
    assert s.rollup.call("paused") is True
    tx = s.client.get_transaction(r.tx_hash)
    assert tx["from"].lower() == hsm_keys["sender"].address.lower() and int(tx["type"], 16) == 2
    send_unpause(s.rollup, [hsm1, local, guardians[3]], sender=txm)
    assert s.rollup.call("paused") is False


def _keystore(tmp_path: Path, acct, name: str) -> str:
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(Account.encrypt(acct.key, "pw", kdf="pbkdf2", iterations=2)))
    return str(p)


def test_propose_sign_submit_3_of_5_mixed(mixed, hsm_keys, softhsm, accounts, tmp_path: Path,  # noqa: F811
                                         capsys) -> None:
    s, guardians = mixed
    url, rollup = s.client.url, s.rollup.address
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    g2, g3 = _keystore(tmp_path, guardians[2], "g2"), _keystore(tmp_path, guardians[3], "g3")
    outsider = _keystore(tmp_path, accounts[9], "outsider")
    f = tmp_path / "pause.json"

    def cli(*argv: str) -> tuple[int, str, str]:
        rc = main(list(argv))
        out = capsys.readouterr()
        return rc, out.out, out.err

    rc, out, _ = cli("guardians", "propose", "--action", "pause", "--l1-rpc", url, "--rollup", rollup, "--out", str(f))
    assert rc == 0 and "PAUSE the Rollup" in out and "0 of 3 signatures" in out
    assert cli("guardians", "propose", "--action", "pause", "--l1-rpc", url, "--rollup", rollup,
               "--out", str(f))[0] == 2  # not overwritten
    assert cli("guardians", "sign", str(f), "--keystore", g2, "--password-file", str(pw))[0] == 0
    rc, _, err = cli("guardians", "submit", str(f), "--l1-rpc", url, "--keystore", softhsm.uri("sender"))
    assert rc == 2 and "error [threshold_not_met]" in err and "1 of the 3" in err
    rc, out, err = cli("guardians", "sign", str(f), "--keystore", softhsm.uri("guardian0"))
    assert rc == 0 and "2 of 3 signatures" in out and "PAUSE the Rollup" in err
    assert "error [already_signed]" in cli("guardians", "sign", str(f), "--keystore", softhsm.uri("guardian0"))[2]
    assert "error [not_guardian]" in cli("guardians", "sign", str(f), "--keystore", outsider,
                                         "--password-file", str(pw))[2]
    assert cli("guardians", "sign", str(f), "--keystore", g3, "--password-file", str(pw))[0] == 0
    p = json.loads(f.read_text())
    assert [e["signer"] for e in p["signatures"]] == [guardians[2].address, guardians[0].address,
                                                      guardians[3].address]
    # an altered file is refused by every command
    bad = tmp_path / "altered.json"
    bad.write_text(json.dumps({**p, "message": {"deadline": str(int(p["message"]["deadline"]) + 1)}}))
    assert "error [bad_proposal]" in cli("guardians", "submit", str(bad), "--l1-rpc", url,
                                         "--keystore", softhsm.uri("sender"))[2]
    forged = tmp_path / "forged.json"
    sigs = [dict(p["signatures"][0], signer=guardians[1].address), *p["signatures"][1:]]
    forged.write_text(json.dumps({**p, "signatures": sigs}))
    assert "error [bad_signature]" in cli("guardians", "sign", str(forged), "--keystore", g3,
                                          "--password-file", str(pw))[2]
    # anyone submits: here the HSM sender
    rc, out, _ = cli("guardians", "submit", str(f), "--l1-rpc", url, "--keystore", softhsm.uri("sender"))
    assert rc == 0 and "Rollup.pause in L1 tx" in out
    assert s.rollup.call("paused") is True
    tx_hash = out.split("L1 tx ")[1].split()[0]
    assert s.client.get_transaction(tx_hash)["from"].lower() == hsm_keys["sender"].address.lower()
    rc, _, err = cli("guardians", "submit", str(f), "--l1-rpc", url, "--keystore", softhsm.uri("sender"))
    assert rc == 2 and "error [l1_revert]" in err  # works once
    old = tmp_path / "old.json"
    assert cli("guardians", "propose", "--action", "unpause", "--l1-rpc", url, "--rollup", rollup,
               "--deadline", "1", "--out", str(old))[0] == 0
    assert "error [proposal_expired]" in cli("guardians", "sign", str(old), "--keystore", g2,
                                             "--password-file", str(pw))[2]


def test_reject_and_rotation_with_hsm_guardians(mixed, hsm_keys, softhsm, accounts, tmp_path: Path,  # noqa: F811
                                                capsys) -> None:
    s, guardians = mixed
    b0 = make_batch(s.genesis, [[], []], data=b"batch 0")
    s.rollup.transact("submitBatch", *b0.submit_args(), sender=s.poster)
    b1 = make_batch(b0.headers[-1], [[]], data=b"batch 1")
    s.rollup.transact("submitBatch", *b1.submit_args(), sender=s.poster)
    assert s.rollup.call("batchCount") == 2
    # reject batch 1 through the library functions the CLI is made of
    p = propose(s.rollup, "reject", batch=1)
    assert p["message"]["lastHeaderHash"] == "0x" + b1.headers[-1].hash().hex()
    for k in (guardians[4], guardians[1], guardians[0]):
        p = sign_proposal(p, k)
    with pytest.raises(GuardianActionError) as e:
        submit_args(p, [g.address for g in guardians], 4)
    assert e.value.code == "threshold_not_met"
    fn, args = submit_args(p, s.rollup.call("guardians"), THRESHOLD)
    assert fn == "reject" and [Account._recover_hash(bytes.fromhex(p["digest"][2:]), signature=x)
                               for x in args[-1]] == sorted([guardians[i].address for i in (0, 1, 4)],
                                                            key=lambda a: int(a, 16))
    s.rollup.transact(fn, *args, sender=s.outsider)
    assert s.rollup.call("batchCount") == 1
    # rotation: approve (3 of 5, two in the token), then execute after the delay
    new_guardians = [hsm_keys["guardian0"].address, accounts[5].address, accounts[6].address]
    f = tmp_path / "rotate.json"
    assert main(["guardians", "propose", "--action", "rotate", "--l1-rpc", s.client.url, "--rollup",
                 s.rollup.address, "--poster", accounts[8].address, "--guardians", ",".join(new_guardians),
                 "--threshold", "2", "--out", str(f)]) == 0
    assert "ROTATE to poster" in capsys.readouterr().out
    for label in ("guardian0", "guardian1"):
        assert main(["guardians", "sign", str(f), "--keystore", softhsm.uri(label)]) == 0
    f.write_text(json.dumps(sign_proposal(json.loads(f.read_text()), guardians[2]), indent=2))
    assert check_proposal(json.loads(f.read_text()))[0] == "Rotate"
    assert main(["guardians", "submit", str(f), "--l1-rpc", s.client.url, "--keystore", softhsm.uri("sender")]) == 0
    assert s.rollup.call("rotationEta") > 0
    capsys.readouterr()
    assert main(["guardians", "execute", str(f), "--l1-rpc", s.client.url, "--keystore", softhsm.uri("sender")]) == 2
    assert "RotationNotDue" in capsys.readouterr().err
    s.advance(ROTATION_DELAY + 1)
    assert main(["guardians", "execute", str(f), "--l1-rpc", s.client.url, "--keystore", softhsm.uri("sender")]) == 0
    assert s.rollup.call("guardians") == new_guardians and s.rollup.call("poster") == accounts[8].address
