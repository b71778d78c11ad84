# A timing callback for the cluster scenario (tests/vm/scenarios/cluster):
# each task's wall time and each host's share, printed at the end of the run,
# so the scenario's log says where a roll-out's minutes go.  Test tooling, not
# shipped: ansible-core has no such callback of its own (profile_tasks is in
# the ansible.posix collection, which the venv does not carry).
import time
from datetime import datetime, timezone

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: task_times
    type: aggregate
    short_description: wall time of each task and host
    description: Prints the slowest tasks and each host's busy time at the end of the playbook.
    requirements: [enable in ANSIBLE_CALLBACKS_ENABLED]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.t0 = time.monotonic()
        self.tasks = []  # [play, task, start, end, {host: seconds}]
        self.host_start = {}

    def _open(self, task):
        at = datetime.now(timezone.utc).strftime("%H:%M:%S")
        self.tasks.append([self.play, task.get_name(), time.monotonic(), None, {}, at])

    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._open(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._open(task)

    def v2_runner_on_start(self, host, task):
        self.host_start[host.get_name()] = time.monotonic()

    def _done(self, result):
        now = time.monotonic()
        h = result._host.get_name()
        if self.tasks:
            t = self.tasks[-1]
            t[3] = now
            t[4][h] = t[4].get(h, 0) + now - self.host_start.get(h, t[2])

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _done

    def v2_playbook_on_stats(self, stats):
        total = time.monotonic() - self.t0
        rows = [(t[3] - t[2], t) for t in self.tasks if t[3] is not None]
        self._display.display("TASK TIMES (wall s, start UTC, slowest 40; hosts' own s) total %.0f s" % total)
        for wall, t in sorted(rows, key=lambda r: -r[0])[:40]:
            hosts = " ".join("%s=%.0f" % (h, s) for h, s in sorted(t[4].items()) if s >= 1)
            self._display.display("%7.1f  %s %s | %s  %s" % (wall, t[5], t[0][:40], t[1][:70], hosts))
        per_play = {}
        for wall, t in rows:
            per_play[t[0]] = per_play.get(t[0], 0) + wall
        for p, s in per_play.items():
            self._display.display("PLAY TIME %7.1f  %s" % (s, p))
        self._display.display("TASKS RUN %d" % len(rows))
