# shellcheck shell=sh
# Heartbeats of the `cluster` VM scenario, sourced by the writers (the fake
# gunicorn of tests/vm/packages, the stand-in Ganeti instance fake-instance).
# Installed by the harness as /usr/local/lib/fake-cluster/heartbeat.sh on every
# cluster guest (outside any package: the dist-upgrade leaves it alone).
#
# heartbeat_loop SOURCE VERSION: one CSV row a second, in the columns of the
# evidence database's `heartbeats` table: source,node,version,time (UTC, to the
# microsecond, taken when the writer was alive).  Rows are spooled under
# /var/spool/fake-cluster/SOURCE-PID.rows and shipped every 5 s by a background
# `psql \copy` into the database on svc1 (connection in
# /etc/fake-cluster/evidence.env); a batch the database does not take (svc1 is
# rebooting) stays spooled and goes with the next shipment, so a pause of the
# database is not a pause of the writer.  On TERM the writer ships what it has
# (bounded) and exits 0.
HB_SPOOL=/var/spool/fake-cluster

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

heartbeat_loop() {
    hb_source=$1 hb_version=$2
    hb_node=$(uname -n) hb_me=$1-$$ hb_n=0 hb_shipper=
    mkdir -p "$HB_SPOOL"
    hb_env "$hb_source"
    trap 'hb_stop' TERM INT
    while :; do
        echo "$hb_source,$hb_node,$hb_version,$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)" >>"$HB_SPOOL/$hb_me.rows"
        hb_n=$((hb_n + 1))
        if [ $((hb_n % 5)) = 0 ] && ! { [ -n "$hb_shipper" ] && kill -0 "$hb_shipper" 2>/dev/null; }; then
            # Only this loop writes $hb_me.rows: renaming it here cannot lose a row.
            mv "$HB_SPOOL/$hb_me.rows" "$HB_SPOOL/$hb_me.$(printf %09d "$hb_n").batch"
            hb_ship "$HB_SPOOL/$hb_me.*.batch" &
            hb_shipper=$!
        fi
        sleep 1 &
        wait $!
    done
}

hb_stop() {
    [ -n "$hb_shipper" ] && wait "$hb_shipper" 2>/dev/null
    [ -e "$HB_SPOOL/$hb_me.rows" ] && mv "$HB_SPOOL/$hb_me.rows" "$HB_SPOOL/$hb_me.$(printf %09d "$((hb_n + 1))").batch"
    hb_ship "$HB_SPOOL/$hb_me.*.batch"
    exit 0
}
