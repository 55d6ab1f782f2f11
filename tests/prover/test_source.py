"""prover.source.HttpBlockSource's checks on what the sequencer answers: a header must hash to the
`hash` it carries (for the head as for a block), a block's txRoot must commit to its
transactions, and a malformed answer is a SourceError, never a wrong number or block."""

from __future__ import annotations

import copy

import pytest

from prover.source import HttpBlockSource, SourceError
from tests.prover.l2chain import L2Chain


@pytest.fixture(scope="module")
def answer() -> dict:
    ch = L2Chain(31337, b"\x02" * 20)
    ch.deposit(b"\x05" * 20, 7, l1=False)
    ch.seal()
    b = ch.blocks[1]
    return {"header": b.header.to_json(), "txs": ["0x" + t.hex() for t in b.txs]}


def test_an_honest_answer_parses(answer: dict) -> None:
    h = HttpBlockSource.parse_header(answer)
    assert h.number == 1 and "0x" + h.hash().hex() == answer["header"]["hash"]
    assert HttpBlockSource.parse_block(answer, 1).header == h


@pytest.mark.parametrize("field", ["stateRoot", "timestamp", "l1MessageCursor"])
def test_a_field_that_does_not_hash_to_the_claimed_hash_is_refused(answer: dict, field: str) -> None:
    forged = copy.deepcopy(answer)
    v = forged["header"][field]
    forged["header"][field] = v + 1 if isinstance(v, int) else "0x" + "ab" * 32
    for parse in (HttpBlockSource.parse_header, HttpBlockSource.parse_block):
        with pytest.raises(SourceError, match="header fields hash to .* the sequencer says"):
            parse(forged)


def test_transactions_the_tx_root_does_not_commit_to_are_refused(answer: dict) -> None:
    forged = copy.deepcopy(answer)
    forged["txs"] = forged["txs"][:-1]
    with pytest.raises(SourceError, match="txRoot does not commit"):
        HttpBlockSource.parse_block(forged)
    with pytest.raises(SourceError, match="asked the sequencer for block 2, got block 1"):
        HttpBlockSource.parse_block(answer, 2)


@pytest.mark.parametrize("body", [None, {}, {"header": 5}, {"header": {"number": 1}}])
def test_malformed_answers_are_source_errors(body: object) -> None:
    with pytest.raises(SourceError, match="malformed block header"):
        HttpBlockSource.parse_header(body)


def test_head_checks_the_header_it_polls(answer: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The poster learns the head from GET /v1/blocks/latest/header: a header that does not hash
    to its claimed hash is refused there too (the injected fault is the sequencer's answer)."""
    src = HttpBlockSource("http://127.0.0.1:9")
    monkeypatch.setattr(src, "_get", lambda path: {"header": answer["header"]})
    assert src.head() == 1
    forged = copy.deepcopy(answer["header"])
    forged["number"] = 2
    monkeypatch.setattr(src, "_get", lambda path: {"header": forged})
    with pytest.raises(SourceError, match="hash to"):
        src.head()
    src.close()
