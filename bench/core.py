#!/usr/bin/env python3
"""Core performance benchmark for the `berth` CLI.

Measures six targets and prints, for each, the measured value, the target,
PASS/FAIL and (where a baseline applies) a ratio against that baseline:

  1. `up` overhead on the bundled shop example (stock -> api -> worker):
     median(berth up) - median(plain Python spawn + 1 ms port polling)  <= 50 ms
  2. readiness latency: instance.json `ready_at` - the helper's own bind time
     (helper started with --delay-ms 300)                                <= 25 ms
  3. `berth ls` with 500 instances in the ledger (median)                <= 30 ms
     (also `ls --json`; baseline for the ratio: `berth --version`)
  4. `berth status` on a running shop instance (median)                  <= 20 ms
  5. supervisor resident memory (VmRSS) after 2 s up                     <= 8 MiB
  6. 50 concurrent `up`s in 50 directories: all succeed, no port shared
     (by the ledger, `ls --json`, `up --json` or the real listening sockets),
     ledger intact, every service answers GET /health; then 50 concurrent
     `down --release` leave no helper process behind.

Usage:
    cargo build --release --workspace      # builds berth, the shop and the helper
    bench/core.py [--runs N] [--instances M] [--ls-entries K] [--keep-temp]

Everything runs under one fresh temporary directory (with a fresh BERTH_HOME
per section); the default ledger is never touched. Whatever happens, every
instance started is brought down with `berth down --release`, any process
left (found by its working directory or command line under the temporary
directory) is killed, and the temporary directory is removed.

The benchmark makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER),
so the daemonised supervisors are re-parented to it and reaped as soon as
they exit, rather than relying on the machine's init to reap them.

Exit status: 0 when every section ran (even if targets are missed), 1 when a
section hit an error (a berth command failed, a check could not run), 2 on a
usage or setup problem (binaries missing), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import BenchBase, BenchError, drive, fmt_ms, ms, percentile, port_accepts, processes_under

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target" / "release"
BERTH = RELEASE / "berth"
HELPER = RELEASE / "berth-test-helper"
SHOP_BINS = {name: RELEASE / name for name in ("shop-stock", "shop-api", "shop-worker")}
SHOP_EXAMPLE = REPO / "examples" / "shop"

COMMAND_TIMEOUT = 90.0  # seconds for any single berth command


# --------------------------------------------------------------------------- helpers


def rfc3339_to_unix_ms(text: str) -> int:
    """`2026-11-22T14:47:21.123Z` -> integer Unix milliseconds (exact)."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (moment - epoch) // dt.timedelta(milliseconds=1)


