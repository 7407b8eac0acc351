"""Idle time under NUMA balancing in O(scans that change something), not O(periods).

While time passes with no event (``advance``, a gap between two trace rows), a process's
scanner (numa_balancing.py, docs/linux-semantics.md §5.3) only reads and writes its own
state: its threads' rows (node_stamp, scan period), its mm row (next scan, scan sequence,
offset), its VMAs' numab states and its own PTEs. Every rule compares a time with a time
(``now``, node_stamp + start, next_scan, pids_active_reset) or a scan sequence number with
another (start_scan_seq, prev_scan_seq); all tick times are multiples of TICK_NS. So once
the scans of a process stop marking anything (every markable PTE already carries
PTE_NUMA; the vm counters do not move), its state after a tick that equals its state
after an earlier tick shifted by (dt in time, ds in sequence numbers) repeats with that
shift forever: k cycles are skipped by adding k*dt and k*ds to those fields.

Two states are compared through a key in which times are taken relative to now and
sequence numbers relative to the mm's; values whose comparisons can no longer change are
clamped (a VMA's next_scan in the past; seq - start_scan_seq >= 2; seq - prev_scan_seq
beyond the thread count; pids_active_reset when numa_balancing_scan_delay_ms is 0). A
clamped field must have moved by exactly the shift or not at all between the two states,
else no cycle is taken (the next repetition is checked). Processes never read each other's
scanner state or PTEs, so each is skipped on its own; other processes' ticks run as usual.
"""
from __future__ import annotations

import numpy as np

from .constants import NSEC_PER_MSEC, TICK_NS
from .dtypes import M_NEXT_SCAN, M_SCAN_SEQ, T_NODE_STAMP, T_START
from .numa_balancing_quiet import QuietProbe

MIN_TICKS = 16           # runs of fewer ticks (the replay's short steps) never look for cycles
MAX_HISTORY = 1 << 16    # states remembered per process before starting over (a cycle
                         # must fit: 4 threads, default knobs: ~16000 ticks)
MAX_PARTS = 1 << 20      # and at most this many key parts (threads + VMAs) per process:
                         # ~100 MB; a process with many VMAs remembers fewer states


class IdleSkip:
    """Idle skipping for one ``run_until``: call ``before_tick`` and ``after_tick``
    around each tick; ``after_tick`` returns True when it moved the process's pending
    ticks (in ``pending``). A quiet process (numa_balancing_quiet.py) has its scan state
    and timing skipped separately; otherwise, or until then, cycles of the whole state."""

    def __init__(self, numab, target):
        self.numab = numab
        self.m = numab.m
        self.target = target
        self.quiet = {}                  # pid -> QuietProbe
        self.ticks = 0
        self.hist = {}                   # pid -> {key: values}
        self.vm = None

    def before_tick(self, th):
        self.ticks += 1
        if self.ticks > MIN_TICKS:
            self.vm = self.m.vm.copy()
            probe = self.quiet.get(th.pid)
            if probe is not None and probe.active:
                probe.before()

    def after_tick(self, th, pending):
        """True when the process's pending ticks in ``pending`` were moved."""
        if self.ticks <= MIN_TICKS:
            return False
        pid = th.pid
        changed = not np.array_equal(self.vm, self.m.vm)   # this tick marked or split
        probe = self.quiet.get(pid)
        if probe is None and not changed:            # watched from the next tick on
            self.quiet[pid] = QuietProbe(self.numab, pid, self.target)
            return False
        if probe is not None and probe.active:       # the quiet path first (any threads)
            if probe.after(th, pending, changed):
                return True
            if probe.active:
                return False
        if changed:
            self.hist.pop(pid, None)
            return False
        shift = self._cycle(th, pending)
        if shift:
            for other in self.m.procs[pid].tids:
                pending[other] += shift
        return bool(shift)

    def _cycle(self, th, pending):
        """The general path: a state equal to an earlier one up to a shift; returns the
        time shift applied to the process, or 0."""
        pid = th.pid
        proc = self.m.procs[pid]
        key, vals, kinds = self._state(proc, pending)
        hist = self.hist.setdefault(pid, {})
        old = hist.get(key)
        hist[key] = vals
        if old is None:
            if len(hist) > min(MAX_HISTORY, MAX_PARTS // len(key)):
                hist.clear()
            return 0
        dt, ds = vals[0] - old[0], vals[1] - old[1]
        k = (self.target - vals[0]) // dt if dt > 0 else 0
        if k <= 0:
            return 0
        for a, b, kind in zip(old, vals, kinds):
            if b != a and b - a != (dt if kind else ds):
                return 0
        self._shift(proc, [k * (b - a) for a, b in zip(old, vals)])
        hist.clear()
        return k * dt

    def _state(self, proc, pending):
        """(key, values, kinds): the key compares states up to a shift; values are the
        shifted fields (kind True: a time, False: a scan sequence number), in _shift's
        order: now, seq, node stamps, mm next_scan, per numab (start, next, reset, prev)."""
        m = self.m
        now = m.now_ns
        mm = m.mms[proc.asid]
        seq = int(mm[M_SCAN_SEQ])
        n = len(proc.tids)
        delay = m.config.numa_balancing_scan_delay_ms * NSEC_PER_MSEC
        key = [now % TICK_NS, seq == 0]
        vals = [now, seq]
        kinds = [True, False]
        for tid in sorted(proc.tids):
            row = m.tasks[m.threads[tid].slot].tolist()
            stamp = row[T_NODE_STAMP]
            row[T_NODE_STAMP] = (stamp == 0, row[T_START] + stamp - now)
            key.append((tuple(row), pending[tid] - now))
            vals.append(stamp)
            kinds.append(True)
        row = mm.tolist()
        vals += [row[M_NEXT_SCAN], seq]
        kinds += [True, False]
        row[M_NEXT_SCAN] -= now
        row[M_SCAN_SEQ] = 0
        key.append(tuple(row))
        proc.vmas.sync_from_view()        # task_numa_work's first step, done early
        for v in proc.vmas:
            s = v.numab
            if s is None:
                key.append((v.start, v.end))
                continue
            reset = s.pids_active_reset
            key.append((v.start, v.end, min(seq - s.start_scan_seq, 2),
                        s.next_scan - now if s.next_scan > now else None,
                        None if delay == 0 and reset < now else reset - now,
                        min(seq - s.prev_scan_seq, n + 1), s.pids0, s.pids1))
            vals += [s.start_scan_seq, s.next_scan, reset, s.prev_scan_seq]
            kinds += [False, True, True, False]
        return tuple(key), vals, kinds

    def _shift(self, proc, d):
        """Add the shifts ``d`` (in _state's order) to the process's fields."""
        m = self.m
        i = 2
        for tid in sorted(proc.tids):
            m.tasks[m.threads[tid].slot, T_NODE_STAMP] += d[i]
            i += 1
        mm = m.mms[proc.asid]
        mm[M_NEXT_SCAN] += d[i]
        mm[M_SCAN_SEQ] += d[i + 1]
        i += 2
        for v in proc.vmas:
            s = v.numab
            if s is None:
                continue
            s.start_scan_seq += d[i]
            s.next_scan += d[i + 1]
            s.pids_active_reset += d[i + 2]
            s.prev_scan_seq += d[i + 3]
            i += 4
