"""L1StateKeeper: anvil dumps its chain into RAM; the data dir gets whole, synced copies."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from sequencer.l1.anvil import Anvil
from sequencer.l1.statekeeper import L1StateKeeper


def keeper(tmp_path: Path, **kw) -> L1StateKeeper:  # type: ignore[no-untyped-def]
    ram = tmp_path / "shm"
    ram.mkdir(exist_ok=True)
    return L1StateKeeper(tmp_path / "data" / "l1-state.json", ram_root=ram, min_free=0, **kw)


def test_anvil_dumps_into_ram_and_the_durable_copy_follows(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    k = keeper(tmp_path)
    assert k.anvil_path.parent.parent == tmp_path / "shm" and k.anvil_path.name == "l1-state.json"
    k.prepare()
    assert not k.anvil_path.exists() and not k.persist()  # a new chain: nothing yet
    k.anvil_path.write_text('{"v": 1}')
    written = k.anvil_path.stat().st_mtime
    assert k.persist(settle=0.5)  # just written (anvil may still be at it): waits, then copies
    assert time.time() - written >= 0.5 and k.durable.read_text() == '{"v": 1}'
    assert not k.persist()  # unchanged since the last copy
    k.anvil_path.write_text('{"v": 2}')
    k.close()  # the last copy (anvil has stopped), then the RAM file goes
    assert k.durable.read_text() == '{"v": 2}' and not k.anvil_path.parent.exists()
    k2 = keeper(tmp_path)
    k2.prepare()  # the next run: the durable copy goes to RAM for anvil to load
    assert k2.anvil_path.read_text() == '{"v": 2}' and not k2.persist(settle=0.0)


def test_a_ram_file_left_by_a_killed_run_is_taken_when_newer_and_whole(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    k = keeper(tmp_path)
    k.durable.write_text('{"v": 1}')
    os.utime(k.durable, (time.time() - 60, time.time() - 60))
    k.anvil_path.parent.mkdir()
    k.anvil_path.write_text('{"v": 5}')  # what the killed run's anvil dumped on SIGTERM
    keeper(tmp_path).prepare()
    assert k.durable.read_text() == '{"v": 5}'
    # a dump cut short (anvil killed mid-write) is not taken: the durable copy wins
    os.utime(k.durable, (time.time() - 60, time.time() - 60))
    k.anvil_path.write_text('{"v": 6, "blocks": [')
    keeper(tmp_path).prepare()
    assert k.durable.read_text() == '{"v": 5}' and k.anvil_path.read_text() == '{"v": 5}'


def test_a_copy_is_never_torn_by_a_dump_in_progress(tmp_path: Path) -> None:
    """anvil rewrites its file in place; the keeper copies only a file left alone for `settle`
    seconds and the same before and after it was read, so the copy is always one whole dump.
    (For 2 s the keeper tries again and again while a writer keeps rewriting the file; without
    those checks some copy is torn.)"""
    (tmp_path / "data").mkdir()
    k = keeper(tmp_path)
    k.prepare()
    versions = [json.dumps({"v": i, "pad": chr(97 + i) * 300_000}).encode() for i in range(3)]
    stop = threading.Event()

    def anvil_like() -> None:
        i = 0
        while not stop.is_set():
            data = versions[i % 3]
            with open(k.anvil_path, "wb") as f:
                for j in range(0, len(data), 50_000):
                    f.write(data[j:j + 50_000])
                    f.flush()
                    time.sleep(0.001)
            i += 1
            stop.wait(0.1)  # anvil dumps every --state-interval seconds

    t = threading.Thread(target=anvil_like)
    t.start()
    copies = 0
    try:
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            if k.persist(settle=0.02):
                copies += 1
                assert k.durable.read_bytes() in versions, f"a torn copy after {copies} copies"
    finally:
        stop.set()
        t.join()
    k.persist(settle=0.0)
    assert k.durable.read_bytes() in versions


def test_without_a_usable_tmpfs_anvil_dumps_to_the_data_dir(tmp_path: Path) -> None:
    for k in (L1StateKeeper(tmp_path / "l1-state.json", ram_root=None),
              L1StateKeeper(tmp_path / "l1-state.json", ram_root=tmp_path / "missing"),
              L1StateKeeper(tmp_path / "l1-state.json", ram_root=tmp_path, min_free=1 << 62)):
        assert k.anvil_path == tmp_path / "l1-state.json"
        k.prepare()
        k.start()
        assert not k.persist()
        k.close()


def test_a_real_anvil_chain_survives_a_restart_through_the_keeper(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    k = keeper(tmp_path, every=0.5)
    k.prepare()
    with Anvil(state_path=k.anvil_path, state_interval=1) as anvil:
        k.start()
        with anvil.client() as c:
            for _ in range(3):
                c.rpc("evm_mine")
            height = c.block_number()
        deadline = time.time() + 20
        while not (k.durable.exists() and json.loads(k.durable.read_bytes()).get("best_block_number")):
            assert time.time() < deadline, "no durable copy of a dump"
            time.sleep(0.2)
    k.close()
    assert not k.anvil_path.exists()
    k2 = keeper(tmp_path)
    k2.prepare()
    with Anvil(state_path=k2.anvil_path) as anvil, anvil.client() as c:
        assert c.block_number() == height
    k2.close()
