#!/bin/bash
# Build the VM base image: a minimal Debian bookworm booted by sysvinit, which
# stands in for a Synnefo 0.18.1 node on wheezy.
#
#   tests/vm/image.sh OUTDIR
#
# OUTDIR receives:
#   disk.raw           3 GiB ext4 root filesystem (no partition table, root=/dev/vda)
#   vmlinuz, initrd.img  kernel and initramfs copied out of the image's /boot
#   id_ed25519[.pub]   ssh key whose public half is root's authorized_keys
#   cluster.raw        the same node with what the `cluster` scenario's guests
#                      need beyond it: Python 2.7 from Debian bullseye and no
#                      Python 3 (Ansible manages the nodes through a 2.7, as on
#                      wheezy, with no APT bindings), PostgreSQL 15 and its
#                      client (svc1's database; psql everywhere), PostgreSQL not
#                      started at boot
#   ganeti.raw         the cluster's Ganeti nodes: the cluster root's Python 2.7
#                      and psql, plus Debian's Ganeti 3.0 (with the Python 3 it
#                      needs: Ansible is told to use the 2.7 there), drbd-utils,
#                      LVM and ganeti-os-noop; no PostgreSQL server
#   debs/              systemd-sysv, dbus and every dependency either image lacks
#                      (they become the local repository's `jessie` suite)
#
# The roots come from one run, minutes apart, so that they hold the same
# versions (the jessie debs must fit all of them).
#
# The harness caches OUTDIR keyed by the hash of this file: any change here
# rebuilds the image on the next run.
set -euo pipefail

