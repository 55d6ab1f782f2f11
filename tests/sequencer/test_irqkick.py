"""sequencer.irqkick: which CPUs take the disk's interrupts, and kicker processes pinned to them
that die with their parent; `optrollup serve --kick-disk-irq` starts them as its children."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sequencer import irqkick, procs

INTERRUPTS = """\
           CPU0       CPU1       CPU2
 26:          0         14          0  IO-APIC   4-edge      ttyS0
 35:          0          2          0  PCI-MSIX-0000:00:02.0   0-edge      virtio1-config
 36:          0   24738252          7  PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 38:          0     248876          0  PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
 50:        900          0          0  PCI-MSI 1048576-edge      nvme0q1
NMI:          0          0          0   Non-maskable interrupts
"""


def test_disk_irq_cpus_reads_block_device_lines_only() -> None:
    assert irqkick.disk_irq_cpus(INTERRUPTS) == [0, 1, 2]  # virtio-blk on 1 and 2, NVMe on 0
    assert irqkick.disk_irq_cpus(INTERRUPTS.replace("nvme0q1", "eth0")) == [1, 2]
    assert irqkick.disk_irq_cpus("") == []
    assert irqkick.disk_irq_cpus("           CPU0\n 26:   5  IO-APIC ttyS0\n") == []


def _allowed(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list")


def _wait(cond, timeout: float = 10.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_spawn_pins_each_kicker_and_it_dies_with_its_parent() -> None:
    cpu = max(os.sched_getaffinity(0))
    # a parent that spawns one kicker, prints its pid, and then waits to be killed
    code = ("import sys, time; from sequencer import irqkick; "
            f"[k] = irqkick.spawn([{cpu}], 1000); print(k.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        kid = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert _wait(lambda: (procs.cmdline(kid) or [""])[-3:] == [str(parent.pid), str(cpu), "1000"])
        assert _wait(lambda: _allowed(kid) == str(cpu)), _allowed(kid)
    finally:
        parent.kill()
        parent.wait()
    assert _wait(lambda: not procs.alive(kid)), "the kicker outlived its parent"


def test_spawn_refuses_bad_intervals_and_cpus() -> None:
    with pytest.raises(ValueError, match="outside"):
        irqkick.spawn([0], 10)
    with pytest.raises(ValueError, match="not available"):
        irqkick.spawn([os.cpu_count() or 1_000], 500)
    assert irqkick.main(["x"]) == 2


def test_serve_starts_kickers_on_the_disk_interrupt_cpus(tmp_path: Path) -> None:
    from tests.e2e.serverkit import Server, node_config, write_config
    conf = write_config(tmp_path / "config.json", node_config(time.time()))
    srv = Server(tmp_path / "node", conf, extra=["--kick-disk-irq", "--kick-interval-us", "1000"]).start()
    try:
        want = [c for c in irqkick.disk_irq_cpus() if c in os.sched_getaffinity(0)]
        def kickers() -> list[int]:
            return [p for p in procs.descendants(srv.proc.pid)  # type: ignore[union-attr]
                    if "sequencer.irqkick" in " ".join(procs.cmdline(p) or [])]
        if want:
            assert _wait(lambda: len(kickers()) == len(want))
            assert _wait(lambda: sorted(_allowed(p) for p in kickers()) == [str(c) for c in want])
        else:  # no block-device interrupts visible here: a warning, no kicker
            assert _wait(lambda: "no kicker started" in srv.output())
            assert kickers() == []
    finally:
        ks = kickers()
        srv.stop()
    assert _wait(lambda: not any(procs.alive(p) for p in ks))


def test_auto_decides_from_the_two_medians() -> None:
    """Kickers only when a busy interrupt CPU delays synced writes AND kickers fix that."""
    assert irqkick.kick_wanted(9.9, 1.38)          # the Firecracker guest of benchmarks/README.md
    assert not irqkick.kick_wanted(0.4, 0.4)        # interrupts delivered at once
    assert not irqkick.kick_wanted(8.0, 7.5)        # a slow disk (an HDD): kickers do not help
    assert not irqkick.kick_wanted(2.9, 0.1)        # below the threshold
    assert irqkick.kick_wanted(irqkick.AUTO_DELAYED_MS, irqkick.AUTO_DELAYED_MS / 2)


def test_synced_append_probe_measures_and_cleans_up(tmp_path: Path) -> None:
    p50 = sorted(irqkick.synced_append_ms(tmp_path, n=5, rate=10_000))[2]
    assert 0 < p50 < 5_000
    assert list(tmp_path.iterdir()) == []


def test_delayed_interrupts_probe_restores_affinity_and_leaves_no_process(tmp_path: Path) -> None:
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        wanted, why = irqkick.delayed_interrupts(tmp_path, [min(allowed)])
        assert not wanted and "no CPU besides" in why
        return
    cpu = max(allowed)
    before = _children()  # other tests' servers may be running
    wanted, why = irqkick.delayed_interrupts(tmp_path, [cpu], interval_us=500)
    assert isinstance(wanted, bool)
    assert why.startswith("synced appends p50 ") and f"with CPU {cpu} busy" in why and "with kickers" in why
    assert os.sched_getaffinity(0) == allowed  # the probing thread's CPUs back as they were
    assert list(tmp_path.iterdir()) == []
    new = _children() - before
    assert new == set(), new  # spinners and kickers killed and reaped


def test_delayed_interrupts_without_usable_interrupt_cpus(tmp_path: Path) -> None:
    wanted, why = irqkick.delayed_interrupts(tmp_path, [])
    assert not wanted and "no usable CPU" in why


def _children() -> set[int]:
    return {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(int(p.name)) == os.getpid()}


def _ppid(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def test_serve_auto_logs_its_decision(tmp_path: Path) -> None:
    from tests.e2e.serverkit import Server, node_config, write_config
    conf = write_config(tmp_path / "config.json", node_config(time.time()))
    srv = Server(tmp_path / "node", conf, extra=["--kick-disk-irq", "auto"]).start()
    try:
        assert _wait(lambda: "--kick-disk-irq auto: " in srv.output())
        line = next(x for x in srv.output().splitlines() if "--kick-disk-irq auto: " in x)
        assert line.endswith(("kickers wanted", "no kickers")), line
    finally:
        srv.stop()


def test_delayed_interrupts_says_no_when_it_cannot_probe(tmp_path: Path) -> None:
    """A data dir it cannot write (or a machine that is not Linux) must not stop a node from
    starting: the answer is "no kickers", with the reason."""
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("needs two CPUs to get as far as the probe")
    wanted, why = irqkick.delayed_interrupts(tmp_path / "missing" / "dir", [max(allowed)])
    assert not wanted and why.startswith("the probe failed: ") and "No such file" in why
    assert os.sched_getaffinity(0) == allowed


def test_delayed_interrupts_off_linux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(irqkick.sys, "platform", "darwin")
    wanted, why = irqkick.delayed_interrupts(tmp_path, [0])
    assert not wanted and why.startswith("not Linux")
