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
once it buys nothing: it is off unless asked for (`optrollup serve --kick-disk-irq`,
`optrollup devnet --kick-disk-irq`).

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
