"""Rules versions: the fork schedule picks the version in force at a block time, and `Marks`
(what `apply` prices margin with) computes with that version."""

from __future__ import annotations

import dataclasses

import pytest

from sequencer.core import pricing, rules
from sequencer.core.marks import Marks
from sequencer.core.pricing import Mark
from sequencer.core.rules import RULES, Rules, check_schedule, rules_at, version_at
from sequencer.errors import InvalidRequest
from tests.sequencer.core.core_world import CALL, EXPIRY, SPOT, T0, World


def test_version_at_follows_the_schedule() -> None:
    s = ((0, 1), (100, 2), (200, 3))
    assert [version_at(s, t) for t in (0, 99, 100, 150, 199, 200, 10**12)] == [1, 1, 2, 2, 2, 3, 3]
    assert version_at(((50, 4),), 10) == 4  # before the first activation: the first version
    assert rules_at(((0, 1),), T0) is RULES[1]
    assert RULES[1].mark is pricing.mark and RULES[1].interpolate_vol is pricing.interpolate_vol
    assert rules.DEFAULT_SCHEDULE == ((0, rules.LATEST),) and rules.LATEST == 4
    assert RULES[2].mark is pricing.mark and RULES[2].interpolate_vol is pricing.interpolate_vol


def test_check_schedule() -> None:
    check_schedule(((0, 1), (T0 + 1, 1)), T0)
    check_schedule(((T0, 1),), T0)
    with pytest.raises(InvalidRequest) as e:
        check_schedule(((0, 1), (T0 + 1, 5)), T0)
    assert e.value.code == "unknown_rules_version"
    with pytest.raises(InvalidRequest) as e:
        check_schedule(((T0 + 1, 1),), T0)
    assert e.value.code == "bad_genesis"


def fake_mark(spot: int, strike: int, expiry: int, now: int, vol: int, is_call: bool) -> Mark:
    return Mark(7, 8, spot, vol, 0, 0, 0, 0)


def test_marks_use_the_version_in_force_at_their_block_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork to a (test-only) version 99 at T0 + 10: marks before it are version 1's, from it
    on version 99's, whatever the order in which they are built (a replay of old blocks)."""
    v99 = Rules(99, lambda e, v, t, n: 123_456, fake_mark)
    monkeypatch.setitem(RULES, 99, v99)  # type: ignore[arg-type]
    w = World()
    state = w.state
    state.config = dataclasses.replace(state.config, rules_schedule=((0, 1), (T0 + 10, 99)))
    late = Marks(state, T0 + 10).mark(CALL)
    early = Marks(state, T0 + 9).mark(CALL)
    assert late == Mark(7, 8, SPOT, 123_456, 0, 0, 0, 0)
    assert early is not None and early.mark_lo != 7
    vol = pricing.interpolate_vol((EXPIRY - 86400 * 30, EXPIRY), (800_000, 800_000), EXPIRY, T0 + 9)
    assert early == pricing.mark(SPOT, 3000 * 10**6, EXPIRY, T0 + 9, vol, True)