def utc_now_seconds() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def reap_pid(pid: int | None) -> None:
    """Reaps one adopted process if it has exited (never touches Popen children)."""
    if not pid:
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def http_health(port: int) -> tuple[bool, str]:
    """GET /health on 127.0.0.1:port (http.client: no proxy settings apply)."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = response.read().decode(errors="replace").strip()
        connection.close()
        return response.status == 200, f"{response.status} {body!r}"
    except OSError as error:
        return False, str(error)


def listening_ports_by_inode() -> dict[int, int]:
    """Socket inode -> port of every TCP socket in LISTEN state (IPv4 and IPv6)."""
    result: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            result[int(fields[9])] = port
    return result


def listening_ports_of(pid: int, inodes: dict[int, int]) -> set[int]:
    ports: set[int] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return ports
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match and int(match.group(1)) in inodes:
            ports.add(inodes[int(match.group(1))])
    return ports


# --------------------------------------------------------------------------- the bench


class Bench(BenchBase):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("berth-bench-", args.keep_temp)
        self.runs = args.runs
        self.instances = args.instances
        self.ls_entries = args.ls_entries
        # (BERTH_HOME, project dir) pairs that may have a running instance or leases.
        self.started: dict[tuple[str, str], None] = {}
        self.supervisor_pids: set[int] = set()
        self.baseline_children: list[subprocess.Popen] = []
        # Concurrent berth commands not waited for yet (section 6).
        self.inflight: list[subprocess.Popen] = []

    # ---------------------------------------------------------------- berth calls

    def env_for(self, home: Path) -> dict[str, str]:
        env = dict(self.base_env)
        env["BERTH_HOME"] = str(home)
        return env

    def berth(self, home: Path, *arguments: str, directory: Path | None = None,
              check: bool = True) -> tuple[subprocess.CompletedProcess, float]:
        """Runs berth; returns the result and its wall time in ms."""
        argv = [str(BERTH)]
        if directory is not None:
            argv += ["-C", str(directory)]
        argv += list(arguments)
        if directory is not None and arguments and arguments[0] == "up":
            self.started[(str(home), str(directory))] = None
        started = time.perf_counter_ns()
        result = subprocess.run(argv, env=self.env_for(home), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        elapsed = ms(time.perf_counter_ns() - started)
        if check and result.returncode != 0:
            raise BenchError(
                f"`{' '.join(argv[1:])}` exited {result.returncode}\n"
                f"stdout: {result.stdout.strip()[:2000]}\nstderr: {result.stderr.strip()[:2000]}")
        return result, elapsed

    def down_release(self, home: Path, directory: Path) -> None:
        self.berth(home, "down", "--release", directory=directory)
        self.started.pop((str(home), str(directory)), None)

    def instance_json(self, directory: Path, name: str) -> dict:
        return json.loads((directory / ".berth" / name / "instance.json").read_text())

    def remember_supervisor(self, directory: Path, name: str) -> int | None:
        try:
            supervisor = self.instance_json(directory, name).get("supervisor") or {}
        except (OSError, ValueError):
            return None
        pid = supervisor.get("pid")
        if pid:
            self.supervisor_pids.add(pid)
        return pid

    def reap_supervisors(self) -> None:
        for pid in list(self.supervisor_pids):
            reap_pid(pid)

    # ---------------------------------------------------------------- project files

    def copy_shop(self, destination: Path) -> Path:
        shutil.copytree(SHOP_EXAMPLE, destination,
                        ignore=shutil.ignore_patterns(".berth", "target"))
        config = destination / "berth.toml"
        text = config.read_text()
        count = text.count("../../target/release/")
        if count != 3:
            raise BenchError(f"expected 3 `../../target/release/` commands in {config}, found {count}")
        config.write_text(text.replace("../../target/release/", f"{RELEASE}/"))
        return destination

    # ================================================================ 1, 4, 5: shop

    def shop_sections(self) -> None:
        home = self.root / "home-shop"
        shop = self.copy_shop(self.root / "shop")
        self.shop_home, self.shop_dir = home, shop

        # Warm-up (page cache, first lease) and the ports berth picks for this machine.
        result, _ = self.berth(home, "up", "--json", directory=shop)
        view = json.loads(result.stdout)
        ports = {service["name"]: service["ports"].get("default") for service in view["services"]}
        self.remember_supervisor(shop, view["name"])
        self.berth(home, "down", directory=shop)
        self.reap_supervisors()
        self.shop_name = view["name"]
        self.shop_ports = ports
        print(f"    instance `{view['name']}` ports: stock={ports['stock']} api={ports['api']}"
              f" (baseline uses the same ports)", flush=True)

        self.section(1, "`up` overhead vs plain spawn + poll (shop: stock -> api -> worker)",
                     self.bench_up_overhead)
        self.section(4, "`berth status` on the running shop instance", self.bench_status)
        self.section(5, "supervisor resident memory (VmRSS) after 2 s up", self.bench_rss)
        # Leave it down and released.
        if (str(home), str(shop)) in self.started:
            self.down_release(home, shop)
            self.reap_supervisors()

    def baseline_once(self, shop: Path) -> float:
        """Starts the three shop processes like berth would, polling every 1 ms; ms."""
        stock_port, api_port = self.shop_ports["stock"], self.shop_ports["api"]
        logs = shop / "baseline-logs"
        logs.mkdir(exist_ok=True)
        env = dict(self.base_env)
        plan = [
            ("stock", [str(SHOP_BINS["shop-stock"]), "--port", str(stock_port)], {}, stock_port),
            ("api", [str(SHOP_BINS["shop-api"]), "--port", str(api_port)],
             {"STOCK_URL": f"http://127.0.0.1:{stock_port}"}, api_port),
            ("worker", [str(SHOP_BINS["shop-worker"])],
             {"API_URL": f"http://127.0.0.1:{api_port}", "WORKER_INTERVAL_MS": "1000"}, None),
        ]
        for _, _, _, port in plan:
            if port is not None and port_accepts(port):
                raise BenchError(f"baseline: port {port} is already in use before the run")
        children: list[subprocess.Popen] = []
        started = time.perf_counter_ns()
        try:
            for name, argv, extra, port in plan:
                with open(logs / f"{name}.log", "ab") as log:
                    child = subprocess.Popen(argv, cwd=shop, env={**env, **extra},
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True)
                children.append(child)
                self.baseline_children.append(child)
                if port is None:
                    continue
                deadline = time.monotonic() + 10
                while not port_accepts(port):
                    if child.poll() is not None:
                        raise BenchError(f"baseline: {name} exited with {child.returncode}")
                    if time.monotonic() > deadline:
                        raise BenchError(f"baseline: {name} did not accept on {port} within 10 s")
                    time.sleep(0.001)
            elapsed = ms(time.perf_counter_ns() - started)
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
            for child in children:
                child.wait()
                self.baseline_children.remove(child)
        return elapsed

    def bench_up_overhead(self) -> None:
        home, shop = self.shop_home, self.shop_dir
        baseline, berth_up, berth_down = [], [], []
        for _ in range(self.runs):
            baseline.append(self.baseline_once(shop))
            result, elapsed = self.berth(home, "up", directory=shop)
            berth_up.append(elapsed)
            self.remember_supervisor(shop, self.shop_name)
            _, elapsed = self.berth(home, "down", directory=shop)
            berth_down.append(elapsed)
            self.reap_supervisors()
        for label, values in (("baseline (Python spawn + 1 ms poll)", baseline),
                              ("berth up", berth_up), ("berth down (info)", berth_down)):
            print(f"    {label:<38} median {fmt_ms(statistics.median(values))}"
                  f"   p90 {fmt_ms(percentile(values, 0.9))}"
                  f"   min {fmt_ms(min(values))}   max {fmt_ms(max(values))}", flush=True)
        overhead = statistics.median(berth_up) - statistics.median(baseline)
        ratio = statistics.median(berth_up) / statistics.median(baseline)
        self.record(1, "up overhead = median(berth up) - median(baseline)",
                    f"{overhead:.2f} ms", "<= 50 ms", overhead <= 50,
                    f"{ratio:.2f}x baseline")

    def bench_status(self) -> None:
        home, shop = self.shop_home, self.shop_dir
        result, _ = self.berth(home, "up", "--json", directory=shop)
        self.shop_up_at = time.monotonic()
        view = json.loads(result.stdout)
        self.remember_supervisor(shop, view["name"])
        if any(service["state"] != "ready" for service in view["services"]):
            raise BenchError(f"shop not ready after up: {result.stdout}")
        status, status_json, version = [], [], []
        self.berth(home, "status", directory=shop)  # warm-up
        for _ in range(self.runs):
            result, elapsed = self.berth(home, "status", directory=shop)
            status.append(elapsed)
            if "running" not in result.stdout:
                raise BenchError(f"status does not say running:\n{result.stdout}")
            _, elapsed = self.berth(home, "status", "--json", directory=shop)
            status_json.append(elapsed)
            _, elapsed = self.berth(home, "--version")
            version.append(elapsed)
        for label, values in (("berth status", status), ("berth status --json (info)", status_json),
                              ("berth --version (process start)", version)):
            print(f"    {label:<38} median {fmt_ms(statistics.median(values))}"
                  f"   p90 {fmt_ms(percentile(values, 0.9))}   max {fmt_ms(max(values))}", flush=True)
        median = statistics.median(status)
        self.record(4, "berth status median", f"{median:.2f} ms", "<= 20 ms", median <= 20,
                    f"{median / statistics.median(version):.2f}x --version")

    def bench_rss(self) -> None:
        shop = self.shop_dir
        if (str(self.shop_home), str(shop)) not in self.started:
            raise BenchError("the shop instance is not running (section 4 failed)")
        wait = 2.0 - (time.monotonic() - self.shop_up_at)
        if wait > 0:
            time.sleep(wait)
        data = self.instance_json(shop, self.shop_name)
        pid = (data.get("supervisor") or {}).get("pid")
        if not pid:
            raise BenchError(f"no supervisor pid in instance.json (state {data.get('state')})")
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError as error:
            raise BenchError(f"supervisor pid {pid} is not running: {error}") from error
        if "__supervise" not in cmdline:
            raise BenchError(f"pid {pid} is not a berth supervisor: {cmdline!r}")
        fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
                  for line in status.splitlines() if ":" in line}
        rss_kib = int(fields["VmRSS"].split()[0])
        hwm_kib = int(fields.get("VmHWM", "0 kB").split()[0])
        print(f"    supervisor pid {pid}, up {time.monotonic() - self.shop_up_at:.1f} s,"
              f" threads {fields.get('Threads')}, VmHWM {hwm_kib / 1024:.2f} MiB,"
              f" RssAnon {fields.get('RssAnon')}, RssFile {fields.get('RssFile')}", flush=True)
        rss_mib = rss_kib / 1024
        self.record(5, "supervisor VmRSS", f"{rss_mib:.2f} MiB", "<= 8 MiB", rss_mib <= 8)

    # ================================================================ 2: readiness

    def bench_readiness(self) -> None:
        home = self.root / "home-ready"
        project = self.root / "readiness"
        project.mkdir()
        ready_file = project / "web.ready"
        (project / "berth.toml").write_text(
            '[project]\nname = "bench"\n\n[services.web]\n'
            f'command = "{HELPER} serve --port {{{{ port.web }}}} --delay-ms 300'
            f' --ready-file {ready_file}"\nport = 5200\n')
        latencies, bind_to_exit = [], []
        for _ in range(self.runs):
            ready_file.unlink(missing_ok=True)
            result, _ = self.berth(home, "up", "--json", directory=project)
            returned_ms = time.time() * 1000
            name = json.loads(result.stdout)["name"]
            data = self.instance_json(project, name)
            self.remember_supervisor(project, name)
            ready_at = data["services"]["web"]["ready_at"]
            if not ready_at:
                raise BenchError("services.web.ready_at is empty after up")
            bound_ms = int(ready_file.read_text().strip())
            latencies.append(rfc3339_to_unix_ms(ready_at) - bound_ms)
            bind_to_exit.append(returned_ms - bound_ms)
            self.berth(home, "down", directory=project)
            self.reap_supervisors()
        self.down_release(home, project)
        self.reap_supervisors()
        print(f"    ready_at - bind       median {statistics.median(latencies):6.1f} ms"
              f"   max {max(latencies):6.1f} ms   all {sorted(latencies)}", flush=True)
        print(f"    up exit - bind (info) median {statistics.median(bind_to_exit):6.1f} ms"
              f"   max {max(bind_to_exit):6.1f} ms", flush=True)
        print("    (both stamps are whole milliseconds, so each value is +/- 1 ms)", flush=True)
        median, worst = statistics.median(latencies), max(latencies)
        self.record(2, "readiness latency median (max)", f"{median:.1f} ms ({worst:.0f} ms)",
                    "<= 25 ms", median <= 25)

    # ================================================================ 3: ls with 500 entries

    def bench_ls(self) -> None:
        home = self.root / "home-ls"
        home.mkdir()
        roots = self.root / "ls-roots"
        instances = []
        started = utc_now_seconds()
        for index in range(self.ls_entries):
            name = f"synthetic-{index:03d}"
            root = roots / f"r{index:03d}"
            # A state dir with a supervisor lock, as an instance that ran once leaves it.
            (root / ".berth" / name).mkdir(parents=True)
            (root / ".berth" / name / "supervisor.lock").touch()
            offset = index * 100
            instances.append({
                "name": name, "project": f"proj-{index % 5}", "root": str(root),
                "index": index // 5, "port_offset": offset,
                "leases": [{"service": service, "port_name": "default", "port": base + offset}
                           for service, base in (("web", 3000), ("api", 3001), ("db", 3002))],
                "created_at": started,
                "started_at": started if index % 2 else None,
            })
        (home / "ledger.json").write_text(json.dumps({"version": 1, "instances": instances}, indent=2))

        result, _ = self.berth(home, "ls", "--json")
        rows = json.loads(result.stdout)
        if len(rows) != self.ls_entries:
            raise BenchError(f"ls --json listed {len(rows)} rows, expected {self.ls_entries}")
        states = collections.Counter(row["state"] for row in rows)
        print(f"    ledger: {self.ls_entries} entries x 3 leases; ls states: {dict(states)}", flush=True)
        result, _ = self.berth(home, "ls")
        if len(result.stdout.splitlines()) != self.ls_entries + 1:
            raise BenchError(f"ls printed {len(result.stdout.splitlines())} lines")
        self.berth(home, "--version")

        plain, as_json, version = [], [], []
        for _ in range(self.runs):
            plain.append(self.berth(home, "ls")[1])
            as_json.append(self.berth(home, "ls", "--json")[1])
            version.append(self.berth(home, "--version")[1])
        for label, values in (("berth ls", plain), ("berth ls --json", as_json),
                              ("berth --version (process start)", version)):
            print(f"    {label:<38} median {fmt_ms(statistics.median(values))}"
                  f"   p90 {fmt_ms(percentile(values, 0.9))}   max {fmt_ms(max(values))}", flush=True)
        base = statistics.median(version)
        for title, values in (("berth ls median", plain), ("berth ls --json median", as_json)):
            median = statistics.median(values)
            self.record(3, f"{title} ({self.ls_entries} instances)", f"{median:.2f} ms", "<= 30 ms",
                        median <= 30, f"{median / base:.2f}x --version")

    # ================================================================ 6: concurrency

    def bench_concurrent(self) -> None:
        count = self.instances
        home = self.root / "home-conc"
        base = self.root / "conc"
        projects = []
        for index in range(count):
            project = base / f"c{index:02d}"
            project.mkdir(parents=True)
            services = []
            for service, port in (("a", 6000), ("b", 6001)):
                services.append(
                    f'[services.{service}]\n'
                    f'command = "{HELPER} serve --port {{{{ port.{service} }}}}'
                    f' --ready-file {project}/{service}.ready"\nport = {port}\n')
            (project / "berth.toml").write_text('[project]\nname = "conc"\n\n' + "\n".join(services))
            projects.append(project)
        env = self.env_for(home)

        # --- 50 `up`s at the same moment
        for project in projects:
            self.started[(str(home), str(project))] = None
        children = []
        started = time.perf_counter_ns()
        for project in projects:
            children.append(subprocess.Popen(
                [str(BERTH), "-C", str(project), "up", "--json"], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        self.inflight.extend(children)
        outputs = []
        for child in children:
            try:
                out, err = child.communicate(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                out, err = child.communicate()
            outputs.append((child.returncode, out, err))
        self.inflight.clear()
        wall_up = ms(time.perf_counter_ns() - started)
        succeeded = sum(1 for code, _, _ in outputs if code == 0)
        print(f"    {count} concurrent `up`: {succeeded} exited 0, wall {wall_up:.0f} ms", flush=True)
        for index, (code, out, err) in enumerate(outputs):
            if code != 0:
                print(f"      c{index:02d} exit {code}: {err.strip()[:400]}", flush=True)

        problems: list[str] = []
        # Ports from the `up --json` outputs.
        up_ports: dict[str, list[int]] = {}
        names: dict[Path, str] = {}
        for project, (code, out, _) in zip(projects, outputs):
            if code != 0:
                continue
            try:
                view = json.loads(out)
            except ValueError:
                problems.append(f"{project.name}: up --json printed no JSON")
                continue
            names[project] = view["name"]
            up_ports[view["name"]] = [port for service in view["services"]
                                      for port in service["ports"].values()]
            self.remember_supervisor(project, view["name"])

        # Ports from `ls --json`.
        result, _ = self.berth(home, "ls", "--json")
        rows = json.loads(result.stdout)
        ls_ports = {row["name"]: row["ports"] for row in rows}
        not_running = [row["name"] for row in rows if row["state"] != "running"]
        if len(rows) != count:
            problems.append(f"ls --json lists {len(rows)} instances, expected {count}")
        if not_running:
            problems.append(f"not running per ls: {not_running}")

        # The ledger file itself.
        ledger_ok = True
        try:
            ledger = json.loads((home / "ledger.json").read_text())
            entries = ledger["instances"]
            ledger_names = [entry["name"] for entry in entries]
            ledger_indexes = [entry["index"] for entry in entries]
            lease_counts = collections.Counter(len(entry["leases"]) for entry in entries)
            if ledger.get("version") != 1 or len(entries) != count:
                ledger_ok = False
                problems.append(f"ledger: version {ledger.get('version')}, {len(entries)} entries")
            if len(set(ledger_names)) != len(ledger_names) or len(set(ledger_indexes)) != len(ledger_indexes):
                ledger_ok = False
                problems.append("ledger: duplicate names or indexes")
            if set(lease_counts) != {2}:
                ledger_ok = False
                problems.append(f"ledger: lease counts per entry {dict(lease_counts)}")
            ledger_ports = {entry["name"]: [lease["port"] for lease in entry["leases"]] for entry in entries}
        except (OSError, ValueError, KeyError, TypeError) as error:
            ledger_ok = False
            ledger_ports = {}
            problems.append(f"ledger.json unreadable: {error}")

        # Real listening sockets of each service process.
        inodes = listening_ports_by_inode()
        real_ports: dict[str, list[int]] = {}
        health_failures = []
        for project, name in names.items():
            data = self.instance_json(project, name)
            ports_here = []
            for service_name, record in data["services"].items():
                pid = (record.get("pid") or {}).get("pid")
                declared = set(record["ports"].values())
                actual = listening_ports_of(pid, inodes) if pid else set()
                if actual != declared:
                    problems.append(f"{name}/{service_name}: pid {pid} listens on {sorted(actual)},"
                                    f" instance.json says {sorted(declared)}")
                ports_here.extend(sorted(actual))
                for port in declared:
                    ok, detail = http_health(port)
                    if not ok:
                        health_failures.append(f"{name}/{service_name}:{port} -> {detail}")
            real_ports[name] = ports_here

        def shared(ports_by_instance: dict[str, list[int]]) -> dict[int, list[str]]:
            owners: dict[int, list[str]] = collections.defaultdict(list)
            for name, ports in ports_by_instance.items():
                for port in ports:
                    owners[port].append(name)
            return {port: names for port, names in owners.items() if len(names) > 1}

        shared_counts = {}
        for label, source in (("ledger", ledger_ports), ("ls --json", ls_ports),
                              ("up --json", up_ports), ("listening", real_ports)):
            duplicates = shared(source)
            shared_counts[label] = len(duplicates)
            total = sum(len(ports) for ports in source.values())
            print(f"    ports via {label:<10}: {total:3d} ports, {len(duplicates)} shared"
                  + (f" {dict(list(duplicates.items())[:5])}" if duplicates else ""), flush=True)
        for name, ports in ledger_ports.items():
            if name in ls_ports and sorted(ls_ports[name]) != sorted(ports):
                problems.append(f"{name}: ls ports {ls_ports[name]} != ledger {ports}")
            if name in real_ports and sorted(real_ports[name]) != sorted(ports):
                problems.append(f"{name}: listening {real_ports[name]} != ledger {ports}")
        all_ports = sorted(port for ports in ledger_ports.values() for port in ports)
        if all_ports:
            offsets = sorted({entry_ports[0] - 6000 for entry_ports in
                              (sorted(p) for p in ledger_ports.values()) if entry_ports})
            print(f"    port range {all_ports[0]}-{all_ports[-1]}, offsets used: {len(offsets)}"
                  f" (max {offsets[-1]})", flush=True)
        print(f"    GET /health: {2 * len(names) - len(health_failures)}/{2 * len(names)} answered 200",
              flush=True)
        for failure in health_failures[:10]:
            print(f"      {failure}", flush=True)

        # --- 50 `down --release` at the same moment
        children = []
        started = time.perf_counter_ns()
        for project in projects:
            children.append(subprocess.Popen(
                [str(BERTH), "-C", str(project), "down", "--release"], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        self.inflight.extend(children)
        down_codes = []
        for project, child in zip(projects, children):
            try:
                _, err = child.communicate(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                _, err = child.communicate()
            down_codes.append(child.returncode)
            if child.returncode == 0:
                self.started.pop((str(home), str(project)), None)
            else:
                print(f"      down {project.name} exit {child.returncode}: {err.strip()[:400]}", flush=True)
        wall_down = ms(time.perf_counter_ns() - started)
        self.inflight.clear()
        self.reap_supervisors()
        downs_ok = sum(1 for code in down_codes if code == 0)
        time.sleep(0.2)
        pattern = re.escape(str(base))
        pgrep = subprocess.run(["pgrep", "-af", f"berth-test-helper.*{pattern}"],
                               capture_output=True, text=True)
        left_helpers = [line for line in pgrep.stdout.splitlines() if line.strip()]
        left_any = processes_under(base)
        try:
            after = json.loads((home / "ledger.json").read_text())["instances"]
            leases_left = sum(len(entry["leases"]) for entry in after)
        except (OSError, ValueError, KeyError) as error:
            leases_left = -1
            problems.append(f"ledger.json unreadable after down: {error}")
        print(f"    {count} concurrent `down --release`: {downs_ok} exited 0, wall {wall_down:.0f} ms;"
              f" helper processes left: {len(left_helpers)}; any process under the dirs: {len(left_any)};"
              f" leases left in ledger: {leases_left}", flush=True)
        for line in left_helpers[:10]:
            print(f"      left: {line}", flush=True)
        for problem in problems[:20]:
            print(f"    problem: {problem}", flush=True)

        shared_total = sum(shared_counts.values())
        self.record(6, f"concurrent up: succeeded / {count}", f"{succeeded}", f"{count}",
                    succeeded == count)
        self.record(6, "concurrent up: ports shared (ledger, ls, up, listening)",
                    "/".join(str(shared_counts[key]) for key in ("ledger", "ls --json", "up --json", "listening")),
                    "0/0/0/0", shared_total == 0)
        self.record(6, "concurrent up: ledger intact (parses, unique, complete)",
                    "yes" if ledger_ok else "no", "yes", ledger_ok)
        self.record(6, "concurrent up: services answering GET /health",
                    f"{2 * len(names) - len(health_failures)}/{2 * count}", f"{2 * count}/{2 * count}",
                    not health_failures and len(names) == count)
        self.record(6, "concurrent up: consistency problems (ls/ledger/listening)", f"{len(problems)}",
                    "0", not problems)
        self.record(6, "concurrent up: wall time", f"{wall_up:.0f} ms", "-", "info")
        self.record(6, "concurrent down --release: wall time", f"{wall_down:.0f} ms", "-", "info")
        self.record(6, "concurrent down --release: ok, helpers left, leases left",
                    f"{downs_ok}/{count}, {len(left_helpers)}, {leases_left}", f"{count}/{count}, 0, 0",
                    downs_ok == count and not left_helpers and not left_any and leases_left == 0)

    # ================================================================ driver

    def run(self) -> None:
        print(f"berth core benchmark: {BERTH}")
        version = subprocess.run([str(BERTH), "--version"], capture_output=True, text=True)
        fs_type = "?"
        try:
            mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
            best = max((m for m in mounts if str(self.root).startswith(m[1])), key=lambda m: len(m[1]))
            fs_type = best[2]
        except (OSError, ValueError):
            pass
        print(f"version: {version.stdout.strip()}; runs: {self.runs}; cpus: {os.cpu_count()};"
              f" load: {os.getloadavg()[0]:.2f}; temp: {self.root} ({fs_type})")
        print(f"subreaper: {'yes' if self.subreaper else 'no (init reaps the supervisors)'}",
              flush=True)
        # Context for sections 1, 2, 6: berth's readiness check confirms a port's owner by
        # reading /proc/net/tcp and /proc/net/tcp6, whose cost grows with the kernel's TCP
        # hash table size, not with the number of sockets.
        costs = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            samples = []
            for _ in range(5):
                began = time.perf_counter_ns()
                try:
                    Path(table).read_bytes()
                except OSError:
                    break
                samples.append(ms(time.perf_counter_ns() - began))
            if samples:
                costs.append(f"{table} {statistics.median(samples):.2f} ms")
        print(f"context: one full read of {', '.join(costs)}", flush=True)
        self.section(0, "shop copy and warm-up (sections 1, 4, 5 follow)", self.shop_sections)
        self.section(2, "readiness latency (helper serve --delay-ms 300)", self.bench_readiness)
        self.section(3, f"`berth ls` with {self.ls_entries} instances in the ledger", self.bench_ls)
        self.section(6, f"{self.instances} concurrent `up` in {self.instances} directories", self.bench_concurrent)

    def summary(self) -> None:
        print("\nSUMMARY")
        rows = sorted(self.results, key=lambda row: row["key"])
        width = max((len(row["title"]) for row in rows), default=10)
        print(f"  {'#':<2} {'figure':<{width}}  {'value':>22}  {'target':>16}  {'verdict':<7} ratio")
        for row in rows:
            print(f"  {row['key']:<2} {row['title']:<{width}}  {row['value']:>22}  {row['target']:>16}"
                  f"  {row['verdict']:<7} {row['ratio']}")
        self.summary_totals()

    def cleanup(self) -> None:
        print("\ncleanup:", flush=True)
        # 0. Let berth commands still in flight (interrupted section 6) finish, so that
        #    every instance they reserve is in the ledger before `down --release` runs.
        deadline = time.monotonic() + 30
        for child in self.inflight:
            try:
                child.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
        self.inflight.clear()
        # 1. Bring every instance this run may have started down, releasing its ports.
        pending = list(self.started)
        children = []
        for home, directory in pending:
            try:
                children.append(((home, directory), subprocess.Popen(
                    [str(BERTH), "-C", directory, "down", "--release"], env=self.env_for(Path(home)),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
            except OSError as error:
                print(f"  cannot run down for {directory}: {error}")
        for key, child in children:
            try:
                _, err = child.communicate(timeout=60)
                if child.returncode != 0:
                    print(f"  down --release {key[1]} exited {child.returncode}: {err.strip()[:300]}")
                else:
                    self.started.pop(key, None)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
                print(f"  down --release {key[1]} timed out")
        print(f"  down --release: {len(pending)} instance(s) possibly still up at the end,"
              f" {len(self.started)} could not be brought down", flush=True)
        # 2. Kill anything left: baseline children, then every process under the temp dir.
        for child in self.baseline_children:
            if child.poll() is None:
                child.kill()
                child.wait()
        # 3. Every process under the temp dir; reap adopted supervisors (no Popen is
        #    outstanding any more); remove the temp dir.
        self.cleanup_processes_and_temp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per timed figure (default 10)")
    parser.add_argument("--instances", type=int, default=50,
                        help="instances for the concurrency test (default 50)")
    parser.add_argument("--ls-entries", type=int, default=500,
                        help="synthetic ledger entries for `ls` (default 500)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir for inspection")
    args = parser.parse_args()
    if args.runs < 1 or args.instances < 1 or not 1 <= args.ls_entries <= 600:
        parser.error("--runs and --instances must be >= 1, --ls-entries 1..600")
    missing = [str(path) for path in (BERTH, HELPER, *SHOP_BINS.values()) if not path.is_file()]
    if missing:
        print(f"missing binaries: {', '.join(missing)}\n"
              f"build first: cd {REPO} && cargo build --release --workspace", file=sys.stderr)
        return 2
    return drive(lambda: Bench(args))


if __name__ == "__main__":
    sys.exit(main())
