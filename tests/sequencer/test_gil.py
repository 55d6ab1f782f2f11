"""GilYield (sequencer/gil.py): a pause after every `work` seconds of ticks, with a fake clock."""

from __future__ import annotations

from sequencer.gil import GilYield


def test_pauses_after_each_period_of_work_and_restart_starts_a_new_one() -> None:
    now, slept = [0.0], []
    g = GilYield(0.001, 0.0002, clock=lambda: now[0], sleep=slept.append)
    for _ in range(9):  # 0.9 ms of work: no pause yet
        now[0] += 0.0001
        g.tick()
    assert slept == []
    now[0] += 0.0001
    g.tick()  # 1.0 ms: pause
    assert slept == [0.0002] and g.pauses == 1
    for _ in range(25):  # 2.5 ms more: two more pauses
        now[0] += 0.0001
        g.tick()
    assert g.pauses == 3
    now[0] += 0.5  # the thread slept between rounds
    g.restart()
    g.tick()
    assert g.pauses == 3  # a new period: no pause for the time it was not working
