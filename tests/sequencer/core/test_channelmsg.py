"""Channel EIP-712 messages against eth-account, eth-abi and cext recovery; JSON converters."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

import cext
from cext import domain_separator, to_checksum
from sequencer.core.channelmsg import (MAX_POSITIONS, ChannelOpen, ChannelPosition, ChannelState,
                                       channel_id, channel_types, domain_types, fixed_of,
                                       open_digest, open_from_json, open_to_json,
                                       position_from_json, state_digest, state_from_json,
                                       state_to_json, type_string)
from sequencer.errors import InvalidRequest

CHAIN, CONTRACT = 31337, b"\x42" * 20
DOMAIN = domain_separator(CHAIN, CONTRACT)
DOMAIN_JSON = {"name": "optrollup", "version": "1", "chainId": CHAIN,
               "verifyingContract": "0x" + CONTRACT.hex()}
ROOT = Path(__file__).resolve().parents[3]

addr = st.binary(min_size=20, max_size=20)
u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
u256 = st.integers(0, 2**256 - 1)
i256 = st.integers(-(2**255), 2**255 - 1)
opens = st.builds(ChannelOpen, addr, addr, addr, addr, u256, u256, u64, u32)
positions = st.lists(st.builds(ChannelPosition, st.text(max_size=30), i256), max_size=6).map(tuple)
states = st.builds(ChannelState, st.binary(min_size=32, max_size=32), u64, u256, u256, positions,
                   st.booleans())


def typed(primary: str, message: dict) -> dict:
    t = channel_types()
    types = {"EIP712Domain": domain_types(), primary: t[primary]}
    if primary == "ChannelState":  # eth-account wants exactly the types the primary uses
        types["ChannelPosition"] = t["ChannelPosition"]
    return {"types": types, "primaryType": primary, "domain": DOMAIN_JSON, "message": message}


def open_message(m: ChannelOpen) -> dict:
    return {k: ("0x" + v.hex() if isinstance(v, bytes) else v) for k, v in m._asdict().items()}


def state_message(s: ChannelState) -> dict:
    return dict(s._asdict(), positions=[p._asdict() for p in s.positions])


def reference(primary: str, message: dict) -> bytes:
    sm = encode_typed_data(full_message=typed(primary, message))
    return keccak(b"\x19" + sm.version + sm.header + sm.body)


def test_type_strings_are_the_designs() -> None:
    assert type_string("ChannelOpen") == (
        "ChannelOpen(address a,address b,address signerA,address signerB,uint256 depositA,"
        "uint256 depositB,uint64 nonce,uint32 challengePeriod)")
    assert type_string("ChannelPosition") == "ChannelPosition(string instrument,int256 amount)"
    assert type_string("ChannelState") == (
        "ChannelState(bytes32 channelId,uint64 turnNum,uint256 balanceA,uint256 balanceB,"
        "ChannelPosition[] positions,bool isFinal)ChannelPosition(string instrument,int256 amount)")


def test_type_strings_match_the_adjudicator() -> None:
    src = ROOT / "contracts" / "src" / "Adjudicator.sol"
    if not src.exists():
        pytest.skip("no Adjudicator.sol")
    text = src.read_text().replace('"\n        "', "").replace('" "', "")
    assert type_string("ChannelPosition") in text
    assert type_string("ChannelState") in text


def test_types_object() -> None:
    t = channel_types()
    assert set(t) == {"ChannelOpen", "ChannelPosition", "ChannelState"}
    assert [f["name"] for f in t["ChannelState"]] == list(ChannelState._fields)
    assert [f["name"] for f in t["ChannelOpen"]] == list(ChannelOpen._fields)
    assert {"name": "positions", "type": "ChannelPosition[]"} in t["ChannelState"]


@settings(max_examples=40, deadline=None)
@given(opens)
def test_open_digest_matches_eth_account(m: ChannelOpen) -> None:
    assert open_digest(DOMAIN, m) == reference("ChannelOpen", open_message(m))


@settings(max_examples=60, deadline=None)
@given(states)
def test_state_digest_matches_eth_account(s: ChannelState) -> None:
    assert state_digest(DOMAIN, s) == reference("ChannelState", state_message(s))


def test_empty_positions_digest_matches_eth_account() -> None:
    s = ChannelState(b"\x07" * 32, 3, 5, 6, (), True)
    assert state_digest(DOMAIN, s) == reference("ChannelState", state_message(s))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**256 - 1), addr, opens)
def test_channel_id_is_abi_encode_keccak(chain: int, rollup: bytes, m: ChannelOpen) -> None:
    want = keccak(abi_encode(
        ["uint256", "address", "address", "address", "address", "address", "uint64", "uint32"],
        [chain, rollup, m.a, m.b, m.signerA, m.signerB, m.nonce, m.challengePeriod]))
    assert channel_id(chain, rollup, m) == want
    assert channel_id(chain, rollup, fixed_of(m)) == want


def test_channel_id_ignores_deposits_but_not_fixed_fields() -> None:
    m = ChannelOpen(b"\1" * 20, b"\2" * 20, b"\3" * 20, b"\4" * 20, 10, 20, 7, 3600)
    cid = channel_id(CHAIN, CONTRACT, m)
    assert channel_id(CHAIN, CONTRACT, m._replace(depositA=11)) == cid
    for change in (dict(a=b"\5" * 20), dict(signerB=b"\5" * 20), dict(nonce=8),
                   dict(challengePeriod=3601)):
        assert channel_id(CHAIN, CONTRACT, m._replace(**change)) != cid
    assert channel_id(CHAIN + 1, CONTRACT, m) != cid
    assert channel_id(CHAIN, b"\x43" * 20, m) != cid


KEYS = [Account.from_key(keccak(b"channelmsg key %d" % i)) for i in range(2)]


def raw(acct: Account) -> bytes:
    return bytes.fromhex(acct.address[2:])


@settings(max_examples=15, deadline=None)
@given(states)
def test_eth_account_state_signatures_recover(s: ChannelState) -> None:
    d = state_digest(DOMAIN, s)
    sigs = [bytes(k.sign_message(encode_typed_data(full_message=typed(
        "ChannelState", state_message(s)))).signature) for k in KEYS]
    assert cext.recover_addresses([d, d], sigs) == [raw(k) for k in KEYS]


def test_eth_account_open_signatures_recover() -> None:
    m = ChannelOpen(raw(KEYS[0]), raw(KEYS[1]), raw(KEYS[0]), b"\x09" * 20, 10**9, 2 * 10**9, 1, 86400)
    d = open_digest(DOMAIN, m)
    sigs = [bytes(k.sign_message(encode_typed_data(full_message=typed(
        "ChannelOpen", open_message(m)))).signature) for k in KEYS]
    assert cext.recover_addresses([d, d], sigs) == [raw(k) for k in KEYS]
    other = open_digest(DOMAIN, m._replace(depositB=1))
    assert cext.recover_addresses([other], sigs[:1]) != [raw(KEYS[0])]


@pytest.mark.parametrize("bad, field", [
    (lambda s: s._replace(channelId=b"\1" * 31), "channelState.channelId"),
    (lambda s: s._replace(turnNum=2**64), "channelState.turnNum"),
    (lambda s: s._replace(balanceA=-1), "channelState.balanceA"),
    (lambda s: s._replace(isFinal=1), "channelState.isFinal"),
    (lambda s: s._replace(positions=(ChannelPosition("X", 2**255),)),
     "channelState.positions[0].amount"),
    (lambda s: s._replace(positions=(ChannelPosition("X", 1), ChannelPosition(b"Y", 1))),
     "channelState.positions[1].instrument"),
])
def test_hashing_names_a_bad_field(bad, field) -> None:
    s = ChannelState(b"\0" * 32, 1, 2, 3, (), False)
    with pytest.raises(InvalidRequest) as e:
        state_digest(DOMAIN, bad(s))
    assert field in e.value.message


# --- JSON ---------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(opens, states)
def test_json_round_trip(m: ChannelOpen, s: ChannelState) -> None:
    s = s._replace(positions=tuple(p._replace(instrument=p.instrument[:64]) for p in s.positions))
    jo, js = open_to_json(m), state_to_json(s)
    assert open_from_json(jo) == m
    assert state_from_json(js) == s
    assert jo["a"] == to_checksum(m.a) and jo["depositA"] == str(m.depositA)
    assert type(jo["challengePeriod"]) is int  # 32 bits: a JSON number
    assert js["turnNum"] == str(s.turnNum) and js["channelId"] == "0x" + s.channelId.hex()


def good_state() -> dict:
    return {"channelId": "0x" + "11" * 32, "turnNum": 4, "balanceA": "100", "balanceB": 200,
            "positions": [{"instrument": "ETH-27DEC26-3000-C", "amount": "-5"},
                          {"instrument": "ETH-27DEC26-3000-P", "amount": 7}],
            "isFinal": False}


def good_open() -> dict:
    return {"a": "0x" + "01" * 20, "b": "0x" + "02" * 20, "signerA": "0x" + "03" * 20,
            "signerB": "0x" + "04" * 20, "depositA": "1000", "depositB": 2000, "nonce": "1",
            "challengePeriod": 3600}


def test_json_accepts_ints_and_decimal_strings() -> None:
    s = state_from_json(good_state())
    assert s == ChannelState(b"\x11" * 32, 4, 100, 200, (ChannelPosition("ETH-27DEC26-3000-C", -5),
                                                      ChannelPosition("ETH-27DEC26-3000-P", 7)), False)
    assert open_from_json(good_open()).depositB == 2000


def _with(obj: dict, path: tuple, value) -> dict:
    import copy
    o = copy.deepcopy(obj)
    cur = o
    for k in path[:-1]:
        cur = cur[k]
    if value is KeyError:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return o


@pytest.mark.parametrize("path, value, code, field", [
    (("channelId",), "0x11", "invalid_length", "channelState.channelId"),
    (("channelId",), "11" * 32, "invalid_hex", "channelState.channelId"),
    (("channelId",), "0x" + "zz" * 32, "invalid_hex", "channelState.channelId"),
    (("turnNum",), str(2**64), "invalid_number", "channelState.turnNum"),
    (("turnNum",), -1, "invalid_number", "channelState.turnNum"),
    (("turnNum",), 1.5, "invalid_number", "channelState.turnNum"),
    (("balanceA",), "-1", "invalid_number", "channelState.balanceA"),
    (("balanceB",), "1e3", "invalid_number", "channelState.balanceB"),
    (("balanceB",), True, "invalid_number", "channelState.balanceB"),
    (("isFinal",), 0, "invalid_type", "channelState.isFinal"),
    (("positions",), {}, "invalid_type", "channelState.positions"),
    (("positions", 1, "amount"), str(2**255), "invalid_number", "channelState.positions[1].amount"),
    (("positions", 1, "amount"), "1.0", "invalid_number", "channelState.positions[1].amount"),
    (("positions", 0, "instrument"), 5, "invalid_type", "channelState.positions[0].instrument"),
    (("positions", 0, "instrument"), "X" * 65, "invalid_value", "channelState.positions[0].instrument"),
    (("positions", 0, "extra"), 1, "unknown_field", "channelState.positions[0]"),
    (("positions", 0, "amount"), KeyError, "missing_field", "channelState.positions[0]"),
    (("isFinal",), KeyError, "missing_field", "channelState"),
    (("extra",), 1, "unknown_field", "channelState"),
])
def test_state_json_errors_name_the_field(path, value, code, field) -> None:
    with pytest.raises(InvalidRequest) as e:
        state_from_json(_with(good_state(), path, value))
    assert e.value.code == code
    assert field in e.value.message


def test_state_json_position_limit() -> None:
    many = [{"instrument": f"I{i}", "amount": 1} for i in range(MAX_POSITIONS + 1)]
    with pytest.raises(InvalidRequest) as e:
        state_from_json(_with(good_state(), ("positions",), many))
    assert e.value.code == "too_many_positions"
    with pytest.raises(InvalidRequest) as e:
        state_from_json([])
    assert e.value.code == "invalid_type"


@pytest.mark.parametrize("path, value, code", [
    (("a",), "0x" + "01" * 19, "invalid_address"),
    (("b",), "0x" + "aB" * 20, "invalid_address"),  # bad EIP-55 checksum
    (("signerA",), 5, "invalid_address"),
    (("depositA",), str(2**256), "invalid_number"),
    (("nonce",), str(2**64), "invalid_number"),
    (("challengePeriod",), 2**32, "invalid_number"),
    (("signerB",), KeyError, "missing_field"),
])
def test_open_json_errors_name_the_field(path, value, code) -> None:
    with pytest.raises(InvalidRequest) as e:
        open_from_json(_with(good_open(), path, value))
    assert e.value.code == code
    assert f"channelOpen.{path[0]}" in e.value.message


def test_open_json_accepts_checksummed_addresses() -> None:
    a = to_checksum(bytes.fromhex("ab" * 20))
    assert open_from_json(_with(good_open(), ("a",), a)).a == b"\xab" * 20
    assert open_from_json(_with(good_open(), ("a",), a.lower())).a == b"\xab" * 20


def test_position_from_json() -> None:
    assert position_from_json({"instrument": "X", "amount": "-3"}) == ChannelPosition("X", -3)
