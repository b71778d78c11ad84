# shellcheck shell=bash
# shellcheck disable=SC2016 # guest commands are single-quoted on purpose: they expand in the guest
# shellcheck disable=SC2034 # variables set here are read by scenarios
# Shared helpers of the VM harness (tests/vm/run sources this file).
#
# A scenario is a bash file under tests/vm/scenarios/ that `run` sources in a
# subshell after setting SCENARIO.  It uses:
#   step MSG                progress line on stderr: [scenario] MSG (+Ns)
#   vm_start                boot a fresh overlay of the base image (sysvinit)
#   vm_ssh CMD              run CMD (one shell string) in the guest as root
#   vm_sh CMD               same, stdin/stdout passed through, no timeout wrapper
#   vm_reboot               clean reboot, wait until ssh is back on the new boot
#   vm_reset                hard reset (power loss) via the qemu monitor, wait for ssh
#   vm_mount_repo           mount the local APT repository disk at /srv/repo
#   vm_write FILE MODE      write stdin to FILE in the guest
#   vm_fetch PATH...        copy guest files into $VM_OUT/guest/ (evidence)
#   check DESC CMD          run CMD in the guest; fail the scenario unless it succeeds
#   check_eq DESC WANT CMD  run CMD in the guest; its trimmed stdout must equal WANT
#   fail REASON             fail the scenario with REASON
#   timing NAME SECONDS     record a timing (target/vm/SCENARIO/timings.txt)
#   evidence_files PATH...  guest files saved at the end, pass or fail
#   journal_steps_done F P  host-side check of a phase's steps in a journal export
#   journal_count F MATCH.. host-side count of journal entries (FIELD=V, FIELD~TEXT)
# and the stages of the upgrade story, each with its assertions:
#   stage_old_node, stage_install_tool [ENV], assert_armed, stage_dist_upgrade,
#   stage_first_systemd_boot [reset], vm_wait_finish_unit, assert_finished [MIGRATE_RUNS]
# and for the failure/power-loss/systemd scenarios:
#   vm_wait_guest DESC TIMEOUT CMD, vm_status_json NAME, json_check DESC FILE EXPR,
#   vm_wait_status DESC TIMEOUT NAME EXPR,
#   vm_export_journal FILE [ARGS], journal_phase_events F PHASE [BOOT],
#   vm_wait_finish_settled, assert_finish_failed STEP, stage_old_node_systemd,
#   assert_armed_systemd
# Evidence (journal.json, console.log, fetched files) lands in $VM_OUT.

VM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_ROOT=$(cd "$VM_HERE/../.." && pwd)
VM_TARGET=$VM_ROOT/target/vm
VM_CACHE=${SYNNEFO_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/synnefo-upgrade-0.19/vm}
# Bounded waits (seconds): TCG boots take ~30 s, be generous for loaded CI hosts.
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-420}
VM_CMD_TIMEOUT=${VM_CMD_TIMEOUT:-1200}

VM_T0=${VM_T0:-$SECONDS}

# ---------------------------------------------------------------- reporting

step() {
    printf '[%s] %s (+%ss)\n' "${SCENARIO:-vm}" "$*" "$((SECONDS - VM_T0))" >&2
}

fail() {
    printf '[%s] FAILED: %s\n' "${SCENARIO:-vm}" "$*" >&2
    if [ -n "${VM_OUT:-}" ]; then
        printf '%s\n' "$*" >"$VM_OUT/failure"
    fi
    exit 1
}

timing() {
    printf '%s %ss\n' "$1" "$2" >>"$VM_OUT/timings.txt"
    printf '%s/%s %ss\n' "$SCENARIO" "$1" "$2" >>"$VM_TARGET/timings.txt"
    printf '[%s] timing: %s %ss\n' "${SCENARIO:-vm}" "$1" "$2" >&2
}

# ---------------------------------------------------------------- base image

# Directory of the cached base image for the current recipe (hash of image.sh).
vm_base_dir() {
    local key
    key=$(sha256sum "$VM_HERE/image.sh" | cut -c1-16)
    echo "$VM_CACHE/base-$key"
}

# Build the base image unless a complete one for this recipe is cached.
vm_ensure_base() {
    local base tmp t0
    base=$(vm_base_dir)
    if [ -f "$base/complete" ]; then
        echo "[image] reusing cached base image $base" >&2
        return 0
    fi
    mkdir -p "$VM_CACHE"
    # Build next to the final place, then rename: an interrupted build is never
    # mistaken for a cached image.
    tmp=$(mktemp -d "$VM_CACHE/build.XXXXXX")
    t0=$SECONDS
    echo "[image] building base image (mmdebstrap bookworm + sysvinit, ~2 min)..." >&2
    if ! "$VM_HERE/image.sh" "$tmp" >"$VM_CACHE/image-build.log" 2>&1; then
        tail -n 30 "$VM_CACHE/image-build.log" >&2
        rm -rf "$tmp"
        echo "[image] base image build failed, log: $VM_CACHE/image-build.log" >&2
        return 1
    fi
    echo "$((SECONDS - t0))" >"$tmp/build-seconds"
    touch "$tmp/complete"
    rm -rf "$base"
    mv "$tmp" "$base"
    # Older recipes' images are dead weight.
    find "$VM_CACHE" -maxdepth 1 -name 'base-*' ! -path "$base" -exec rm -rf {} +
    echo "[image] base image built in $((SECONDS - t0))s" >&2
    echo "image-build $((SECONDS - t0))s" >>"$VM_TARGET/timings.txt"
}

