# shellcheck shell=bash
# shellcheck disable=SC2016 # guest commands are single-quoted on purpose: they expand in the guest
# The stages of the upgrade story, each with its assertions. A scenario strings
# them together and adds its own twist (abort, failing migration, power loss...). Sourced by ../lib.sh.

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

# A Cyclades node: snf-cyclades-app ships snf-dispatcher, a second managed
# service whose 0.19 package takes another form: a sysvinit script on 0.18.1
# (enabled in /etc/default, as operators do); in 0.19 a native unit that the
# postinst enables the debhelper way (deb-systemd-helper) during the
# dist-upgrade, while our mask stands. On a service node prepare also adds
# jessie-backports (derived from the wheezy line, whose options it must keep:
# the local repository is unsigned, `[trusted=yes]`) and the gevent pin.
stage_cyclades() {
    step "installing snf-cyclades-app (a Cyclades node; snf-dispatcher: a sysvinit service, enabled at boot)"
    # prepare derives jessie-backports from the node's Debian mirror line, which
    # it recognises by its URI (".../debian..."): the repository disk is served
    # under such a name here, as a site's mirror would be.
    check "the wheezy line names the repository as a Debian mirror (file:/srv/debian)" \
        'ln -sfn /srv/repo /srv/debian && sed -i "s|file:/srv/repo |file:/srv/debian |" /etc/apt/sources.list &&
         grep -q "^deb \[trusted=yes\] file:/srv/debian wheezy main" /etc/apt/sources.list && apt-get update -q >/dev/null'
    check "SNF_DSPTCH_ENABLE=true in /etc/default/snf-dispatcher" \
        'echo SNF_DSPTCH_ENABLE=true >/etc/default/snf-dispatcher'
    check "apt-get install snf-cyclades-app" \
        'DEBIAN_FRONTEND=noninteractive apt-get install -y -q snf-cyclades-app'
    check "snf-dispatcher running" "$GUEST_DISPATCHER_RUNNING"
    check "snf-dispatcher starts at boot (rc2.d S link)" 'ls /etc/rc2.d/S*snf-dispatcher >/dev/null'
}

# What prepare does on a service node besides assert_armed: the APT lines it
# adds keep the options of the line they derive from, APT accepts them, and the
# preflight simulated the dist-upgrade first.
assert_armed_service_node() {
    check "snf-dispatcher stopped by prepare" "$GUEST_DISPATCHER_DOWN"
    check "jessie-backports line added with the wheezy line's options ([trusted=yes])" \
        'grep -rqsE "^deb \[trusted=yes\] file:/srv/debian jessie-backports main" /etc/apt/sources.list /etc/apt/sources.list.d'
    check "gevent/greenlet pin written" 'test -s /etc/apt/preferences.d/synnefo-upgrade-gevent'
    check "APT reads every source prepare wrote (apt-get update, no error or warning)" \
        'out=$(apt-get update 2>&1); echo "$out" >&2; ! echo "$out" | grep -qE "^(E|W|Err):"'
    check "the preflight simulated the dist-upgrade (scratch APT state, nothing left)" \
        'grep -q "dist-upgrade simulated:" /var/log/synnefo-upgrade.log && ! ls -d /run/synnefo-upgrade-aptsim.* 2>/dev/null'
}

# An armed node rebooted before its dist-upgrade (still sysvinit): the managed
# services must stay down, their start links disabled as update-rc.d disable does.
stage_armed_reboot() {
    check "boot-time start disabled while armed (rc2.d K links, no S link)" \
        'ls /etc/rc2.d/K*gunicorn /etc/rc2.d/K*snf-dispatcher >/dev/null && ! ls /etc/rc2.d/S*gunicorn /etc/rc2.d/S*snf-dispatcher 2>/dev/null'
    step "rebooting the armed node before its dist-upgrade (still sysvinit)"
    vm_reboot
    timing reboot-armed-sysvinit "$VM_REBOOT_SECONDS"
    check "PID 1 is sysvinit" "$GUEST_IS_SYSVINIT"
    check "gunicorn stayed down across the boot" "$GUEST_GUNICORN_DOWN"
    check "snf-dispatcher stayed down across the boot" "$GUEST_DISPATCHER_DOWN"
    vm_mount_repo
}

