#!/usr/bin/env bash
# Benchmark, in a VM with real systemd and D-Bus: stopping and masking 64 running
# units the way `synnefo-upgrade prepare` does it (one D-Bus job per unit, all
# issued at once, each awaited through JobRemoved; one MaskUnitFiles and one
# Reload) against the operator's loop of `systemctl stop` and `systemctl mask`
# per unit. Both rounds run in the same VM, one after the other; the script
# prints each time and the ratio. Goal: ours >= 5x faster.
#
#   benches/vm-stop-mask.sh [UNITS]      (default 64; builds the .deb unless
#                                         SYNNEFO_UPGRADE_DEB names one)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-64}

# shellcheck source=../tests/vm/lib.sh
. tests/vm/lib.sh
# shellcheck disable=SC2034 # read by lib.sh
SCENARIO=bench-stop-mask
VM_OUT=$VM_TARGET/bench-stop-mask
rm -rf "$VM_OUT"
mkdir -p "$VM_OUT"
tests/vm/install-deps >&2
deb=${SYNNEFO_UPGRADE_DEB:-}
if [ -z "$deb" ]; then
    cargo deb --target x86_64-unknown-linux-gnu --output target/debian/ >&2
    deb=$(ls target/debian/synnefo-upgrade-0.19_*_amd64.deb)
fi
vm_ensure_base
vm_build_repo "$deb" >"$VM_TARGET/repo-build.log" 2>&1
trap vm_collect_evidence EXIT

# A node already on systemd, with the 0.18.1 stack (gunicorn.service runs).
stage_old_node_systemd

units=$(for i in $(seq -w 1 "$n"); do printf 'bench-%s ' "$i"; done)
# $1: the loop that creates and starts the units (fresh for each round).
start_units='for u in '"$units"'; do printf "[Service]\nExecStart=/bin/sleep infinity\n" > /etc/systemd/system/$u.service; done
    systemctl daemon-reload && for u in '"$units"'; do systemctl start --no-block $u.service; done
    for i in $(seq 1 120); do [ "$(systemctl list-units --state=active "bench-*" --no-legend | wc -l)" -ge '"$n"' ] && exit 0; sleep 1; done; exit 1'
# Units are unit files of their own here, so a mask must replace them: systemctl
# mask refuses a unit file in /etc; move them to /run, as a package's units
# would live in /lib.
start_units=${start_units//\/etc\/systemd\/system\//\/run\/systemd\/system\/}

step "round 1: systemctl stop + systemctl mask, unit by unit ($n units)"
check "$n units running" "$start_units"
# shellcheck disable=SC2016
t_systemctl=$(vm_ssh 's=$(date +%s%N); for u in '"$units"'; do systemctl stop $u.service; systemctl mask $u.service >/dev/null 2>&1; done; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))')
check "all stopped and masked" '[ "$(ls -l /etc/systemd/system/bench-*.service | grep -c /dev/null)" -eq '"$n"' ]'
check "clean up round 1" 'for u in '"$units"'; do rm -f /etc/systemd/system/$u.service; done; systemctl daemon-reload'

step "round 2: synnefo-upgrade prepare with the $n units managed (parallel D-Bus jobs)"
check "$n units running again" "$start_units"
managed=$(for u in $units; do printf '"%s", ' "$u"; done)
printf '%s\n' '[release]' 'os_from = "bookworm"' 'os_to = "bookworm"' '[services]' "managed = [${managed%, }]" |
    vm_write /etc/synnefo-upgrade/upgrade.d/50-vm-test.toml 0644
check "install without arming" 'SYNNEFO_UPGRADE_NO_ARM=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -q synnefo-upgrade-0.19 >/dev/null 2>&1'
# The whole prepare is timed (preflight, dpkg snapshot, APT files, policy-rc.d
# too): the comparison is conservative.
# shellcheck disable=SC2016
t_ours=$(vm_ssh 's=$(date +%s%N); synnefo-upgrade prepare >/root/prepare.log 2>&1 || exit 1; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))')
check "all stopped and masked by prepare" '[ "$(ls -l /etc/systemd/system/bench-*.service | grep -c /dev/null)" -eq '"$n"' ] && [ "$(systemctl list-units --state=active "bench-*" --no-legend | wc -l)" -eq 0 ]'

printf '%-52s %8s ms  %6s\n' "systemctl stop + mask, one unit at a time (baseline)" "$t_systemctl" "1.00x"
printf '%-52s %8s ms  %6sx faster\n' "synnefo-upgrade prepare (parallel D-Bus jobs)" "$t_ours" \
    "$(awk -v a="$t_systemctl" -v b="$t_ours" 'BEGIN { printf "%.1f", a / b }')"
