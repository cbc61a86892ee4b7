#!/usr/bin/env python3
"""Compose benchmark for the `berth` CLI: `berth up` against plain Compose.

For each Compose tool installed (v2 `docker compose`, v1 `docker-compose`; berth is told
which one through BERTH_COMPOSE), in the same run:

  (a) baseline: `<tool> -p <unique> -f compose.yml up -d`, then poll every published
      host port of examples/compose-shop/compose.yml on 127.0.0.1 every 5 ms (a TCP
      connect, then GET /health answered 200, since both containers serve HTTP) until
      all answer. Timed from the start of `up -d` to the last answer. `down -v` after,
      not timed.
  (b) `berth -C <copy> up` (BERTH_HOME in a temp dir), timed until it returns: berth
      returns only once every service is ready (the container's healthcheck where one
      is defined, else the published port answering). `berth down --volumes --release`
      after, not timed.
      Baseline and berth runs alternate; per-run figures, medians and the ratio
      median(berth) / median(baseline) (target <= 1.25) are printed per tool.
  (c) `berth status` and `berth status --json` on a running compose instance: median
      of 20 runs each (target <= 150 ms).

Fairness: the example's berth.toml adds process services (the shop API and worker)
that plain Compose would not start, so berth runs on a compose-only copy: only
compose.yml is copied into the temp dir, without berth.toml. Both sides then start the
same two containers on the same host ports (the script checks berth kept the base
ports; it makes sure each side's containers are gone, and the ports free, before the
other side runs). Note the difference in what "ready" means: the baseline stops at the
first 200 from /health through the published port, while berth waits for Docker to
report the `stock` container healthy, which can only happen at the container's first
healthcheck (`interval` after it started; Docker 20.10 has no `start_interval`). The
figures therefore also show, per run and side, when Docker first reported `stock`
healthy (read from the container's health log after the timing): on the baseline side
that is the floor for anything that honours the healthcheck; on berth's side, its
distance to berth's return is berth's detection latency, and its distance to the
baseline's is berth's start-up work (resolving the file with `<tool> config`, the
ledger, the supervisor). `--health-interval 100ms` rewrites the healthcheck interval
in the copy (both sides use that copy) to see berth's own overhead with a small floor.

Usage:
    cargo build --release --workspace
    examples/compose-shop/build-image.sh      # the example's image, built locally
    python3 bench/compose.py [--runs N] [--status-runs M] [--health-interval D] [--keep-temp]

Everything runs under one fresh temporary directory. Whatever happens (errors, Ctrl-C,
SIGTERM), every berth instance started is brought down with `down --volumes --release`,
every baseline project with `<tool> down -v`, then any container, volume or network
still carrying one of this run's project names or temp roots is removed, any process
left under the temp dir is killed, and the temp dir is removed. Images are never
removed. Other Compose projects on the engine are never touched.

Exit status: 0 when every section ran (even if targets are missed), 1 when a section
hit an error, 2 on a setup problem (binary, engine or image missing), 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import BenchBase, BenchError, drive, ms, percentile, port_accepts, reap_all_zombies
from common import fmt_ms as common_fmt_ms

REPO = Path(__file__).resolve().parent.parent
BERTH = REPO / "target" / "release" / "berth"
EXAMPLE = REPO / "examples" / "compose-shop"
COMPOSE_FILE = EXAMPLE / "compose.yml"
IMAGE = "berth-example-busybox:1"

# The host ports compose.yml publishes, by service (container port 80 each). Checked
# against what berth plans for the compose-only copy before any timing.
PUBLISHED = {"stock": 4210, "assets": 4280}
HEALTHCHECKED = "stock"  # the service whose Docker healthcheck berth waits for

POLL_INTERVAL = 0.005  # seconds between baseline polling rounds
CONNECT_TIMEOUT = 0.5  # seconds for one TCP connect to a published port
READY_TIMEOUT = 60.0  # seconds for a baseline stack to answer
COMMAND_TIMEOUT = 120.0  # seconds for any single command

TOOLS = {"v2": ["docker", "compose"], "v1": ["docker-compose"]}


# --------------------------------------------------------------------------- helpers


def fmt_ms(value: float) -> str:
    return common_fmt_ms(value, width=8, decimals=1)


def docker_time_to_unix(text: str) -> float:
    """`2026-11-22T15:29:10.59378427Z` (nanoseconds, UTC) -> Unix seconds (float)."""
    text = text.strip().replace("Z", "")
    if "." in text:
        whole, fraction = text.split(".", 1)
        fraction = "".join(ch for ch in fraction if ch.isdigit())[:6].ljust(6, "0")
        text = f"{whole}.{fraction}"
    moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def health_ok(port: int) -> bool:
    """TCP connect, then GET /health answered 200 (Docker's proxy accepts the connection
    before anything listens in the container, then closes it: that is not an answer)."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            return response.status == 200
        finally:
            connection.close()
    except (OSError, http.client.HTTPException):
        return False


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def docker_lines(*arguments: str) -> list[str]:
    result = run(["docker", *arguments], timeout=60)
    if result.returncode != 0:
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def tool_available(program: list[str]) -> tuple[bool, str]:
    if shutil.which(program[0]) is None:
        return False, f"{program[0]} not on PATH"
    try:
        result = run([*program, "version"], timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    text = (result.stdout or result.stderr).strip().splitlines()
    if result.returncode != 0:
        return False, text[-1] if text else f"exit {result.returncode}"
    return True, text[0] if text else "?"


# --------------------------------------------------------------------------- the bench


class Bench(BenchBase):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("berth-compose-bench-", args.keep_temp)
        self.runs = args.runs
        self.status_runs = args.status_runs
        self.health_interval = args.health_interval
        self.tag = f"bcb{os.getpid()}"
        self.base_env.pop("COMPOSE_PROJECT_NAME", None)
        self.base_env.pop("COMPOSE_FILE", None)
        self.base_env.pop("COMPOSE_PROFILES", None)
        self.sequence = 0
        # Baseline projects that may have containers: project -> (tool argv, compose file).
        self.baseline_projects: dict[str, tuple[list[str], Path]] = {}
        self.all_baseline_projects: set[str] = set()
        # berth instances that may be up or hold leases: (home, dir) -> env.
        self.berth_started: dict[tuple[str, str], dict[str, str]] = {}

    # ---------------------------------------------------------------- engine state

    def ensure_ports_free(self, who: str) -> None:
        """Waits (up to 10 s) until no published port of the example accepts."""
        deadline = time.monotonic() + 10
        while True:
            taken = [port for port in PUBLISHED.values() if port_accepts(port, CONNECT_TIMEOUT)]
            if not taken:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"before {who}: port(s) {taken} still accept connections")
            time.sleep(0.05)

    def project_leftovers(self, project: str) -> list[str]:
        """Containers, volumes and networks Compose labelled with `project`."""
        label = f"label=com.docker.compose.project={project}"
        found = [f"container {name}" for name in docker_lines("ps", "-a", "--filter", label, "--format", "{{.Names}}")]
        found += [f"volume {name}" for name in docker_lines("volume", "ls", "-q", "--filter", label)]
        found += [f"network {name}" for name in docker_lines("network", "ls", "--filter", label, "--format", "{{.Name}}")]
        return found

    # ---------------------------------------------------------------- (a) baseline

    def baseline_once(self, tool: list[str], directory: Path) -> tuple[float, float | None, float]:
        """One timed baseline run; returns (ms to all ports answering, ms to Docker first
        reporting the healthchecked container healthy or None, ms of the untimed down)."""
        self.sequence += 1
        project = f"{self.tag}b{self.sequence}"
        compose_file = directory / "compose.yml"
        base = [*tool, "-p", project, "-f", str(compose_file)]
        self.ensure_ports_free("baseline")
        self.baseline_projects[project] = (tool, compose_file)
        self.all_baseline_projects.add(project)
        wall_start = time.time()
        started = time.perf_counter_ns()
        result = run([*base, "up", "-d"], env=self.base_env, cwd=directory)
        if result.returncode != 0:
            raise BenchError(f"`{' '.join(base)} up -d` exited {result.returncode}:\n{result.stderr.strip()[-2000:]}")
        pending = set(PUBLISHED.values())
        deadline = time.monotonic() + READY_TIMEOUT
        while pending:
            pending = {port for port in pending if not (port_accepts(port, CONNECT_TIMEOUT) and health_ok(port))}
            if not pending:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"baseline {project}: port(s) {sorted(pending)} did not answer within {READY_TIMEOUT:.0f} s")
            time.sleep(POLL_INTERVAL)
        elapsed = ms(time.perf_counter_ns() - started)
        healthy = self.first_healthy(f"com.docker.compose.project={project}", wall_start)
        started = time.perf_counter_ns()
        self.baseline_down(project)
        return elapsed, healthy, ms(time.perf_counter_ns() - started)

    def first_healthy(self, label: str, wall_start: float) -> float | None:
        """When Docker first recorded a passing healthcheck of the healthchecked service's
        container (selected by `label`), in ms after `wall_start` (read after the timing,
        from the container's health log)."""
        names = docker_lines("ps", "-a", "--filter", f"label={label}",
                             "--filter", f"label=com.docker.compose.service={HEALTHCHECKED}",
                             "--format", "{{.ID}}")
        if not names:
            return None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            result = run(["docker", "inspect", "--format", "{{json .State.Health}}", names[0]], timeout=30)
            try:
                health = json.loads(result.stdout or "null")
            except ValueError:
                health = None
            for entry in (health or {}).get("Log") or []:
                if entry.get("ExitCode") == 0:
                    return (docker_time_to_unix(entry["End"]) - wall_start) * 1000
            time.sleep(0.1)
        return None

    def baseline_down(self, project: str) -> None:
        tool, compose_file = self.baseline_projects[project]
        result = run([*tool, "-p", project, "-f", str(compose_file), "down", "-v"], env=self.base_env,
                     cwd=compose_file.parent)
        if result.returncode != 0:
            raise BenchError(f"baseline down of {project} exited {result.returncode}:\n{result.stderr.strip()[-1500:]}")
        left = self.project_leftovers(project)
        if left:
            raise BenchError(f"baseline {project}: left after `down -v`: {', '.join(left)}")
        del self.baseline_projects[project]

    # ---------------------------------------------------------------- (b) berth

    def berth_env(self, home: Path, tool: list[str]) -> dict[str, str]:
        env = dict(self.base_env)
        env["BERTH_HOME"] = str(home)
        env["BERTH_COMPOSE"] = shlex.join(tool)
        return env

    def berth(self, env: dict[str, str], directory: Path, *arguments: str,
              check: bool = True) -> tuple[subprocess.CompletedProcess, float]:
        argv = [str(BERTH), "-C", str(directory), *arguments]
        if arguments and arguments[0] == "up":
            self.berth_started[(env["BERTH_HOME"], str(directory))] = env
        started = time.perf_counter_ns()
        result = run(argv, env=env)
        elapsed = ms(time.perf_counter_ns() - started)
        if check and result.returncode != 0:
            raise BenchError(
                f"`berth {' '.join(argv[1:])}` exited {result.returncode}\n"
                f"stdout: {result.stdout.strip()[:2000]}\nstderr: {result.stderr.strip()[:2000]}")
        return result, elapsed

    def berth_down(self, env: dict[str, str], directory: Path) -> float:
        _, elapsed = self.berth(env, directory, "down", "--volumes", "--release")
        self.berth_started.pop((env["BERTH_HOME"], str(directory)), None)
        reap_all_zombies()
        left = self.berth_leftovers(directory)
        if left:
            raise BenchError(f"berth {directory.name}: left after `down --volumes --release`: {', '.join(left)}")
        return elapsed

    def berth_leftovers(self, directory: Path) -> list[str]:
        label = f"label=dev.berth.root={directory}"
        found = [f"container {name}" for name in docker_lines("ps", "-a", "--filter", label, "--format", "{{.Names}}")]
        found += [f"volume {name}" for name in docker_lines("volume", "ls", "-q", "--filter", label)]
        found += [f"network {name}" for name in docker_lines("network", "ls", "--filter", label, "--format", "{{.Name}}")]
        return found

    # ---------------------------------------------------------------- per tool

    def prepare(self, label: str, tool: list[str]) -> tuple[Path, Path, dict[str, str]]:
        """The compose-only copy berth runs on (and the baseline reads), its BERTH_HOME,
        and a warm-up of both sides that also checks berth keeps the base ports."""
        directory = self.root / f"{self.tag}-{label}"
        directory.mkdir()
        shutil.copy2(COMPOSE_FILE, directory / "compose.yml")  # compose.yml only: no berth.toml
        if self.health_interval:
            path = directory / "compose.yml"
            text = path.read_text()
            pattern = re.compile(r"^(\s+interval:\s*)1s\s*$", re.MULTILINE)
            if len(pattern.findall(text)) != 1:
                raise BenchError(f"expected one `interval: 1s` line in {COMPOSE_FILE}")
            path.write_text(pattern.sub(lambda match: match.group(1) + self.health_interval, text))
            print(f"    the copy's healthcheck interval is {self.health_interval} (--health-interval)", flush=True)
        home = self.root / f"home-{label}"
        home.mkdir()
        env = self.berth_env(home, tool)
        self.ensure_ports_free("warm-up")
        result, elapsed = self.berth(env, directory, "up", "--json")
        view = json.loads(result.stdout)
        ports = {service["name"]: sorted(service["ports"].values()) for service in view["services"]}
        expected = {name: [port] for name, port in PUBLISHED.items()}
        self.berth_down(env, directory)
        print(f"    warm-up berth up: {elapsed:.0f} ms; instance `{view['name']}`, offset {view.get('port_offset')},"
              f" ports {ports}", flush=True)
        if ports != expected:
            raise BenchError(f"berth planned {ports}, compose.yml publishes {expected}: the ports are not"
                             " free, the comparison would not be like for like")
        elapsed, _, _ = self.baseline_once(tool, directory)
        print(f"    warm-up baseline: {elapsed:.0f} ms", flush=True)
        return directory, home, env

    def bench_tool(self, label: str, tool: list[str]) -> None:
        directory, home, env = self.prepare(label, tool)
        baseline, healthy, base_down, berth_up, berth_healthy, berth_down = [], [], [], [], [], []

        def shown(value: float | None) -> str:
            return fmt_ms(value) if value is not None else f"{'?':>11}"

        print("    (`healthy`: when Docker first reported `stock` healthy, after that side's start;"
              " downs are not timed into the ratio)", flush=True)
        print(f"    {'run':>3}  {'baseline':>11}  {'healthy':>11}  {'berth up':>11}  {'healthy':>11}"
              f"  {'ratio':>6}  {'base down':>11}  {'berth down':>11}", flush=True)
        for number in range(1, self.runs + 1):
            value, first_healthy, down_ms = self.baseline_once(tool, directory)
            baseline.append(value)
            base_down.append(down_ms)
            if first_healthy is not None:
                healthy.append(first_healthy)
            self.ensure_ports_free("berth up")
            wall_start = time.time()
            _, up = self.berth(env, directory, "up")
            berth_up.append(up)
            ours = self.first_healthy(f"dev.berth.root={directory}", wall_start)
            if ours is not None:
                berth_healthy.append(ours)
            down = self.berth_down(env, directory)
            berth_down.append(down)
            print(f"    {number:>3}  {fmt_ms(value)}  {shown(first_healthy)}  {fmt_ms(up)}  {shown(ours)}"
                  f"  {up / value:5.2f}x  {fmt_ms(down_ms)}  {fmt_ms(down)}", flush=True)
        for name, values in ((f"baseline ({shlex.join(tool)} up -d + 5 ms poll)", baseline),
                             ("  baseline: stock healthy (info)", healthy),
                             ("berth up", berth_up),
                             ("  berth: stock healthy (info)", berth_healthy),
                             (f"{shlex.join(tool)} down -v (info)", base_down),
                             ("berth down --volumes --release (info)", berth_down)):
            if values:
                print(f"    {name:<46} median {fmt_ms(statistics.median(values))}   min {fmt_ms(min(values))}"
                      f"   max {fmt_ms(max(values))}", flush=True)
        ratio = statistics.median(berth_up) / statistics.median(baseline)
        self.record(f"{label}", f"{shlex.join(tool)}: median(berth up) / median(baseline)",
                    f"{ratio:.3f}x", "<= 1.25x", ratio <= 1.25,
                    f"{statistics.median(berth_up):.0f} / {statistics.median(baseline):.0f} ms")
        if healthy:
            floor = statistics.median(healthy)
            self.record(f"{label}", f"{shlex.join(tool)}: median(berth up) / median(baseline stock healthy) (info)",
                        f"{statistics.median(berth_up) / floor:.3f}x", "-", "info",
                        f"{statistics.median(berth_up):.0f} / {floor:.0f} ms")
        if berth_healthy:
            lag = [up - at for up, at in zip(berth_up, berth_healthy)]
            print(f"    berth up returned {statistics.median(lag):.0f} ms (median) after Docker reported stock healthy;"
                  f" stock became healthy {statistics.median(berth_healthy) - statistics.median(healthy or [float('nan')]):.0f} ms"
                  f" later under berth than in the baseline (medians)", flush=True)
        self.bench_status(label, tool, env, directory)

    # ---------------------------------------------------------------- (c) status

    def bench_status(self, label: str, tool: list[str], env: dict[str, str], directory: Path) -> None:
        self.ensure_ports_free("status")
        self.berth(env, directory, "up")
        try:
            self.berth(env, directory, "status")  # warm-up
            plain, as_json = [], []
            for _ in range(self.status_runs):
                result, elapsed = self.berth(env, directory, "status")
                plain.append(elapsed)
                if "running" not in result.stdout:
                    raise BenchError(f"status does not say running:\n{result.stdout}")
                result, elapsed = self.berth(env, directory, "status", "--json")
                as_json.append(elapsed)
                states = {service["name"]: service["state"] for service in json.loads(result.stdout)["services"]}
                if set(states.values()) != {"ready"}:
                    raise BenchError(f"status --json: not every service ready: {states}")
            for name, values in (("berth status", plain), ("berth status --json", as_json)):
                print(f"    {name:<46} median {fmt_ms(statistics.median(values))}"
                      f"   p90 {fmt_ms(percentile(values, 0.9))}   max {fmt_ms(max(values))}", flush=True)
                median = statistics.median(values)
                self.record(f"{label}", f"{shlex.join(tool)}: {name} median of {len(values)}",
                            f"{median:.1f} ms", "<= 150 ms", median <= 150)
        finally:
            self.berth_down(env, directory)

    # ================================================================ driver

    def run(self, tools: dict[str, list[str]]) -> None:
        version = run([str(BERTH), "--version"])
        engine = docker_lines("version", "--format", "{{.Server.Version}}")
        print(f"berth compose benchmark: {BERTH}")
        print(f"version: {version.stdout.strip()}; engine {engine[0] if engine else '?'}; runs: {self.runs};"
              f" status runs: {self.status_runs}; cpus: {os.cpu_count()}; load: {os.getloadavg()[0]:.2f}")
        print(f"temp: {self.root}; subreaper: {'yes' if self.subreaper else 'no'}", flush=True)
        others = docker_lines("ps", "--format", "{{.Names}}")
        if others:
            print(f"note: {len(others)} other container(s) running on the engine during the run", flush=True)
        for label, tool in tools.items():
            self.section(label, f"{shlex.join(tool)}: baseline vs berth up (compose-only copy), then status",
                         self.bench_tool, label, tool)

    def summary(self) -> None:
        print("\nSUMMARY")
        width = max((len(row["title"]) for row in self.results), default=10)
        print(f"  {'tool':<4} {'figure':<{width}}  {'value':>9}  {'target':>9}  {'verdict':<7} detail")
        for row in self.results:
            print(f"  {row['key']:<4} {row['title']:<{width}}  {row['value']:>9}  {row['target']:>9}"
                  f"  {row['verdict']:<7} {row['ratio'] if row['ratio'] != '-' else ''}")
        self.summary_totals()

    def cleanup(self) -> None:
        print("\ncleanup:", flush=True)
        # 1. berth instances: down --volumes --release.
        for (home, directory), env in list(self.berth_started.items()):
            try:
                result = run([str(BERTH), "-C", directory, "down", "--volumes", "--release"], env=env, timeout=120)
                if result.returncode == 0:
                    self.berth_started.pop((home, directory), None)
                else:
                    print(f"  berth down {directory} exited {result.returncode}: {result.stderr.strip()[:300]}")
            except (OSError, subprocess.TimeoutExpired) as error:
                print(f"  berth down {directory}: {error}")
        # 2. baseline projects: <tool> down -v.
        for project, (tool, compose_file) in list(self.baseline_projects.items()):
            try:
                result = run([*tool, "-p", project, "-f", str(compose_file), "down", "-v"], env=self.base_env,
                             cwd=compose_file.parent, timeout=120)
                if result.returncode == 0:
                    self.baseline_projects.pop(project, None)
                else:
                    print(f"  {shlex.join(tool)} down {project} exited {result.returncode}:"
                          f" {result.stderr.strip()[:300]}")
            except (OSError, subprocess.TimeoutExpired) as error:
                print(f"  down {project}: {error}")
        reap_all_zombies()
        # 3. Sweep the engine for anything of this run still there, by label and name.
        removed = []
        selectors = [f"label=com.docker.compose.project={project}" for project in sorted(self.all_baseline_projects)]
        selectors += [f"label=dev.berth.root={directory}" for directory in sorted(
            str(path) for path in self.root.iterdir() if path.name.startswith(self.tag))] if self.root.exists() else []
        for selector in selectors:
            for container in docker_lines("ps", "-aq", "--filter", selector):
                run(["docker", "rm", "-f", "-v", container], timeout=60)
                removed.append(f"container {container}")
        for selector in selectors:
            for volume in docker_lines("volume", "ls", "-q", "--filter", selector):
                run(["docker", "volume", "rm", "-f", volume], timeout=60)
                removed.append(f"volume {volume}")
            for network in docker_lines("network", "ls", "-q", "--filter", selector):
                run(["docker", "network", "rm", network], timeout=60)
                removed.append(f"network {network}")
        # Anything named after this run's tag (berth names resources after the instance,
        # which is the copy's directory name, itself starting with the tag).
        for kind, listing in (("container", ["ps", "-a", "--format", "{{.Names}}"]),
                              ("volume", ["volume", "ls", "--format", "{{.Name}}"]),
                              ("network", ["network", "ls", "--format", "{{.Name}}"])):
            for name in docker_lines(*listing):
                if name.startswith(self.tag):
                    command = {"container": ["rm", "-f", "-v"], "volume": ["volume", "rm", "-f"],
                               "network": ["network", "rm"]}[kind]
                    run(["docker", *command, name], timeout=60)
                    removed.append(f"{kind} {name}")
        if removed:
            self.notes.append(f"removed by the final sweep (not by down): {', '.join(removed)}")
        print(f"  engine sweep: {len(removed)} object(s) removed after the downs", flush=True)
        # 4. Processes left under the temp dir (supervisors, log followers), then the temp dir.
        self.cleanup_processes_and_temp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side and tool (default 5)")
    parser.add_argument("--status-runs", type=int, default=20, help="runs of each status command (default 20)")
    parser.add_argument("--health-interval", metavar="DURATION",
                        help="rewrite the copy's healthcheck interval (e.g. 100ms; default: as written, 1s)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir for inspection")
    args = parser.parse_args()
    if args.runs < 1 or args.status_runs < 1:
        parser.error("--runs and --status-runs must be >= 1")
    if args.health_interval is not None and not re.fullmatch(r"[1-9][0-9]*(ms|s)", args.health_interval):
        parser.error("--health-interval takes a duration such as 100ms or 2s")
    if not BERTH.is_file():
        print(f"missing {BERTH}\nbuild first: cd {REPO} && cargo build --release --workspace", file=sys.stderr)
        return 2
    if run(["docker", "version"], timeout=30).returncode != 0:
        print("cannot talk to the Docker engine (`docker version` failed)", file=sys.stderr)
        return 2
    if run(["docker", "image", "inspect", IMAGE], timeout=30).returncode != 0:
        print(f"image {IMAGE} is missing\nbuild it first: {EXAMPLE / 'build-image.sh'}", file=sys.stderr)
        return 2
    tools = {}
    for label, program in TOOLS.items():
        ok, detail = tool_available(program)
        print(f"compose {label}: {shlex.join(program)}: {'found, ' if ok else 'skipped, '}{detail}")
        if ok:
            tools[label] = program
    if not tools:
        print("no Compose tool found (`docker compose` or `docker-compose`)", file=sys.stderr)
        return 2
    return drive(lambda: Bench(args), tools,
                 ignored_at_cleanup=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP))


if __name__ == "__main__":
    sys.exit(main())
