"""Keys in a PKCS#11 token (sequencer.hsm) on SoftHSM2: URIs, the signer (verified with eth-account,
low s always), the errors and their codes, the `optrollup keys hsm-*` commands, and every kind of
signature optrollup makes (EIP-191, EIP-712, L1 transactions, oracle feeds, orders on a live node)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak

from sequencer import hsm, keys
from sequencer.cli import main
from optrollup_client._signing import Signer
from sequencer.core.eip712 import Feed, digest
from sequencer.feeder import signed_feed_body
from tests.hsmkit import TOKEN, softhsm  # noqa: F401 - the session fixture

HALF_N = keys.SECP256K1_N // 2


@pytest.fixture
def signer(softhsm):  # noqa: F811
    with keys.load_key(softhsm.uri("signer")) as k:
        yield k


# -- URIs ---------------------------------------------------------------------------------------

def test_uri_parse_and_format() -> None:
    u = hsm.Pkcs11Uri.parse("pkcs11:token=my%20token;object=poster;id=%01%02%ff;type=private"
                            "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin")
    assert (u.token, u.object, u.id, u.type) == ("my token", "poster", b"\x01\x02\xff", "private")
    assert u.module_path == "/usr/lib/softhsm/libsofthsm2.so" and u.pin_source == "file:/run/pin"
    assert hsm.Pkcs11Uri.parse(u.format()) == u
    secret = hsm.Pkcs11Uri.parse("pkcs11:token=t;object=k?pin-value=1234")
    assert "1234" not in str(secret) and "pin-value=***" in str(secret)
    assert hsm.redact("pkcs11:token=t;object=k?pin-value=1234&module-name=x") == \
        "pkcs11:token=t;object=k?pin-value=***&module-name=x"
    assert hsm.Pkcs11Uri.parse("pkcs11:token=t;x-vendor=1;object=k").other == {"x-vendor": "1"}


@pytest.mark.parametrize("uri", [
    "pkcs11:token=t;label=k",                      # not an RFC 7512 attribute
    "pkcs11:token=t;token=u;object=k",             # twice
    "pkcs11:token=t;object=k;type=public",         # not a private key
    "pkcs11:token=t;object=k?pin-value=1&pin-source=file:/x",
    "pkcs11:token=t;objectk",                      # no '='
    "pkcs11:token=t;object=k;slot-id=x",
])
def test_bad_uris_are_invalid_pkcs11_uri(uri: str) -> None:
    with pytest.raises(keys.InvalidPkcs11Uri) as info:
        keys.load_key(uri)
    assert info.value.code == "invalid_pkcs11_uri"


def test_a_uri_must_name_a_token_and_a_key() -> None:
    for uri in ("pkcs11:object=k", "pkcs11:token=t"):
        with pytest.raises(keys.InvalidPkcs11Uri) as info:
            keys.load_key(uri)
        assert "names no" in info.value.message


def test_missing_python_pkcs11_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # import pkcs11 -> ImportError
    with pytest.raises(keys.Pkcs11Unavailable) as info:
        keys.load_key("pkcs11:token=t;object=k?pin-value=1")
    assert info.value.code == "pkcs11_unavailable" and "python-pkcs11" in info.value.message


def test_module_lookup(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(keys.HsmModuleMissing) as info:
        hsm.find_module(str(tmp_path / "nope.so"))
    assert info.value.code == "hsm_module_missing"
    fake = tmp_path / "libvendor.so"
    fake.write_bytes(b"")
    assert hsm.find_module(environ={hsm.MODULE_ENV: str(fake)}) == str(fake)
    assert hsm.find_module(str(fake), environ={hsm.MODULE_ENV: "/elsewhere.so"}) == str(fake)
    with pytest.raises(keys.HsmModuleMissing):
        hsm.find_module(module_name="no-such-pkcs11-module", environ={})


# -- the signer --------------------------------------------------------------------------------

def test_address_is_keccak_of_the_tokens_public_key(signer) -> None:
    assert signer.address == Account._recover_hash(b"\x01" * 32, signature=signer.sign_digest(b"\x01" * 32))
    assert signer.address.lower() == "0x" + keccak(signer.public_key)[12:].hex()


def test_signatures_recover_and_are_always_low_s(signer, monkeypatch) -> None:
    raw_high = 0
    real = signer._raw_sign

    def spy(d: bytes) -> bytes:
        nonlocal raw_high
        out = real(d)
        raw_high += int.from_bytes(out[32:], "big") > HALF_N
        return out

    monkeypatch.setattr(signer, "_raw_sign", spy)
    for i in range(120):
        d = keccak(i.to_bytes(4, "big"))
        sig = signer.sign_digest(d)
        assert len(sig) == 65 and sig[64] in (27, 28)
        assert int.from_bytes(sig[32:64], "big") <= HALF_N
        assert Account._recover_hash(d, signature=sig) == signer.address
        assert keys.sign_digest(signer, d)[:32] != sig[:32]  # ECDSA in the token: fresh k each time
    assert raw_high > 0  # the token does return high s; the signer normalised every one


def test_eip191_eip712_and_the_sdk_signer(signer) -> None:
    msg = encode_defunct(text="optrollup auth")
    assert Account.recover_message(msg, signature=signer.sign_message(msg).signature) == signer.address
    full = {"types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
                      "Mail": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}]},
            "primaryType": "Mail", "domain": {"name": "t", "chainId": 1},
            "message": {"to": "0x" + "11" * 20, "amount": 5}}
    sm = signer.sign_typed_data(full_message=full)
    assert Account.recover_message(encode_typed_data(full_message=full), signature=sm.signature) == signer.address
    s = Signer(signer)  # the SDK's signer over the HSM key: EIP-712 orders and auth headers
    sig = s.sign_typed(full["domain"], full["types"], "Mail", full["message"])
    assert Account.recover_message(encode_typed_data(full_message=full), signature=sig) == signer.address
    h = s.auth_headers(1_700_000_000)
    text = f"optrollup auth {signer.address} 1700000000"
    assert Account.recover_message(encode_defunct(text=text), signature=h["X-Optrollup-Signature"]) == signer.address


def test_l1_transactions(signer) -> None:
    tx = {"type": 2, "chainId": 31337, "nonce": 7, "value": 1, "data": b"\x12\x34", "gas": 50_000,
          "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9, "to": "0x" + "22" * 20}
    st = signer.sign_transaction(tx)
    assert Account.recover_transaction(st.raw_transaction) == signer.address
    assert st.hash == keccak(st.raw_transaction) and st.s <= HALF_N
    legacy = {"chainId": 31337, "nonce": 0, "gasPrice": 10**9, "gas": 21_000, "to": "0x" + "22" * 20, "value": 3}
    assert Account.recover_transaction(signer.sign_transaction(legacy).raw_transaction) == signer.address
    with pytest.raises(TypeError):
        signer.sign_transaction({**tx, "from": "0x" + "33" * 20})


def test_oracle_feed_signed_in_the_token(softhsm) -> None:  # noqa: F811
    domain = b"\x05" * 32
    feed = Feed("ETH", 3000 * 10**6, 1_700_000_000, (1_700_086_400,), (700_000,))
    with keys.load_key(softhsm.uri("oracle")) as k:
        body = signed_feed_body(domain, feed, k)
        assert Account._recover_hash(digest(domain, feed), signature=body["signature"]) == k.address


def test_the_private_key_cannot_be_read(signer, softhsm) -> None:  # noqa: F811
    with pytest.raises(keys.KeyNotExtractable) as info:
        signer.key  # noqa: B018
    assert info.value.code == "key_not_extractable"
    import pkcs11

    login = signer._login
    with login.lock:
        [priv] = list(login.session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY,
                                                 pkcs11.Attribute.LABEL: "signer"}))
        assert priv[pkcs11.Attribute.SENSITIVE] and not priv[pkcs11.Attribute.EXTRACTABLE]
        assert priv[pkcs11.Attribute.NEVER_EXTRACTABLE] and priv[pkcs11.Attribute.ALWAYS_SENSITIVE]
        assert priv[pkcs11.Attribute.EC_PARAMS] == hsm.SECP256K1_PARAMS


def test_keys_of_one_token_share_its_login(softhsm) -> None:  # noqa: F811
    a = keys.load_key(softhsm.uri("guardian0"))
    b = keys.load_key(softhsm.uri("guardian1"))
    d = b"\x42" * 32
    a.close()  # closing one key does not log the other out
    assert Account._recover_hash(d, signature=b.sign_digest(d)) == b.address
    with pytest.raises(keys.HsmError) as info:
        a.sign_digest(d)
    assert info.value.code == "hsm_key_closed"
    b.close()


def test_a_lost_session_is_reopened(signer) -> None:
    signer._login.session.close()  # as if the token restarted
    d = b"\x07" * 32
    assert Account._recover_hash(d, signature=signer.sign_digest(d)) == signer.address


# -- errors -------------------------------------------------------------------------------------

def _with(softhsm, label: str = "signer", **changes) -> str:  # noqa: F811
    from dataclasses import replace

    return replace(hsm.Pkcs11Uri.parse(softhsm.uri(label)), **changes).format()


def test_wrong_pin(softhsm) -> None:  # noqa: F811
    with pytest.raises(keys.HsmBadPin) as info:
        keys.load_key(_with(softhsm, pin_source=None, pin_value="0000"))
    assert info.value.code == "hsm_bad_pin"
    # logged in already (a key of the token is open): a wrong PIN is still refused
    with keys.load_key(softhsm.uri("signer")), pytest.raises(keys.HsmBadPin):
        keys.load_key(_with(softhsm, "poster", pin_source=None, pin_value="0000"))


def test_missing_token_object_module_pin(softhsm, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    cases = [(_with(softhsm, token="no-such-token"), keys.HsmTokenMissing, "hsm_token_missing"),
             (_with(softhsm, object="no-such-key"), keys.HsmKeyMissing, "hsm_key_missing"),
             (_with(softhsm, module_path=str(tmp_path / "libnone.so")), keys.HsmModuleMissing, "hsm_module_missing"),
             (_with(softhsm, pin_source=f"file:{tmp_path / 'no-pin'}"), keys.PasswordMissing, "password_missing")]
    for uri, cls, code in cases:
        with pytest.raises(cls) as info:
            keys.load_key(uri)
        assert info.value.code == code, uri
    with pytest.raises(keys.HsmTokenMissing) as info:
        keys.load_key(_with(softhsm, token="no-such-token"))
    assert repr(TOKEN) in info.value.message  # the tokens that are there are named
    with pytest.raises(keys.HsmKeyMissing) as info:
        keys.load_key(_with(softhsm, object="no-such-key"))
    assert "signer" in info.value.message  # and the keys that are
    monkeypatch.delenv("OPTROLLUP_PASSWORD", raising=False)
    with pytest.raises(keys.PasswordMissing) as info:
        keys.load_key(_with(softhsm, pin_source=None), environ={})
    assert "no PIN" in info.value.message


def test_a_key_by_its_id(softhsm, signer) -> None:  # noqa: F811
    key_id = softhsm.keys["signer"].id
    assert len(key_id) == 8
    with keys.load_key(_with(softhsm, object=None, id=key_id)) as k:
        assert k.address == signer.address
    with pytest.raises(keys.HsmKeyMissing):
        keys.load_key(_with(softhsm, id=b"\xff" * 8))  # label and id must both match


def test_pin_sources_in_order(softhsm, tmp_path: Path) -> None:  # noqa: F811
    pin = softhsm.pin_file.read_text().strip()
    bare = _with(softhsm, pin_source=None)
    (tmp_path / "wrong").write_text("0000\n")
    (tmp_path / "right").write_text(pin + "\n")
    # the URI's PIN wins over the password rule
    with keys.load_key(softhsm.uri("signer"), password_file=tmp_path / "wrong") as k:
        assert k.address
    with keys.load_key(bare, password_file=tmp_path / "right") as k:  # else --password-file
        assert k.address
    with keys.load_key(bare, environ={"OPTROLLUP_PASSWORD": pin}) as k:  # else OPTROLLUP_PASSWORD
        assert k.address
    with keys.load_key(_with(softhsm, pin_source=str(tmp_path / "right"))) as k:  # pin-source: a bare path
        assert k.address
    with pytest.raises(keys.InvalidPkcs11Uri):
        keys.load_key(_with(softhsm, pin_source="|/bin/pinentry"))


def test_errors_through_the_cli_have_codes(softhsm, capsys) -> None:  # noqa: F811
    assert main(["order", "list", "--url", "http://127.0.0.1:1", "--keystore",
                 _with(softhsm, pin_source=None, pin_value="0000")]) == 2
    err = capsys.readouterr().err
    assert "error [hsm_bad_pin]" in err and "0000" not in err


# -- optrollup keys hsm-init | hsm-new | hsm-list -------------------------------------------------

def test_keys_hsm_commands(softhsm, tmp_path: Path, capsys) -> None:  # noqa: F811
    so, pin = tmp_path / "so", tmp_path / "pin"
    so.write_text("so-secret-1\n")
    pin.write_text("user-secret-1\n")
    label = f"cli-{os.getpid()}"
    assert main(["keys", "hsm-init", "--token", label, "--so-pin-file", str(so), "--pin-file", str(pin)]) == 0
    assert f"token '{label}' initialised" in capsys.readouterr().out
    assert main(["keys", "hsm-init", "--token", label, "--so-pin-file", str(so), "--pin-file", str(pin)]) == 2
    assert "error [hsm_token_exists]" in capsys.readouterr().err
    assert main(["keys", "hsm-new", "--token", label, "--label", "poster", "--pin-file", str(pin)]) == 0
    address, uri = capsys.readouterr().out.split()
    assert uri.startswith(f"pkcs11:token={label};object=poster") and f"pin-source=file:{pin}" in uri
    with keys.load_key(uri) as k:
        assert k.address == address
    assert main(["keys", "hsm-new", "--token", label, "--label", "poster", "--pin-file", str(pin)]) == 2
    assert "error [hsm_key_exists]" in capsys.readouterr().err
    assert main(["keys", "hsm-new", "--token", label, "--label", "feed", "--pin-file", str(so)]) == 2
    assert "error [hsm_bad_pin]" in capsys.readouterr().err
    assert main(["keys", "hsm-list", "--token", label, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["label"], k["address"]) for k in listed] == [("poster", address)]
    assert main(["keys", "hsm-list", "--token", label]) == 0
    assert address in capsys.readouterr().out
    assert main(["keys", "hsm-list", "--token", "no-such-token"]) == 2
    assert "error [hsm_token_missing]" in capsys.readouterr().err
    assert main(["keys", "hsm-list", "--token", label, "--module", str(tmp_path / "x.so")]) == 2
    assert "error [hsm_module_missing]" in capsys.readouterr().err


# -- a live node takes orders signed in the token ---------------------------------------------------

def test_orders_signed_in_the_token_on_a_live_node(softhsm, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: F811
    from sequencer.client import cli as client_cli
    from tests.sequencer.client.live import live_node
    from tests.sequencer.node.kit import CALL

    with live_node(tmp_path / "node") as live, keys.load_key(softhsm.uri("signer")) as k:
        monkeypatch.setattr(client_cli, "CLOCK", live.clock)
        kit = live.kit
        f = kit.node.credit_deposit(bytes.fromhex(k.address[2:]), 50_000 * 10**6, kit.deposits, 1)
        f.result(timeout=10)
        kit.deposits += 1
        base = ["--url", live.url, "--keystore", softhsm.uri("signer")]
        assert main(["order", "place", *base, "--instrument", CALL, "--side", "sell", "--price", "125.5",
                     "--amount", "0.02", "--post-only", "--json"]) == 0
        ack = json.loads(capsys.readouterr().out)
        assert ack["status"] == "open"
        assert main(["order", "list", *base]) == 0  # a private read: auth headers signed in the token
        assert ack["orderHash"] in capsys.readouterr().out
