#!/usr/bin/env bash
# Benchmark: policy-rc.d in its installed form, which runs on every service
# action of a dist-upgrade. Measured in one run, interleaved, on the same
# machine state:
#   /bin/true          the baseline: the cheapest command a policy can be
#   #!/bin/sh script   a three-line shell policy answering 101 for gunicorn
#   ours, denied       /usr/sbin/policy-rc.d gunicorn start -> 101 (state read,
#                      id matched, the denial appended to the ledger)
#   ours, allowed      /usr/sbin/policy-rc.d cron start -> 0 (state read, no
#                      previous policy to consult)
# Each is printed as a ratio to /bin/true. Goal: ours <= 1.05x /bin/true.
#
#   benches/policy-rc.d.sh [ITERATIONS] [ROUNDS]   (defaults 2000 and 7;
#                                                   builds the release binary)
#
# The installed form, exactly as prepare and the package leave a node: the
# release (static) binary at /usr/sbin/synnefo-upgrade, /usr/sbin/policy-rc.d
# a symlink to it (so argv[0] is /usr/sbin/policy-rc.d, as invoke-rc.d runs
# it), and the state of an armed node at /var/lib/synnefo-upgrade/. The host
# is not changed: everything runs inside a private mount namespace
# (unshare -m as root, unshare -rm with a user namespace otherwise) where a
# tmpfs covers /usr/sbin (holding only the symlink and a file the binary is
# bind-mounted on) and another covers /var/lib (holding only our state
# directory); both go away with the namespace.
#
# Method: each round runs ITERATIONS executions of each command from a bash
# loop (fork + exec + wait, output to /dev/null: what invoke-rc.d, itself a
# shell script, pays per call) and takes the wall time from $EPOCHREALTIME
# and the CPU time of the loop's children (user + system of the forked
# shells and the commands they exec, from bash's `times`: getrusage
# RUSAGE_CHILDREN of the loop's subshell). The CPU column is the steadier one
# on a loaded machine. The rounds interleave the commands; the printed time
# is the median round, the ratio the median of the per-round ratios to
# /bin/true of that round (so a load change between rounds moves both
# sides). Nothing here asserts a time; the script fails only if a decision
# is wrong. POLICY_RCD_BIN=PATH measures that binary instead of building
# (to compare two builds, run them alternately).
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
n=${1:-2000}
rounds=${2:-7}

if [ "${1:-}" != --inside ]; then
    bin=${POLICY_RCD_BIN:-}
    if [ -z "$bin" ]; then
        cargo build --release --quiet
        bin=$PWD/target/x86_64-unknown-linux-gnu/release/synnefo-upgrade
    fi
    bin=$(realpath "$bin")
    if [ "$(id -u)" = 0 ]; then ns=(unshare -m --propagation private); else ns=(unshare -rm); fi
    exec "${ns[@]}" "$BASH" "$self" --inside "$bin" "$n" "$rounds"
fi

