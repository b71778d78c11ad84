# shellcheck shell=bash
# shellcheck disable=SC2016 # guest commands are single-quoted on purpose: they expand in the guest
# Assertions: guest commands that must succeed, fail or print a value; bounded
# waits; host-side checks of `status --json` documents; guest-side snippets. Sourced by ../lib.sh.

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
    # The fake snf-dispatcher daemon (sysvinit script on 0.18.1, native unit on 0.19).
    GUEST_DISPATCHER_RUNNING='pgrep -f "^/bin/sh /usr/sbin/fake-snf-dispatcher" >/dev/null'
    GUEST_DISPATCHER_DOWN='! pgrep -f "^/bin/sh /usr/sbin/fake-snf-dispatcher" >/dev/null'
}

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