# ---------------------------------------------------------------- local APT repository

# Build target/vm/repo (suites wheezy and jessie) and its disk image repo.img.
#   $1: our synnefo-upgrade-0.19 .deb (goes into wheezy)
vm_build_repo() {
    local deb=$1 repo=$VM_TARGET/repo base suite
    base=$(vm_base_dir)
    rm -rf "$repo" "$VM_TARGET/repo.img"
    mkdir -p "$repo/pool"
    "$VM_HERE/packages/build" "$repo/pool"
    cp "$deb" "$repo/pool/wheezy/"
    # jessie also carries systemd-sysv, dbus and their missing dependencies.
    cp "$base"/debs/*.deb "$repo/pool/jessie/"
    for suite in wheezy jessie; do
        mkdir -p "$repo/dists/$suite/main/binary-amd64"
        (cd "$repo" && apt-ftparchive packages "pool/$suite") >"$repo/dists/$suite/main/binary-amd64/Packages"
        gzip -9kn "$repo/dists/$suite/main/binary-amd64/Packages"
        apt-ftparchive \
            -o "APT::FTPArchive::Release::Suite=$suite" \
            -o "APT::FTPArchive::Release::Codename=$suite" \
            -o APT::FTPArchive::Release::Components=main \
            -o APT::FTPArchive::Release::Architectures=amd64 \
            release "$repo/dists/$suite" >"$VM_TARGET/Release.tmp"
        mv "$VM_TARGET/Release.tmp" "$repo/dists/$suite/Release"
    done
    # Handed to the guest as a read-only second disk (no journal: mountable read-only
    # from a read-only device).
    mkfs.ext4 -q -F -O ^has_journal -L snf-repo -d "$repo" "$VM_TARGET/repo.img" 512M
}

# ---------------------------------------------------------------- qemu

vm_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Boot a fresh copy-on-write overlay of the base image.  Sets VM_PID, VM_PORT.
vm_start() {
    local base
    base=$(vm_base_dir)
    VM_KEY=$base/id_ed25519
    qemu-img create -q -f qcow2 -b "$base/disk.raw" -F raw "$VM_OUT/overlay.qcow2"
    VM_PORT=$(vm_free_port)
    VM_MONITOR=$VM_OUT/monitor.sock
    rm -f "$VM_MONITOR"
    # TCG only: KVM guests hang on these machines.  The kernel/initrd come from the
    # image (the guest never rebuilds its initramfs).  vda = root, vdb = APT repository.
    qemu-system-x86_64 -accel tcg -m 1024 -smp 2 \
        -display none -vga none \
        -kernel "$base/vmlinuz" -initrd "$base/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
        -drive "file=$VM_OUT/overlay.qcow2,format=qcow2,if=virtio" \
        -drive "file=$VM_TARGET/repo.img,format=raw,if=virtio,readonly=on" \
        -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$VM_PORT-:22" \
        -serial "file:$VM_OUT/console.log" \
        -monitor "unix:$VM_MONITOR,server=on,wait=off" \
        >"$VM_OUT/qemu.log" 2>&1 &
    VM_PID=$!
    echo "$VM_PID" >"$VM_OUT/qemu.pid"
    vm_wait_ssh
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

vm_ssh_opts() {
    VM_SSH_OPTS=(-i "$VM_KEY" -p "$VM_PORT"
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
        -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=10
        -o ServerAliveInterval=10 -o ServerAliveCountMax=6)
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

# ---------------------------------------------------------------- assertions

# check DESC CMD: CMD (a guest shell string) must succeed.
check() {
    local desc=$1 cmd=$2 out
    if ! out=$(vm_ssh "$cmd" 2>&1); then
        fail "$desc: \`$cmd\` failed: $(printf '%s' "$out" | tail -n 5 | tr '\n' ' ')"
    fi
    printf '[%s]   ok: %s\n' "$SCENARIO" "$desc" >&2
}

# check_not DESC CMD: CMD must fail.
check_not() {
    local desc=$1 cmd=$2
    if vm_ssh "$cmd" >/dev/null 2>&1; then
        fail "$desc: \`$cmd\` unexpectedly succeeded"
    fi
    printf '[%s]   ok: %s\n' "$SCENARIO" "$desc" >&2
}

# check_eq DESC WANT CMD: trimmed stdout of CMD must equal WANT.
check_eq() {
    local desc=$1 want=$2 cmd=$3 got
    got=$(vm_ssh "$cmd" 2>/dev/null) || true
    got=$(printf '%s' "$got" | sed -e 's/[[:space:]]*$//')
    [ "$got" = "$want" ] || fail "$desc: \`$cmd\` printed '$got', want '$want'"
    printf '[%s]   ok: %s\n' "$SCENARIO" "$desc" >&2
}

# Guest-side shell snippets for common facts.
# shellcheck disable=SC2034 # used by scenarios
{
    # PID 1 is sysvinit and systemd is not running.
    # (/sbin is /usr/sbin on merged-/usr; after the switch /sbin/init is systemd.)
    GUEST_IS_SYSVINIT='[ "$(cat /proc/1/comm)" = init ] && case "$(readlink /proc/1/exe)" in */sbin/init) ;; *) exit 1;; esac && [ ! -d /run/systemd/system ]'
    # PID 1 is systemd.
    GUEST_IS_SYSTEMD='[ "$(cat /proc/1/comm)" = systemd ] && [ -d /run/systemd/system ]'
    # The fake gunicorn daemon runs (pidfile names a live process, which is ours).
    GUEST_GUNICORN_RUNNING='p=$(cat /run/gunicorn.pid 2>/dev/null) && kill -0 "$p" && grep -q fake-gunicorn /proc/$p/cmdline'
    # No fake gunicorn process at all.
    # (Anchored: the guest shell running this check has the name in its own cmdline.)
    GUEST_GUNICORN_DOWN='! pgrep -f "^/bin/sh /usr/sbin/fake-gunicorn" >/dev/null'
}

