#!/usr/bin/env bash
# Fuzzes berth's parsers (the berth.toml loader, the template engine, the dotenv editor and
# the Compose port parser) for a bounded time with the properties in tests/properties.rs.
#
# Usage: scripts/fuzz.sh [--seconds N] [--seed SEED]
#
# The time is shared equally by the properties; each runs batches of cases from fresh
# random seeds until its share is spent, and proptest shrinks every failure with a new
# signature (panic location or failed assertion) to a minimal input. Prints, per property
# and per target, the executions run, the distinct failures found and the time taken, then
# every finding with its minimal input and the command that repeats it. --seed repeats a
# whole run (as far as timing allows). Exits 1 when anything was found, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"
}

seconds=60
seed=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --seed) seed="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --seed=*) seed="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fuzz.sh: unknown argument \`$1\`" >&2; usage >&2; exit 2 ;;
  esac
done
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( seconds == 0 )); then
  echo "fuzz.sh: --seconds takes a whole number of seconds above 0, not \`$seconds\`" >&2
  exit 2
fi
if [[ -n "$seed" ]] && ! [[ "$seed" =~ ^[0-9]+$ ]]; then
  echo "fuzz.sh: --seed takes a whole number, not \`$seed\`" >&2
  exit 2
fi

started=$(date +%s.%N)
echo "building the properties (release)..." >&2
cargo test --release --quiet --test properties --no-run
built=$(date +%s.%N)

status=0
RUST_BACKTRACE=0 FUZZ_SECONDS="$seconds" FUZZ_SEED="$seed" \
  cargo test --release --quiet --test properties -- \
  --ignored --exact fuzz --nocapture --test-threads=1 || status=$?
finished=$(date +%s.%N)

awk -v started="$started" -v built="$built" -v finished="$finished" 'BEGIN {
  printf "total time %.1f s (build %.1f s, fuzzing %.1f s)\n",
    finished - started, built - started, finished - built
}'
if (( status != 0 )); then
  echo "fuzz.sh: findings (or a failed run): exit status $status" >&2
  exit 1
fi
