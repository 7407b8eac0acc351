"""Idle time under NUMA balancing for a quiet process, with any number of threads: its
scan state and its scan timing are skipped separately (docs/linux-semantics.md §5.2).

A process is quiet when its scans mark nothing (the vm counters do not move), no VMA's
active-pid bits are set (``pids_active[]``: only faults set them), every VMA is scanned or
not alike for all its threads (``vma_policy_mof``), and every VMA's first-scan delay is
over. Then task_numa_work does the same thing whichever thread runs it and whenever it
runs, except for two things that only depend on time: ``mm->numa_next_scan`` with the
threads' node stamps (the timing), and each VMA's ``pids_active_reset`` (``if now >
reset: reset += 4 * scan_delay``, read by nothing else once the pid bits are clear).

So the scan state is a function of the number of scans: ``QuietProbe`` watches the
process's real scans until that state (scan sequence numbers relative to the mm's,
clamped as numa_balancing_idle.py does) repeats after S scans, noting how often each scan
checks each VMA's reset (a sentinel reset that every check moves counts them). The timing
then runs in kernels/idle.py: O(threads) per scan, whole timing cycles skipped, each reset
following its own recurrence, stopping at the last scan before the target whose count is a
multiple of S, where the scan state is the watched one with its sequence numbers shifted.
The remaining ticks run as usual.
"""
from __future__ import annotations

import numpy as np

from .constants import NSEC_PER_MSEC, TICK_NS
from .dtypes import M_NEXT_SCAN, M_SCAN_SEQ, T_NODE_STAMP, T_SCAN_PERIOD, T_START
from .kernels.idle import (O_NEXT_SCAN, O_OWNER, O_SCANS, O_STATUS, O_TIME,
                           QUIET_OK, quiet_scans)

SENTINEL = -(1 << 62)    # a reset every check moves: (reset - SENTINEL) // step = checks
MAX_WATCH = 1 << 14      # quiet scans watched for the scan state to repeat
MAX_STEPS = 1 << 20      # scans the timing kernel runs while looking for its cycle, at
MAX_STEPS_CALL = 1 << 25  # first and at most per call (with no cycle: on to the target)


