#!/usr/bin/env python3
"""Steady-state benchmark: what running instances cost while nothing happens, and how
fast the commands that only look are.

Five instances, each one Python HTTP service (`python3 -m http.server` on a free port,
`ready = { http = "/" }`), are brought up in their own directories under one temporary
BERTH_HOME. Then, in one run:

  idle      the five supervisors' CPU ticks (utime + stime from /proc/PID/stat, in
            clock ticks of 1/SC_CLK_TCK s) over 20 s of nothing happening; target: at
            most 2 ticks for all five together
  up again  `berth up` of an instance that already runs with the same configuration
            (it only checks and answers), 21 times; target: median at most 5 ms
  status    `berth status` of a running instance, 21 times; target: median at most 5 ms
  baseline  `berth --version` (process start alone), 21 times, interleaved with the two
            above, so each figure is also printed as a ratio to it

Usage:
    cargo build --release --workspace && python3 bench/steady.py [--berth PATH]
        [--idle-seconds 20] [--keep-temp]

Only 127.0.0.1 is contacted. Whatever happens, every instance is brought down
(`down --release`) and the temporary directory removed. Exit status: 0 when the
benchmark ran (even if a target is missed), 1 on an error, 2 without a berth binary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INSTANCES = 5
ROUNDS = 21
IDLE_TARGET_TICKS = 2
COMMAND_TARGET_MS = 5.0


def free_port() -> int:
    """A port the kernel says is free now (bound and released at once, loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Milliseconds from spawn to exit of a command that must succeed."""
    started = time.perf_counter_ns()
    result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = (time.perf_counter_ns() - started) / 1e6
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {result.returncode}: {result.stderr.decode()[-800:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--berth", type=Path, default=REPO / "target" / "release" / "berth")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--keep-temp", action="store_true")
    args = parser.parse_args()
    berth = args.berth.resolve()
    if not os.access(berth, os.X_OK):
        print(f"no berth binary at {berth}; build first: cargo build --release --workspace", file=sys.stderr)
        return 2
    temp = Path(tempfile.mkdtemp(prefix="berth-steady-"))
    env = {**os.environ, "BERTH_HOME": str(temp / "home")}
    projects = []
    try:
        for index in range(INSTANCES):
            project = temp / f"idle{index}"
            project.mkdir()
            (project / "berth.toml").write_text(
                f'[services.web]\ncommand = "{sys.executable} -m http.server --bind 127.0.0.1 {{{{ port.web }}}}"\n'
                f"port = {free_port()}\nready = {{ http = \"/\" }}\n")
            timed([str(berth), "-C", str(project), "up"], env)
            projects.append(project)
        supervisors = []
        for project in projects:
            status = subprocess.run([str(berth), "-C", str(project), "status", "--json"], env=env,
                                    capture_output=True, text=True, check=True)
            supervisors.append(json.loads(status.stdout)["supervisor_pid"])
        print(f"berth steady-state benchmark: {berth}; {INSTANCES} instances, supervisors {supervisors}")

        time.sleep(1.0)  # let the last probes and writes settle
        before = sum(cpu_ticks(pid) for pid in supervisors)
        time.sleep(args.idle_seconds)
        after = sum(cpu_ticks(pid) for pid in supervisors)
        idle = after - before
        verdict = "met" if idle <= IDLE_TARGET_TICKS else "MISSED"
        print(f"idle: {INSTANCES} supervisors used {idle} ticks in {args.idle_seconds:.0f} s "
              f"(1 tick = {1000 / os.sysconf('SC_CLK_TCK'):.0f} ms; target <= {IDLE_TARGET_TICKS}): {verdict}")

        one = str(projects[0])
        figures: dict[str, list[float]] = {"--version": [], "up again": [], "status": []}
        commands = {"--version": [str(berth), "--version"],
                    "up again": [str(berth), "-C", one, "up"],
                    "status": [str(berth), "-C", one, "status"]}
        for _ in range(ROUNDS):
            for name, argv in commands.items():
                figures[name].append(timed(argv, env))
        baseline = statistics.median(figures["--version"])
        print(f"  {'command':<12} {'median':>8} {'min':>8} {'max':>8}  ratio to --version")
        for name, values in figures.items():
            median = statistics.median(values)
            print(f"  {name:<12} {median:8.2f} {min(values):8.2f} {max(values):8.2f}  {median / baseline:.2f}x")
        for name in ("up again", "status"):
            median = statistics.median(figures[name])
            verdict = "met" if median <= COMMAND_TARGET_MS else "MISSED"
            print(f"{name}: median {median:.2f} ms (target <= {COMMAND_TARGET_MS:.0f} ms): {verdict}")
        return 0
    except (OSError, RuntimeError, subprocess.CalledProcessError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for project in projects:
            subprocess.run([str(berth), "-C", str(project), "down", "--release"], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True)
        if args.keep_temp:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