# --- inside the private mount namespace -------------------------------------
bin=$2 n=$3 rounds=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mount -t tmpfs -o mode=0755 bench-usr-sbin /usr/sbin
: >/usr/sbin/synnefo-upgrade
mount --bind "$bin" /usr/sbin/synnefo-upgrade
ln -s /usr/sbin/synnefo-upgrade /usr/sbin/policy-rc.d
mount -t tmpfs -o mode=0755 bench-var-lib /var/lib
mkdir -m 0700 /var/lib/synnefo-upgrade
: >/var/lib/synnefo-upgrade/armed
# An armed node: the state file as prepare writes it (four managed services,
# the prepare steps recorded).
steps=
for id in record-services snapshot-dpkg stop-services mask-services apt-sources apt-config enable-finish-unit; do
    steps+="${steps:+,}
    {\"phase\": \"prepare\", \"id\": \"$id\", \"status\": \"done\", \"started\": 1764625000, \"duration_ms\": 12, \"message\": null}"
done
cat >/var/lib/synnefo-upgrade/state.json <<JSON
{
  "schema": 1,
  "tool_version": "0.1.0",
  "phase": "armed",
  "services": [
    {"name": "gunicorn", "was_active": true, "was_enabled": true, "was_masked": false},
    {"name": "snf-dispatcher", "was_active": true, "was_enabled": true, "was_masked": false, "default_flag": "true"},
    {"name": "snf-ganeti-eventd", "was_active": false, "was_enabled": false, "was_masked": false, "default_flag": "false"},
    {"name": "archipelago", "was_active": true, "was_enabled": true, "was_masked": false}
  ],
  "steps": [$steps
  ]
}
JSON
# shellcheck disable=SC2016 # the script's own $1
printf '%s\n' '#!/bin/sh' '[ "$1" = gunicorn ] && exit 101' 'exit 0' >"$work/deny.sh"
chmod +x "$work/deny.sh"
policy=/usr/sbin/policy-rc.d

# Sanity: the decisions are the real ones, and the denial is in the ledger.
set +e
"$policy" gunicorn start; deny=$?
"$policy" cron start; allow=$?
set -e
[ "$deny" = 101 ] || { echo "policy-rc.d gunicorn start: exit $deny, expected 101" >&2; exit 1; }
[ "$allow" = 0 ] || { echo "policy-rc.d cron start: exit $allow, expected 0" >&2; exit 1; }
grep -q ' gunicorn start -$' /var/lib/synnefo-upgrade/denied-actions.log ||
    { echo "the denial is not in the ledger" >&2; exit 1; }

# run CMD...: "WALL CPU" microseconds for n runs of CMD (exit status ignored),
# CPU being the children's user + system time; run it in a subshell of its own.
run() {
    local start=${EPOCHREALTIME/./} i
    for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 || :; done
    local end=${EPOCHREALTIME/./}
    # times: the shell's own line, then its children's: "0m0.123s 0m0.456s"
    # (to a file: in a pipeline it would run in a child of its own).
    times >"$work/times"
    awk -v w=$((end - start)) 'NR == 2 {
        split($1, u, /[ms]/); split($2, y, /[ms]/)
        printf "%d %d\n", w, ((u[1] + y[1]) * 60 + u[2] + y[2]) * 1e6 }' "$work/times"
}

names=(true sh deny allow)
declare -A cmd=(
    [true]=/bin/true
    [sh]="$work/deny.sh gunicorn start"
    [deny]="$policy gunicorn start"
    [allow]="$policy cron start"
)
declare -A wall cpu wall_ratio cpu_ratio
(run /bin/true >/dev/null) # warm the page cache
for ((r = 0; r < rounds; r++)); do
    for k in "${names[@]}"; do
        # shellcheck disable=SC2086 # the command line is split on purpose
        read -r w c < <(run ${cmd[$k]})
        wall[$k]+="$w " cpu[$k]+="$c "
        [ "$k" = true ] && base_w=$w base_c=$c
        wall_ratio[$k]+="$(awk -v t="$w" -v b="$base_w" 'BEGIN { printf "%.4f", t / b }') "
        cpu_ratio[$k]+="$(awk -v t="$c" -v b="$base_c" 'BEGIN { printf "%.4f", t / b }') "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
per_call() { awk -v t="$(median <<<"$1")" -v n="$n" 'BEGIN { printf "%.1f", t / n }'; }
declare -A label=(
    [true]="/bin/true (baseline)"
    [sh]="#!/bin/sh deny script"
    [deny]="policy-rc.d gunicorn start (101)"
    [allow]="policy-rc.d cron start (0)"
)
echo "policy-rc.d installed form, $n calls x $rounds rounds (median round; ratio = median of per-round ratios to /bin/true):"
printf '  %-34s %10s %8s  %10s %8s\n' "" "wall us" "ratio" "CPU us" "ratio"
for k in "${names[@]}"; do
    printf '  %-34s %10s %7.3fx  %10s %7.3fx\n' "${label[$k]}" \
        "$(per_call "${wall[$k]}")" "$(median <<<"${wall_ratio[$k]}")" \
        "$(per_call "${cpu[$k]}")" "$(median <<<"${cpu_ratio[$k]}")"
done
