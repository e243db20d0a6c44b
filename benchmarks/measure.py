"""Shared by the benchmark scripts: time one command in a fresh process and read its peak RSS."""

import subprocess
import sys


def timed(cmd, env) -> tuple[float, int]:
    """Wall time in seconds and the command's peak RSS in KB (measured by a small wrapper process,
    whose only child is the command)."""
    wrapper = [sys.executable, "-c", (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)\n"
    ), *cmd]
    out = subprocess.run(wrapper, env=env, capture_output=True, text=True, check=True).stdout.split()
    if out[2] != "0":
        sys.exit(f"{cmd} exited {out[2]}")
    return float(out[0]), int(out[1])