# ---------------------------------------------------------------- scenario stages
# Building blocks of the upgrade story; a scenario strings them together and adds
# its own twist (abort, failing migration, power loss...).

# Boot the sysvinit base overlay and install the 0.18.1 stack: gunicorn runs.
stage_old_node() {
    local t0=$SECONDS
    step "booting sysvinit guest..."
    vm_start
    timing boot-sysvinit "$((SECONDS - t0))"
    check "PID 1 is sysvinit, systemd not running" "$GUEST_IS_SYSVINIT"
    step "installing the 0.18.1 stack (snf-common snf-webproject gunicorn)"
    vm_mount_repo
    check "apt-get install of the 0.18.1 stack" \
        'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q snf-common snf-webproject gunicorn'
    check "gunicorn running (pidfile names a live fake-gunicorn)" "$GUEST_GUNICORN_RUNNING"
}

# Write the test-only drop-in and install synnefo-upgrade-0.19 (its postinst
# arms the upgrade).  $1: optional environment assignments for apt-get
# (e.g. SYNNEFO_UPGRADE_NO_ARM=1).  The output is kept in the guest's
# /root/install-synnefo-upgrade.log (fetched as evidence).
stage_install_tool() {
    local env=${1:-}
    step "installing synnefo-upgrade-0.19"
    # Test-only knob: the OS codename checks accept bookworm as the stand-in for
    # wheezy and jessie.  Written before the package, so that postinst's prepare sees it.
    printf '%s\n' \
        '# test-only: the VM models wheezy->jessie with bookworm' \
        '[release]' \
        'os_from = "bookworm"' \
        'os_to = "bookworm"' |
        vm_write /etc/synnefo-upgrade/upgrade.d/50-vm-test.toml 0644
    evidence_files /root/install-synnefo-upgrade.log
    check "apt-get install synnefo-upgrade-0.19" \
        "$env DEBIAN_FRONTEND=noninteractive apt-get install -y -q synnefo-upgrade-0.19 >/root/install-synnefo-upgrade.log 2>&1; rc=\$?; cat /root/install-synnefo-upgrade.log; exit \$rc"
}

