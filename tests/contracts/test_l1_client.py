"""The anvil launcher and the L1 client: start/stop, accounts, errors, revert decoding."""

from __future__ import annotations

import socket

import eth_abi
import pytest

import cext
from sequencer.l1 import (
    Anvil,
    ContractRevert,
    L1Client,
    L1Unavailable,
    RpcError,
    decode_revert,
    deploy_contract,
    find_anvil,
)


def _k(text: str) -> bytes:
    return cext.keccak256(text.encode())


def test_find_anvil_is_the_npm_platform_binary():
    p = find_anvil()
    assert p.is_file() and "node_modules/@foundry-rs/anvil-" in p.as_posix()


def test_anvil_starts_answers_and_stops(tmp_path):
    with Anvil(chain_id=777, accounts=2) as node:
        assert node.url.startswith("http://127.0.0.1:")
        assert len(node.accounts) == 2
        with node.client() as c:
            assert c.chain_id == 777
            assert c.get_balance(node.accounts[0].address) == 10_000 * 10**18
        port = node.port
        pid = node.pid
        assert node.running
    assert not node.running and node.pid is None
    # the port is free again
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", port))
    assert pid is not None


def test_anvil_state_persists_across_restarts(tmp_path):
    state = tmp_path / "anvil-state.json"
    with Anvil(state_path=state) as node, node.client() as c:
        c.transact(node.accounts[0], node.accounts[1].address, value=123)
        n = c.block_number()
    assert state.exists()
    with Anvil(state_path=state) as node, node.client() as c:
        assert c.block_number() >= n
        assert c.get_balance(node.accounts[1].address) == 10_000 * 10**18 + 123


def test_unreachable_node_raises_unavailable():
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    with L1Client(f"http://127.0.0.1:{port}", timeout=0.5, retries=1) as c, pytest.raises(L1Unavailable):
        c.block_number()


def test_rpc_error(client: L1Client):
    with pytest.raises(RpcError) as ei:
        client.rpc("eth_noSuchMethod")
    assert ei.value.rpc_code != 0


def test_decode_revert_builtin_and_unknown():
    err = _k("Error(string)")[:4] + eth_abi.encode(["string"], ["boom"])
    assert decode_revert(err) == ("Error", {"message": "boom"})
    panic = _k("Panic(uint256)")[:4] + eth_abi.encode(["uint256"], [0x11])
    name, args = decode_revert(panic)
    assert name == "Panic" and args["code"] == 0x11 and "overflow" in args["reason"]
    assert decode_revert(b"\xde\xad\xbe\xef")[0] == "<unknown>"
    assert decode_revert(b"") == ("<empty>", {})
    sel = _k("BlockGap(uint64,uint64)")[:4]
    assert decode_revert(sel + eth_abi.encode(["uint64", "uint64"], [3, 5])) == (
        "BlockGap", {"expectedFirstBlock": 3, "firstBlock": 5})
    # errors of the issue-11 contracts: a string argument, a Bridge error, a uint8
    sel = _k("InvalidTiming(string)")[:4]
    assert decode_revert(sel + eth_abi.encode(["string"], ["challengeWindow > 0"])) == (
        "InvalidTiming", {"rule": "challengeWindow > 0"})
    sel = _k("MessageCursorAhead(uint64,uint256)")[:4]
    assert decode_revert(sel + eth_abi.encode(["uint64", "uint256"], [4, 3])) == (
        "MessageCursorAhead", {"cursor": 4, "messageCount": 3})
    sel = _k("BadDecimals(uint8,uint8)")[:4]
    assert decode_revert(sel + eth_abi.encode(["uint8", "uint8"], [18, 6])) == (
        "BadDecimals", {"decimals": 18, "expected": 6})


def test_mined_failure_is_decoded(chain: L1Client, accounts):
    """A transaction sent with a fixed gas limit skips estimation, is mined with status 0, and
    the reason is recovered by replaying it."""
    token, _ = deploy_contract(chain, accounts[0], "MockUSDC")
    data = token.encode("transfer", accounts[1].address, 5)
    with pytest.raises(ContractRevert) as ei:
        chain.transact(accounts[0], token.address, data, gas=100_000, context="MockUSDC.transfer")
    e = ei.value
    assert e.error == "InsufficientBalance" and e.tx_hash
    assert e.error_args == {"account": accounts[0].address, "balance": 0, "needed": 5}
    assert "InsufficientBalance" in str(e) and e.code == "l1_revert"
    r = chain.get_receipt(e.tx_hash)
    assert r is not None and r.status == 0


def test_nonces_survive_concurrent_senders(chain: L1Client, accounts):
    import threading

    token, _ = deploy_contract(chain, accounts[0], "MockUSDC")
    errors = []

    def mint(i):
        try:
            token.transact("mint", accounts[1].address, i, sender=accounts[0])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=mint, args=(i,)) for i in range(1, 9)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert token.call("balanceOf", accounts[1].address) == sum(range(1, 9))
