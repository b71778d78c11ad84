#!/usr/bin/env python3
"""The `release` scenario's assertions over its raw evidence.

    evidence.py dist-upgrade OUT "MANAGED..."   after the dist-upgrade
    evidence.py finish OUT "MANAGED..."         after the first systemd boot

OUT is target/vm/release/. Prints one line per assertion that holds (with its
figures); exits 1 with the reason at the first that does not.

dist-upgrade, from OUT/after-dist-upgrade/ (files fetched from the guest):
  - root/sampler.log: the sampler ran through the whole dist-upgrade, several
    times a second, and never saw a managed service's process;
  - var/lib/synnefo-upgrade/denied-actions.log: the denial ledger names only
    managed services, and the new packages' attempts to start them are there;
  - var/log/apt/history.log against OUT/check-before.json: the packages the
    dist-upgrade installed, upgraded and removed are exactly those of the
    transaction `check` simulated before the node was armed.
finish, from OUT/status-done.json, OUT/pg-lsclusters-after.txt and
OUT/check-before.json:
  - the admin's conffile and ucf file are listed for review;
  - the PostgreSQL clusters are what the notice before the upgrade said.
"""

import json
import re
import sys
from pathlib import Path


def fail(msg):
    print(f"FAILED: {msg}")
    sys.exit(1)


def ok(msg):
    print(msg)


