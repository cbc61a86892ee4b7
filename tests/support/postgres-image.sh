#!/usr/bin/env bash
# Builds the local Docker image berth-test-postgres:15: a minimal stand-in for the
# official `postgres:15` image, assembled FROM scratch out of the host's Debian
# postgresql-15 package and static busybox, so nothing is ever pulled.
#
# It behaves like the official image where the tests care:
#   - data in /var/lib/postgresql/data (PGDATA overrides), declared as a VOLUME;
#   - on an empty data directory: initdb as user postgres (uid/gid 999) with superuser
#     POSTGRES_USER (default postgres), password POSTGRES_PASSWORD (or
#     POSTGRES_PASSWORD_FILE), database POSTGRES_DB (default POSTGRES_USER),
#     POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, and /docker-entrypoint-initdb.d
#     (*.sh, *.sql, *.sql.gz);
#   - host connections from any address: scram-sha-256 with a password, trust without;
#   - postgres runs as PID 1 listening on 0.0.0.0:5432 (socket in /var/run/postgresql),
#     STOPSIGNAL SIGINT (fast shutdown), like the official image;
#   - psql, pg_isready, pg_dump, pg_restore, … inside the container.
#
# Idempotent: exits at once when the image exists. Needs Docker, postgresql-15 and
# busybox-static installed beforehand (it installs nothing).
set -euo pipefail

IMAGE=berth-test-postgres:15
PG_BIN=/usr/lib/postgresql/15/bin
PG_LIB=/usr/lib/postgresql/15/lib
PG_SHARE=/usr/share/postgresql/15
BUSYBOX=/bin/busybox

die() {
  echo "postgres-image.sh: $*" >&2
  exit 1
}

exists() {
  docker image inspect "$IMAGE" >/dev/null 2>&1
}

exists && exit 0

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine is reachable"
[ -x "$PG_BIN/postgres" ] && [ -f "$PG_SHARE/postgres.bki" ] \
  || die "needs Debian's postgresql-15 ($PG_BIN/postgres, $PG_SHARE/postgres.bki): apt-get install postgresql-15"
[ -x "$BUSYBOX" ] || die "needs Debian's static busybox ($BUSYBOX): apt-get install busybox-static"
# ldd fails on a static executable ("not a dynamic executable").
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked; needs Debian's static one: apt-get install busybox-static"
fi

# Parallel test processes may all call this: one builds, the rest wait and find it.
exec 9>"${TMPDIR:-/tmp}/berth-test-postgres-image.lock"
flock 9
exists && exit 0

