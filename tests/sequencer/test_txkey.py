"""The light transaction key (sequencer.txkey, sequencer.keys.load_tx_key) against eth-account,
the independent implementation: the same signed bytes, the same keystore secrets, the same errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sequencer import keys
from sequencer.txkey import SECP256K1_N, SignedTx, TxKey, Unsupported, decrypt_keystore_v3, rlp_encode

U256 = st.integers(0, 2**256 - 1)
SECRETS = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
ADDRESSES = st.binary(min_size=20, max_size=20).map(to_checksum_address)


@st.composite
def eip1559(draw: st.DrawFn) -> dict[str, Any]:
    """An EIP-1559 transaction dict as TxManager builds it (`to` absent: contract creation), with
    the full range of every field and data of 0..600 bytes (RLP's short and long forms)."""
    small = st.integers(0, 2**64 - 1)
    fields: dict[str, Any] = {
        "type": 2, "chainId": draw(st.one_of(st.integers(1, 2**32), U256)), "nonce": draw(small),
        "value": draw(st.one_of(st.just(0), small, U256)), "data": draw(st.binary(max_size=600)),
        "gas": draw(st.one_of(small, U256)), "maxFeePerGas": draw(st.one_of(small, U256)),
        "maxPriorityFeePerGas": draw(st.one_of(st.just(0), small, U256)),
    }
    to = draw(st.one_of(st.none(), ADDRESSES))
    if to is not None:
        fields["to"] = to
    if draw(st.integers(0, 9)) == 0:  # TxManager never sends one; eth-account's shape all the same
        fields["accessList"] = draw(st.lists(st.fixed_dictionaries({
            "address": ADDRESSES,
            "storageKeys": st.lists(st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
                                    max_size=3)}), max_size=3))
    return fields


def _same(mine: SignedTx, theirs: Any) -> None:
    assert mine.raw_transaction == bytes(theirs.raw_transaction)
    assert mine.hash == bytes(theirs.hash)
    assert (mine.r, mine.s, mine.v) == (theirs.r, theirs.s, theirs.v)


BIG = 2**256 - 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=SECRETS, fields=eip1559())
@example(secret=b"\x00" * 31 + b"\x01", fields={  # zeros everywhere, empty data, creation
    "type": 2, "chainId": 0, "nonce": 0, "value": 0, "data": b"", "gas": 0, "maxFeePerGas": 0,
    "maxPriorityFeePerGas": 0})
@example(secret=(SECP256K1_N - 1).to_bytes(32, "big"), fields={  # every integer at its largest
    "type": 2, "chainId": BIG, "nonce": BIG, "value": BIG, "data": b"\xff" * 70_000, "gas": BIG,
    "maxFeePerGas": BIG, "maxPriorityFeePerGas": BIG, "to": to_checksum_address("0x" + "ab" * 20)})
