#!/usr/bin/env python3
"""Router benchmark: requests to an nginx instance through `berth router` and directly,
in the same run.

The stack is one nginx (master and two workers, `return 200`), a berth process service
on a free port, brought up with `berth up`; the router is started on a free port
(`berth router start --port 0`). Two figures, each measured direct and through the
router in alternating blocks, so both see the same machine:

  latency     sequential GETs on one keep-alive connection (http.client), --requests
              per side in --blocks blocks; the median per request of each side and the
              router's added median (router - direct)
  throughput  `wrk -t2 -c32 -d{--seconds}s` (Debian's wrk; installed when missing,
              unless --no-install), --runs per side alternating; the median requests/s
              of each side and the ratio router / direct

Usage:
    cargo build --release && python3 bench/router.py
    python3 bench/router.py [--berth target/release/berth] [--requests 4000] [--blocks 8]
                            [--seconds 5] [--runs 3] [--no-install]

Everything runs under a temporary directory with its own BERTH_HOME; only 127.0.0.1 is
contacted. Whatever happens, the router is stopped, the instance removed and the
directory deleted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt_ms  # noqa: E402

NGINX_CONF = """worker_processes 2;
error_log stderr;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path DATA/body;
  proxy_temp_path DATA/proxy;
  fastcgi_temp_path DATA/fastcgi;
  uwsgi_temp_path DATA/uwsgi;
  scgi_temp_path DATA/scgi;
  server {
    listen 127.0.0.1:PORT;
    location / { return 200 "nginx\\n"; }
  }
}
"""

CONFIG = """[services.web]
command = "sed -e s/PORT/$PORT/ -e s#DATA#{{ instance.data }}# nginx.conf.in > {{ instance.data }}/nginx.conf && exec nginx -e stderr -p {{ instance.data }} -c {{ instance.data }}/nginx.conf -g 'daemon off; pid {{ instance.data }}/nginx.pid;'"
shell = true
port = "auto"
ready = { http = "/" }
"""


def berth(exe: str, home: Path, directory: Path, *args: str) -> str:
    result = subprocess.run(
        [exe, "-C", str(directory), *args],
        env={**os.environ, "BERTH_HOME": str(home), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"berth {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


def sequential(port: int, host: str, count: int) -> list[float]:
    """Seconds per GET, `count` GETs on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter_ns()
            connection.request("GET", "/", headers={"Host": host})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{host} on {port}: {response.status}")
            times.append(time.perf_counter_ns() - started)
    finally:
        connection.close()
    return times


def wrk(port: int, host: str, seconds: int) -> float:
    result = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed:\n{result.stdout}{result.stderr}")
    if "Non-2xx" in result.stdout:
        raise RuntimeError(f"wrk saw errors:\n{result.stdout}")
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--berth", default=str(Path("target/release/berth").resolve()))
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-install", action="store_true")
    options = parser.parse_args()
    exe = str(Path(options.berth).resolve())
    if not Path(exe).exists():
        print(f"no berth at {exe}: `cargo build --release` first, or --berth PATH", file=sys.stderr)
        return 2
    if shutil.which("nginx") is None:
        print("nginx is missing: scripts/test-deps installs it", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None and not options.no_install:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    has_wrk = shutil.which("wrk") is not None

    temp = Path(tempfile.mkdtemp(prefix="berth-router-bench-"))
    home = temp / "home"
    project = temp / "bench"
    project.mkdir()
    (project / "berth.toml").write_text(CONFIG)
    (project / "nginx.conf.in").write_text(NGINX_CONF)
    try:
        status = json.loads(berth(exe, home, project, "--json", "up"))
        direct_port = next(iter(status["services"][0]["ports"].values()))
        router = json.loads(berth(exe, home, project, "--json", "router", "start", "--port", "0"))
        router_port = router["port"]
        name = f"web.{status['name']}.localhost:{router_port}"
        print(f"berth {subprocess.run([exe, '--version'], capture_output=True, text=True).stdout.strip()}")
        print(f"nginx on 127.0.0.1:{direct_port}; router on 127.0.0.1:{router_port} as {name}")

        # Warm-up: connections, the router's caches, nginx's workers.
        sequential(direct_port, "127.0.0.1", 200)
        sequential(router_port, name, 200)
        per_block = max(1, options.requests // options.blocks)
        direct, routed = [], []
        for block in range(options.blocks):
            sides = [(direct, direct_port, "127.0.0.1"), (routed, router_port, name)]
            if block % 2:
                sides.reverse()
            for times, port, host in sides:
                times.extend(sequential(port, host, per_block))
        direct_median = statistics.median(direct) / 1e6
        routed_median = statistics.median(routed) / 1e6
        print(f"\nlatency, {len(direct)} sequential keep-alive GETs per side (median per request):")
        print(f"  direct  {fmt_ms(direct_median, decimals=3)}")
        print(f"  router  {fmt_ms(routed_median, decimals=3)}")
        print(f"  added   {fmt_ms(routed_median - direct_median, decimals=3)}"
              f"  ({routed_median / direct_median:.2f}x)")

        if has_wrk:
            direct_rates, routed_rates = [], []
            for run in range(options.runs):
                sides = [(direct_rates, direct_port, "127.0.0.1"), (routed_rates, router_port, name)]
                if run % 2:
                    sides.reverse()
                for rates, port, host in sides:
                    rates.append(wrk(port, host, options.seconds))
            direct_rate = statistics.median(direct_rates)
            routed_rate = statistics.median(routed_rates)
            print(f"\nthroughput, wrk -t2 -c32 -d{options.seconds}s, median of {options.runs} runs per side:")
            print(f"  direct  {direct_rate:10.0f} requests/s")
            print(f"  router  {routed_rate:10.0f} requests/s")
            print(f"  ratio   {routed_rate / direct_rate:.2f} (router / direct)")
        else:
            print("\nthroughput: skipped, wrk is not installed")
        return 0
    finally:
        for args in (("router", "stop"), ("rm", "--yes")):
            try:
                berth(exe, home, project, *args)
            except Exception as error:  # noqa: BLE001 - cleanup goes on
                print(f"cleanup: {error}", file=sys.stderr)
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
