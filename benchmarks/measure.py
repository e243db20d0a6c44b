"""Shared by the benchmark scripts: time one command in a fresh process and read its peak RSS."""

import os
import subprocess
import sys
import threading
import time


def timed(cmd, env) -> tuple[float, int]:
    """Wall time in seconds and the command's peak RSS in KB (measured by a small wrapper process,
    whose only child is the command)."""
    seconds, rss, _ = timed_cpu(cmd, env)
    return seconds, rss


def timed_cpu(cmd, env) -> tuple[float, int, float]:
    """As `timed`, and the CPU seconds (user + system) of the command and every process it waited
    for (an import's writer and time-order processes)."""
    wrapper = [sys.executable, "-c", (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(time.perf_counter() - t, u.ru_maxrss, code, u.ru_utime + u.ru_stime)\n"
    ), *cmd]
    out = subprocess.run(wrapper, env=env, capture_output=True, text=True, check=True).stdout.split()
    if out[2] != "0":
        sys.exit(f"{cmd} exited {out[2]}")
    return float(out[0]), int(out[1]), float(out[3])


def tree_peak_rss(pid: int, stop) -> int:
    """Sampled every 20 ms until stop() is true: the peak of the summed RSS (KB) of the descendants
    of `pid` (an import runs a writer process beside it). Linux /proc only; 0 elsewhere."""

    def rss(p):
        try:
            with open(f"/proc/{p}/status") as handle:
                return next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0)
        except OSError:
            return 0

    peak = 0
    while not stop():
        todo, total = _children(pid), 0
        while todo:
            p = todo.pop()
            total += rss(p)
            todo += _children(p)
        peak = max(peak, total)
        time.sleep(0.02)
    return peak


def timed_tree(cmd, env) -> tuple[float, int, int, float]:
    """Wall time, the peak RSS of the largest single process (KB, as `timed`), the sampled peak
    of all its processes together (KB) and their CPU seconds (as `timed_cpu`)."""
    result = {}
    done = threading.Event()

    def run():
        result["value"] = timed_cpu(cmd, env)
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    while not done.is_set() and "wrapper" not in result:
        time.sleep(0.005)  # the wrapper `timed` starts is our only child; the command runs under it
        kids = _children(os.getpid())
        if kids:
            result["wrapper"] = kids[0]
    total = tree_peak_rss(result["wrapper"], done.is_set) if "wrapper" in result else 0
    worker.join()
    seconds, largest, cpu = result["value"]
    return seconds, largest, total, cpu


def _children(pid: int) -> list[int]:
    """The pids of a process's children (all its threads'), from /proc; [] elsewhere."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    except OSError:
        pass
    return found
