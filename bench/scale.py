#!/usr/bin/env python3
"""Scale benchmark for the `berth` CLI: many services in one instance.

In one run, on this machine, for the same N:

  (a) baseline: this script starts N `sleep` processes itself (subprocess.Popen, each in
      a session of its own, output to a file, as berth does), then SIGTERMs them and
      waits for them. Timed: start of all N, stop of all N.
  (b) `berth up` of a berth.toml with N independent `sleep` services (ready once
      started), timed until it returns; then the supervisor's figures, read from /proc:
      bytes it wrote (`wchar`), threads, resident memory, and CPU ticks used while the
      instance sits idle for 5 s. Then `berth down`, timed.
  (c) a dependency chain of M services (each `depends_on` the one before): `berth up`
      and `berth down`, timed, and the supervisor's thread count.

Targets (issue "Safe by construction"): up of 1000 services <= 3 s and <= 10 MB
written; down of a 3000-service chain <= 10 s. The ratios to the baseline show what
berth adds on top of starting and stopping the processes themselves.

Usage: python3 bench/scale.py [--berth target/release/berth] [--services 1000]
       [--chain 3000]
Standard library only. BERTH_HOME is a temp dir; nothing outside it is touched.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def write_config(root: Path, count: int, chain: bool) -> None:
    lines = ['[project]\nname = "scale"\n']
    for index in range(count):
        lines.append(f'[services.s{index}]\ncommand = "sleep 600"\nready = {{ tcp = false }}\n')
        if chain and index > 0:
            lines.append(f'depends_on = ["s{index - 1}"]\n')
    (root / "berth.toml").write_text("".join(lines))


def berth(binary: str, root: Path, home: Path, *args: str, timeout: float = 600) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [binary, "-C", str(root), *args],
        env={**os.environ, "BERTH_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"berth {' '.join(args)} failed ({result.returncode}): {result.stderr.decode()[-2000:]}")
    return elapsed


def supervisor_pid(root: Path) -> int:
    import json

    for state in (root / ".berth").glob("*/instance.json"):
        data = json.loads(state.read_text())
        supervisor = data.get("supervisor") or {}
        if supervisor.get("pid"):
            return int(supervisor["pid"])
    sys.exit("no supervisor recorded in .berth/*/instance.json")


def proc_field(pid: int, file: str, key: str) -> int:
    for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return -1


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def baseline(count: int, scratch: Path) -> tuple[float, float]:
    log = open(scratch / "baseline.log", "ab")
    started = time.monotonic()
    children = [
        subprocess.Popen(["sleep", "600"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        for _ in range(count)
    ]
    up = time.monotonic() - started
    started = time.monotonic()
    for child in children:
        child.send_signal(signal.SIGTERM)
    for child in children:
        child.wait()
    down = time.monotonic() - started
    log.close()
    return up, down


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--berth", default="target/release/berth")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=3000)
    options = parser.parse_args()
    binary = str(Path(options.berth).resolve())

    with tempfile.TemporaryDirectory(prefix="berth-scale-") as scratch_name:
        scratch = Path(scratch_name)
        home = scratch / "home"
        n = options.services
        base_up, base_down = baseline(n, scratch)
        print(f"baseline: {n} sleeps started in {base_up:.3f} s, stopped in {base_down:.3f} s")

        root = scratch / "wide"
        root.mkdir()
        write_config(root, n, chain=False)
        up = berth(binary, root, home, "up")
        pid = supervisor_pid(root)
        written = proc_field(pid, "io", "wchar")
        threads = proc_field(pid, "status", "Threads")
        rss_kib = proc_field(pid, "status", "VmRSS")
        before = cpu_ticks(pid)
        time.sleep(5)
        idle = cpu_ticks(pid) - before
        down = berth(binary, root, home, "down")
        print(
            f"berth, {n} services: up {up:.3f} s ({up / base_up:.1f}x baseline; target <= 3 s), "
            f"supervisor wrote {written / 1e6:.1f} MB (target <= 10 MB), {threads} threads, "
            f"{rss_kib / 1024:.0f} MiB resident, {idle} CPU ticks idle in 5 s ({TICKS}/s); "
            f"down {down:.3f} s ({down / base_down:.1f}x baseline)"
        )
        berth(binary, root, home, "rm", "--yes")

        m = options.chain
        root = scratch / "chain"
        root.mkdir()
        write_config(root, m, chain=True)
        up = berth(binary, root, home, "up", timeout=1200)
        pid = supervisor_pid(root)
        threads = proc_field(pid, "status", "Threads")
        down = berth(binary, root, home, "down", timeout=1200)
        print(
            f"berth, chain of {m}: up {up:.3f} s, {threads} supervisor threads, "
            f"down {down:.3f} s (target <= 10 s)"
        )
        berth(binary, root, home, "rm", "--yes")


if __name__ == "__main__":
    main()