# After finish: the service whose package became a native unit runs, and both
# start at the next boot too (the finish unit does not run again).
assert_second_boot() {
    check_eq "snf-dispatcher.service active after finish" active 'systemctl is-active snf-dispatcher.service'
    check "snf-dispatcher.service is the native unit" \
        'systemctl show -p FragmentPath --value snf-dispatcher.service | grep -qx /lib/systemd/system/snf-dispatcher.service'
    check_eq "snf-dispatcher.service enabled" enabled 'systemctl is-enabled snf-dispatcher.service'
    step "rebooting a second time: what ran before the upgrade starts at every boot"
    vm_reboot
    timing second-systemd-boot "$VM_REBOOT_SECONDS"
    vm_wait_guest "gunicorn.service and snf-dispatcher.service active after the second boot" 120 \
        'systemctl is-active --quiet gunicorn.service && systemctl is-active --quiet snf-dispatcher.service'
    check "gunicorn and snf-dispatcher processes running" "$GUEST_GUNICORN_RUNNING && $GUEST_DISPATCHER_RUNNING"
    check "the finish unit did not run on the second boot (disabled, state done)" \
        '[ "$(systemctl show -p ExecMainStartTimestampMonotonic --value synnefo-upgrade-finish.service)" = 0 ] &&
         grep -Eq "\"phase\"[[:space:]]*:[[:space:]]*\"done\"" /var/lib/synnefo-upgrade/state.json'
}

# The operator's own 0.18.1 configuration, as a real Cyclades node carries it
# (tests/fixtures/convert/cyclades-node, the fixture the conversion tests use):
# a django-mode gunicorn config, an Apache site named without `.conf` (enabled by
# a sites-enabled link) that sets the old X-Forwarded-Protocol header,
# memcached-URL cache settings, the old allocator, and the ALLOWED_HOSTS drop-in
# for synnefo-upgrade.  Plus the synnefo system user that owns /var/log/synnefo.
VM_NODE_CONFIG=$VM_ROOT/tests/fixtures/convert/cyclades-node
stage_operator_config() {
    step "the operator's 0.18.1 configuration (gunicorn django mode, Apache site without .conf, old caches)"
    check "synnefo system user" 'id synnefo >/dev/null 2>&1 || useradd --system --home-dir /var/lib/synnefo --shell /usr/sbin/nologin synnefo'
    # The database settings stay out: the demo node has no PostgreSQL.
    tar -C "$VM_NODE_CONFIG" --owner=0 --group=0 --exclude=etc/passwd \
        --exclude=etc/synnefo/10-snf-webproject-database.conf -cf - etc |
        vm_ssh 'tar -C / --no-same-owner -xf -' || fail "copying the operator's configuration into the guest"
    check "Apache site enabled the 2.2 way (sites-enabled/synnefo-ssl)" \
        'mkdir -p /etc/apache2/sites-enabled && ln -sfn ../sites-available/synnefo-ssl /etc/apache2/sites-enabled/synnefo-ssl'
    evidence_files /etc/synnefo /etc/gunicorn.d /etc/apache2 /etc/nginx
}

# Before the dist-upgrade: `convert --dry-run` shows every conversion the finish
# will make and changes nothing.  The diff is saved as $VM_OUT/convert-dry-run.diff.
assert_convert_planned() {
    local f
    vm_ssh 'synnefo-upgrade convert --dry-run' >"$VM_OUT/convert-dry-run.diff" 2>&1 ||
        fail "synnefo-upgrade convert --dry-run failed (see convert-dry-run.diff)"
    for f in $(cd "$VM_NODE_CONFIG.expected" && find etc -type f | sort); do
        grep -qF -- "+++ /${f%.conf}" "$VM_OUT/convert-dry-run.diff" ||
            fail "convert --dry-run shows no diff for /$f (see convert-dry-run.diff)"
    done
    printf '[%s]   ok: convert --dry-run shows a diff for each of the %s files to convert\n' \
        "$SCENARIO" "$(cd "$VM_NODE_CONFIG.expected" && find etc -type f | wc -l)" >&2
    check "convert --dry-run changed nothing (Apache site still without .conf, gunicorn still django)" \
        'test -f /etc/apache2/sites-available/synnefo-ssl && ! test -e /etc/apache2/sites-available/synnefo-ssl.conf && grep -q "django" /etc/gunicorn.d/synnefo'
}

