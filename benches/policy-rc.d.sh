#!/usr/bin/env bash
# Benchmark: the policy-rc.d decision, which runs on every service action of a
# dist-upgrade. Measures, in one run and on the same machine state:
#   baseline  /bin/true
#   sh deny   a three-line #!/bin/sh script answering 101
#   ours      the release binary deciding for an armed node (state file read and
#             parsed, id matched, denial appended to the ledger)
# and prints each as a ratio to /bin/true. Goal: ours <= 1.5x /bin/true.
#
#   benches/policy-rc.d.sh [ITERATIONS]     (default 2000; builds the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}

cargo build --release --quiet
bin=target/x86_64-unknown-linux-gnu/release/synnefo-upgrade

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# An armed node: the state file as prepare writes it, with four managed services.
mkdir -p "$work/root/var/lib/synnefo-upgrade"
cat >"$work/root/var/lib/synnefo-upgrade/state.json" <<'JSON'
{
  "schema": 1,
  "tool_version": "0.1.0",
  "phase": "armed",
  "services": [
    {"name": "gunicorn", "was_active": true, "was_enabled": true, "was_masked": false},
    {"name": "snf-dispatcher", "was_active": true, "was_enabled": true, "was_masked": false},
    {"name": "snf-ganeti-eventd", "was_active": false, "was_enabled": false, "was_masked": false},
    {"name": "archipelago", "was_active": true, "was_enabled": true, "was_masked": false}
  ],
  "steps": []
}
JSON
# The invocation as dpkg makes it: policy-rc.d is a link to the binary, and the
# root is /; the benchmark's root is a chroot-free stand-in: the same code path
# through the subcommand with --root.
cat >"$work/deny.sh" <<'SH'
#!/bin/sh
[ "$1" = gunicorn ] && exit 101
exit 0
SH
chmod +x "$work/deny.sh"

# time_ns CMD...: total nanoseconds for n runs of CMD (exit status ignored).
time_ns() {
    local start end i
    start=$(date +%s%N)
    for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 || true; done
    end=$(date +%s%N)
    echo $((end - start))
}

# Sanity: the decisions are the real ones.
"$bin" --root "$work/root" policy-rc.d gunicorn start && { echo "expected 101" >&2; exit 1; }
"$bin" --root "$work/root" policy-rc.d cron start || { echo "expected 0" >&2; exit 1; }

# Warm up the page cache, then interleave the measurements twice.
time_ns /bin/true >/dev/null
t_true=0 t_sh=0 t_ours=0
for _ in 1 2; do
    t_true=$((t_true + $(time_ns /bin/true)))
    t_sh=$((t_sh + $(time_ns "$work/deny.sh" gunicorn start)))
    t_ours=$((t_ours + $(time_ns "$bin" --root "$work/root" policy-rc.d gunicorn start)))
done
per() { awk -v t="$1" -v n="$n" 'BEGIN { printf "%.1f", t / (2 * n) / 1000 }'; }
ratio() { awk -v t="$1" -v b="$t_true" 'BEGIN { printf "%.2f", t / b }'; }
printf '%-34s %8s us/call  %6sx\n' "/bin/true (baseline)" "$(per $t_true)" "1.00"
printf '%-34s %8s us/call  %6sx\n' "#!/bin/sh deny script" "$(per $t_sh)" "$(ratio $t_sh)"
printf '%-34s %8s us/call  %6sx\n' "synnefo-upgrade policy-rc.d" "$(per $t_ours)" "$(ratio $t_ours)"
