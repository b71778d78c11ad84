# shellcheck shell=bash
# shellcheck disable=SC2016 # guest commands are single-quoted on purpose: they expand in the guest
# shellcheck disable=SC2034 # VM_* knobs set here are read by lib/qemu.sh
# The harness of the multi-guest scenario (scenarios/cluster):
# sourced by them, after they have set
#   NODES      the guests, in boot order (also /etc/hosts' order)
#   CL_IP      NODE -> its address on the cluster network (10.10.0.0/24)
#   CL_MAC     NODE -> its NIC's MAC there
#   CL_DBNODE  the guest that runs PostgreSQL: the Synnefo databases and the
#              evidence database (tables heartbeats, migrations)
# What it gives them:
#   cluster_init                 the state below, the EXIT trap (evidence, qemu down)
#   on NODE CMD...               a harness function (check, vm_ssh...) against NODE
#   parallel FUNCTION [NODE...]  FUNCTION NODE on every node (or those named) at once
#   db SQL                       a query of the evidence database, from the host
#   cluster_boot                 every guest of NODES up on one qemu-only network (resumed from saved boots)
#   setup_network NODE           name, eth1, /etc/hosts, the tools
#   setup_rollout NODE           the repository, the drop-in, wheezy's python link
#   setup_postgres               CL_DBNODE's PostgreSQL and databases
#   setup_service NODE SVC...    the 0.18.1 stack of those services, pointing at CL_DBNODE
#   cluster_wait_heartbeats N    until N nodes' heartbeats reach the evidence database
#   cluster_evidence             the evidence tables as CSV in $CL_OUT
#   cluster_ansible_install      the collection built and installed from its tarball
#   ansible_run NAME [ARG...]    ansible-playbook synnefo.upgrade.site over $CL_OUT/inventory.yml

cluster_init() {
    CL_OUT=$VM_OUT
    CL_FILES=$VM_HERE/cluster
    declare -gA CL_PORT=() CL_PID=() CL_BOOT=()
    CL_DB_PASSWORD=cluster-passw0rd
    CL_EVIDENCE_DONE=
    trap cluster_collect EXIT
    evidence_files /var/lib/synnefo-upgrade /var/log/synnefo-upgrade.log /var/lib/fake-synnefo /var/log/apt \
        /var/log/dpkg.log /etc/apt /etc/synnefo-upgrade /var/log/ganeti /var/lib/ganeti/queue \
        /var/spool/fake-cluster /root/install-0.18.1.log /var/backups/synnefo-upgrade
}

# One failure file for the scenario, whichever guest failed.
fail() {
    printf '[%s] FAILED: %s\n' "${SCENARIO:-vm}" "$*" >&2
    printf '%s\n' "$*" >"$CL_OUT/failure"
    exit 1
}