context=$(mktemp -d "${TMPDIR:-/tmp}/berth-postgres-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
root="$context/root"         # everything owned by root
owned="$context/postgres"    # the directories owned by postgres (999:999)
mkdir -p "$root" "$owned"

# --- PostgreSQL: binaries, the server's own loadable modules, share files ---------
mkdir -p "$root$PG_BIN" "$root$PG_LIB"
binaries=()
for name in postgres initdb pg_ctl pg_isready psql pg_dump pg_dumpall pg_restore \
  createdb dropdb pg_controldata; do
  [ -x "$PG_BIN/$name" ] || die "missing $PG_BIN/$name (is postgresql-15 installed fully?)"
  cp "$PG_BIN/$name" "$root$PG_BIN/$name"
  binaries+=("$PG_BIN/$name")
done
# initdb runs `locale -a` to import the system collations (without it: "sh: locale: not
# found" and "no usable system locales were found").
[ -x /usr/bin/locale ] || die "missing /usr/bin/locale (libc-bin)"
mkdir -p "$root/usr/bin"
cp /usr/bin/locale "$root/usr/bin/locale"
binaries+=(/usr/bin/locale)
# initdb loads plpgsql and dict_snowball; the encoding conversions, logical decoding
# and the WAL receiver are the rest of core. Contrib extensions and the LLVM JIT are
# left out (with no llvmjit.so the server just runs without JIT).
for module in "$PG_LIB"/plpgsql.so "$PG_LIB"/dict_snowball.so "$PG_LIB"/pgoutput.so \
  "$PG_LIB"/libpqwalreceiver.so "$PG_LIB"/*_and_*.so; do
  [ -f "$module" ] || die "missing $module"
  cp "$module" "$root$PG_LIB/"
  binaries+=("$module")
done
mkdir -p "$root$PG_SHARE/extension"
(cd "$PG_SHARE" && tar -cf - --exclude=./man --exclude=./contrib --exclude=./extension .) \
  | tar -xf - -C "$root$PG_SHARE"
cp "$PG_SHARE"/extension/plpgsql* "$root$PG_SHARE/extension/"
# Listen on every address, as the official image does (it edits the same sample).
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$root$PG_SHARE/postgresql.conf.sample"
grep -q "^listen_addresses = '\*'" "$root$PG_SHARE/postgresql.conf.sample" \
  || die "could not set listen_addresses in postgresql.conf.sample"

# --- Shared libraries, per ldd, and the dynamic loader ----------------------------
for binary in "${binaries[@]}"; do
  listing=$(ldd "$binary") || die "ldd $binary failed"
  if grep -q 'not found' <<<"$listing"; then
    die "$binary has unresolved libraries:"$'\n'"$listing"
  fi
  # "libx.so => /path (0x…)" gives the path third; the loader is "/path (0x…)".
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing"
done | sort -u | while read -r library; do
  mkdir -p "$root$(dirname "$library")"
  cp -L "$library" "$root$library"
done
# Locale C.UTF-8 (initdb's locale; glibc needs its files) and time zones (Debian's
# PostgreSQL uses the system zoneinfo), without the leap-second "right/" variants.
if [ -d /usr/lib/locale/C.utf8 ]; then
  mkdir -p "$root/usr/lib/locale"
  cp -a /usr/lib/locale/C.utf8 "$root/usr/lib/locale/"
  locale=C.UTF-8
else
  locale=C
fi
[ -d /usr/share/zoneinfo ] || die "needs /usr/share/zoneinfo (tzdata)"
mkdir -p "$root/usr/share/zoneinfo"
(cd /usr/share/zoneinfo && tar -cf - --exclude=./right --exclude=./localtime .) \
  | tar -xf - -C "$root/usr/share/zoneinfo"

# --- busybox ------------------------------------------------------------------------
mkdir -p "$root/bin"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in sh cat chmod chown echo env find grep gunzip id ls mkdir mktemp rm sleep stat \
  su test [ true false ps kill; do
  ln -s busybox "$root/bin/$applet"
done

# --- /etc, directories ------------------------------------------------------------
mkdir -p "$root/etc" "$root/root" "$root/tmp" "$root/usr/local/bin" "$root/var/lib" \
  "$root/var/run" "$root/docker-entrypoint-initdb.d"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
postgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
postgres:x:999:
nogroup:x:65534:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
EOF
ln -s /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
echo "Etc/UTC" >"$root/etc/timezone"

mkdir -p "$owned/var/lib/postgresql/data" "$owned/var/run/postgresql"
chmod 0755 "$owned/var/lib/postgresql"
chmod 0700 "$owned/var/lib/postgresql/data"
chmod 3777 "$owned/var/run/postgresql"

# --- Entrypoint ---------------------------------------------------------------------
cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# A minimal docker-entrypoint.sh in the manner of the official postgres image.
set -eu

# "-c foo=bar" style arguments are for postgres.
if [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  # As root: fix what a bind mount or an old volume may have wrong, then come back
  # as postgres (su execs, so postgres still ends up as PID 1).
  mkdir -p "$PGDATA" /var/run/postgresql
  if [ "$(stat -c %u "$PGDATA")" != 999 ]; then
    chown -R postgres:postgres "$PGDATA"
  fi
  chmod 0700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 3777 /var/run/postgresql
  # "--" before the user, or su's getopt would take a later "-c" (postgres -c x=y).
  exec su -s /bin/sh -c 'exec "$0" "$@"' -- postgres /usr/local/bin/docker-entrypoint.sh "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
  fi
  POSTGRES_USER=${POSTGRES_USER:-postgres}
  POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-}
  POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
  auth=${POSTGRES_HOST_AUTH_METHOD:-}
  if [ -z "$auth" ]; then
    if [ -n "$POSTGRES_PASSWORD" ]; then
      auth=scram-sha-256
    else
      auth=trust
      echo "WARNING: no POSTGRES_PASSWORD: host connections are trusted without one" >&2
    fi
  fi

  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  if [ -n "$POSTGRES_PASSWORD" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" -D "$PGDATA" \
      @LOCALE_ARGS@ ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
  else
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" -D "$PGDATA" @LOCALE_ARGS@ ${POSTGRES_INITDB_ARGS:-}
  fi
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

  # A temporary server on the Unix socket only, to create the database and run the
  # init scripts; then stopped, and the real one started below.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
  export PGUSER="$POSTGRES_USER" PGHOST=/var/run/postgresql PGPORT="${PGPORT:-5432}"
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --dbname postgres \
      --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db" ;
SQL
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        echo "$0: running $f"
        if [ -x "$f" ]; then "$f"; else . "$f"; fi
        ;;
      *.sql)
        echo "$0: running $f"
        psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --dbname "$POSTGRES_DB" -f "$f"
        ;;
      *.sql.gz)
        echo "$0: running $f"
        gunzip -c "$f" | psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --dbname "$POSTGRES_DB"
        ;;
      *) ;;
    esac
  done
  unset PGUSER PGHOST
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo
  echo "PostgreSQL init process complete; ready for start up."
  echo
elif [ "$1" = postgres ]; then
  echo
  echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
  echo
fi

exec "$@"
EOF
if [ "$locale" = C.UTF-8 ]; then
  locale_args="--locale=C.UTF-8 --encoding=UTF8"
else
  locale_args="--locale=C --encoding=UTF8"
fi
sed -i "s/@LOCALE_ARGS@/$locale_args/g" "$root/usr/local/bin/docker-entrypoint.sh"
chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"

# --- Image --------------------------------------------------------------------------
# ADD of a local tar keeps the archive's owners and modes (COPY would make all root's),
# so ownership is set in the archives and the host user need not be root.
tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$context/root.tar" .
tar --numeric-owner --owner=999 --group=999 -C "$owned" -cf "$context/postgres.tar" \
  ./var/lib/postgresql ./var/run/postgresql
rm -rf "$root" "$owned"
cat >"$context/Dockerfile" <<EOF
FROM scratch
ADD root.tar /
ADD postgres.tar /
ENV PATH=/usr/local/bin:$PG_BIN:/usr/bin:/bin \\
    LANG=$locale \\
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
EOF
docker build -q -t "$IMAGE" "$context" >/dev/null || die "docker build of $IMAGE failed"
exists || die "built $IMAGE but cannot inspect it"
echo "postgres-image.sh: built $IMAGE"
