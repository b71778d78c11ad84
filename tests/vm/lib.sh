# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are read by scenarios
# The VM harness's library (tests/vm/run sources this file; it sources lib/*).
#
# A scenario is a short bash file under tests/vm/scenarios/ that `run` sources in
# a subshell after setting SCENARIO and VM_OUT.  What it can use, by concern:
#
# here      step MSG (progress on stderr), fail REASON, timing NAME SECONDS,
#           evidence_files PATH... (guest files saved at the end, pass or fail),
#           journal_steps_done F PHASE, journal_count F MATCH..., journal_phase_events
#           F PHASE [BOOT], journal_not_done F STATUS PHASE, journal_story F
#           (all over lib/journal.py, the one reader of `journalctl -o json` exports)
# qemu.sh   vm_start (= vm_launch + vm_wait_ssh; knobs VM_DISK, VM_SMP, VM_QEMU_EXTRA), vm_ssh CMD, vm_reboot, vm_reset, vm_monitor CMD, vm_mount_repo,
#           vm_write FILE MODE, vm_fetch PATH..., vm_fetch_to DIR PATH...,
#           vm_export_journal FILE [ARGS], vm_boot_id_journal, vm_collect_evidence
# assert.sh check DESC CMD, check_not DESC CMD, check_eq DESC WANT CMD,
#           vm_wait_guest DESC TIMEOUT CMD, vm_status_json NAME,
#           json_check DESC FILE EXPR, vm_wait_status DESC TIMEOUT NAME EXPR,
#           GUEST_IS_SYSVINIT, GUEST_IS_SYSTEMD, GUEST_GUNICORN_RUNNING/_DOWN
# stages.sh stage_old_node, stage_operator_config, stage_install_tool [ENV],
#           assert_armed, stage_dist_upgrade, stage_first_systemd_boot [reset],
#           vm_wait_finish_settled, assert_finished [MIGRATE_RUNS],
#           assert_converted, assert_finish_failed STEP, stage_old_node_systemd,
#           assert_armed_systemd
# repo.sh   vm_ensure_base, vm_build_repo DEB (used by `run` before the scenarios)
# Evidence (journal.json, console.log, fetched files) lands in $VM_OUT.

VM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_ROOT=$(cd "$VM_HERE/../.." && pwd)
VM_TARGET=$VM_ROOT/target/vm
VM_CACHE=${SYNNEFO_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/synnefo-upgrade-0.19/vm}
# Bounded waits (seconds): TCG boots take ~30 s, be generous for loaded CI hosts.
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-420}
VM_CMD_TIMEOUT=${VM_CMD_TIMEOUT:-1200}

VM_T0=${VM_T0:-$SECONDS}
# The shared ssh connections' sockets (lib/qemu.sh's vm_ssh_opts): short
# paths (a unix socket's is at most 107 bytes), private to this run.
VM_SSH_CTL=${VM_SSH_CTL:-$(mktemp -d "${TMPDIR:-/tmp}/synnefo-vm-ssh.XXXXXX")}

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

# ---------------------------------------------------------------- evidence

VM_EVIDENCE=()
evidence_files() {
    VM_EVIDENCE+=("$@")
}

# ---------------------------------------------------------------- journal (host side)
# Thin wrappers over lib/journal.py; its docstring says what each one checks.

journal_steps_done() { python3 "$VM_HERE/lib/journal.py" steps-done "$@"; }
journal_count() { python3 "$VM_HERE/lib/journal.py" count "$@"; }
journal_phase_events() { python3 "$VM_HERE/lib/journal.py" events "$@"; }
journal_not_done() { python3 "$VM_HERE/lib/journal.py" not-done "$@"; }
journal_story() { python3 "$VM_HERE/lib/journal.py" story "$@"; }

# shellcheck source=lib/repo.sh
. "$VM_HERE/lib/repo.sh"
# shellcheck source=lib/qemu.sh
. "$VM_HERE/lib/qemu.sh"
# shellcheck source=lib/assert.sh
. "$VM_HERE/lib/assert.sh"
# shellcheck source=lib/stages.sh
. "$VM_HERE/lib/stages.sh"
