#!/usr/bin/env python3
"""Data benchmark for the `berth` CLI: snapshots and clones of a real PostgreSQL.

A project runs Debian's PostgreSQL as a process service (as user postgres through
setpriv, as the tests do), loaded with about --megabytes of rows. In the same run:

  (a) baseline: `tar -cf` of the instance's data directory (stopped) into a file, then
      `sync` of that file (berth's snapshot is durable once saved, so the baseline is
      too), and `tar -xf` of it back into an emptied directory: the raw cost of copying
      the bytes;
  (b) `berth snapshot save` and `berth snapshot restore` of the stopped instance: the
      same copy plus berth's work (a BLAKE3 digest of every file, written on save and
      checked before a restore, the manifest, atomic renames); ratio against (a);
  (c) `berth snapshot save` of the running instance: (b) plus stopping PostgreSQL and
      starting it again until it is ready;
  (d) `berth up --from` the running instance into a new worktree, until the clone is
      ready: copy, restore and start. Removed after each run.

Medians of --runs runs are printed, with the ratios. Needs postgresql-15, its clients
and setpriv (Debian), and root.

Usage:
    cargo build --release --workspace
    python3 bench/data.py [--runs 3] [--megabytes 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BERTH = REPO / "target" / "release" / "berth"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
AS_POSTGRES = (
    "setpriv --reuid=postgres --regid=postgres --init-groups "
    "--inh-caps=+dac_read_search --ambient-caps=+dac_read_search"
)
PORT = 18432

CONFIG = f"""[project]
name = "benchdata"

[services.db]
command = "{AS_POSTGRES} {PG_BIN}/postgres -D {{{{ instance.data }}}}/pg -p {{{{ port.db }}}} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
port = {PORT}
setup = "sh -c 'install -d -o postgres -m 700 {{{{ instance.data }}}}/pg && {AS_POSTGRES} {PG_BIN}/initdb -D {{{{ instance.data }}}}/pg -U app --auth=trust >/dev/null'"
ready = {{ exec = "pg_isready -q -h 127.0.0.1 -p {{{{ port.db }}}}" }}
database = {{ kind = "postgres", user = "app", name = "postgres" }}
stop_grace = "30s"
"""


def berth(home: Path, directory: Path, *args: str) -> float:
    """Runs berth; its wall time in ms. A failure stops the benchmark."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(BERTH), "-C", str(directory), *args],
        env={**os.environ, "BERTH_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if result.returncode != 0:
        sys.exit(f"berth {' '.join(args)} failed:\n{result.stderr}")
    return elapsed


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=200)
    options = parser.parse_args()
    if not BERTH.exists() or not (PG_BIN / "postgres").exists():
        sys.exit("needs `cargo build --release --workspace` and Debian's postgresql-15")

    scratch = Path(tempfile.mkdtemp(prefix="berth-bench-data-"))
    home = scratch / "home"
    main_dir = scratch / "main"
    main_dir.mkdir()
    (main_dir / "berth.toml").write_text(CONFIG)
    figures: dict[str, list[float]] = {key: [] for key in "tar_c tar_x save restore save_live clone".split()}
    try:
        berth(home, main_dir, "up")
        rows = options.megabytes * 1024 * 1024 // 120
        berth(
            home,
            main_dir,
            "db",
            "shell",
            "--",
            "-qc",
            f"create table filler as select g as id, md5(g::text) || md5((g+1)::text) as text "
            f"from generate_series(1, {rows}) g",
        )
        data = main_dir / ".berth" / "main" / "data"
        size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
        print(f"data directory: {size / 1024 / 1024:.1f} MiB")
        for run in range(options.runs):
            berth(home, main_dir, "down")
            tar = scratch / "baseline.tar"
            figures["tar_c"].append(
                timed(["sh", "-c", f"tar -C '{data}' -cf '{tar}' . && sync '{tar}'"])
            )
            copy = scratch / "baseline-copy"
            shutil.rmtree(copy, ignore_errors=True)
            copy.mkdir()
            figures["tar_x"].append(timed(["tar", "-C", str(copy), "-xf", str(tar)]))
            shutil.rmtree(copy)
            tar.unlink()
            figures["save"].append(berth(home, main_dir, "snapshot", "save", "b", "--force"))
            figures["restore"].append(berth(home, main_dir, "snapshot", "restore", "b"))
            berth(home, main_dir, "up")
            figures["save_live"].append(berth(home, main_dir, "snapshot", "save", "b", "--force"))
            clone = scratch / f"clone{run}"
            clone.mkdir()
            (clone / "berth.toml").write_text(CONFIG)
            figures["clone"].append(berth(home, clone, "up", "--from", "main"))
            berth(home, clone, "rm", "--yes")
            print(
                f"run {run + 1}: "
                + ", ".join(f"{key} {values[-1]:.0f} ms" for key, values in figures.items())
            )
        median = {key: statistics.median(values) for key, values in figures.items()}
        print()
        print(f"tar -cf + sync (baseline)       {median['tar_c']:8.0f} ms")
        print(f"berth snapshot save (stopped)   {median['save']:8.0f} ms  ratio {median['save'] / median['tar_c']:.2f}x")
        print(f"tar -xf (baseline)              {median['tar_x']:8.0f} ms")
        print(f"berth snapshot restore (stopped){median['restore']:8.0f} ms  ratio {median['restore'] / median['tar_x']:.2f}x")
        print(f"berth snapshot save (running)   {median['save_live']:8.0f} ms  (stop, copy, start, ready)")
        print(f"berth up --from (running source){median['clone']:8.0f} ms  (copy, restore, start, ready)")
    finally:
        subprocess.run(
            [str(BERTH), "-C", str(main_dir), "rm", "--yes"],
            env={**os.environ, "BERTH_HOME": str(home)},
            capture_output=True,
        )
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