def sampler(out, managed):
    log = out / "after-dist-upgrade/root/sampler.log"
    if not log.is_file():
        fail(f"no sampler log ({log})")
    # A round's "TIME tick" line, then a "TIME PID CMDLINE" line per process
    # found. Any other line is pgrep failing that round (while libc6 is
    # unpacked, the new libc and the old loader can meet for a moment: "pgrep:
    # symbol lookup error"): that round saw nothing, its tick does not count
    # as a look, and such rounds must stay rare.
    ticks, seen, blind = [], [], []
    for line in log.read_text(errors="replace").splitlines():
        fields = line.split(None, 2)
        if len(fields) >= 2 and fields[1] == "tick":
            ticks.append(float(fields[0]))
        elif len(fields) >= 2 and re.fullmatch(r"[0-9.]+", fields[0]) and fields[1].isdigit():
            seen.append(line)
        elif line.strip():
            blind.append(line)
            if ticks:
                ticks.pop()
    if seen:
        fail(f"the sampler saw a managed service running during the dist-upgrade: {seen[0]} ({len(seen)} such lines)")
    if len(blind) > max(3, len(ticks) // 100):
        fail(f"the sampler failed {len(blind)} rounds (of {len(ticks) + len(blind)}): {blind[0]}")
    if len(ticks) < 10:
        fail(f"the sampler ran only {len(ticks)} rounds")
    span = ticks[-1] - ticks[0]
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    rate = (len(ticks) - 1) / span if span > 0 else 0
    if rate < 2:
        fail(f"the sampler looked {rate:.1f} times a second, not several")
    ok(f"sampler: {len(ticks)} rounds over {span:.0f} s ({rate:.1f}/s, largest gap {max(gaps):.1f} s): "
       f"no process of {', '.join(managed)} at any of them"
       + (f"; {len(blind)} round(s) where pgrep itself failed ({blind[0]})" if blind else ""))
    return ticks[0], ticks[-1]


def ledger(out, managed):
    path = out / "after-dist-upgrade/var/lib/synnefo-upgrade/denied-actions.log"
    lines = path.read_text().splitlines() if path.is_file() else []
    ids = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            fail(f"ledger line not 'TIME ID ACTIONS RUNLEVEL': {line!r}")
        name = re.sub(r"\.service$", "", fields[1])
        if name not in managed:
            fail(f"the ledger denied a service that is not managed: {line!r}")
        ids.setdefault(name, []).append(fields[2])
    missing = [m for m in managed if m not in ids]
    if missing:
        fail(f"no denial of {', '.join(missing)} in the ledger, whose package scripts try to start them ({path})")
    ok("ledger: " + "; ".join(f"{n}: {', '.join(a)}" for n, a in sorted(ids.items()))
       + f" ({len(lines)} lines), no other service")


def history_entry(out, word):
    """The last history.log entry whose Commandline has WORD, as a dict."""
    text = (out / "after-dist-upgrade/var/log/apt/history.log").read_text(errors="replace")
    found = None
    for block in text.split("\n\n"):
        entry = {}
        for line in block.strip().splitlines():
            key, _, value = line.partition(": ")
            entry[key] = value
        if word in entry.get("Commandline", "").split():
            found = entry
    if found is None:
        fail(f"no apt-get {word} in /var/log/apt/history.log")
    return found


def history_packages(value):
    """'a:amd64 (1, 2), b (3, automatic)' -> {name: [versions]}."""
    out = {}
    for m in re.finditer(r"([^\s,()]+) \(([^)]*)\)", value or ""):
        name = m.group(1).split(":")[0]
        out[name] = [v.strip() for v in m.group(2).split(",") if v.strip() != "automatic"]
    return out


def transaction(out):
    check = json.loads((out / "check-before.json").read_text())
    actions = check.get("forecast", {}).get("transaction")
    if not actions:
        fail("check --json before arming has no forecast.transaction (not simulated?)")
    return check, actions


def prediction(out):
    _, actions = transaction(out)
    entry = history_entry(out, "dist-upgrade")
    done = {}
    for name, versions in history_packages(entry.get("Install")).items():
        done[name] = ("install", versions[-1])
    for name, versions in history_packages(entry.get("Upgrade")).items():
        done[name] = ("upgrade", versions[-1])
    for key in ("Downgrade",):
        for name, versions in history_packages(entry.get(key)).items():
            done[name] = ("upgrade", versions[-1])
    for key in ("Remove", "Purge"):
        for name, _ in history_packages(entry.get(key)).items():
            done[name] = ("remove", None)
    predicted = {a["package"]: (a["action"], a["to"]) for a in actions}
    if predicted != done:
        only_p = sorted(set(predicted.items()) - set(done.items()))
        only_d = sorted(set(done.items()) - set(predicted.items()))
        fail(f"simulated and done differ: simulated only {only_p[:10]}, done only {only_d[:10]}")
    count = {k: sum(1 for v in done.values() if v[0] == k) for k in ("upgrade", "install", "remove")}
    ok(f"the simulation before arming predicted exactly what dpkg did: {count['upgrade']} upgraded, "
       f"{count['install']} installed, {count['remove']} removed ({len(done)} packages)")
    switch = history_entry(out, "systemd-sysv")
    ok(f"then the switch to systemd: installed {sorted(history_packages(switch.get('Install')))}, "
       f"removed {sorted(history_packages(switch.get('Remove')) | history_packages(switch.get('Purge')))}")


def finish(out):
    status = json.loads((out / "status-done.json").read_text())
    if status.get("phase") != "done":
        fail(f"status phase {status.get('phase')!r}, not done")
    leftovers = status.get("dpkg_leftovers", [])
    for want in ("/etc/ssh/ssh_config.dpkg-dist", "/etc/ssh/sshd_config.ucf-dist"):
        if want not in leftovers:
            fail(f"{want} not listed for review (dpkg_leftovers: {leftovers})")
    ok(f"listed for review: {', '.join(leftovers)}")
    check, _ = transaction(out)
    clusters = sorted(
        f"{line.split()[0]}/{line.split()[1]}"
        for line in (out / "pg-lsclusters-after.txt").read_text().splitlines()
        if line.strip()
    )
    notice = [f for f in check.get("findings", []) if f.get("id") == "postgresql-clusters"]
    if not notice:
        fail(f"no postgresql-clusters notice before the upgrade (clusters after: {clusters})")
    told = notice[0]
    text = f"{told.get('title', '')}; {told.get('summary', '')}"
    expected = re.findall(r"after the upgrade: clusters ([^;.]+)", text)
    if not expected:
        fail(f"the notice does not say which clusters the upgrade leaves: {text!r}")
    want = sorted(c.strip() for c in expected[0].split(","))
    if want != clusters:
        fail(f"the notice said the clusters would be {want}; pg_lsclusters shows {clusters}")
    ok(f"PostgreSQL clusters after the upgrade: {', '.join(clusters)}, as the notice told: {text}")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("dist-upgrade", "finish"):
        sys.exit(__doc__)
    out = Path(sys.argv[2])
    managed = sys.argv[3].split()
    if sys.argv[1] == "dist-upgrade":
        sampler(out, managed)
        ledger(out, managed)
        prediction(out)
    else:
        finish(out)


if __name__ == "__main__":
    main()
