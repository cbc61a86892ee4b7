"""Helpers shared by the benchmark scripts in this folder (bench/core.py, bench/compose.py).

Not a script of its own: the benchmarks are run as `python3 bench/<name>.py`, which puts
this folder first on sys.path, so they import it as `from common import ...`.
Standard library only.
"""

from __future__ import annotations

import collections
import ctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path


class BenchError(Exception):
    """A failure that makes a section's figures meaningless."""


# --------------------------------------------------------------------------- figures


def ms(nanoseconds: float) -> float:
    return nanoseconds / 1e6


def percentile(values: list[float], fraction: float) -> float:
    """Linear-interpolated percentile (fraction in [0, 1])."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fmt_ms(value: float, width: int = 7, decimals: int = 2) -> str:
    return f"{value:{width}.{decimals}f} ms"


# --------------------------------------------------------------------------- processes and ports


def become_subreaper() -> bool:
    """Adopt orphaned descendants (the berth supervisors) so they can be reaped."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_all_zombies() -> None:
    """Reaps every exited child. Only called when no Popen is outstanding."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def port_accepts(port: int, timeout: float | None = None) -> bool:
    """Whether a TCP connect to 127.0.0.1:port succeeds (`timeout` in seconds; None: the
    socket's default, blocking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if timeout is not None:
            sock.settimeout(timeout)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def processes_under(root: Path) -> list[tuple[int, str]]:
    """Live processes whose cwd or command line lies under `root` (not zombies)."""
    found = []
    me = os.getpid()
    prefix = str(root)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = ""
        except (OSError, IndexError):
            continue
        if cwd == prefix or cwd.startswith(prefix + "/") or prefix in cmdline:
            found.append((pid, cmdline))
    return found


# --------------------------------------------------------------------------- the bench


class BenchBase:
    """What both benchmarks' `Bench` share: the temp root, the environment without
    BERTH_* variables, result rows, sections that report an error and carry on, and the
    end of the cleanup. A row's `key` is the section number (core) or the tool label
    (compose)."""

    def __init__(self, temp_prefix: str, keep_temp: bool) -> None:
        self.keep_temp = keep_temp
        self.root = Path(tempfile.mkdtemp(prefix=temp_prefix)).resolve()
        self.base_env = {key: value for key, value in os.environ.items() if not key.startswith("BERTH_")}
        self.results: list[dict] = []
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.subreaper = False

    # ---------------------------------------------------------------- reporting

    def record(self, key: int | str, title: str, value: str, target: str, passed: bool | None | str,
               ratio: str = "-") -> None:
        """passed: True (PASS), False (FAIL), None (ERROR) or "info" (no target)."""
        verdict = {True: "PASS", False: "FAIL", None: "ERROR", "info": "INFO"}[passed]
        self.results.append(dict(key=key, title=title, value=value, target=target,
                                 verdict=verdict, ratio=ratio))
        print(f"    => {title}: {value}  (target {target})  {verdict}"
              + (f"  ratio {ratio}" if ratio != "-" else ""), flush=True)

    def section(self, key: int | str, title: str, function, *arguments) -> None:
        print(f"\n[{key}] {title}", flush=True)
        started = time.monotonic()
        try:
            function(*arguments)
        except BenchError as error:
            self.errors.append(f"[{key}] {error}")
            self.record(key, title, "error", "-", None)
            print(f"    ERROR: {error}", flush=True)
        except Exception as error:  # noqa: BLE001 - report and carry on with other sections
            self.errors.append(f"[{key}] {type(error).__name__}: {error}")
            self.record(key, title, "error", "-", None)
            traceback.print_exc()
        print(f"    (section took {time.monotonic() - started:.1f} s)", flush=True)

    def summary_totals(self) -> None:
        """The last lines of the summary: verdict counts, then the first line of each error."""
        verdicts = collections.Counter(row["verdict"] for row in self.results)
        print(f"  {verdicts.get('PASS', 0)} pass, {verdicts.get('FAIL', 0)} fail, {verdicts.get('ERROR', 0)} error")
        for error in self.errors:
            print(f"  error: {error.splitlines()[0]}")

    # ---------------------------------------------------------------- cleanup

    def cleanup_processes_and_temp(self) -> None:
        """The end of every cleanup: kill any process left under the temp dir, reap the
        adopted supervisors (no Popen may be outstanding any more), remove the temp dir
        (unless kept), print the notes."""
        leftovers = processes_under(self.root)
        for pid, cmdline in leftovers:
            print(f"  killing leftover pid {pid}: {cmdline[:160]}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if leftovers:
            time.sleep(0.2)
            self.notes.append(f"{len(leftovers)} process(es) had to be killed at cleanup")
        reap_all_zombies()
        if self.keep_temp:
            print(f"  kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
            print(f"  removed {self.root}" + (" (NOT fully)" if self.root.exists() else ""), flush=True)
        for note in self.notes:
            print(f"  note: {note}")


def drive(make_bench, *run_arguments,
          ignored_at_cleanup: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> int:
    """Runs a bench to the end: SIGTERM and SIGHUP interrupt it like Ctrl-C; whatever
    happens, the summary and the cleanup run (with `ignored_at_cleanup` ignored, so the
    cleanup completes). `make_bench()` is called once the signal handlers are in place;
    its `run(*run_arguments)` does the work. Returns the exit status: 130 when
    interrupted, 1 when a section hit an error, else 0."""

    def on_signal(number, _frame):
        raise KeyboardInterrupt(f"signal {number}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    bench = make_bench()
    bench.subreaper = become_subreaper()
    started = time.monotonic()
    interrupted = False
    try:
        bench.run(*run_arguments)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", file=sys.stderr)
    finally:
        # Ignore further interrupts while cleaning up, so the cleanup completes.
        for number in ignored_at_cleanup:
            signal.signal(number, signal.SIG_IGN)
        bench.summary()
        bench.cleanup()
        print(f"total time {time.monotonic() - started:.1f} s")
    if interrupted:
        return 130
    return 1 if bench.errors else 0
