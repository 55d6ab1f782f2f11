"""The one keystore rule (sequencer.keys): key references, where the password comes from, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from sequencer import keys
from optrollup_client._errors import ClientError
from optrollup_client._signing import Signer

SECRET = b"\x07" * 32
ADDRESS = Account.from_key(SECRET).address


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    p = tmp_path / "k.json"
    p.write_text(json.dumps(Account.encrypt(SECRET, "pw", kdf="pbkdf2", iterations=2)))
    return p


def test_key_references(tmp_path: Path) -> None:
    assert keys.parse_key_ref("/etc/k.json") == keys.KeyRef("keystore", path=Path("/etc/k.json"))
    uri = "pkcs11:token=optrollup;object=poster?module-path=/usr/lib/softhsm/libsofthsm2.so"
    ref = keys.parse_key_ref(uri)
    assert ref.kind == "pkcs11" and str(ref) == uri
    # a PKCS#11 URI goes to the token (tests/sequencer/test_hsm.py); here: its module is not there
    with pytest.raises(keys.KeyLoadError) as info:
        keys.load_key(f"pkcs11:token=optrollup;object=poster?module-path={tmp_path}/none.so", password="x")
    assert info.value.code in ("hsm_module_missing", "pkcs11_unavailable")


def test_every_key_signs_digests_low_s(keystore: Path) -> None:
    key = keys.load_key(keystore, password="pw")
    assert isinstance(key, keys.LocalKey) and key == Account.from_key(SECRET)
    for i in range(64):
        d = bytes([i]) * 32
        sig = key.sign_digest(d)
        assert sig == keys.sign_digest(SECRET, d) == keys.sign_digest(Account.from_key(SECRET), d)
        assert sig[64] in (27, 28) and int.from_bytes(sig[32:64], "big") <= keys.SECP256K1_N // 2
        assert Account._recover_hash(d, signature=sig) == ADDRESS
    r, s = 5, keys.SECP256K1_N - 7  # a high s is flipped, and v with it
    assert keys.low_s_signature(r, s, 27) == (5).to_bytes(32, "big") + (7).to_bytes(32, "big") + bytes([28])
    with pytest.raises(ValueError):
        keys.low_s_signature(0, 1, 27)


def test_password_sources_in_order(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("from-file\r\nignored\n")
    env = {"OPTROLLUP_PASSWORD": "default-env", "MINE": "named-env"}
    assert keys.read_password(f, "MINE", environ=env) == "from-file"        # 1. the file's first line
    assert keys.read_password(None, "MINE", environ=env) == "named-env"     # 2. the named variable
    assert keys.read_password(environ=env) == "default-env"                 # 3. OPTROLLUP_PASSWORD
    for kwargs in ({"environ": {}},                                          # nothing, no prompt
                   {"password_env": "UNSET", "environ": env},                # a named variable unset
                   {"password_file": tmp_path / "missing", "environ": env},
                   {"password_file": _write(tmp_path / "empty", "\n"), "environ": env}):
        with pytest.raises(keys.PasswordMissing) as info:
            keys.read_password(**kwargs)
        assert info.value.code == "password_missing"


def test_prompt_is_the_last_resort(monkeypatch) -> None:
    answers = iter(["typed", "typed", "a", "b"])
    monkeypatch.setattr(keys.getpass, "getpass", lambda prompt="": next(answers))
    assert keys.read_password(environ={}, prompt="pw: ", confirm=True) == "typed"
    with pytest.raises(keys.OptrollupError) as info:
        keys.read_password(environ={}, prompt="pw: ", confirm=True)
    assert info.value.code == "password_mismatch"


def test_load_key_and_its_errors(keystore: Path, tmp_path: Path) -> None:
    assert keys.load_key(keystore, password_file=_write(tmp_path / "pw", "pw\n")).address == ADDRESS
    assert keys.load_key(str(keystore), environ={"OPTROLLUP_PASSWORD": "pw"}).address == ADDRESS
    with pytest.raises(keys.BadPassword) as info:
        keys.load_key(keystore, password="nope")
    assert info.value.code == "bad_password"
    for bad in (tmp_path / "missing.json", _write(tmp_path / "x.json", "not json"), _write(tmp_path / "y.json", "{}")):
        with pytest.raises(keys.InvalidKeystore) as info:
            keys.load_key(bad, password="pw")   # the file is checked before any password is needed
        assert info.value.code == "invalid_keystore"


def test_the_sdk_signer_uses_the_same_rule(keystore: Path, monkeypatch) -> None:
    assert Signer.from_keystore(keystore, "pw").address == ADDRESS
    with pytest.raises(ClientError) as info:  # the SDK raises ClientErrors, with the same codes
        Signer.from_keystore(keystore, "nope")
    assert info.value.code == "bad_password"
    monkeypatch.setenv("SIGNER_PW", "pw")  # the node's rule opens it, the SDK signs with it
    assert Signer(keys.load_key(str(keystore), password_env="SIGNER_PW")).address == ADDRESS


def test_neither_keys_nor_the_sdk_pull_in_the_l1_package() -> None:
    code = ("import sys, sequencer.keys, optrollup_client, sequencer.client.cli; "
            "bad = [m for m in sys.modules if m.startswith('sequencer.l1')]; assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p
