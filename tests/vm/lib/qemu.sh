# shellcheck shell=bash
# shellcheck disable=SC2016 # guest commands are single-quoted on purpose: they expand in the guest
# shellcheck disable=SC2034 # VM_* values set here are read by stages and scenarios
# qemu and ssh: booting guests, running commands in them, moving files, reboots
# and power loss, the journal export and the evidence collected at the end. Sourced by ../lib.sh.

vm_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Boot a fresh copy-on-write overlay of the base image.  Sets VM_PID, VM_PORT.
vm_start() {
    vm_launch
    vm_wait_ssh
}

# The modules a guest never loads (kernel command line): devices it has not
# got, or needs not.
VM_NO_MODULES=floppy,parport_pc,ppdev,pcspkr,kvm,kvm_amd,kvm_intel,powernow_k8,sr_mod,ata_piix,i2c_piix4,serio_raw,joydev,psmouse,evdev

# vm_launch: start qemu on a fresh overlay without waiting for the guest (the
# cluster boots its guests at once, then waits for each).  Knobs, all optional:
# VM_DISK (an image of vm_base_dir: disk.raw, cluster.raw or ganeti.raw),
# VM_DISK_QCOW2 (instead: a qcow2 root disk to overlay, the cached Ganeti
# nodes'), VM_SMP, VM_QEMU_EXTRA (an array of further qemu arguments: the
# cluster's network, a Ganeti node's volume group disk) and VM_INCOMING (a
# state vm_save_state saved: the guest resumes from it instead of booting,
# over a root disk as it was then, given as VM_DISK_QCOW2, and with the same
# devices).
vm_launch() {
    local base
    base=$(vm_base_dir)
    VM_KEY=$base/id_ed25519
    if [ -n "${VM_DISK_QCOW2:-}" ]; then
        qemu-img create -q -f qcow2 -b "$VM_DISK_QCOW2" -F qcow2 "$VM_OUT/overlay.qcow2"
    else
        qemu-img create -q -f qcow2 -b "$base/${VM_DISK:-disk.raw}" -F raw "$VM_OUT/overlay.qcow2"
    fi
    VM_PORT=$(vm_free_port)
    VM_MONITOR=$VM_OUT/monitor.sock
    rm -f "$VM_MONITOR"
    # TCG only: KVM guests hang on these machines.  The kernel/initrd come from the
    # image (the guest never rebuilds its initramfs).  vda = root, vdb = APT repository.
    # reboot=t: the guest's reboot resets through a triple fault at once; the
    # default (ACPI, then the keyboard controller) took 28 s of a one-vCPU
    # guest's restart alone, 60 s to 5 minutes in the cluster scenario
    # (measured from "reboot: machine restart" to the next "Linux version").
    # tb-size=128 (MiB of translated code, default 1 GiB): with the default, a
    # guest that worked hard before a reboot (a dist-upgrade, a Python
    # workload) boots slowly in the same qemu: 47 s before "Freeing initrd
    # memory" instead of 3 s, 85 s from reboot to ssh instead of 40 s
    # (one guest, `python3 -m compileall` and 100 Python starts, then a
    # reboot; in the cluster scenario the Ganeti nodes' reboots took 55-72 s
    # to ssh, svc1's 23 s).  The workload itself ran faster too: 70 s, 93 s.
    # -nodefaults and the modules kept out: no floppy, parallel port, CD-ROM,
    # PC speaker, KVM or PS/2 input for udev to probe at every boot (a TCG
    # boot to ssh took 33-36 s, 22 s of it sysvinit's rcS and rc2; these
    # saved 3 s of it, with a virtio RNG).  No virtio RNG: a two-vCPU guest
    # locked up loading virtio_rng while a udev worker spun in getrandom()
    # (a soft lockup, console.log of one .ci/run).
    qemu-system-x86_64 -accel tcg,tb-size=128 -m 1024 -smp "${VM_SMP:-2}" \
        -nodefaults -display none -vga none \
        -kernel "$base/vmlinuz" -initrd "$base/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 reboot=t modprobe.blacklist=$VM_NO_MODULES" \
        -drive "file=$VM_OUT/overlay.qcow2,format=qcow2,if=virtio" \
        -drive "file=$VM_TARGET/repo.img,format=raw,if=virtio,readonly=on" \
        -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$VM_PORT-:22" \
        ${VM_QEMU_EXTRA[@]+"${VM_QEMU_EXTRA[@]}"} \
        -serial "file:$VM_OUT/console.log" \
        -monitor "unix:$VM_MONITOR,server=on,wait=off" \
        ${VM_INCOMING:+-incoming "exec:cat $VM_INCOMING"} \
        >"$VM_OUT/qemu.log" 2>&1 &
    VM_PID=$!
    echo "$VM_PID" >"$VM_OUT/qemu.pid"
}

