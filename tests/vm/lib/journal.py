#!/usr/bin/env python3
"""The one reader of `journalctl -o json` exports for the VM harness (host side).

    journal.py steps-done FILE PHASE     check a phase's steps (see steps_done)
    journal.py count FILE MATCH...       entries matching every FIELD=VALUE / FIELD~TEXT
    journal.py events FILE PHASE [BOOT]  "STEP OUTCOME" per step entry (OUTCOME "-" if none)
    journal.py not-done FILE STATUS PHASE  steps a status --json records (not skipped)
                                         that have no OUTCOME=done entry
    journal.py story FILE                the step records as a table, for humans

Every entry is one JSON object per line; lines that are not JSON (a truncated
export) are skipped.
"""
import json
import re
import sys


def entries(path, phase=None, boot=None):
    """The export's entries; with PHASE, only that phase's step entries."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if phase is not None and (
                e.get("SYNNEFO_UPGRADE_PHASE") != phase or "SYNNEFO_UPGRADE_STEP" not in e
            ):
                continue
            if boot is not None and e.get("_BOOT_ID") != boot:
                continue
            yield e


def steps_done(path, phase):
    """A step that ran (some entry other than a "skipped" outcome: its start
    record, command output...) must have an OUTCOME=done entry; a step whose only
    entries say "skipped" did not apply; at least one step must be done."""
    steps, outcomes = [], {}
    for e in entries(path, phase):
        step = e["SYNNEFO_UPGRADE_STEP"]
        if step not in steps:
            steps.append(step)
        outcomes.setdefault(step, []).append(e.get("SYNNEFO_UPGRADE_OUTCOME"))
    done = [s for s in steps if "done" in outcomes[s]]
    skipped = [s for s in steps if set(outcomes[s]) == {"skipped"}]
    bad = [s for s in steps if s not in done and s not in skipped]
    if bad:
        sys.exit("; ".join(f"{s}: outcomes {outcomes[s]}" for s in bad))
    if not done:
        sys.exit(f"no {phase} step has SYNNEFO_UPGRADE_OUTCOME=done (steps seen: {steps})")
    print(f"done: {' '.join(done)}; skipped: {' '.join(skipped) or '-'}")


def count(path, matches):
    conds = []
    for m in matches:
        parsed = re.match(r"([A-Z0-9_]+)([=~])(.*)", m)
        if not parsed:
            sys.exit(f"journal.py count: bad match {m!r} (want FIELD=VALUE or FIELD~TEXT)")
        conds.append(parsed.groups())
    n = 0
    for e in entries(path):
        n += all(
            field in e
            and ((op == "=" and str(e[field]) == value) or (op == "~" and value in str(e[field])))
            for field, op, value in conds
        )
    print(n)


def events(path, phase, boot=None):
    for e in entries(path, phase, boot):
        print(e["SYNNEFO_UPGRADE_STEP"], e.get("SYNNEFO_UPGRADE_OUTCOME") or "-")


def not_done(path, status_path, phase):
    with open(status_path, encoding="utf-8") as f:
        status = json.load(f)
    done = {
        e["SYNNEFO_UPGRADE_STEP"]
        for e in entries(path, phase)
        if e.get("SYNNEFO_UPGRADE_OUTCOME") == "done"
    }
    print(" ".join(
        r["id"] for r in status["steps"]
        if r["phase"] == phase and r["status"] != "skipped" and r["id"] not in done
    ))


def story(path):
    for e in entries(path):
        if "SYNNEFO_UPGRADE_STEP" not in e:
            continue
        print("  %-8s %-24s %-8s %6s ms  %s" % (
            e.get("SYNNEFO_UPGRADE_PHASE", ""), e["SYNNEFO_UPGRADE_STEP"],
            e.get("SYNNEFO_UPGRADE_OUTCOME", "-"), e.get("SYNNEFO_UPGRADE_DURATION_MS", "-"),
            e.get("MESSAGE", "")))


def main(argv):
    commands = {
        "steps-done": (lambda a: steps_done(a[0], a[1]), 2),
        "count": (lambda a: count(a[0], a[1:]), 1),
        "events": (lambda a: events(*a[:3]), 2),
        "not-done": (lambda a: not_done(a[0], a[1], a[2]), 3),
        "story": (lambda a: story(a[0]), 1),
    }
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 < commands[argv[1]][1]:
        sys.exit(__doc__)
    commands[argv[1]][0](argv[2:])


if __name__ == "__main__":
    main(sys.argv)
