"""Disk-interrupt kickers: keep the CPUs that take the disk's completion interrupts waking up.

On some VMs (the 2-vCPU Firecracker guest of benchmarks/README.md) an interrupt for a vCPU that
is running guest code is delivered only at that vCPU's next exit to the hypervisor, i.e. at its
next timer tick (HZ=100 there: up to 10 ms). The disk's completions go to one vCPU, so whenever
anything runs there every fdatasync of the input log completes 8-10 ms late, and the node's
acknowledgements with it. A kicker is a process pinned to such a CPU that sleeps `interval` in a
loop: each wake-up is a timer that makes the vCPU exit, and a pending completion is delivered
then. Measured there (400 synced 500-byte appends/s, another process spinning on the interrupt
CPU): p50 9.9 ms without; 1.38 ms with a 500 µs kicker, 0.77 ms with 200 µs; a 200 µs kicker costs
~8 % of a core, a 500 µs one ~3 %. On hardware (or a hypervisor) that delivers interrupts at
once it buys nothing. `optrollup serve --kick-disk-irq [on|off|auto]` (`--kick-disk-irq` alone:
on; default off) and `optrollup devnet --kick-disk-irq [on|off|auto]` (default auto). `auto`
measures first (`delayed_interrupts`, ~1-2 s at start-up): synced appends from another CPU
while a process spins on each interrupt CPU, then again with kickers; kickers start only if
the spinning delays the writes (p50 >= 3 ms) and the kickers at least halve that.

    python -m sequencer.irqkick PARENT_PID CPU INTERVAL_US   # one kicker; dies with PARENT_PID
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sequencer.procs import arm_death_signal, popen

DEFAULT_INTERVAL_US = 500
MIN_INTERVAL_US, MAX_INTERVAL_US = 50, 100_000
_DISK_IRQ_NAMES = ("-req.", "nvme", "ahci", "blk")  # virtio-blk queues ("virtio0-req.0"), NVMe, SATA


def disk_irq_cpus(interrupts: str | None = None) -> list[int]:
    """The CPUs that have taken block-device interrupts, from /proc/interrupts (or its text
    `interrupts`); [] if unreadable or none."""
    if interrupts is None:
        try:
            interrupts = Path("/proc/interrupts").read_text()
        except OSError:
            return []
    lines = interrupts.splitlines()
    if not lines:
        return []
    ncpu = len(lines[0].split())
    out: set[int] = set()
    for line in lines[1:]:
        if not any(k in line for k in _DISK_IRQ_NAMES):
            continue
        for i, n in enumerate(line.split()[1:1 + ncpu]):
            if n.isdigit() and int(n) > 0:
                out.add(i)
    return sorted(out)


def check_interval(interval_us: int) -> int:
    """`interval_us` if within [MIN_INTERVAL_US, MAX_INTERVAL_US], else ValueError."""
    if not MIN_INTERVAL_US <= interval_us <= MAX_INTERVAL_US:
        raise ValueError(f"kick interval {interval_us} µs is outside [{MIN_INTERVAL_US}, {MAX_INTERVAL_US}]")
    return interval_us


def interval_arg(text: str) -> int:
    """An argparse type: a kick interval in whole µs (`check_interval`)."""
    try:
        return check_interval(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def spawn(cpus: list[int], interval_us: int = DEFAULT_INTERVAL_US) -> list[subprocess.Popen]:
    """One kicker process per CPU in `cpus`, each dying with this process. ValueError for an
    interval outside the bounds (`check_interval`) or a CPU this process may not run on."""
    check_interval(interval_us)
    allowed = os.sched_getaffinity(0)
    bad = [c for c in cpus if c not in allowed]
    if bad:
        raise ValueError(f"CPU {bad[0]} is not available to this process (allowed: {sorted(allowed)})")
    return [popen([sys.executable, "-m", "sequencer.irqkick", str(os.getpid()), str(c), str(interval_us)],
                  die_with_parent=False, stdin=subprocess.DEVNULL)  # it arms itself after exec
            for c in cpus]


AUTO_DELAYED_MS = 3.0  # a synced append's p50 this slow with a busy interrupt CPU: delayed


def kick_wanted(spin_p50_ms: float, kick_p50_ms: float) -> bool:
    """`auto`'s decision from the two probes' medians: delayed interrupts, and kickers fix them."""
    return spin_p50_ms >= AUTO_DELAYED_MS and kick_p50_ms <= spin_p50_ms / 2


PROBE_APPENDS, PROBE_RATE = 60, 250  # `auto`'s probe: 60 synced appends at 250/s, twice


def synced_append_ms(directory: str | Path, n: int, rate: float, size: int = 512) -> list[float]:
    """Latencies (ms, in order) of `n` appends of `size` bytes, each followed by fdatasync,
    started `1/rate` s apart on a fixed schedule (as the node's log writer would meet them),
    to a scratch file in `directory` (removed after)."""
    path = Path(directory) / f".synced-append-probe-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lat: list[float] = []
    rec = os.urandom(size)
    try:
        due = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, rec)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t0) * 1e3)
            due += 1 / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return lat


def _p50(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def delayed_interrupts(directory: str | Path, cpus: list[int] | None = None,
                       interval_us: int = DEFAULT_INTERVAL_US) -> tuple[bool, str]:
    """`auto`: (whether kickers on `cpus` (default: the disk's interrupt CPUs this process may
    use) are worth running, why). Probes from this thread pinned to another allowed CPU, with
    a spinning process on each of `cpus`, then with kickers too (`kick_wanted`). Never raises
    for the machine it finds: off Linux, or if the probe cannot write, the answer is no."""
    if sys.platform != "linux":
        return False, "not Linux (no per-CPU interrupt routing to work around)"
    try:
        return _probe(directory, cpus, interval_us)
    except OSError as exc:
        return False, f"the probe failed: {exc}"


def _probe(directory: str | Path, cpus: list[int] | None, interval_us: int) -> tuple[bool, str]:
    allowed = os.sched_getaffinity(0)
    cpus = [c for c in (disk_irq_cpus() if cpus is None else cpus) if c in allowed]
    others = allowed - set(cpus)
    if not cpus:
        return False, "no usable CPU has taken a block-device interrupt (/proc/interrupts)"
    if not others:
        return False, f"no CPU besides the interrupt CPUs {cpus} to probe from"
    spin = "import os,sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"
    spinners = [popen([sys.executable, "-c", spin, str(c)], stdin=subprocess.DEVNULL) for c in cpus]
    kickers: list[subprocess.Popen] = []
    os.sched_setaffinity(0, others)  # this thread only (Linux): probe from a CPU not spun
    try:
        time.sleep(0.1)  # the spinners are running
        spun = _p50(synced_append_ms(directory, PROBE_APPENDS, PROBE_RATE))
        os.sched_setaffinity(0, allowed)  # kickers are spawned from (and checked against) all of them
        kickers = spawn(cpus, interval_us)
        os.sched_setaffinity(0, others)
        time.sleep(0.1)
        kicked = _p50(synced_append_ms(directory, PROBE_APPENDS, PROBE_RATE))
    finally:
        os.sched_setaffinity(0, allowed)
        for p in spinners + kickers:
            p.kill()
            p.wait()
    why = (f"synced appends p50 {spun:.2f} ms with CPU {','.join(map(str, cpus))} busy, "
           f"{kicked:.2f} ms with kickers")
    return kick_wanted(spun, kicked), why


def kick(cpu: int, interval_us: int) -> None:
    """Run on `cpu` only and wake every `interval_us` until killed."""
    os.sched_setaffinity(0, {cpu})
    interval = interval_us / 1e6
    while True:
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        parent, cpu, interval_us = (int(a) for a in args)
    except ValueError:
        print("usage: python -m sequencer.irqkick PARENT_PID CPU INTERVAL_US", file=sys.stderr)
        return 2
    arm_death_signal(parent, signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    kick(cpu, interval_us)
    return 0


if __name__ == "__main__":
    sys.exit(main())