out=${1:?usage: image.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$out/root
rm -rf "$root" "$out/debs"
mkdir -p "$out/debs"

ssh-keygen -q -t ed25519 -N '' -C synnefo-upgrade-vm -f "$out/id_ed25519" <<<y >/dev/null

# Packages of the "old node": sysvinit as PID 1, no systemd, no dbus.
include=linux-image-amd64,sysvinit-core,udev,ifupdown,procps,openssh-server,iproute2,kmod,netbase,less

# Each hook gets the chroot directory as "$1".  Hooks run in the order given.
# shellcheck disable=SC2016 # "$1" in single-quoted hooks is expanded by mmdebstrap's shell
# build_root ROOT INCLUDE [MMDEBSTRAP-OPTION...]: the sources are mmdebstrap's
# default (bookworm, its updates and security) unless $mirrors names others.
mirrors=()
build_root() {
    local root=$1 include=$2
    shift 2
    mmdebstrap --variant=minbase --include="$include" \
    --customize-hook='
        # mkinitramfs takes >5 min under TCG: never run it in the guest (the harness
        # boots the kernel/initrd built here on the host).
        sed -i "s/^update_initramfs=.*/update_initramfs=no/" "$1/etc/initramfs-tools/update-initramfs.conf"
        # dpkg without fsync: much faster in an emulated guest.
        echo force-unsafe-io > "$1/etc/dpkg/dpkg.cfg.d/99vm-unsafe-io"
        echo snf-vm > "$1/etc/hostname"
        printf "127.0.0.1 localhost\n127.0.1.1 snf-vm\n" > "$1/etc/hosts"
        printf "/dev/vda / ext4 rw,errors=remount-ro 0 0\n" > "$1/etc/fstab"
        # Static address for qemu user networking (net.ifnames=0 keeps the name eth0).
        printf "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address 10.0.2.15/24\n    gateway 10.0.2.2\n" > "$1/etc/network/interfaces"
        # A login prompt on the serial console (evidence in console.log, debugging).
        echo "T0:23:respawn:/sbin/getty -L ttyS0 115200 vt100" >> "$1/etc/inittab"
        echo root:root | chroot "$1" chpasswd
    ' \
    --customize-hook="mkdir -p \"\$1/root/.ssh\"; install -m 0600 '$out/id_ed25519.pub' \"\$1/root/.ssh/authorized_keys\"; chmod 0700 \"\$1/root/.ssh\"" \
    --customize-hook="
        # Pre-download what dist-upgrade to the 0.19 packages will pull in (the guest
        # has no network).  Resolved against this very image, so exactly the missing
        # dependencies are fetched, with the guest's default Recommends handling.
        rm -f \"\$1\"/var/cache/apt/archives/*.deb
        chroot \"\$1\" apt-get install --download-only -y -q systemd-sysv dbus >&2
        cp -n \"\$1\"/var/cache/apt/archives/*.deb '$out/debs/'
        rm -f \"\$1\"/var/cache/apt/archives/*.deb
    " \
    --customize-hook='
        # The guest only knows the local repository, under the wheezy suite name.
        rm -f "$1"/etc/apt/sources.list.d/*
        echo "deb [trusted=yes] file:/srv/repo wheezy main" > "$1/etc/apt/sources.list"
        mkdir -p "$1/srv/repo"
    ' \
    "$@" bookworm "$root" "${mirrors[@]}"
}
# The two roots are bootstrapped at once (downloads and dpkg runs overlap: on
# a fresh machine this is most of the image's time), each into its own log,
# printed in order when both are done.
# If this script is stopped, so are they (mmdebstrap's mounts go with it; a
# root left half-built is removed by the harness, which never caches it).
# Each bootstrap runs in a process group of its own (set -m), so that the whole
# of it, mmdebstrap included, gets the signal.
bootstraps=()
stop_bootstraps() {
    local p
    for p in "${bootstraps[@]}"; do kill -- "-$p" 2>/dev/null || true; done
    wait
}
trap stop_bootstraps EXIT
trap 'exit 130' INT TERM
set -m
build_root "$root" "$include" >"$out/root.log" 2>&1 &
base_pid=$!
bootstraps+=("$base_pid")
# The cluster's nodes: PostgreSQL installed (its postinst made the 15/main
# cluster), started at boot only where the scenario enables it (svc1), both
# ways (sysvinit links now, the systemd unit after the switch).  Python: only
# bullseye's python2.7 (the last Debian release with one; it brings the
# libraries of its own that bookworm no longer has, libssl1.1 and libffi7,
# beside bookworm's), so that Ansible's interpreter discovery finds a 2.7 and
# nothing else, and no APT bindings for it exist.
mirrors=("deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
    "deb http://deb.debian.org/debian bullseye main")
# shellcheck disable=SC2016 # expanded by mmdebstrap's shell
build_root "$out/root-cluster" "$include,python2.7,postgresql,postgresql-client" \
    --customize-hook='chroot "$1" update-rc.d postgresql disable >/dev/null 2>&1; rm -f "$1/etc/systemd/system/multi-user.target.wants/postgresql.service"' \
    >"$out/root-cluster.log" 2>&1 &
cluster_pid=$!
bootstraps+=("$cluster_pid")
# The Ganeti nodes: Ganeti from the init script (Debian ships no native unit:
# under systemd it runs through the sysv generator), recommends left out
# (mmdebstrap's default: ganeti's would pull in systemd-sysv and exim4).
build_root "$out/root-ganeti" "$include,python2.7,postgresql-client,ganeti,drbd-utils,lvm2,ganeti-os-noop" \
    >"$out/root-ganeti.log" 2>&1 &
ganeti_pid=$!
bootstraps+=("$ganeti_pid")
set +m
rc=0
wait "$base_pid" || rc=1
wait "$cluster_pid" || rc=$((rc | 2))
wait "$ganeti_pid" || rc=$((rc | 4))
echo "== the base root (mmdebstrap)"
cat "$out/root.log"
echo "== the cluster root (mmdebstrap)"
cat "$out/root-cluster.log"
echo "== the Ganeti root (mmdebstrap)"
cat "$out/root-ganeti.log"
rm -f "$out/root.log" "$out/root-cluster.log" "$out/root-ganeti.log"
bootstraps=()
failed=()
[ $((rc & 1)) = 0 ] || failed+=(base)
[ $((rc & 2)) = 0 ] || failed+=(cluster)
[ $((rc & 4)) = 0 ] || failed+=(Ganeti)
if [ "${#failed[@]}" != 0 ]; then
    echo "image.sh: the bootstrap of the ${failed[*]} root(s) failed (the logs above)" >&2
    exit 1
fi

# Kernel and initramfs for -kernel/-initrd boots.
newest() { printf '%s\n' "$@" | sort -V | tail -n1; }
cp "$(newest "$root"/boot/vmlinuz-*)" "$out/vmlinuz"
cp "$(newest "$root"/boot/initrd.img-*)" "$out/initrd.img"

mkfs.ext4 -q -F -L snf-root -d "$root" "$out/disk.raw" 3G
mkfs.ext4 -q -F -L snf-root -d "$out/root-cluster" "$out/cluster.raw" 3G
mkfs.ext4 -q -F -L snf-root -d "$out/root-ganeti" "$out/ganeti.raw" 3G
rm -rf "$root" "$out/root-cluster" "$out/root-ganeti"