@example(secret=b"\x11" * 32, fields={  # one-byte data below 0x80 (RLP's single-byte form)
    "type": 2, "chainId": 31337, "nonce": 7, "value": 1, "data": b"\x7f", "gas": 21_000,
    "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9, "to": to_checksum_address("0x" + "ab" * 20)})
def test_transactions_sign_to_eth_accounts_bytes(secret: bytes, fields: dict[str, Any]) -> None:
    key, acct = TxKey(secret), Account.from_key(secret)
    assert key.address == acct.address
    _same(key.sign_transaction(fields), acct.sign_transaction(dict(fields)))


def test_transaction_manager_fields_sign_the_same() -> None:
    """The exact dict TxManager._sign builds (bytes data, checksummed `to`, no `to` to create)."""
    from sequencer.l1.txmanager import Attempt

    secret = bytes(range(1, 33))
    key, acct = TxKey(secret), Account.from_key(secret)
    for to in ("0x5FbDB2315678afecb367f032d93F642f64180aa3", None):
        fields: dict[str, object] = {"type": 2, "chainId": 31337, "nonce": 3, "value": 0,
                                     "data": bytes(range(256)) * 3, "gas": 1_234_567,
                                     "maxFeePerGas": 2_000_000_007, "maxPriorityFeePerGas": 1_000_000_000}
        if to is not None:
            fields["to"] = to
        mine, theirs = key.sign_transaction(fields), acct.sign_transaction(fields)
        _same(mine, theirs)
        a = Attempt("0x" + bytes(mine.hash).hex(), bytes(mine.raw_transaction), 0, 0)
        assert a.raw == bytes(theirs.raw_transaction) and a.tx_hash == "0x" + bytes(theirs.hash).hex()


@pytest.mark.parametrize("change", [
    {"type": 0, "gasPrice": 10**9},                                   # legacy
    {"gasPrice": 10**9},                                              # legacy fee with type 2
    {"type": 1},                                                      # EIP-2930
    {"type": "0x2"},
    {"nonce": -1}, {"value": 2**256}, {"gas": True}, {"chainId": "1"},
    {"data": "not hex"}, {"to": "0x1234"},
    {"maxFeePerGas": None},
])
def test_other_shapes_are_refused(change: dict[str, Any]) -> None:
    fields = {"type": 2, "chainId": 1, "nonce": 0, "value": 0, "data": b"", "gas": 21_000,
              "maxFeePerGas": 2, "maxPriorityFeePerGas": 1, **change}
    with pytest.raises(ValueError):
        TxKey(b"\x22" * 32).sign_transaction(fields)
    missing = dict(fields)
    missing.pop("gas")
    with pytest.raises(ValueError):
        TxKey(b"\x22" * 32).sign_transaction(missing)


def test_rlp_vectors() -> None:
    """The examples of the RLP specification (Ethereum yellow paper, appendix B / ethereum.org)."""
    lorem = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit"
    assert rlp_encode(b"dog") == b"\x83dog"
    assert rlp_encode([b"cat", b"dog"]) == b"\xc8\x83cat\x83dog"
    assert rlp_encode(b"") == b"\x80" and rlp_encode([]) == b"\xc0" and rlp_encode(0) == b"\x80"
    assert rlp_encode(b"\x00") == b"\x00" and rlp_encode(b"\x0f") == b"\x0f" and rlp_encode(15) == b"\x0f"
    assert rlp_encode(1024) == b"\x82\x04\x00"
    assert rlp_encode([[], [[]], [[], [[]]]]) == bytes.fromhex("c7c0c1c0c3c0c1c0")
    assert rlp_encode(lorem) == b"\xb8\x38" + lorem
    assert rlp_encode([lorem]) == b"\xf8\x3a\xb8\x38" + lorem
    with pytest.raises(ValueError):
        rlp_encode(-1)


@settings(max_examples=50, deadline=None)
@given(secret=SECRETS, digest=st.binary(min_size=32, max_size=32))
def test_digests_sign_like_every_other_key(secret: bytes, digest: bytes) -> None:
    sig = TxKey(secret).sign_digest(digest)
    assert sig == keys.sign_digest(secret, digest)  # eth-account's signature, made low-s
    assert Account._recover_hash(digest, signature=sig) == Account.from_key(secret).address


def test_the_secret_is_not_shown() -> None:
    key = TxKey(b"\x33" * 32)
    assert "33" * 4 not in repr(key) and key.address in repr(key)
    for bad in (b"\x00" * 32, SECP256K1_N.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(ValueError):
            TxKey(bad)


# -- keystores --------------------------------------------------------------------------------------

SECRET = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(SECRET).address


def _keystore(tmp_path: Path, name: str, blob: dict[str, Any]) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(blob))
    return p


@pytest.fixture(params=[("scrypt", 2**10), ("pbkdf2", 1000)], ids=["scrypt", "pbkdf2"])
def keystore(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    kdf, work = request.param
    return _keystore(tmp_path, f"{kdf}.json", Account.encrypt(SECRET, "pässword", kdf=kdf, iterations=work))


def test_keystores_open_to_the_same_key(keystore: Path) -> None:
    blob = json.loads(keystore.read_text())
    assert decrypt_keystore_v3(blob, "pässword") == SECRET == bytes(Account.decrypt(blob, "pässword"))
    key = keys.load_tx_key(keystore, password="pässword")
    assert isinstance(key, TxKey) and key.address == ADDRESS == keys.load_key(keystore, password="pässword").address
    blob["Crypto"] = blob.pop("crypto")  # geth's capitalisation
    assert decrypt_keystore_v3(blob, "pässword") == SECRET


def test_geths_default_scrypt_work_factor_opens(tmp_path: Path) -> None:
    """n = 2^18 needs 256 MiB: above OpenSSL's default scrypt memory cap."""
    p = _keystore(tmp_path, "k.json", Account.encrypt(SECRET, "pw", kdf="scrypt"))
    assert keys.load_tx_key(p, environ={"OPTROLLUP_PASSWORD": "pw"}).address == ADDRESS


def _refusal(load: Any, path: Path, password: str) -> tuple[type, str, str]:
    with pytest.raises(keys.KeyLoadError) as info:
        load(path, password=password)
    return type(info.value), info.value.code, info.value.message


def test_wrong_password_and_tampering_are_refused_as_before(keystore: Path, tmp_path: Path) -> None:
    blob = json.loads(keystore.read_text())
    cases = {"wrong password": (keystore, "password")}
    for field in ("ciphertext", "mac"):
        bad = json.loads(json.dumps(blob))
        b = bytearray.fromhex(bad["crypto"][field])
        b[5] ^= 1
        bad["crypto"][field] = b.hex()
        cases[f"tampered {field}"] = (_keystore(tmp_path, f"{field}.json", bad), "pässword")
    for what, (path, pw) in cases.items():
        before = _refusal(keys.load_key, path, pw)
        assert before == _refusal(keys.load_tx_key, path, pw), what
        assert before[:2] == (keys.BadPassword, "bad_password") and before[2].endswith(": MAC mismatch"), what


def test_malformed_and_other_keystores_fail_or_open_as_with_load_key(keystore: Path, tmp_path: Path) -> None:
    blob = json.loads(keystore.read_text())

    def variant(name: str, edit: Any) -> Path:
        b = json.loads(json.dumps(blob))
        edit(b)
        return _keystore(tmp_path, name, b)

    refused = {
        "no kdfparams": variant("a.json", lambda b: b["crypto"].pop("kdfparams")),
        "no mac": variant("b.json", lambda b: b["crypto"].pop("mac")),
        "salt not a string": variant("c.json", lambda b: b["crypto"]["kdfparams"].update(salt=5)),
        "unknown kdf": variant("d.json", lambda b: b["crypto"].update(kdf="argon2")),
        "bad hex": variant("e.json", lambda b: b["crypto"].update(ciphertext="zz")),
        "not a keystore": _keystore(tmp_path, "f.json", []),
    }
    for what, path in refused.items():  # the same error and code (messages may word it differently)
        before = _refusal(keys.load_key, path, "pässword")
        assert before[:2] == _refusal(keys.load_tx_key, path, "pässword")[:2], what
    # what the light reader leaves to eth-account opens (or fails) exactly as load_key has it
    for path in (variant("g.json", lambda b: b["crypto"]["cipherparams"].update(iv="00" * 8)),):
        with pytest.raises(Unsupported):
            decrypt_keystore_v3(json.loads(path.read_text()), "pässword")
        assert keys.load_tx_key(path, password="pässword").address == keys.load_key(path, password="pässword").address


def test_password_rule_and_pkcs11_refs_are_load_keys(keystore: Path, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("pässword\n")
    assert keys.load_tx_key(str(keystore), password_file=pw).address == ADDRESS
    assert keys.load_tx_key(keystore, password_env="PW", environ={"PW": "pässword"}).address == ADDRESS
    with pytest.raises(keys.PasswordMissing):
        keys.load_tx_key(keystore, environ={})
    with pytest.raises(keys.InvalidKeystore):  # the file is checked before any password is needed
        keys.load_tx_key(tmp_path / "missing.json", environ={})
    with pytest.raises(keys.KeyLoadError) as info:  # a PKCS#11 URI goes to the token (sequencer.hsm)
        keys.load_tx_key(f"pkcs11:token=optrollup;object=poster?module-path={tmp_path}/none.so", password="x")
    assert info.value.code in ("hsm_module_missing", "pkcs11_unavailable")
