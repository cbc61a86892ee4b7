#!/usr/bin/env python3
"""Startup benchmark: a plain script, honcho, foreman and `berth up` on the same stack.

The stack is two tiny Python HTTP services (`service.py PORT`, a http.server that answers
200 on every GET, run by this script's own interpreter by its absolute path, so no pyenv
shim adds to any tool), on two free ports chosen at the start and used by every tool.
Each tool starts the same two commands; "ready" is both ports answering `GET /` with a
2xx:

  plain    this script spawns the two processes itself (subprocess.Popen, each in a
           session of its own, output to a file) and polls both ports every 1 ms until
           both answer: the baseline (1.00x)
  honcho   `honcho -f Procfile start` (from PyPI), timed from its spawn until both ports
           answer (polled by this script every 1 ms); then SIGTERM to its process group
  foreman  `foreman start -f Procfile` (Debian's ruby-foreman), timed the same way
  berth    `berth -C DIR up --strict-ports` on a berth.toml with the two services
           (`ready = { http = "/" }`), timed from its spawn until it exits 0 (berth waits
           for readiness itself); both ports are then checked to answer, and `berth down`
           (not in the figure) stops them

The four run interleaved: each round runs every tool once, in an order rotated by one
each round; the first round is a warm-up and is not counted. Before each run the script
waits until both ports are free again and no process of the previous run is left. It
prints each tool's median, min and max ready time and the ratio of its median to the
plain script's, then the verdict on the target: berth within 1.10x of the plain script
and ahead of honcho, in the same run.

Usage:
    cargo build --release --workspace && python3 bench/startup.py
    python3 bench/startup.py [--rounds 9] [--berth target/release/berth] [--no-install]
                             [--keep-temp]

honcho is installed with `python3 -m pip install --quiet honcho` (for the interpreter
running this script) and foreman with `apt-get install -y ruby-foreman` (as root) when
missing, unless --no-install is given. Everything runs under one temporary directory
with its own BERTH_HOME, so the user's ledger is never touched; only 127.0.0.1 is
contacted. Whatever happens (errors, Ctrl-C, SIGTERM), every process group started is
killed, the berth instance is brought down (`down --release`), any process left under
the temporary directory is killed and the directory removed.

Exit status: 0 when the benchmark ran (even if the target is missed), 1 on an error
during the runs, 2 on a setup problem (berth binary, honcho or foreman missing),
130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import sysconfig
import time
import traceback
from pathlib import Path

from common import BenchBase, BenchError, drive, processes_under, reap_all_zombies

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BERTH = REPO / "target" / "release" / "berth"
PYTHON = sys.executable  # the same interpreter runs the services under every tool

TOOLS = ("plain", "honcho", "foreman", "berth")
TARGET_RATIO = 1.10
READY_TIMEOUT = 30.0  # seconds for a tool to bring both services up
STOP_TIMEOUT = 15.0  # seconds for a tool's processes to go and the ports to be free
POLL_INTERVAL = 0.001

SERVICE_PY = '''\
"""A minimal HTTP service for bench/startup.py: 200 "ok" on every GET."""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\\n")

    def log_message(self, *arguments):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


# --------------------------------------------------------------------------- ports


def http_ok(port: int, timeout: float = 2.0) -> bool:
    """Whether 127.0.0.1:port answers `GET /` with a 2xx. A raw socket: connect, one
    request line, read the answer to its end (the server closes after HTTP/1.0), then
    close with a reset, so that neither side keeps a TIME_WAIT socket on the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if sock.connect_ex(("127.0.0.1", port)) != 0:
            return False
        sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while len(answer) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        status = answer.split(b"\r\n", 1)[0].split()
        return len(status) >= 2 and status[0].startswith(b"HTTP/") and status[1][:1] == b"2"
    except OSError:
        return False
    finally:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()


def port_free(port: int) -> bool:
    """Whether `port` can be bound on 127.0.0.1, 0.0.0.0 and [::] (with SO_REUSEADDR, as
    the services and berth's own port check bind)."""
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0"),
                            (socket.AF_INET6, "::")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 on this machine
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
        except OSError:
            return False
        finally:
            sock.close()
    return True