vm_alive() {
    [ -n "${VM_PID:-}" ] && kill -0 "$VM_PID" 2>/dev/null
}

# Kill qemu (no clean shutdown: the overlay is thrown away anyway).
vm_kill() {
    if vm_alive; then
        kill "$VM_PID" 2>/dev/null || true
        wait "$VM_PID" 2>/dev/null || true
    fi
    VM_PID=
    rm -f "$VM_OUT/qemu.pid"
}

# One ssh connection per guest, shared by the harness's commands: the first
# one leaves a master behind (ControlPersist: it goes 60 s after the last
# command, or with its connection); the others open a session over it.  A new
# connection costs a TCG guest about a second of CPU (sshd's fork and re-exec,
# the key exchange: 1.25 s against 0.16 s over the master, one idle guest),
# and the harness runs hundreds of commands per scenario.  The sockets live
# in VM_SSH_CTL (one directory per run, removed by `run` at its end); a
# master whose guest went away without closing the connection (a power loss,
# a `reboot -f`) is sent away by vm_wait_ssh before it looks for the new boot.
vm_ssh_opts() {
    VM_SSH_OPTS=(-i "$VM_KEY" -p "$VM_PORT"
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
        -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=10
        -o ServerAliveInterval=10 -o ServerAliveCountMax=6
        -o ControlMaster=auto -o "ControlPath=$VM_SSH_CTL/%C" -o ControlPersist=60)
}

# vm_ssh_drop_master: the guest's shared connection closed, if there is one
# (a power loss leaves one that would hold every command until its keepalives
# ran out, 60 s).
vm_ssh_drop_master() {
    local VM_SSH_OPTS
    vm_ssh_opts
    ssh "${VM_SSH_OPTS[@]}" -O exit root@127.0.0.1 >/dev/null 2>&1 || true
}

# vm_ssh CMD: run CMD in the guest (bounded by VM_CMD_TIMEOUT).
vm_ssh() {
    local VM_SSH_OPTS
    vm_ssh_opts
    timeout "$VM_CMD_TIMEOUT" ssh "${VM_SSH_OPTS[@]}" root@127.0.0.1 "$@"
}

# Wait (bounded) until ssh answers.  $1: previous boot id; when given, wait until
# the guest reports a different one (i.e. it really rebooted).
vm_wait_ssh() {
    local old=${1:-} deadline=$((SECONDS + VM_BOOT_TIMEOUT)) id
    while :; do
        vm_alive || fail "qemu exited (see $VM_OUT/qemu.log, console.log)"
        # (A master from the boot before would answer for a guest that is gone.)
        vm_ssh_drop_master
        if id=$(VM_CMD_TIMEOUT=30 vm_ssh 'cat /proc/sys/kernel/random/boot_id' 2>/dev/null) &&
            [ -n "$id" ] && [ "$id" != "$old" ]; then
            VM_BOOT_ID=$id
            return 0
        fi
        [ "$SECONDS" -lt "$deadline" ] || fail "guest not reachable over ssh after ${VM_BOOT_TIMEOUT}s (see console.log)"
        sleep 3
    done
}

# Clean reboot through the guest's own reboot command; returns once ssh is
# back on the new boot.  Sets VM_REBOOT_SECONDS.
vm_reboot() {
    local t0=$SECONDS old=$VM_BOOT_ID
    # Detached so the ssh session ends cleanly before shutdown kills it.
    vm_ssh 'sync; (sleep 1; reboot) >/dev/null 2>&1 </dev/null &' || true
    vm_wait_ssh "$old"
    VM_REBOOT_SECONDS=$((SECONDS - t0))
}

# Hard reset (power loss) through the qemu monitor: the guest gets no chance to
# flush or shut down.  Returns once ssh is back.  Sets VM_REBOOT_SECONDS.
vm_reset() {
    local t0=$SECONDS old=$VM_BOOT_ID
    vm_monitor system_reset
    vm_wait_ssh "$old"
    VM_REBOOT_SECONDS=$((SECONDS - t0))
}

# vm_monitor CMD: one human-monitor command over the unix socket.
vm_monitor() {
    python3 - "$VM_MONITOR" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
time.sleep(0.2)
s.recv(65536)                      # banner and prompt
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.5)
s.close()
PY
}