# After finish: every converted file is byte for byte the conversion tests'
# expected output; the site is renamed and still enabled.  The converted files
# are saved under $VM_OUT/converted/.
assert_converted() {
    local f n=0
    vm_fetch_to "$VM_OUT/converted" /etc/synnefo /etc/gunicorn.d /etc/apache2 /etc/nginx
    for f in $(cd "$VM_NODE_CONFIG.expected" && find etc -type f | sort); do
        cmp -s "$VM_NODE_CONFIG.expected/$f" "$VM_OUT/converted/$f" ||
            fail "/$f after finish differs from tests/fixtures/convert/cyclades-node.expected/$f (see converted/$f)"
        n=$((n + 1))
    done
    printf '[%s]   ok: %s converted files equal the conversion fixtures'"'"' expected output\n' "$SCENARIO" "$n" >&2
    check_eq "the enabled site follows the rename" ../sites-available/synnefo-ssl.conf \
        'readlink /etc/apache2/sites-enabled/synnefo-ssl.conf'
    check "no site left without .conf" '! test -e /etc/apache2/sites-available/synnefo-ssl && ! test -L /etc/apache2/sites-enabled/synnefo-ssl'
    check_eq "/var/log/synnefo created for the synnefo user" synnefo 'stat -c %U /var/log/synnefo'
}

# The test-only drop-in: the OS codename checks accept bookworm as the
# stand-in for wheezy and jessie (the product's documented drop-in directory).
vm_write_test_dropin() {
    printf '%s\n' \
        '# test-only: the VM models wheezy->jessie with bookworm' \
        '[release]' \
        'os_from = "bookworm"' \
        'os_to = "bookworm"' |
        vm_write /etc/synnefo-upgrade/upgrade.d/50-vm-test.toml 0644
}

# Write the test-only drop-in and install synnefo-upgrade-0.19 (its postinst
# arms the upgrade).  $1: optional environment assignments for apt-get
# (e.g. SYNNEFO_UPGRADE_NO_ARM=1).  The output is kept in the guest's
# /root/install-synnefo-upgrade.log (fetched as evidence).
stage_install_tool() {
    local env=${1:-}
    step "installing synnefo-upgrade-0.19"
    # Written before the package, so that postinst's prepare sees it.
    vm_write_test_dropin
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
        'grep -Eq "^deb .*file:/srv/(repo|debian) jessie main" /etc/apt/sources.list && ! grep -Eq "^deb .* wheezy" /etc/apt/sources.list'
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
    step "synnefo-upgrade dist-upgrade (apt-get update && dist-upgrade: 0.19 stack, sysvinit -> systemd-sysv)"
    evidence_files /root/dist-upgrade.log /var/log/synnefo-upgrade-dist-upgrade.log
    check "synnefo-upgrade dist-upgrade (detached worker, followed until it ends)" \
        'synnefo-upgrade dist-upgrade >/root/dist-upgrade.log 2>&1; rc=$?; tail -n 20 /root/dist-upgrade.log; exit $rc'
    timing dist-upgrade "$((SECONDS - t0))"
    vm_status_json after-dist-upgrade >/dev/null
    json_check "status: the dist-upgrade succeeded, no worker left" "$VM_OUT/status-after-dist-upgrade.json" \
        's["dist_upgrade"]["outcome"] == "succeeded" and not s["dist_upgrade"]["running"] and s["phase"] == "armed"'
    check "dpkg --audit empty; the log ends with the outcome" \
        'test -z "$(dpkg --audit)" && grep -q "dist-upgrade: succeeded at" /var/log/synnefo-upgrade-dist-upgrade.log'
    check "dpkg was asked to keep the conffiles (confdef, confold) and nothing prompted" \
        'grep -q "dist-upgrade (conffiles kept)" /var/log/synnefo-upgrade-dist-upgrade.log'

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

# Wait (bounded) until the finish unit has run to an end on this boot: it is
# "active" (exited) or "failed".  ssh can be up before the unit's start job even
# began (ActiveState still "inactive"), which vm_wait_finish_unit does not wait
# out.  Saves the unit's status like vm_wait_finish_unit.
vm_wait_finish_settled() {
    vm_wait_guest "finish unit ran to an end on this boot (active or failed)" 420 \
        'case "$(systemctl show -p ActiveState --value synnefo-upgrade-finish.service)" in active|failed) ;; *) exit 1;; esac'
    vm_wait_finish_unit
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
    check_eq "systemd sees the mask (LoadState), also after migrate loaded the units ahead" masked 'systemctl show -p LoadState --value gunicorn.service'
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
    missing=$(journal_not_done "$VM_OUT/journal-armed.json" "$status" prepare)
    [ -z "$missing" ] || fail "journal: prepare steps (not skipped) without a SYNNEFO_UPGRADE_OUTCOME=done entry: $missing"
    step "prepare steps per journal: $(cat "$VM_OUT/journal-check-prepare.txt")"
}