def pick_ports(count: int) -> list[int]:
    """`count` distinct random ports in 20000..(the start of the kernel's ephemeral range),
    each free on 127.0.0.1, 0.0.0.0 and [::]. Not port 0's choice: that lies in the
    ephemeral range, where an outgoing connection (this script's polling included) could
    take the port as its source port while no service holds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 20000 + 10 * count)
    ports: list[int] = []
    for _ in range(1000):
        port = random.randrange(20000, low)
        if port not in ports and port_free(port) and not http_ok(port, timeout=0.2):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise BenchError(f"found no {count} free ports in 20000..{low - 1}")


# --------------------------------------------------------------------------- tools


def honcho_argv() -> list[str] | None:
    """The honcho console script beside this interpreter (not a pyenv shim), else
    `python -m honcho`, when honcho is importable; else None."""
    probe = subprocess.run([PYTHON, "-c", "import honcho"], capture_output=True)
    if probe.returncode != 0:
        return None
    script = Path(sysconfig.get_path("scripts")) / "honcho"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [PYTHON, "-m", "honcho"]


def foreman_argv() -> list[str] | None:
    for candidate in ("/usr/bin/foreman", shutil.which("foreman")):
        if candidate and os.access(candidate, os.X_OK):
            return [candidate]
    return None


def install_honcho() -> None:
    print(f"installing honcho from PyPI: {PYTHON} -m pip install --quiet honcho", flush=True)
    result = subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "honcho"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)


def install_foreman() -> None:
    if os.geteuid() != 0:
        print("foreman is missing and this is not root: cannot apt-get install ruby-foreman",
              file=sys.stderr)
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "ruby-foreman"]
    print(f"installing foreman from Debian: {' '.join(install)}", flush=True)
    result = subprocess.run(install, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        print("  failed; running apt-get update and trying again", flush=True)
        subprocess.run(["apt-get", "update", "-q"], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
        result = subprocess.run(install, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)


def version_of(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"? ({error})"
    return (result.stdout.strip() or result.stderr.strip()).splitlines()[0] if result.returncode == 0 else "?"


# --------------------------------------------------------------------------- the bench


class Bench(BenchBase):
    def __init__(self, args: argparse.Namespace, berth: Path, honcho: list[str], foreman: list[str]) -> None:
        super().__init__("berth-startup-", args.keep_temp)
        self.rounds = args.rounds
        self.berth_binary = berth
        self.honcho = honcho
        self.foreman = foreman
        self.project = self.root / "project"
        self.home = self.root / "berth-home"
        self.logs = self.root / "logs"
        self.ports: list[int] = []
        self.times: dict[str, list[float]] = {tool: [] for tool in TOOLS}
        self.berth_down_times: list[float] = []
        self.children: list[subprocess.Popen] = []  # every process group started, not waited yet
        self.berth_used = False
        self.completed = False

    # ---------------------------------------------------------------- setup

    def write_project(self) -> None:
        self.project.mkdir()
        self.logs.mkdir()
        self.home.mkdir()
        service = self.project / "service.py"
        service.write_text(SERVICE_PY)
        self.commands = [[PYTHON, str(service), str(port)] for port in self.ports]
        (self.project / "Procfile").write_text(
            "".join(f"web{index}: {' '.join(argv)}\n" for index, argv in enumerate(self.commands, 1)))
        services = []
        for index, port in enumerate(self.ports, 1):
            services.append(f'[services.web{index}]\n'
                            f'command = "{PYTHON} {service} {{{{ port.web{index} }}}}"\n'
                            f'port = {port}\n'
                            f'ready = {{ http = "/" }}\n')
        (self.project / "berth.toml").write_text('[project]\nname = "startup"\n\n' + "\n".join(services))

    def berth_env(self) -> dict[str, str]:
        return {**self.base_env, "BERTH_HOME": str(self.home)}

    # ---------------------------------------------------------------- process groups

    def spawn(self, argv: list[str], log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.logs / log_name, "ab") as log:
            child = subprocess.Popen(argv, cwd=self.project, env=env or self.base_env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        self.children.append(child)
        return child

    def stop(self, child: subprocess.Popen, first: signal.Signals = signal.SIGTERM,
             grace: float = STOP_TIMEOUT) -> None:
        """Signals the child's process group, waits for the child, SIGKILLs the group if it
        is too slow (or anything of it outlives the child), forgets the child."""
        try:
            os.killpg(child.pid, first)
        except ProcessLookupError:
            pass
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.notes.append(f"pid {child.pid} ({child.args[0]}) needed SIGKILL")
        try:
            os.killpg(child.pid, signal.SIGKILL)  # whatever is left in its group
        except (ProcessLookupError, PermissionError):
            pass
        if child.poll() is None:
            child.kill()
        child.wait()
        self.children.remove(child)

    def wait_idle(self, what: str) -> None:
        """Waits until both ports are free and no process is left under the temp dir."""
        reap_all_zombies()  # only called when no Popen is outstanding
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            busy = [port for port in self.ports if not port_free(port)]
            left = processes_under(self.root)
            if not busy and not left:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"after {what}: ports still taken {busy}, processes left"
                                 f" {[(pid, cmd[:120]) for pid, cmd in left]}")
            time.sleep(0.01)
            reap_all_zombies()

    def log_tail(self, log_name: str) -> str:
        try:
            return (self.logs / log_name).read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def poll_ready(self, started: float, watched: list[subprocess.Popen], label: str) -> float:
        """Polls both ports every 1 ms until both answer HTTP 2xx; ms since `started`."""
        pending = list(self.ports)
        deadline = started + READY_TIMEOUT
        while True:
            pending = [port for port in pending if not http_ok(port)]
            if not pending:
                return (time.perf_counter() - started) * 1000
            for child in watched:
                if child.poll() is not None:
                    raise BenchError(f"{label}: {child.args[0]} exited with {child.returncode} before"
                                     f" ports {pending} answered\n{self.log_tail(label + '.log')}")
            if time.perf_counter() > deadline:
                raise BenchError(f"{label}: ports {pending} did not answer within {READY_TIMEOUT:.0f} s\n"
                                 f"{self.log_tail(label + '.log')}")
            time.sleep(POLL_INTERVAL)

    # ---------------------------------------------------------------- the four tools

    def run_plain(self) -> float:
        started = time.perf_counter()
        children = [self.spawn(argv, "plain.log") for argv in self.commands]
        try:
            return self.poll_ready(started, children, "plain")
        finally:
            for child in children:
                self.stop(child)

    def run_procfile_tool(self, label: str, argv: list[str]) -> float:
        started = time.perf_counter()
        child = self.spawn(argv, f"{label}.log")
        try:
            return self.poll_ready(started, [child], label)
        finally:
            self.stop(child)

    def run_honcho(self) -> float:
        return self.run_procfile_tool("honcho", [*self.honcho, "-f", str(self.project / "Procfile"), "start"])

    def run_foreman(self) -> float:
        return self.run_procfile_tool("foreman", [*self.foreman, "start", "-f", str(self.project / "Procfile")])

    def berth_command(self, *arguments: str) -> float:
        argv = [str(self.berth_binary), "-C", str(self.project), *arguments]
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=self.berth_env(), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        self.children.append(child)
        try:
            out, err = child.communicate(timeout=READY_TIMEOUT + 30)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
            self.children.remove(child)
            raise BenchError(f"`berth {' '.join(arguments)}` timed out\n{err.strip()[-1500:]}")
        elapsed = (time.perf_counter() - started) * 1000
        self.children.remove(child)  # (still listed if interrupted: the cleanup stops it)
        if child.returncode != 0:
            raise BenchError(f"`berth {' '.join(arguments)}` exited {child.returncode}\n"
                             f"stdout: {out.strip()[-1500:]}\nstderr: {err.strip()[-1500:]}")
        return elapsed

    def run_berth(self) -> float:
        self.berth_used = True
        elapsed = self.berth_command("up", "--strict-ports")
        try:
            silent = [port for port in self.ports if not http_ok(port)]
            if silent:
                raise BenchError(f"berth up exited 0 but ports {silent} do not answer HTTP 2xx")
        finally:
            self.berth_down_times.append(self.berth_command("down"))
        return elapsed

    # ---------------------------------------------------------------- driver

    def run(self) -> None:
        try:
            self.ports = pick_ports(2)
            self.write_project()
            print(f"berth startup benchmark: {self.berth_binary} ({version_of([str(self.berth_binary), '--version'])})")
            print(f"honcho: {' '.join(self.honcho)} ({version_of([*self.honcho, 'version'])});"
                  f" foreman: {' '.join(self.foreman)} ({version_of([*self.foreman, 'version'])})")
            print(f"services: {PYTHON} service.py PORT on 127.0.0.1:{self.ports[0]} and"
                  f" 127.0.0.1:{self.ports[1]}; ready = both answer GET / with 2xx")
            print(f"rounds: {self.rounds} (+1 warm-up), order rotated each round; cpus: {os.cpu_count()};"
                  f" load: {os.getloadavg()[0]:.2f}; temp: {self.root}", flush=True)
            runners = {"plain": self.run_plain, "honcho": self.run_honcho,
                       "foreman": self.run_foreman, "berth": self.run_berth}
            for round_number in range(self.rounds + 1):
                shift = round_number % len(TOOLS)
                order = TOOLS[shift:] + TOOLS[:shift]
                figures = []
                for tool in order:
                    self.wait_idle("the previous run")
                    elapsed = runners[tool]()
                    if round_number > 0:
                        self.times[tool].append(elapsed)
                    figures.append(f"{tool} {elapsed:7.1f}")
                self.wait_idle(f"round {round_number}")
                label = "warm-up" if round_number == 0 else f"round {round_number:>2}"
                print(f"  {label:<8}  " + "   ".join(figures) + " ms"
                      + f"   (berth down {self.berth_down_times[-1]:.0f} ms, not counted)", flush=True)
            self.completed = True
        except BenchError as error:
            self.errors.append(str(error))
            print(f"ERROR: {error}", flush=True)
        except Exception as error:  # noqa: BLE001 - report it, then the cleanup runs
            self.errors.append(f"{type(error).__name__}: {error}")
            traceback.print_exc()

    def summary(self) -> None:
        if not all(self.times[tool] for tool in TOOLS):
            print("\nno complete round: no figures")
            for error in self.errors:
                print(f"error: {error.splitlines()[0]}")
            return
        medians = {tool: statistics.median(values) for tool, values in self.times.items()}
        rounds = len(self.times["plain"])
        print(f"\nready time over {rounds} round(s) (ms; ratio = median / plain's median)")
        print(f"  {'tool':<8} {'median':>8} {'min':>8} {'max':>8}  ratio")
        for tool in TOOLS:
            values = self.times[tool]
            print(f"  {tool:<8} {medians[tool]:8.1f} {min(values):8.1f} {max(values):8.1f}"
                  f"  {medians[tool] / medians['plain']:.2f}x")
        print(f"  (berth down, not counted: median {statistics.median(self.berth_down_times):.1f} ms)")
        ratio = medians["berth"] / medians["plain"]
        verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
        ahead = "yes" if medians["berth"] < medians["honcho"] else "no"
        if not self.completed:
            print("  (incomplete: the run stopped early)")
        print(f"berth: {ratio:.2f}x plain (target <= {TARGET_RATIO:.2f}x): {verdict}; ahead of honcho: {ahead}")
        for error in self.errors:
            print(f"error: {error.splitlines()[0]}")

    def cleanup(self) -> None:
        print("\ncleanup:", flush=True)
        # 1. Every process group still running: SIGTERM, then SIGKILL.
        for child in list(self.children):
            self.stop(child, grace=5)
        # 2. The berth instance, if berth ever ran (its leases live in our BERTH_HOME).
        if self.berth_used:
            try:
                result = subprocess.run([str(self.berth_binary), "-C", str(self.project), "down", "--release"],
                                        env=self.berth_env(), stdin=subprocess.DEVNULL,
                                        capture_output=True, text=True, timeout=60)
                print(f"  berth down --release: exit {result.returncode}"
                      + (f" {result.stderr.strip()[-300:]}" if result.returncode else ""), flush=True)
            except (OSError, subprocess.TimeoutExpired) as error:
                print(f"  berth down --release failed: {error}")
        # 3. Anything left under the temp dir (found by cwd or command line), reaped, and
        #    the temp dir removed.
        self.cleanup_processes_and_temp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="counted rounds (default 9; plus one warm-up)")
    parser.add_argument("--berth", type=Path, default=DEFAULT_BERTH, help=f"berth binary (default {DEFAULT_BERTH})")
    parser.add_argument("--no-install", action="store_true",
                        help="do not install honcho or foreman; exit 2 if either is missing")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir for inspection")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    berth = args.berth.resolve()
    if not (berth.is_file() and os.access(berth, os.X_OK)):
        print(f"no berth binary at {berth}\nbuild first: cd {REPO} && cargo build --release --workspace",
              file=sys.stderr)
        return 2

    honcho, foreman = honcho_argv(), foreman_argv()
    if not args.no_install:
        if honcho is None:
            install_honcho()
            honcho = honcho_argv()
        if foreman is None:
            install_foreman()
            foreman = foreman_argv()
    missing = [name for name, argv in (("honcho (pip install honcho)", honcho),
                                       ("foreman (apt-get install ruby-foreman)", foreman)) if argv is None]
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    return drive(lambda: Bench(args, berth, honcho, foreman))


if __name__ == "__main__":
    sys.exit(main())
