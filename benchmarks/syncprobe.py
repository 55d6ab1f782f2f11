"""The disk's own synced-write latency, for the single-order figures (the "bare ceiling" of a
durable acknowledgement): `rate` appends of 500 bytes per second to a file in `directory`, each
followed by fdatasync, for `seconds`, as the node's log writer does, from a separate process.

    python -m benchmarks.syncprobe DIR [RATE] [SECONDS]   # prints one JSON object

Also names the CPUs that take the block device's interrupts (/proc/interrupts): on the 2-vCPU
Firecracker VM of benchmarks/README.md, a synced write completes 8-10 ms late whenever that CPU
is running anything, whoever issued it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from sequencer.irqkick import disk_irq_cpus, synced_append_ms


def probe(directory: str | Path, rate: int = 400, seconds: float = 3.0) -> dict[str, Any]:
    """Latency (ms) of `rate` synced 500-byte appends per second for `seconds`."""
    lat = sorted(synced_append_ms(directory, max(1, round(rate * seconds)), rate, size=500))
    n = len(lat)
    return {"n": n, "rate": rate, "p50_ms": round(lat[n // 2], 3), "p99_ms": round(lat[int(n * 0.99)], 3),
            "max_ms": round(lat[-1], 3), "over_5ms": sum(x > 5 for x in lat),
            "cpus": sorted(os.sched_getaffinity(0)), "disk_irq_cpus": disk_irq_cpus()}


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(probe(a[0], int(a[1]) if len(a) > 1 else 400, float(a[2]) if len(a) > 2 else 3.0)))