class QuietProbe:
    """One process during one ``run_until``: call ``before`` and ``after`` around each of
    its ticks while ``active``; ``after`` returns True when the process jumped (its
    threads' pending ticks were updated in ``pending``)."""

    def __init__(self, numab, pid, target):
        self.nb = numab
        self.m = numab.m
        self.pid = pid
        self.target = target
        self.step = 4 * self.m.config.numa_balancing_scan_delay_ms * NSEC_PER_MSEC
        self.active = True
        self.watched = 0
        self.hist = {}            # scan-state key -> (scan index, sequence values)
        self.checks = []          # per watched scan: checks of each VMA's reset
        self.saved = []           # (numab, true reset) while the sentinel is in place
        self.next_scan = 0
        self.dirty = False        # this scan began with pid bits set: not counted
        self.uniform = numab.scans_alike(self.m.procs[pid])

    def before(self):
        proc = self.m.procs[self.pid]
        self.next_scan = int(self.m.mms[proc.asid, M_NEXT_SCAN])
        self.dirty = False
        if self.step and self.m.now_ns >= self.next_scan:     # this tick scans
            proc.vmas.sync_from_view()       # task_numa_work's first step, done early
            numabs = [v.numab for v in proc.vmas if v.numab is not None]
            if any(s.pids0 or s.pids1 for s in numabs):
                self.dirty = True            # the sentinel would rotate real pid bits
                return
            self.saved = [(s, s.pids_active_reset) for s in numabs]
            for s in numabs:
                s.pids_active_reset = SENTINEL

    def after(self, th, pending, changed):
        m = self.m
        proc = m.procs[self.pid]
        counts = self._restore_resets()
        if changed or self.dirty or not self.uniform:
            self._forget()
            self.active = self.uniform
            return False
        if int(m.mms[proc.asid, M_NEXT_SCAN]) == self.next_scan:
            return False                               # a tick without a scan
        state = self._state(proc)
        if state is None:                              # not quiet (yet)
            self._forget()
            return False
        key, vals = state
        self.watched += 1
        if self.watched > MAX_WATCH:
            self.active = False
            return False
        idx = len(self.checks)
        self.checks.append([counts.get(id(v.numab), 0) for v in proc.vmas])
        old = self.hist.get(key)
        self.hist[key] = (idx, vals)
        if old is None:
            return False
        moved = self._jump(proc, th, pending, old, idx, vals)
        if moved is not None:
            self.active = False
        return bool(moved)

    # ------------------------------------------------------------------ internals
    def _forget(self):
        self.hist.clear()
        self.checks.clear()

    def _restore_resets(self):
        """Put the true resets back, moved by the checks the sentinel counted; returns
        {id(numab): checks}."""
        counts = {}
        now = self.m.now_ns
        for s, reset in self.saved:
            c = (s.pids_active_reset - SENTINEL) // self.step
            for _ in range(c):                 # mm's numab-state rule, at this scan's time
                if now > reset:
                    reset += self.step
            s.pids_active_reset = reset
            counts[id(s)] = c
        self.saved = []
        return counts

    def _state(self, proc):
        """(key, values) of the scan state after a scan, or None when not quiet: the key
        holds what decides the next scans (sequence numbers relative to the mm's and
        clamped as numa_balancing_idle.py does; no times); values are the sequence
        numbers: the mm's, then each VMA's start_scan_seq and prev_scan_seq."""
        m = self.m
        now = m.now_ns
        mm = m.mms[proc.asid]
        seq = int(mm[M_SCAN_SEQ])
        n = len(proc.tids)
        row = mm.tolist()
        row[M_NEXT_SCAN] = row[M_SCAN_SEQ] = 0
        key = [seq == 0, tuple(row)]
        vals = [seq]
        for tid in sorted(proc.tids):
            row = m.tasks[m.threads[tid].slot].tolist()
            row[T_NODE_STAMP] = 0
            key.append(tuple(row))
        proc.vmas.sync_from_view()
        for v in proc.vmas:
            s = v.numab
            if s is None:
                key.append((v.start, v.end))
                continue
            if s.next_scan > now or s.pids0 or s.pids1:
                return None
            key.append((v.start, v.end, min(seq - s.start_scan_seq, 2),
                        min(seq - s.prev_scan_seq, n + 1)))
            vals += [s.start_scan_seq, s.prev_scan_seq]
        return tuple(key), vals

    def _jump(self, proc, th, pending, old, idx, vals):
        """The scan state repeated (scans old+1..idx are a cycle): run the timing kernel.
        Returns None to keep watching, else whether anything moved."""
        i0, before = old
        ds = vals[0] - before[0]
        if any(b != a and b - a != ds for a, b in zip(before, vals)):
            return None
        m = self.m
        tids = sorted(proc.tids)
        rows = [m.tasks[m.threads[t].slot] for t in tids]
        per = np.array([int(r[T_SCAN_PERIOD]) * NSEC_PER_MSEC for r in rows], np.int64)
        p = np.array([pending[t] for t in tids], np.int64)
        for r, pr, pe in zip(rows, p, per):            # every thread ticks every period
            due = int(r[T_START] + r[T_NODE_STAMP]) + int(pe) + 1
            if pe < TICK_NS or r[T_NODE_STAMP] == 0 or -(-due // TICK_NS) * TICK_NS != pr:
                return None
        vmas = list(proc.vmas)
        chk = np.array(self.checks[i0 + 1:idx + 1], np.int64).reshape(idx - i0, len(vmas))
        reset = np.array([v.numab.pids_active_reset if v.numab is not None else 0
                          for v in vmas], np.int64)
        mm = m.mms[proc.asid]
        out = np.zeros(5, np.int64)
        out[O_NEXT_SCAN], out[O_TIME], out[O_OWNER] = mm[M_NEXT_SCAN], m.now_ns, \
            tids.index(th.tid)
        scans, steps = 0, MAX_STEPS
        while True:            # bounded calls (Ctrl-C between them), longer each time
            quiet_scans(p, per, int(out[O_OWNER]), int(out[O_TIME]), int(out[O_NEXT_SCAN]),
                        chk, reset, self.step, self.target, steps, out)
            scans += int(out[O_SCANS])
            if out[O_STATUS] == QUIET_OK:
                break
            steps = min(2 * steps, MAX_STEPS_CALL)
        if scans == 0:
            return False
        for t, r, new in zip(tids, rows, p.tolist()):  # node_stamp moves with the ticks
            r[T_NODE_STAMP] += new - pending[t]
            pending[t] = new
        mm[M_NEXT_SCAN] = out[O_NEXT_SCAN]
        shift = scans // chk.shape[0] * ds
        moved = [b != a for a, b in zip(before, vals)]
        mm[M_SCAN_SEQ] += shift if moved[0] else 0
        k = 1
        for v, r in zip(vmas, reset.tolist()):
            s = v.numab
            if s is None:
                continue
            s.start_scan_seq += shift if moved[k] else 0
            s.prev_scan_seq += shift if moved[k + 1] else 0
            s.pids_active_reset = r
            k += 2
        return True