# Everything `prepare` must have done.  The armed node's APT configuration,
# state and policy-rc.d are saved under $VM_OUT/armed/.
assert_armed() {
    check "gunicorn stopped by prepare" "$GUEST_GUNICORN_DOWN"
    # invoke-rc.d must consult policy-rc.d and refuse; its output is evidence.
    vm_ssh 'invoke-rc.d gunicorn start; echo "exit status $?"' >"$VM_OUT/invoke-rc.d-gunicorn-start.txt" 2>&1 || true
    check "invoke-rc.d gunicorn start refused (gunicorn still down)" "$GUEST_GUNICORN_DOWN"
    check_eq "policy-rc.d denies gunicorn start" 101 '/usr/sbin/policy-rc.d gunicorn start >/dev/null 2>&1; echo $?'
    check_eq "policy-rc.d denies gunicorn.service start" 101 '/usr/sbin/policy-rc.d gunicorn.service start >/dev/null 2>&1; echo $?'
    check_eq "policy-rc.d allows cron start" 0 '/usr/sbin/policy-rc.d cron start >/dev/null 2>&1; echo $?'
    check_eq "gunicorn masked for the next boot" /dev/null 'readlink /etc/systemd/system/gunicorn.service'
    check "APT sources switched to jessie" \
        'grep -Eq "^deb .*file:/srv/repo jessie main" /etc/apt/sources.list && ! grep -Eq "^deb .* wheezy" /etc/apt/sources.list'
    check "finish unit enabled" \
        'test -L /etc/systemd/system/multi-user.target.wants/synnefo-upgrade-finish.service && test -e /lib/systemd/system/synnefo-upgrade-finish.service'
    check "state.json says armed" \
        'grep -Eq "\"phase\"[[:space:]]*:[[:space:]]*\"armed\"" /var/lib/synnefo-upgrade/state.json'
    vm_fetch_to "$VM_OUT/armed" /etc/apt /var/lib/synnefo-upgrade /usr/sbin/policy-rc.d
}

# The operator's `apt-get update && apt-get dist-upgrade`: 0.19 stack, sysvinit
# replaced by systemd-sysv; the services stay down throughout.
stage_dist_upgrade() {
    local t0=$SECONDS
    step "apt-get update && apt-get dist-upgrade (0.19 stack, sysvinit -> systemd-sysv)"
    evidence_files /root/dist-upgrade.log
    check "apt-get dist-upgrade" \
        'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -y -q >/root/dist-upgrade.log 2>&1; rc=$?; tail -n 20 /root/dist-upgrade.log; exit $rc'
    timing dist-upgrade "$((SECONDS - t0))"
    check "gunicorn still down after dist-upgrade" "$GUEST_GUNICORN_DOWN"
    check "snf packages are 0.19" \
        'for p in snf-common snf-webproject; do [ "$(dpkg-query -W -f="\${Version}" $p)" = 0.19-1~jessie ] || exit 1; done'
    check "systemd-sysv installed, sysvinit-core gone" \
        'dpkg-query -W -f="\${Status}" systemd-sysv | grep -q "ok installed" && ! dpkg-query -W -f="\${Status}" sysvinit-core 2>/dev/null | grep -q "ok installed"'
}

# Reboot into systemd (the first boot after the upgrade) and wait for the finish
# unit to settle.  $1: "reset" for a power loss instead of a clean reboot.
stage_first_systemd_boot() {
    step "rebooting into systemd (first boot after the upgrade)"
    if [ "${1:-}" = reset ]; then vm_reset; else vm_reboot; fi
    timing first-systemd-boot "$VM_REBOOT_SECONDS"
    check "PID 1 is systemd" "$GUEST_IS_SYSTEMD"
    # ssh can come up before the finish unit's start job runs: wait for its end.
    vm_wait_finish_settled
}

# Wait (bounded) until the finish unit is no longer activating; save its status.
# ssh may come up while the oneshot is still running.
vm_wait_finish_unit() {
    vm_ssh 'for i in $(seq 1 300); do s=$(systemctl show -p ActiveState --value synnefo-upgrade-finish.service); case $s in activating|reloading) sleep 1;; *) break;; esac; done' || true
    vm_ssh 'systemctl status --no-pager synnefo-upgrade-finish.service gunicorn.service; systemctl show -p Result,ActiveState,SubState,ExecMainStatus synnefo-upgrade-finish.service' \
        >"$VM_OUT/systemctl-status.txt" 2>&1 || true
}