# vm_save_state FILE: the running guest's RAM and devices saved to FILE
# (qemu's migration through `exec:`, which every qemu has: `file:` came with
# 8.2, and bookworm's is 7.2; the human monitor's `migrate` returns when it
# is complete, the guest paused and its disks flushed), then qemu quit.  FILE
# is a path without spaces or shell characters.  The
# guest's disks as they are now go with it: vm_launch with VM_INCOMING=FILE
# over copies of them resumes it where it was.
vm_save_state() {
    python3 - "$VM_MONITOR" "$1" <<'PY' || return 1
import re, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(600)


def command(line):
    s.sendall(line.encode() + b"\n")
    out = b""
    while not out.rstrip().endswith(b"(qemu)"):
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


out = b""
while b"(qemu)" not in out:  # banner and prompt
    out += s.recv(65536)
out = command("migrate exec:cat>" + sys.argv[2])
status = command("info migrate")
if not re.search(r"status:\s*completed", status, re.I):
    sys.exit("migration to %s did not complete: %s %s" % (sys.argv[2], out, status))
s.sendall(b"quit\n")
time.sleep(0.5)
PY
    vm_wait_exit 60 || true
    vm_kill
}

# vm_wait_exit SECONDS: until the guest's qemu has exited (a guest powering
# itself off, a `quit`), at most SECONDS; fails when it is still running.
# (qemu is this shell's child, or a sibling's: a zombie is a qemu that has
# exited; kill -0, vm_alive's test, says yes to a zombie.)
vm_wait_exit() {
    local _
    for _ in $(seq "$1"); do
        case $(ps -o stat= -p "$VM_PID" 2>/dev/null) in '' | Z*) return 0 ;; esac
        sleep 1
    done
    case $(ps -o stat= -p "$VM_PID" 2>/dev/null) in '' | Z*) return 0 ;; esac
    return 1
}

# The repository disk is /dev/vdb; mounted on demand (idempotent).
vm_mount_repo() {
    vm_ssh 'mountpoint -q /srv/repo || mount -o ro /dev/vdb /srv/repo'
}

# vm_write FILE MODE < content
vm_write() {
    vm_ssh "mkdir -p \"\$(dirname '$1')\" && cat >'$1' && chmod $2 '$1'"
}

# vm_fetch PATH...: copy guest files/dirs (missing ones skipped) under $VM_OUT/guest/.
vm_fetch() {
    vm_fetch_to "$VM_OUT/guest" "$@"
}

# vm_fetch_to DIR PATH...: same, under DIR (guest paths kept: DIR/etc/apt/...).
vm_fetch_to() {
    local dir=$1
    shift
    mkdir -p "$dir"
    # tar's complaints (vanished files...) go to fetch.log, not to the scenario result.
    vm_ssh "cd / && for p in $*; do [ -e \"\$p\" ] || [ -L \"\$p\" ] && echo \"\${p#/}\"; done | tar --ignore-failed-read -cf - -T -" 2>>"$VM_OUT/fetch.log" |
        tar -C "$dir" -xf - 2>>"$VM_OUT/fetch.log" || true
}

# vm_export_journal FILE [JOURNALCTL ARGS...]: the guest's journal as JSON into FILE.
vm_export_journal() {
    local file=$1
    shift
    VM_CMD_TIMEOUT=120 vm_ssh "journalctl -o json --no-pager $*" >"$file" ||
        fail "could not export the journal ($*) to $file"
}

# The guest's current boot id as journald writes it (_BOOT_ID: no dashes).
vm_boot_id_journal() {
    printf '%s' "${VM_BOOT_ID//-/}"
}

# Called on scenario exit (pass or fail): journal export, listed files, qemu down.
vm_collect_evidence() {
    if vm_alive && [ -n "${VM_PORT:-}" ]; then
        # journalctl exists only once systemd is installed; the export covers all boots
        # journald has seen (persistent journal when /var/log/journal exists).
        VM_CMD_TIMEOUT=120 vm_ssh 'command -v journalctl >/dev/null && journalctl -o json --no-pager' \
            >"$VM_OUT/journal.json" 2>/dev/null || true
        [ -s "$VM_OUT/journal.json" ] || rm -f "$VM_OUT/journal.json"
        if [ "${#VM_EVIDENCE[@]}" -gt 0 ]; then
            VM_CMD_TIMEOUT=60 vm_fetch "${VM_EVIDENCE[@]}"
        fi
    fi
    vm_kill
    rm -f "$VM_OUT/overlay.qcow2" "$VM_MONITOR"
}
