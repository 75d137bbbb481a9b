"""Measured subprocesses (`benchmark.py --measure NAME`) and the memory sampler that watches them."""
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmark.py"


def tree_memory(proc: psutil.Process) -> tuple:
    """(RSS, PSS, anonymous PSS) in bytes, summed over a process and its children.

    RSS counts pages shared by forked workers once per process (an overestimate) and, like PSS, includes
    the pages of memory-mapped Arrow files that were read (page cache the kernel can drop at any time);
    anonymous PSS is the memory the processes themselves allocated."""
    totals = [0, 0, 0]
    try:
        processes = [proc] + proc.children(recursive=True)
    except psutil.Error:  # a worker ended while being listed: skip this sample
        return tuple(totals)
    for p in processes:
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as f:
                fields = dict(line.split(":", 1) for line in f if line.rstrip().endswith(" kB"))
            for i, key in enumerate(("Rss", "Pss", "Pss_Anon")):
                totals[i] += int(fields[key].split()[0]) * 1024
        except (psutil.Error, OSError, KeyError, ValueError):
            pass
    return tuple(totals)


class MemoryCgroup:
    """A child memory cgroup of this process's own, capped at `limit` bytes (cgroup v2 `memory.max` or v1
    `memory.limit_in_bytes`). The cap counts page cache too, which the kernel reclaims when the cap is
    reached; with no swap, anonymous memory cannot go anywhere, so a run that completes under the cap
    never needed more than the cap. `close()` returns the cgroup's own high-water mark (page cache included)."""

    def __init__(self, limit: int):
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        v1 = [line.split(":", 2)[2] for line in lines if line.split(":")[1] == "memory"]
        if v1:
            parent, files = Path("/sys/fs/cgroup/memory" + v1[0]), ("memory.limit_in_bytes", "memory.max_usage_in_bytes")
        else:
            parent, files = Path("/sys/fs/cgroup" + lines[0].split(":", 2)[2]), ("memory.max", "memory.peak")
        self.path = parent / f"tinystories-bench-{os.getpid()}"
        try:
            self.path.mkdir()
            (self.path / files[0]).write_text(str(limit))
        except OSError as e:
            raise SystemExit(f"error: --memory-cap needs a writable memory cgroup under {parent} ({e}); "
                             "run as root or drop --memory-cap")
        self.peak_file = self.path / files[1]

    def wrap(self, cmd: list) -> list:
        """`cmd` run by a shell that first moves itself into the cgroup, then execs: nothing escapes the cap."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path), *cmd]

    def close(self) -> int:
        peak = int(self.peak_file.read_text())
        self.path.rmdir()
        return peak


def run_measure(name: str, memory_cap: float = 0.0, **options) -> dict:
    cmd = [sys.executable, str(BENCHMARK), "--measure", name]
    for key, value in options.items():
        if value is not None:
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    cgroup = MemoryCgroup(int(memory_cap * 2**30)) if memory_cap else None
    proc = subprocess.Popen(cgroup.wrap(cmd) if cgroup else cmd, stdout=subprocess.PIPE, text=True)
    peak = [0, 0, 0]

    def sample():
        # smaps_rollup walks the page tables: reading it costs CPU, so sample every 0.5 s (runs take minutes).
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak[:] = map(max, peak, tree_memory(ps))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    cgroup_peak = cgroup.close() if cgroup else None
    if proc.returncode:
        killed = " (killed: the memory cap was too small)" if cgroup and proc.returncode == -9 else ""
        raise SystemExit(f"benchmark step {name!r} failed (exit {proc.returncode}){killed}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(peak_rss=peak[0], peak_pss=peak[1], peak_anon=peak[2], cgroup_peak=cgroup_peak,
                  tokens_per_s=result["tokens"] / result["seconds"])
    return result


def fastest(repeats: list) -> dict:
    """The fastest of a row's repeats, with the highest memory peaks seen in any of them."""
    best = dict(min(repeats, key=lambda r: r["seconds"]))
    for key in ("peak_rss", "peak_pss", "peak_anon"):
        best[key] = max(r[key] for r in repeats)
    best["all_seconds"] = [r["seconds"] for r in repeats]
    return best


def gb(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


def machine() -> str:
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                   platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, " \
           f"Python {platform.python_version()}"