# Everything a successful `finish` must have done, journal included.
#   $1: how many `snf-manage migrate` runs the fake's log must show (default 1;
#       2 after a failed migration that was fixed and resumed).
assert_finished() {
    local steps migrate_lines migrate_runs=${1:-1} migrate_desc="snf-manage migrate ran exactly once"
    [ "$migrate_runs" = 1 ] || migrate_desc="snf-manage migrate ran exactly $migrate_runs times"
    check_eq "finish unit succeeded" Result=success \
        'systemctl show -p Result synnefo-upgrade-finish.service'
    # RemainAfterExit=yes: the oneshot stays "active (exited)" after success.
    check_eq "finish unit active" active 'systemctl is-active synnefo-upgrade-finish.service'
    check "finish unit ran (ExecMainStatus=0, not just skipped by a condition)" \
        '[ "$(systemctl show -p ExecMainStatus --value synnefo-upgrade-finish.service)" = 0 ] && [ "$(systemctl show -p ExecMainStartTimestampMonotonic --value synnefo-upgrade-finish.service)" != 0 ]'
    check_eq "gunicorn.service active" active 'systemctl is-active gunicorn.service'
    check "gunicorn process running" "$GUEST_GUNICORN_RUNNING"
    check "policy-rc.d removed" '! test -e /usr/sbin/policy-rc.d'
    check "gunicorn unmasked" '! test -L /etc/systemd/system/gunicorn.service'
    check "finish unit disabled" '! test -e /etc/systemd/system/multi-user.target.wants/synnefo-upgrade-finish.service'
    check "state.json says done" \
        'grep -Eq "\"phase\"[[:space:]]*:[[:space:]]*\"done\"" /var/lib/synnefo-upgrade/state.json'
    check_eq "$migrate_desc" "$migrate_runs" \
        'grep -c migrate /var/lib/fake-synnefo/snf-manage.log'
    # The shipped unit as the real systemd reads it: no warning at all.
    check "systemd-analyze verify: finish unit clean (no output)" \
        'out=$(systemd-analyze verify --man=no /lib/systemd/system/synnefo-upgrade-finish.service 2>&1) && echo "$out" >&2 && [ -z "$out" ]'

    # Journal checks run on the host, on the exported journal.
    VM_CMD_TIMEOUT=120 vm_ssh 'journalctl -o json --no-pager' >"$VM_OUT/journal.json" ||
        fail "could not export the journal"
    if ! steps=$(journal_steps_done "$VM_OUT/journal.json" finish 2>"$VM_OUT/journal-check.txt"); then
        fail "journal: finish steps not all done: $(cat "$VM_OUT/journal-check.txt")"
    fi
    step "finish steps per journal: $steps"
    # snf-manage's own output lines ("Applying ... OK") reached the journal from the unit.
    migrate_lines=$(journal_count "$VM_OUT/journal.json" _SYSTEMD_UNIT=synnefo-upgrade-finish.service MESSAGE~Applying)
    [ "$migrate_lines" -gt 0 ] || fail "journal: snf-manage migrate output not found in the finish unit's journal"
    printf '[%s]   ok: migrate output streamed to the journal (%s lines)\n' "$SCENARIO" "$migrate_lines" >&2
}

# ---------------------------------------------------------------- more stages and checks
# Used by the failure, power-loss and systemd-before-arming scenarios.

