# shellcheck shell=sh
# Heartbeats of the `cluster` VM scenario, sourced by the writers (the fake
# gunicorn of tests/vm/packages; instance-beats writes the Ganeti instances' own)
# and by ship-spool.  Installed by the harness as
# /usr/local/lib/fake-cluster/heartbeat.sh on every cluster guest (outside any
# package: the dist-upgrade leaves it alone).
#
# heartbeat_loop SOURCE VERSION: one CSV row a second, in the columns of the
# evidence database's `heartbeats` table: source,node,version,time (UTC, to the
# microsecond, taken when the writer was alive).  The beats come from a bash
# child (beat, beside this file) that forks nothing per beat: under TCG a fork
# and exec costs a tenth of a second of the guest's CPU, and a psql start two
# seconds, which eight guests on two host cores cannot spare.  Rows are
# spooled under /var/spool/fake-cluster/SOURCE-PID.rows (PID: the writer's,
# this shell's) and shipped every HB_SHIP_EVERY beats by a background `psql
# \copy` into the evidence database on db (connection in
# /etc/fake-cluster/evidence.env); a
# batch the database does not take (db is rebooting) stays spooled and goes
# with the next shipment, so a pause of the database is not a pause of the
# writer.  On TERM the writer ships what it has (bounded) and exits 0.
HB_SPOOL=/var/spool/fake-cluster
# Every 120 beats, and once after the first HB_SHIP_FIRST (so that the
# harness sees every writer early): a psql start costs one to two seconds of
# the guest's CPU under TCG, and eight guests share two host cores.
HB_SHIP_EVERY=120
HB_SHIP_FIRST=10

hb_env() {
    # shellcheck source=/dev/null
    . /etc/fake-cluster/evidence.env
    export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE
    export PGCONNECT_TIMEOUT=3 PGSSLMODE=disable PGAPPNAME="heartbeat ${1:-}"
}

# hb_ship GLOB: ship every batch file matching GLOB, oldest first; stop at the
# first one the database refuses (it is tried again next time).
hb_ship() {
    for b in $1; do
        [ -e "$b" ] || continue
        psql -X -q -v ON_ERROR_STOP=1 \
            -c "\\copy heartbeats (source, node, version, time) from '$b' with (format csv)" \
            >/dev/null 2>>"$HB_SPOOL/ship.errors" || return 1
        rm -f "$b"
    done
}

# The writer (this shell) keeps its command line, which the harness and the
# init scripts look for; the bash child beats while it lives, and goes with it.
heartbeat_loop() {
    mkdir -p "$HB_SPOOL"
    bash /usr/local/lib/fake-cluster/beat "$1" "$2" "$$" &
    hb_child=$!
    trap 'kill -TERM "$hb_child" 2>/dev/null; wait "$hb_child"; exit 0' TERM INT
    while kill -0 "$hb_child" 2>/dev/null; do
        wait "$hb_child"
    done
    exit 0
}
