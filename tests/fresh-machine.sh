#!/bin/bash
# Run the README's two commands, and then .ci/run, as written, in a clean
# clone inside a freshly bootstrapped Debian 12 (bookworm) system.  Needs
# root, debootstrap and access to the Debian archive; not part of make check.
#   usage: tests/fresh-machine.sh [DIR]     (DIR defaults to a new temp dir)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-$(mktemp -d /tmp/optim-fresh.XXXXXX)}
[ "$(id -u)" = 0 ] || { echo "fresh-machine: must run as root"; exit 1; }
command -v debootstrap >/dev/null || apt-get install -y debootstrap
[ -x "$root/bin/bash" ] || debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
trap 'umount "$root/proc" "$root/dev"' EXIT
run() { # name, command
  rm -rf "$root/root/liboptim"
  git clone -q "$repo" "$root/root/liboptim"
  echo "fresh-machine: $1"
  chroot "$root" /bin/bash -c "cd /root/liboptim && $2" > "$root/root/$1.log" 2>&1 \
    || { tail -30 "$root/root/$1.log"; echo "fresh-machine: $1 FAILED"; exit 1; }
  tail -3 "$root/root/$1.log"
}
run main "$(grep -E '^    apt-get update' "$repo/README" | sed -n 1p | sed 's/^    //')"
run tests "$(grep -E '^    apt-get update' "$repo/README" | sed -n 2p | sed 's/^    //')"
run ci "CI=true bash .ci/run"
echo "fresh-machine: all passed in $root"