# vm_wait_guest DESC TIMEOUT CMD: poll (every 2 s, bounded by TIMEOUT seconds)
# until the guest shell string CMD succeeds; fail the scenario otherwise.
vm_wait_guest() {
    local desc=$1 timeout=$2 cmd=$3 deadline
    deadline=$((SECONDS + timeout))
    until VM_CMD_TIMEOUT=60 vm_ssh "$cmd" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${timeout}s waiting for: $desc (\`$cmd\`)"
        sleep 2
    done
    printf '[%s]   ok: %s\n' "$SCENARIO" "$desc" >&2
}

# vm_status_json NAME: save `synnefo-upgrade status --json` as $VM_OUT/status-NAME.json
# (evidence, and the input of json_check).  Prints the file's path.
vm_status_json() {
    local file=$VM_OUT/status-$1.json
    vm_ssh 'synnefo-upgrade status --json' >"$file" 2>"$VM_OUT/status-$1.stderr" ||
        fail "synnefo-upgrade status --json failed (see $file, ${file%.json}.stderr)"
    echo "$file"
}

# json_check DESC FILE EXPR: host-side check of a JSON document (e.g. a
# `status --json` output).  EXPR is a Python expression over `s` (the document);
# `step(PHASE, ID)` gives that step's status in a status/state document (None if
# absent) and `steps(PHASE)` the ids of its recorded steps, in order.
json_check() {
    local desc=$1 file=$2 expr=$3 out
    if ! out=$(json_holds "$file" "$expr" 2>&1); then
        fail "$desc: \`$expr\` does not hold for $file ($out)"
    fi
    printf '[%s]   ok: %s\n' "$SCENARIO" "$desc" >&2
}

# json_holds FILE EXPR: succeeds when EXPR (as in json_check) holds for FILE.
json_holds() {
    python3 - "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1], encoding="utf-8"))
def step(phase, id):
    for r in s.get("steps", []):
        if r.get("phase") == phase and r.get("id") == id:
            return r.get("status")
    return None
def steps(phase):
    return [r.get("id") for r in s.get("steps", []) if r.get("phase") == phase]
if not eval(sys.argv[2]):
    sys.exit("false")
PY
}

# vm_wait_status DESC TIMEOUT NAME EXPR: poll `synnefo-upgrade status --json`
# (saved as status-NAME.json; every 2 s, bounded by TIMEOUT seconds) until EXPR
# (as in json_check) holds.
vm_wait_status() {
    local desc=$1 timeout=$2 name=$3 expr=$4 deadline file=$VM_OUT/status-$3.json
    deadline=$((SECONDS + timeout))
    until vm_ssh 'synnefo-upgrade status --json' >"$file" 2>/dev/null && json_holds "$file" "$expr" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${timeout}s waiting for: $desc (\`$expr\` on $file)"
        sleep 2
    done
    printf '[%s]   ok: %s\n' "$SCENARIO" "$desc" >&2
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

# Wait (bounded) until the finish unit has run to an end on this boot: it is
# "active" (exited) or "failed".  ssh can be up before the unit's start job even
# began (ActiveState still "inactive"), which vm_wait_finish_unit does not wait
# out.  Saves the unit's status like vm_wait_finish_unit.
vm_wait_finish_settled() {
    vm_wait_guest "finish unit ran to an end on this boot (active or failed)" 420 \
        'case "$(systemctl show -p ActiveState --value synnefo-upgrade-finish.service)" in active|failed) ;; *) exit 1;; esac'
    vm_wait_finish_unit
}

# A `finish` that failed at step $1 (the unit's run on boot, or a rerun): the node
# is left in the safe state and every channel says what failed and what to do.
# Evidence: status-failed-STEP.json, journal-failed-STEP.json, journal-x-failed-STEP.txt.
assert_finish_failed() {
    local failed=$1 status n
    check_eq "finish unit failed" failed 'systemctl show -p ActiveState --value synnefo-upgrade-finish.service'
    check "finish unit Result is not success" \
        'r=$(systemctl show -p Result --value synnefo-upgrade-finish.service); echo "Result=$r" >&2; [ -n "$r" ] && [ "$r" != success ]'
    check_not "gunicorn.service not active" 'systemctl is-active --quiet gunicorn.service'
    check "gunicorn process not running" "$GUEST_GUNICORN_DOWN"
    check_eq "gunicorn still masked (link to /dev/null)" /dev/null 'readlink /etc/systemd/system/gunicorn.service'
    check_eq "systemctl is-enabled gunicorn.service says masked" masked 'systemctl is-enabled gunicorn.service'
    check "policy-rc.d still installed" 'test -x /usr/sbin/policy-rc.d'
    check_eq "policy-rc.d still denies gunicorn.service start" 101 '/usr/sbin/policy-rc.d gunicorn.service start >/dev/null 2>&1; echo $?'
    check "armed marker still present" 'test -e /var/lib/synnefo-upgrade/armed'
    check "finish unit still enabled" 'test -L /etc/systemd/system/multi-user.target.wants/synnefo-upgrade-finish.service'
    status=$(vm_status_json "failed-$failed")
    json_check "status --json: phase finishing" "$status" 's["phase"] == "finishing"'
    json_check "status --json: step $failed failed" "$status" "step('finish', '$failed') == 'failed'"
    json_check "status --json: no finish step recorded after $failed" "$status" "steps('finish')[-1] == '$failed'"
    json_check "status --json: gunicorn masked, policy-rc.d installed" "$status" \
        '"gunicorn" in s["masked"] and s["policy_rcd_installed"] is True'
    vm_export_journal "$VM_OUT/journal-failed-$failed.json"
    n=$(journal_count "$VM_OUT/journal-failed-$failed.json" SYNNEFO_UPGRADE_PHASE=finish \
        "SYNNEFO_UPGRADE_STEP=$failed" SYNNEFO_UPGRADE_OUTCOME=failed MESSAGE_ID=3f3d36b1587241fca98792f016b3c9f4)
    [ "$n" -ge 1 ] || fail "journal: no entry SYNNEFO_UPGRADE_STEP=$failed SYNNEFO_UPGRADE_OUTCOME=failed with the failed-step MESSAGE_ID"
    printf '[%s]   ok: journal: %s entry with STEP=%s OUTCOME=failed\n' "$SCENARIO" "$n" "$failed" >&2
    # journalctl -x adds the shipped catalog's explanation to that entry.
    vm_ssh 'journalctl -x --no-pager -u synnefo-upgrade-finish.service' >"$VM_OUT/journal-x-failed-$failed.txt" 2>&1 ||
        fail "journalctl -x -u synnefo-upgrade-finish failed"
    grep -qF "Fix the cause, then run 'synnefo-upgrade finish'" "$VM_OUT/journal-x-failed-$failed.txt" ||
        fail "journalctl -x -u synnefo-upgrade-finish shows no catalog explanation (see journal-x-failed-$failed.txt)"
    grep -qF "step $failed of finish FAILED" "$VM_OUT/journal-x-failed-$failed.txt" ||
        fail "journalctl -x: no catalog subject 'step $failed of finish FAILED' (see journal-x-failed-$failed.txt)"
    printf '[%s]   ok: journalctl -x shows the catalog explanation of the failed step\n' "$SCENARIO" >&2
}

# The old node already runs systemd before it is armed (jessie's systemd-sysv
# installed on wheezy, as some operators did): boot the sysvinit overlay, install
# systemd-sysv and dbus from the repository's jessie suite through a temporary
# source (removed again: only the wheezy line is left for prepare to rewrite),
# reboot into systemd, then install the 0.18.1 stack: gunicorn.service, generated
# from the init script, runs under systemd.
stage_old_node_systemd() {
    local t0=$SECONDS
    step "booting sysvinit guest..."
    vm_start
    timing boot-sysvinit "$((SECONDS - t0))"
    check "PID 1 is sysvinit, systemd not running" "$GUEST_IS_SYSVINIT"
    vm_mount_repo
    step "switching the old node to systemd (systemd-sysv dbus through a temporary jessie source)"
    evidence_files /root/switch-to-systemd.log
    check "apt-get install systemd-sysv dbus" \
        'echo "deb [trusted=yes] file:/srv/repo jessie main" >/etc/apt/sources.list.d/vm-systemd-only.list &&
         apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q systemd-sysv dbus >/root/switch-to-systemd.log 2>&1; rc=$?
         rm -f /etc/apt/sources.list.d/vm-systemd-only.list; apt-get update -q >/dev/null || rc=1
         tail -n 20 /root/switch-to-systemd.log; exit $rc'
    check "only the wheezy source is left" \
        '! grep -rqs jessie /etc/apt/sources.list /etc/apt/sources.list.d && grep -q "file:/srv/repo wheezy main" /etc/apt/sources.list'
    check "no Synnefo package came from jessie" '! dpkg-query -W snf-common gunicorn 2>/dev/null | grep -q .'
    vm_reboot
    timing boot-systemd-before-arming "$VM_REBOOT_SECONDS"
    check "PID 1 is systemd" "$GUEST_IS_SYSTEMD"
    vm_wait_guest "dbus system bus up" 120 'test -S /run/dbus/system_bus_socket'
    step "installing the 0.18.1 stack under systemd (snf-common snf-webproject gunicorn)"
    vm_mount_repo
    check "apt-get install of the 0.18.1 stack" \
        'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q snf-common snf-webproject gunicorn'
    check "snf packages are 0.18.1" \
        'for p in snf-common snf-webproject; do [ "$(dpkg-query -W -f="\${Version}" $p)" = 0.18.1-1~wheezy ] || exit 1; done'
    check_eq "gunicorn.service active under systemd" active 'systemctl is-active gunicorn.service'
    check "gunicorn.service generated from the init script" \
        'systemctl show -p SourcePath --value gunicorn.service | grep -qx /etc/init.d/gunicorn'
    check "gunicorn enabled at boot (rc2.d S link)" 'ls /etc/rc2.d/S*gunicorn >/dev/null'
    check "gunicorn process running" "$GUEST_GUNICORN_RUNNING"
}

# What `prepare` must have done where systemd was PID 1 (over D-Bus), in addition
# to assert_armed: the systemd view of the mask, deb-systemd-invoke refused, and
# the prepare steps in the journal (journald runs now).  Evidence:
# status-armed.json, journal-armed.json, deb-systemd-invoke-gunicorn-start.txt.
assert_armed_systemd() {
    local status missing
    check_eq "gunicorn.service inactive" inactive 'systemctl is-active gunicorn.service'
    check_eq "systemctl is-enabled gunicorn.service says masked" masked 'systemctl is-enabled gunicorn.service'
    check_eq "the mask is the /dev/null link" /dev/null 'readlink /etc/systemd/system/gunicorn.service'
    check_eq "systemd sees the mask (LoadState)" masked 'systemctl show -p LoadState --value gunicorn.service'
    vm_ssh 'deb-systemd-invoke start gunicorn.service; echo "exit status $?"' \
        >"$VM_OUT/deb-systemd-invoke-gunicorn-start.txt" 2>&1 || true
    grep -q 'policy-rc.d returned 101' "$VM_OUT/deb-systemd-invoke-gunicorn-start.txt" ||
        fail "deb-systemd-invoke start gunicorn.service was not refused by policy-rc.d (see deb-systemd-invoke-gunicorn-start.txt)"
    check_not "deb-systemd-invoke start did not start gunicorn.service" 'systemctl is-active --quiet gunicorn.service'
    check "gunicorn process still down" "$GUEST_GUNICORN_DOWN"
    vm_ssh 'invoke-rc.d gunicorn start; echo "exit status $?"' >"$VM_OUT/invoke-rc.d-gunicorn-start-systemd.txt" 2>&1 || true
    check_not "invoke-rc.d gunicorn start did not start gunicorn.service" 'systemctl is-active --quiet gunicorn.service'
    check "gunicorn process still down" "$GUEST_GUNICORN_DOWN"
    status=$(vm_status_json armed)
    json_check "status --json: armed, gunicorn masked, policy-rc.d installed" "$status" \
        's["phase"] == "armed" and "gunicorn" in s["masked"] and s["policy_rcd_installed"] is True'
    # (download is skipped without --download)
    json_check "status --json: every prepare step done (or skipped: download)" "$status" \
        'steps("prepare") and all(step("prepare", i) == "done" or (i == "download" and step("prepare", i) == "skipped") for i in steps("prepare"))'
    vm_export_journal "$VM_OUT/journal-armed.json"
    journal_steps_done "$VM_OUT/journal-armed.json" prepare >"$VM_OUT/journal-check-prepare.txt" 2>&1 ||
        fail "journal: prepare steps not all done: $(cat "$VM_OUT/journal-check-prepare.txt")"
    # Every prepare step the state records has its OUTCOME=done entry.
    missing=$(python3 - "$status" "$VM_OUT/journal-armed.json" <<'PY'
import json, sys
status = json.load(open(sys.argv[1], encoding="utf-8"))
done = set()
for line in open(sys.argv[2], encoding="utf-8", errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("SYNNEFO_UPGRADE_PHASE") == "prepare" and e.get("SYNNEFO_UPGRADE_OUTCOME") == "done":
        done.add(e.get("SYNNEFO_UPGRADE_STEP"))
# A step recorded as skipped (download, without --download) has no done entry.
print(" ".join(r["id"] for r in status["steps"] if r["phase"] == "prepare" and r["status"] != "skipped" and r["id"] not in done))
PY
    )
    [ -z "$missing" ] || fail "journal: prepare steps (not skipped) without a SYNNEFO_UPGRADE_OUTCOME=done entry: $missing"
    step "prepare steps per journal: $(cat "$VM_OUT/journal-check-prepare.txt")"
}

# ---------------------------------------------------------------- evidence

VM_EVIDENCE=()
evidence_files() {
    VM_EVIDENCE+=("$@")
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

# ---------------------------------------------------------------- journal (host side)

# journal_steps_done FILE PHASE: check the PHASE's steps in a `journalctl -o json`
# export.  A step that ran (it has some SYNNEFO_UPGRADE_STEP entry other than a
# "skipped" outcome: its start record, command output...) must have an entry with
# SYNNEFO_UPGRADE_OUTCOME=done; a step whose only entries say "skipped" did not
# apply to this node and is fine; at least one step must be done.  Prints
# "done: a b c; skipped: d e", or the offending steps on stderr and fails.
journal_steps_done() {
    python3 - "$1" "$2" <<'PY'
import json, sys
path, phase = sys.argv[1], sys.argv[2]
steps, outcomes = [], {}
for line in open(path, encoding="utf-8", errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("SYNNEFO_UPGRADE_PHASE") != phase or "SYNNEFO_UPGRADE_STEP" not in e:
        continue
    step = e["SYNNEFO_UPGRADE_STEP"]
    if step not in steps:
        steps.append(step)
    # None: an entry of a running step without an outcome (start, command output).
    outcomes.setdefault(step, []).append(e.get("SYNNEFO_UPGRADE_OUTCOME"))
done = [s for s in steps if "done" in outcomes[s]]
skipped = [s for s in steps if set(outcomes[s]) == {"skipped"}]
bad = [s for s in steps if s not in done and s not in skipped]
if bad:
    sys.exit("; ".join(f"{s}: outcomes {outcomes[s]}" for s in bad))
if not done:
    sys.exit(f"no {phase} step has SYNNEFO_UPGRADE_OUTCOME=done (steps seen: {steps})")
print(f"done: {' '.join(done)}; skipped: {' '.join(skipped) or '-'}")
PY
}

# journal_count FILE MATCH...: number of entries of a `journalctl -o json` export
# matching every MATCH: FIELD=VALUE (equal) or FIELD~TEXT (contains).
journal_count() {
    python3 - "$@" <<'PY'
import json, re, sys
path, matches = sys.argv[1], sys.argv[2:]
conds = [re.match(r"([A-Z0-9_]+)([=~])(.*)", m).groups() for m in matches]
n = 0
for line in open(path, encoding="utf-8", errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    ok = True
    for field, op, value in conds:
        v = e.get(field)
        v = "" if v is None else str(v)
        if (op == "=" and v != value) or (op == "~" and value not in v) or field not in e:
            ok = False
            break
    n += ok
print(n)
PY
}

# journal_phase_events FILE PHASE [BOOT_ID]: the PHASE's step entries of a
# `journalctl -o json` export (only those of boot BOOT_ID, journald's dashless
# form, when given), in journal order, one line each: "STEP OUTCOME", where
# OUTCOME is "-" for entries without one (a step's start, command output).
journal_phase_events() {
    python3 - "$@" <<'PY'
import json, sys
path, phase = sys.argv[1], sys.argv[2]
boot = sys.argv[3] if len(sys.argv) > 3 else None
for line in open(path, encoding="utf-8", errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("SYNNEFO_UPGRADE_PHASE") != phase or "SYNNEFO_UPGRADE_STEP" not in e:
        continue
    if boot is not None and e.get("_BOOT_ID") != boot:
        continue
    print(e["SYNNEFO_UPGRADE_STEP"], e.get("SYNNEFO_UPGRADE_OUTCOME") or "-")
PY
}