# on NODE CMD...: run a harness function (check, vm_ssh, vm_reboot...) against
# NODE's guest: the lib's VM_* globals, scoped to the call.
on() {
    local n=$1
    shift
    local VM_OUT=$CL_OUT/$n VM_PORT=${CL_PORT[$n]} VM_PID=${CL_PID[$n]} VM_BOOT_ID=${CL_BOOT[$n]:-}
    local VM_MONITOR=$CL_OUT/$n/monitor.sock SCENARIO=${SCENARIO%%/*}/$n
    "$@"
    CL_BOOT[$n]=$VM_BOOT_ID
}

# parallel FUNCTION [NODE...]: FUNCTION NODE on every node of NODES, or on
# the nodes named, at once (background subshells: nothing they set survives;
# waited for by pid, since the qemus are this shell's children too); fails
# when any of them failed.
parallel() {
    local f=$1 n i pids=() bad=()
    shift
    local nodes=("$@")
    [ "${#nodes[@]}" -gt 0 ] || nodes=("${NODES[@]}")
    for n in "${nodes[@]}"; do
        on "$n" "$f" "$n" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || bad+=("${nodes[$i]}")
    done
    [ "${#bad[@]}" = 0 ] || fail "$f failed on ${bad[*]} (see their progress above and $CL_OUT/NODE/)"
}

# The evidence database on CL_DBNODE, from the host.
db() {
    on "$CL_DBNODE" vm_ssh "PGPASSWORD=$CL_DB_PASSWORD psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -U synnefo -d cluster_evidence -c \"$1\""
}

# Called on exit, pass or fail: spooled heartbeats shipped, the tables as CSV,
# each guest's journal and state, qemu down.
cluster_collect() {
    local n
    [ -n "$CL_EVIDENCE_DONE" ] || cluster_evidence || true
    for n in "${NODES[@]}"; do
        [ -n "${CL_PID[$n]:-}" ] || continue
        (
            on "$n" vm_collect_evidence
            # vm_collect_evidence already has the journal; the state beside it.
            [ -f "$CL_OUT/$n/guest/var/lib/synnefo-upgrade/state.json" ] &&
                cp "$CL_OUT/$n/guest/var/lib/synnefo-upgrade/state.json" "$CL_OUT/$n/state.json"
            rm -f "$CL_OUT/$n/vg.qcow2"
            true
        )
    done
}

# cluster_evidence: what writers left spooled goes in, then both tables, by
# PostgreSQL's COPY ... CSV HEADER (times in UTC, to the microsecond).
cluster_evidence() {
    local n t running=()
    [ -n "${CL_PID[$CL_DBNODE]:-}" ] || return 1
    for n in "${NODES[@]}"; do
        [ -z "${CL_PID[$n]:-}" ] || running+=("$n")
    done
    [ "${#running[@]}" = 0 ] || parallel ship_spool "${running[@]}"
    for t in "heartbeats:source, node, version" "migrations:node, service, event"; do
        on "$CL_DBNODE" vm_ssh "PGPASSWORD=$CL_DB_PASSWORD PGTZ=UTC psql -X -q -h 127.0.0.1 -U synnefo -d cluster_evidence -c \"COPY (SELECT ${t#*:}, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\\\"T\\\"HH24:MI:SS.US\\\"Z\\\"') AS time FROM ${t%%:*} ORDER BY time) TO STDOUT WITH (FORMAT csv, HEADER)\"" \
            >"$CL_OUT/${t%%:*}.csv" || return 1
    done
    CL_EVIDENCE_DONE=yes
}

# cluster_boot: every guest of NODES up at once on one private network that
# exists only inside qemu (a socket netdev on a multicast group bound to
# 127.0.0.1) besides its user-mode NIC for the host's ssh; waits for their
# ssh.  The guests resume from their saved boots (cluster_boot_states): a
# guest boots the cluster image, or, where the scenario set CL_GANETI
# (ganeti_cluster_disks), a Ganeti node boots overlays of the cached
# cluster's root and volume-group disks, once; its RAM, devices and disks are
# kept as they were then.  A resumed guest gets the host's time (its clock
# stood still while it was saved) and forgets what it read of the repository
# disk, which is built again at each run.
cluster_boot() {
    local n states
    CL_MCAST=230.0.0.1:$(vm_free_port)
    states=$(cluster_boot_states) || exit 1
    for n in "${NODES[@]}"; do
        cluster_launch "$n" "$states/$n/root.qcow2" "$states/$n/vg.qcow2" "$states/$n/state"
    done
    for n in "${NODES[@]}"; do on "$n" vm_wait_ssh; done
    parallel cluster_resumed
}

cluster_resumed() {
    vm_ssh "date -u -s @$(date +%s.%N) >/dev/null && blockdev --flushbufs /dev/vdb" ||
        fail "$1: could not set the clock of the resumed guest"
}

# cluster_launch NODE ROOT VG [STATE]: NODE's qemu on an overlay of ROOT (the
# cluster image's name, or a qcow2 disk), a Ganeti node with an overlay of VG
# as its volume group's disk, resumed from STATE where given.  One vCPU each:
# the guests' vCPU threads on two host cores, not twice as many (with two
# each, the guests' kernels report soft lockups while they all boot).
cluster_launch() {
    local n=$1 root=$2 vg=$3 VM_SMP=1 VM_OUT=$CL_OUT/$1 VM_DISK VM_DISK_QCOW2 VM_QEMU_EXTRA VM_INCOMING=${4:-}
    mkdir -p "$VM_OUT"
    VM_QEMU_EXTRA=(-netdev "socket,id=cluster,mcast=$CL_MCAST,localaddr=127.0.0.1"
        -device "virtio-net-pci,netdev=cluster,mac=${CL_MAC[$n]}")
    case $n in
    ganeti*)
        qemu-img create -q -f qcow2 -b "$vg" -F qcow2 "$VM_OUT/vg.qcow2"
        VM_QEMU_EXTRA+=(-drive "file=$VM_OUT/vg.qcow2,format=qcow2,if=virtio")
        ;;
    esac
    case $root in
    *.raw) VM_DISK=$root VM_DISK_QCOW2= ;;
    *) VM_DISK= VM_DISK_QCOW2=$root ;;
    esac
    vm_launch
    CL_PORT[$n]=$VM_PORT CL_PID[$n]=$VM_PID
}

# cluster_boot_states: the directory of the guests' saved boots (NODE/state:
# RAM and devices; NODE/root.qcow2, and a Ganeti node's NODE/vg.qcow2: its
# disks as they were), made unless cached: every guest booted once (the
# Ganeti master's daemons up: its vote with the other node done), then saved.
# Booting eight guests at once on two host cores took 200 s of every run; a
# resume takes seconds.  The key: qemu's version and command line (lib/qemu.sh),
# the image, the Ganeti cluster's disks, the nodes and their MACs.
cluster_boot_states() {
    local key dir tmp n pids=() ok=yes
    key=$({
        qemu-system-x86_64 --version
        vm_base_dir
        echo "${CL_GANETI:-}"
        declare -p NODES CL_MAC
        declare -f cluster_launch
        cat "$VM_HERE/lib/qemu.sh"
    } | sha256sum | cut -c1-16)
    dir=$VM_CACHE/cluster-boot-$key
    if [ -f "$dir/complete" ]; then
        echo "$dir"
        return 0
    fi
    tmp=$(mktemp -d "$VM_CACHE/cluster-boot.XXXXXX")
    step "booting the guests once, to keep their booted states (cached in $dir)" >&2
    local t0=$SECONDS
    for n in "${NODES[@]}"; do
        case $n in
        ganeti*) cluster_launch "$n" "$CL_GANETI/$n/root.qcow2" "$CL_GANETI/$n/vg.qcow2" ;;
        *) cluster_launch "$n" cluster.raw "" ;;
        esac
    done
    for n in "${NODES[@]}"; do on "$n" vm_wait_ssh; done
    [ -z "${CL_PORT[ganeti1]:-}" ] || on ganeti1 vm_ssh 'for i in $(seq 60); do gnt-node list >/dev/null 2>&1 && exit 0; sleep 3; done; exit 1' ||
        fail "the Ganeti master's daemons did not come up on ganeti1"
    for n in "${NODES[@]}"; do
        mkdir -p "$tmp/$n"
        on "$n" vm_save_state "$tmp/$n/state" >&2 &
        pids+=($!)
    done
    for n in "${!pids[@]}"; do wait "${pids[$n]}" || ok=; done
    for n in "${NODES[@]}"; do
        on "$n" vm_kill
        [ -s "$tmp/$n/state" ] || ok=
        mv "$CL_OUT/$n/overlay.qcow2" "$tmp/$n/root.qcow2" || ok=
        [ ! -e "$CL_OUT/$n/vg.qcow2" ] || mv "$CL_OUT/$n/vg.qcow2" "$tmp/$n/vg.qcow2" || ok=
    done
    CL_PORT=() CL_PID=()
    if [ -z "$ok" ]; then
        rm -rf "$tmp"
        fail "saving the booted guests failed (see $CL_OUT/NODE/qemu.log)"
    fi
    echo "$((SECONDS - t0))" >"$tmp/build-seconds"
    vm_cache_keep "$tmp" "$dir"
    VM_OUT=$CL_OUT timing cluster-boot-states "$((SECONDS - t0))" >&2
    echo "$dir"
}

# cluster_hosts: /etc/hosts of every guest: each node's FQDN first, as Ganeti
# resolves them (cluster/ganeti-init writes the same for the cached Ganeti
# cluster), and no 127.0.1.1 line for the node's own name.
cluster_hosts() {
    local n
    printf '127.0.0.1 localhost\n10.10.0.100 cluster.example.org cluster\n'
    for n in "${NODES[@]}"; do
        printf '%s %s.example.org %s\n' "${CL_IP[$n]}" "$n" "$n"
    done
}

# Every node: the tools of tests/vm/cluster/, its name, the cluster network
# (eth1, by its MAC), the names of the others.  All a node left out of the
# roll-out needs.
setup_network() {
    local n=$1
    tar -C "$CL_FILES" -cf - heartbeat.sh beat ship-spool instance-beats ganeti-init clock drbd-dirty stray-writer |
        on "$n" vm_ssh 'mkdir -p /usr/local/lib/fake-cluster && tar -C /usr/local/lib/fake-cluster --no-same-owner -xf -' ||
        fail "$n: could not copy tests/vm/cluster into the guest"
    cluster_hosts | vm_write /etc/hosts 0644
    check "hostname $n, eth1 ${CL_IP[$n]} on the cluster network" "
        echo $n >/etc/hostname && echo $n >/proc/sys/kernel/hostname &&
        [ \"\$(cat /sys/class/net/eth1/address)\" = ${CL_MAC[$n]} ] &&
        { grep -q '^iface eth1 ' /etc/network/interfaces ||
          printf '\nauto eth1\niface eth1 inet static\n    address ${CL_IP[$n]}/24\n' >>/etc/network/interfaces; } &&
        { ip -4 addr show eth1 | grep -q 'inet ${CL_IP[$n]}/' || ifup eth1; }"
}

# ship_spool NODE: what the node's writers left spooled, shipped now (at
# most 60 s; a node that cannot is left as it is: its rows stay spooled).
ship_spool() {
    vm_ssh 'test ! -x /usr/local/lib/fake-cluster/ship-spool || timeout 60 /usr/local/lib/fake-cluster/ship-spool' >/dev/null 2>&1 || true
}

# setup_rollout NODE: every node of the roll-out, after setup_network: the test drop-in, wheezy's /usr/bin/python, the
# evidence database's address, the Synnefo repository named as a Debian
# mirror (prepare derives jessie-backports from that line).
setup_rollout() {
    local n=$1
    vm_write_test_dropin
    # As on wheezy, where the `python` package links /usr/bin/python to 2.7:
    # Ansible's discovery finds python2.7 first, and falls back to
    # /usr/bin/python when a discovery fails (seen once on a guest stalled
    # under TCG, with no such link: the task failed).
    check "/usr/bin/python is Python 2.7, as on wheezy" 'test -e /usr/bin/python || ln -s python2.7 /usr/bin/python'
    # bookworm's e2scrub_reap.service (jessie has no e2scrub) ran 28-46 s of
    # shell at every systemd boot, at the guest's idle priority but on the
    # host's cores: five guests booting at once in the service wave lent it
    # two minutes of CPU that their boots and finish needed.
    check "no e2scrub_reap.service at the systemd boots (jessie has none)" \
        'mkdir -p /etc/systemd/system && ln -sf /dev/null /etc/systemd/system/e2scrub_reap.service'
    printf 'PGHOST=%s\nPGPORT=5432\nPGUSER=synnefo\nPGPASSWORD=%s\nPGDATABASE=cluster_evidence\n' \
        "${CL_IP[$CL_DBNODE]}" "$CL_DB_PASSWORD" | vm_write /etc/fake-cluster/evidence.env 0600
    check "the repository disk mounted at every boot (the roll-out reboots the nodes)" \
        'echo "/dev/vdb /srv/repo ext4 ro,nofail 0 0" >>/etc/fstab && mkdir -p /srv/repo && mount /srv/repo'
    check "the wheezy line names the repository as a Debian mirror" \
        'ln -sfn /srv/repo /srv/debian && sed -i "s|file:/srv/repo |file:/srv/debian |" /etc/apt/sources.list && apt-get update -q >/dev/null'
}

# CL_DBNODE's PostgreSQL: listening on the cluster network, started at every
# boot (both ways), the Synnefo databases and the evidence tables.
setup_postgres() {
    check "PostgreSQL on $CL_DBNODE: listening on the cluster network, enabled at boot, started" "
        echo \"listen_addresses = '*'\" >/etc/postgresql/15/main/conf.d/cluster.conf &&
        echo 'host all all 10.10.0.0/24 scram-sha-256' >>/etc/postgresql/15/main/pg_hba.conf &&
        update-rc.d postgresql enable >/dev/null &&
        mkdir -p /etc/systemd/system/multi-user.target.wants &&
        ln -sf /lib/systemd/system/postgresql.service /etc/systemd/system/multi-user.target.wants/postgresql.service &&
        service postgresql start && pg_lsclusters"
    check "databases snf_apps, snf_pithos and cluster_evidence (tables heartbeats, migrations)" "
        cd / && su postgres -c \"psql -X -q -v ON_ERROR_STOP=1\" <<'SQL'
CREATE ROLE synnefo LOGIN PASSWORD '$CL_DB_PASSWORD';
CREATE DATABASE snf_apps OWNER synnefo;
CREATE DATABASE snf_pithos OWNER synnefo;
CREATE DATABASE cluster_evidence OWNER synnefo;
\\c cluster_evidence
SET ROLE synnefo;
CREATE TABLE heartbeats (source text NOT NULL, node text NOT NULL, version text NOT NULL, time timestamptz NOT NULL);
CREATE TABLE migrations (node text NOT NULL, service text NOT NULL, event text NOT NULL, time timestamptz NOT NULL);
\\c snf_apps
SET ROLE synnefo;
CREATE TABLE im_astakosuser (id serial PRIMARY KEY, username text);
INSERT INTO im_astakosuser (username) VALUES ('user@example.org');
CREATE TABLE stray_writes (node text NOT NULL, time timestamptz NOT NULL DEFAULT now());
INSERT INTO im_astakosuser (username) SELECT 'user' || i || '@example.org' FROM generate_series(1, 500) i;
\\c snf_pithos
SET ROLE synnefo;
CREATE TABLE nodes (node serial PRIMARY KEY, parent integer, path text NOT NULL);
INSERT INTO nodes (parent, path) SELECT i / 10, 'user@example.org/pithos/object-' || i FROM generate_series(1, 2000) i;
SQL"
}

# setup_service NODE SERVICE...: the 0.18.1 stack of those services (astakos,
# cyclades, pithos), with the Synnefo settings pointing at CL_DBNODE's
# database (DATABASES, and where Pithos runs, its backend's SQLAlchemy URL).
setup_service() {
    local n=$1 s pkgs=(snf-common snf-webproject gunicorn) running=$GUEST_GUNICORN_RUNNING what=gunicorn
    shift
    for s in "$@"; do
        pkgs+=("snf-$s-app")
        [ "$s" != cyclades ] || running="$running && $GUEST_DISPATCHER_RUNNING" what="gunicorn and snf-dispatcher"
    done
    printf '%s\n' "$@" | vm_write /etc/fake-cluster/services 0644
    cat <<EOF | vm_write /etc/synnefo/10-snf-webproject-database.conf 0640
DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.postgresql_psycopg2',
        'NAME': 'snf_apps',
        'USER': 'synnefo',
        'PASSWORD': '$CL_DB_PASSWORD',
        'HOST': '${CL_IP[$CL_DBNODE]}',
        'PORT': '5432',
    }
}
EOF
    case " $* " in
    *" pithos "*)
        echo "PITHOS_BACKEND_DB_CONNECTION = 'postgresql://synnefo:$CL_DB_PASSWORD@${CL_IP[$CL_DBNODE]}/snf_pithos'" |
            vm_write /etc/synnefo/20-snf-pithos-app-settings.conf 0640
        ;;
    esac
    check "$n: the 0.18.1 stack ($*), $what running" \
        'echo SNF_DSPTCH_ENABLE=true >/etc/default/snf-dispatcher &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q '"${pkgs[*]}"' >/root/install-0.18.1.log 2>&1 &&
         '"$running"
}

# cluster_wait_heartbeats N: until heartbeats of N nodes have reached the
# evidence database (bounded: 120 s).  Any beat counts: the writers ship
# their first batch after 10 beats, then one every 120, so "a beat in the
# last 30 s" held for all nodes only where their shipments happened to fall
# together (a run waited 110 s for that).
cluster_wait_heartbeats() {
    local deadline=$((SECONDS + 120))
    until [ "$(db "SELECT count(DISTINCT node) FROM heartbeats")" = "$1" ]; do
        [ "$SECONDS" -lt "$deadline" ] || fail "heartbeats from $1 nodes did not reach $CL_DBNODE's database in 120 s: $(db 'SELECT node, count(*) FROM heartbeats GROUP BY node' | tr '\n' ' ')"
        sleep 3
    done
    printf '[%s]   ok: heartbeats of %s nodes arrive in %s'"'"'s database\n' "$SCENARIO" "$1" "$CL_DBNODE" >&2
}

# cluster_ansible_install: the collection synnefo.upgrade built and installed
# from its tarball (contrib/ansible/check --install).  The roll-out runs from
# the installed collection, as an operator's does: nothing is read from the
# source tree.  Sets ANSIBLE_COLLECTIONS, ANSIBLE_VENV, ANSIBLE_INSTALLED.
cluster_ansible_install() {
    ANSIBLE_COLLECTIONS=$CL_OUT/collections
    ANSIBLE_VENV=$("$VM_ROOT/contrib/ansible/check" --install "$ANSIBLE_COLLECTIONS" | tail -1) ||
        fail "could not build and install the collection (contrib/ansible/check --install)"
    ANSIBLE_INSTALLED=$ANSIBLE_COLLECTIONS/ansible_collections/synnefo/upgrade
    [ -f "$ANSIBLE_INSTALLED/MANIFEST.json" ] || fail "no installed collection under $ANSIBLE_COLLECTIONS"
}

# ansible_run NAME [ARG...]: ansible-playbook synnefo.upgrade.site (the
# installed collection, with the ansible.cfg it ships) over the whole
# inventory, output in $CL_OUT/ansible-NAME.log; returns its exit status.
ansible_run() {
    local name=$1 log=$CL_OUT/ansible-$1.log rc=0
    shift
    mkdir -p "$CL_OUT/ansible-home" "$CL_OUT/ansible-tmp"
    (
        cd "$CL_OUT" &&
            ANSIBLE_CONFIG=$ANSIBLE_INSTALLED/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$ANSIBLE_COLLECTIONS \
                ANSIBLE_HOME=$CL_OUT/ansible-home ANSIBLE_LOCAL_TEMP=$CL_OUT/ansible-tmp ANSIBLE_NOCOLOR=1 \
                ANSIBLE_CALLBACK_PLUGINS=$CL_FILES/callback ANSIBLE_CALLBACKS_ENABLED=task_times \
                timeout 3000 "$ANSIBLE_VENV/bin/ansible-playbook" -v -i "$CL_OUT/inventory.yml" "$@" synnefo.upgrade.site
    ) >"$log" 2>&1 || rc=$?
    printf '[%s]   ansible-playbook (%s) exited %s: %s\n' "$SCENARIO" "$name" "$rc" \
        "$(sed -n '/^PLAY RECAP/,$p' "$log" | grep -E '^[a-z0-9]+ +:' | tr -s ' ' | tr '\n' ';')" >&2
    return "$rc"
}
