"""Process settings for CPU inference, applied by the command-line entry points
before Paddle loads; each only when the user has not set it (environment variable
present = the user's choice, kept as is). ``PADDLE_MMSR_TUNING=0`` applies none.

- threads: one per physical core the process may run on (a second hyper-thread
  shares the core's FMA units and only adds contention);
- ``KMP_BLOCKTIME`` (Intel OpenMP, used by oneDNN here): how long idle worker
  threads spin before sleeping; ``BLOCKTIME`` ms, see benchmarks/results/speed.md;
- glibc malloc: buffers of tiles (MBs each) are kept in the heap instead of being
  mmapped and unmapped for every tile (``mallopt``; skipped if any ``MALLOC_*``
  variable is set, and where glibc is not the C library).
"""
from __future__ import annotations

import os
from pathlib import Path

BLOCKTIME = "1"                 # ms; measured against Intel OpenMP's default 200
MMAP_THRESHOLD = 32 << 20       # glibc's maximum for M_MMAP_THRESHOLD (64-bit)
TRIM_THRESHOLD = 256 << 20      # free heap kept before it is returned to the system


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (Linux topology files);
    the number of usable CPUs where the topology is not readable."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for c in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add((topo.joinpath("physical_package_id").read_text().strip(),
                       topo.joinpath("core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def _malloc_settings() -> bool:
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
        return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)
                    and libc.mallopt(m_trim_threshold, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False


def tune_process() -> dict:
    """Apply the settings the user has not made; returns what was set. Call before
    Paddle is imported (OpenMP reads its variables when it starts)."""
    if os.environ.get("PADDLE_MMSR_TUNING") == "0":
        return {}
    done = {}
    if "KMP_BLOCKTIME" not in os.environ:
        os.environ["KMP_BLOCKTIME"] = done["KMP_BLOCKTIME"] = BLOCKTIME
    if _malloc_settings():
        done["malloc"] = f"mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim {TRIM_THRESHOLD >> 20} MiB"
    return done
