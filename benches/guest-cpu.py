#!/usr/bin/env python3
"""Where a multi-guest VM run's host CPU goes, guest by guest (no VM here):

    python3 benches/guest-cpu.py [DIR] [--every SECONDS] [--rows SECONDS]

Run beside `tests/vm/run cluster` (DIR: default target/vm/cluster).  Every
SECONDS (default 15) it reads each guest's qemu CPU time (DIR/NODE/qemu.pid,
/proc/PID/stat utime+stime) and the host's busy and idle time (/proc/stat);
every --rows seconds (default 60) it prints one row: each guest's share of
one host core, and the host's busy and idle shares of one core (2 cores: 200
is a saturated host).  It stops when no guest is left, or at Ctrl-C.

It is how the cluster scenario's phases were told apart: while the Ganeti
nodes take their turns, the Ganeti master's one vCPU is the bottleneck (one
guest at 80-100 %, the host 55-78 % idle), while booting and in the service
wave the host is saturated.  A row's figures are ratios of CPU seconds to wall
seconds measured over the same interval, never fixed expectations.
"""
import argparse
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def guest_cpu(out):
    """NODE -> qemu's CPU seconds, for each guest of OUT whose qemu runs."""
    cpu = {}
    for node in sorted(os.listdir(out)):
        try:
            with open(os.path.join(out, node, "qemu.pid")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/stat") as f:
                # The command name (field 2) may hold spaces: split after it.
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        # utime and stime are fields 14 and 15; fields[0] is field 3.
        cpu[node] = (int(fields[11]) + int(fields[12])) / HZ
    return cpu


def host_cpu():
    """(busy, idle) CPU seconds of the host since its boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / HZ, idle / HZ


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", default="target/vm/cluster")
    ap.add_argument("--every", type=float, default=15.0)
    ap.add_argument("--rows", type=float, default=60.0)
    args = ap.parse_args()
    if not os.path.isdir(args.dir):
        print(f"guest-cpu: {args.dir}: no such directory (run it beside tests/vm/run cluster)", file=sys.stderr)
        return 2
    names = []
    last = None
    try:
        while True:
            now = time.monotonic()
            sample = (now, guest_cpu(args.dir), host_cpu())
            if sample[1]:
                for n in sample[1]:
                    if n not in names:
                        names.append(n)
                        last = None  # a new guest: a new header, from this sample on
            elif last is not None:
                return 0
            if last is None and sample[1]:
                print(time.strftime("%H:%M:%S"), " ".join(f"{n[:8]:>8}" for n in names), "   host   idle", flush=True)
                last = sample
            elif last is not None and now - last[0] >= args.rows:
                wall = now - last[0]
                # A guest whose qemu is gone (or not yet up) at either end: 0, not a negative share.
                shares = [
                    100 * (sample[1][n] - last[1][n]) / wall if n in sample[1] and n in last[1] else 0
                    for n in names
                ]
                busy = 100 * (sample[2][0] - last[2][0]) / wall
                idle = 100 * (sample[2][1] - last[2][1]) / wall
                print(time.strftime("%H:%M:%S"), " ".join(f"{s:8.0f}" for s in shares), f"  {busy:5.0f}  {idle:5.0f}", flush=True)
                last = sample
            time.sleep(args.every)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
