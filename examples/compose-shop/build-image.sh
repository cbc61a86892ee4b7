#!/usr/bin/env bash
# Builds berth-example-busybox:1, the only image compose.yml uses, without pulling
# anything: FROM scratch + a statically linked busybox + the shop's seed files.
# Safe to run again; it rebuilds the image from scratch each time.
set -euo pipefail

IMAGE="berth-example-busybox:1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$HERE/.build"                       # git-ignored
BUSYBOX="${BUSYBOX:-/bin/busybox}"
APPLETS=(sh httpd wget cat echo sleep mkdir ls cp date test)

is_static() {
    [ -x "$1" ] || return 1
    if command -v file >/dev/null; then
        file -L "$1" | grep -q 'statically linked'
    else
        # ldd exits non-zero ("not a dynamic executable") for a static binary.
        ! ldd "$1" >/dev/null 2>&1
    fi
}

if ! is_static "$BUSYBOX"; then
    if [ "$BUSYBOX" = /bin/busybox ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "build-image.sh: $BUSYBOX is missing or not statically linked; installing busybox-static"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
    fi
    if ! is_static "$BUSYBOX"; then
        cat >&2 <<MSG
build-image.sh: need a statically linked busybox at $BUSYBOX (a scratch image has no libc).
  Debian/Ubuntu: sudo apt-get install busybox-static   (then run this script again)
  or run this script as root to install it, or point BUSYBOX=/path/to/static/busybox
  at one you have.
MSG
        exit 1
    fi
fi

if ! docker version >/dev/null 2>&1; then
    echo "build-image.sh: cannot talk to the Docker engine (is it running, may you use it?)" >&2
    exit 1
fi

rm -rf "$BUILD"
mkdir -p "$BUILD/rootfs/bin" "$BUILD/rootfs/tmp"
chmod 1777 "$BUILD/rootfs/tmp"
cp "$BUSYBOX" "$BUILD/rootfs/bin/busybox"
for applet in "${APPLETS[@]}"; do
    ln -s busybox "$BUILD/rootfs/bin/$applet"
done
cp -R "$HERE/image/seed" "$BUILD/rootfs/seed"
cp -R "$HERE/image/assets" "$BUILD/rootfs/assets"
cp "$HERE/image/Dockerfile" "$BUILD/Dockerfile"

# Quiet unless it fails (the legacy builder also prints a deprecation notice).
if ! output="$(docker build -t "$IMAGE" "$BUILD" 2>&1)"; then
    printf '%s\n' "$output" >&2
    echo "build-image.sh: docker build failed" >&2
    exit 1
fi
echo "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
