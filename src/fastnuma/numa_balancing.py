"""Lazy migration and automatic NUMA balancing, the Python side (docs/lazy-migration.md).

``change_prot_numa`` marks a range (kernels/numa.py does the per-entry work); the
scanner (``advance`` -> scheduler ticks -> ``task_numa_work``) walks VMAs as
kernel/sched/fair.c task_numa_work does and marks them chunk by chunk. Per-thread and
per-address-space NUMA state lives in the machine's tables the fault kernels update
(``tasks``, ``task_faults``, ``mms``); scans are rare, so their orchestration is Python.
"""
from __future__ import annotations

import errno
import heapq
from dataclasses import dataclass


from .constants import (MAX_SCAN_WINDOW, MPOL_F_MOF, NSEC_PER_MSEC, PAGE_SHIFT, TICK_NS,
                        TIME_LIMIT_NS)
from .dtypes import (C_NUMA_HUGE_PTE_UPDATES, C_NUMA_PTE_UPDATES, C_PROT_NUMA_FLUSHES,
                     M_NEXT_SCAN, M_SCAN_MAX, M_SCAN_MIN, M_SCAN_OFFSET, M_SCAN_SEQ,
                     N_NEAREST_CPU_NODE, PTRS_PER_PMD, T_ASID, T_CPU, T_LOC_FAILED,
                     T_LOC_LOCAL, T_LOC_REMOTE, T_MIGRATE_RETRY, T_NODE_STAMP,
                     T_PAGES_MIGRATED, T_PID, T_PREFERRED, T_SCAN_PERIOD, T_SCAN_PERIOD_MAX,
                     T_SCAN_SEQ, T_START, T_TID)
from .errors import raise_errno
from .kernels.numa import change_prot_numa_range, change_prot_numa_range_parallel, pid_bit
from .kernels.range import rss_of
from .numa_balancing_idle import IdleSkip
from .policy import as_int

PARALLEL_MIN_BLOCKS = 4096         # ranges this large are marked on every core
_N_CHUNKS = 8


@dataclass(slots=True)
class NumabState:
    """vma->numab_state: when the scanner first saw the VMA and which threads fault there."""
    start_scan_seq: int
    next_scan: int                 # ns
    pids_active_reset: int         # ns
    prev_scan_seq: int
    pids0: int = 0                 # pids_active[0], [1]: bits hash_32(tid, 6)
    pids1: int = 0


class NumaBalancing:
    """kernel/sched/fair.c's NUMA balancing and mm/mprotect.c's change_prot_numa: the
    per-thread and per-address-space state, marking, the scanner in simulated time."""

    def __init__(self, machine, mm):
        self.m = machine
        self.mm = mm
        self.kswapd = None          # Tiering.run_kswapds_until, with memory tiering
        topo = machine.topology
        n_nodes = topo.n_nodes
        cpu_nodes = [n for n in range(n_nodes) if topo.has_cpus(n)]
        for n in range(n_nodes):               # numa_nearest_node(n, N_CPU)
            machine.numa_nodes[n, N_NEAREST_CPU_NODE] = n if topo.has_cpus(n) else min(
                cpu_nodes, key=lambda c: (topo.distance[n][c], c)) if cpu_nodes else n

    def mm_init(self, asid):
        """init_numa_balancing for a new address space."""
        m = self.m
        m.grow_tables(m.n_slots, asid + 1)
        mm = m.mms[asid]
        mm[:] = 0
        mm[M_NEXT_SCAN] = m.now_ns + m.config.numa_balancing_scan_delay_ms * NSEC_PER_MSEC
        mm[M_SCAN_MIN], mm[M_SCAN_MAX] = self._scan_bounds(1)

    def task_init(self, th, asid, pid, cpu, parent=None):
        """The thread table row of a new thread (init_numa_balancing); ``parent``: the
        thread cloning it (same address space), whose preferred node and period bound it
        inherits."""
        m = self.m
        slot = th.slot
        m.n_slots += 1
        m.grow_tables(slot + 1, asid + 1)
        t = m.tasks[slot]
        t[:] = 0
        m.task_faults[slot] = 0
        t[T_TID], t[T_ASID], t[T_START] = th.tid, asid, m.now_ns
        t[T_PID], t[T_CPU] = pid, cpu
        t[T_SCAN_PERIOD] = m.config.numa_balancing_scan_delay_ms
        t[T_PREFERRED] = -1
        if parent is not None:
            p = m.tasks[parent.slot]
            users = len(m.procs[pid].tids)
            t[T_SCAN_SEQ] = m.mms[asid, M_SCAN_SEQ]
            t[T_PREFERRED] = p[T_PREFERRED]
            t[T_SCAN_PERIOD_MAX] = p[T_SCAN_PERIOD_MAX]
            # Linux takes the min of task_scan_max (ms) and a value in ns: reproduced
            t[T_NODE_STAMP] = min(m.mms[asid, M_SCAN_MAX],
                                  p[T_SCAN_PERIOD] * users * NSEC_PER_MSEC) + 2 * TICK_NS

    # ------------------------------------------------------------------ marking
    def mark_range(self, proc, lo, hi, node):
        """change_prot_numa over the VMAs in [lo, hi) (vpns), by a thread on ``node``.
        Returns the number of updates."""
        if lo >= hi:
            return 0
        cfg = self.m.config
        for edge in (lo, hi):                      # a THP the range cuts is split first
            v = proc.vmas.find(edge)
            if v is not None and v.accessible:
                self.mm.vma_adjust_trans_huge(proc.asid, edge)
        single = len(proc.tids) == 1
        total = 0
        for v in proc.vmas.overlapping(lo, hi):
            if not v.accessible:     # PROT_NONE: its callers skip it (vma_is_accessible)
                continue
            a, b = max(lo, v.start), min(hi, v.end)
            blocks = self.m.pt.blocks_of(proc.asid, a, b)
            if not len(blocks):
                continue
            private = v.shm is None
            skip_node = node if cfg.skip_local_single_thread and single and private else -1
            # a private page is mapped more than once only after a fork (COW)
            args = (self.m.st, blocks, a, b, private and proc.forked, skip_node,
                    cfg.pmd_numa_batching,
                    cfg.shared_page_rule, cfg.thp_update_count)
            if len(blocks) >= PARALLEL_MIN_BLOCKS:
                upd, huge = change_prot_numa_range_parallel(*args, _N_CHUNKS)
            else:
                upd, huge = change_prot_numa_range(*args)
            if upd:                                # one TLB flush per VMA that changed
                self.m.vm[C_NUMA_PTE_UPDATES] += upd
                self.m.vm[C_NUMA_HUGE_PTE_UPDATES] += huge
                self.m.vm[C_PROT_NUMA_FLUSHES] += 1
                total += int(upd)
        return total

    def change_prot_numa(self, pid, addr, length, tid=None):
        """Mark [addr, addr+length) of process ``pid`` for NUMA hinting faults, as the
        scanner and mbind(MPOL_MF_LAZY) do (a fastnuma extension). ``tid``: the thread
        doing it (its node matters to single-threaded processes), default the leader.
        Returns the number of entries updated (a THP counts per ``thp_update_count``).
        Range checks as mbind's: EINVAL (alignment, beyond 2**47), EFAULT (a hole)."""
        m = self.m
        proc = m.proc(pid)
        th = m.caller_thread(proc, tid)
        if not 0 <= as_int(length, "length") < 1 << 64:      # not wrapped to a small one
            raise_errno(errno.EINVAL, f"length {length} is not an unsigned long")
        lo, hi = self.mm.user_range(addr, length, allow_zero=True, task_size=False)
        if lo == hi:
            return 0
        gap = proc.vmas.first_gap(lo, hi)
        if gap is not None:
            raise_errno(errno.EFAULT, f"{addr:#x}-{hi << PAGE_SHIFT:#x} is not fully "
                                      f"mapped: nothing at {gap << PAGE_SHIFT:#x}")
        return self.mark_range(proc, lo, hi, m.topology.cpu_node[th.cpu])

    # ------------------------------------------------------------------ scan bounds
    def _scan_bounds(self, windows):
        """(task_scan_min, task_scan_max) in ms for an address space of ``windows``."""
        cfg = self.m.config
        size = cfg.numa_balancing_scan_size_mb
        floor = 1000 // (MAX_SCAN_WINDOW // size) if 0 < size < MAX_SCAN_WINDOW else 1000
        smin = max(floor, cfg.numa_balancing_scan_period_min_ms // windows)
        return smin, max(smin, cfg.numa_balancing_scan_period_max_ms // windows)

    def _refresh_scan_bounds(self, proc):
        """task_nr_scan_windows from the process's RSS now; stored for the fault kernels."""
        scan_pages = self.m.config.numa_balancing_scan_size_mb << 8
        rss = int(rss_of(self.m.st, self.m.pt.blocks_of(proc.asid)))
        windows = max(1, -(-rss // scan_pages)) if scan_pages else 1
        mm = self.m.mms[proc.asid]
        mm[M_SCAN_MIN], mm[M_SCAN_MAX] = self._scan_bounds(windows)

    # ------------------------------------------------------------------ time
    def advance(self, ns):
        """Simulated time passes by ``ns`` nanoseconds; with ``numa_balancing=1`` the
        scheduler ticks of every thread run, and NUMA scans with them."""
        ns = as_int(ns, "ns")
        if ns < 0:
            raise ValueError(f"advance({ns}): time cannot go backwards")
        if self.m.now_ns + ns >= TIME_LIMIT_NS:     # docs/api.md: the time domain
            raise ValueError(f"advance({ns}): simulated time would reach 2**62 ns, the end "
                             f"of fastnuma's time domain (now {self.m.now_ns} ns)")
        self.run_until(self.m.now_ns + ns)

    def run_until(self, target):
        """Run the scheduler ticks in (now, target], then set the clock to target; with
        memory tiering, kswapd runs due by then go first (``kswapd``: tiering.py)."""
        while self.kswapd is not None and self.kswapd(target, self._run_ticks):
            pass
        self._run_ticks(target)

    def _run_ticks(self, target):
        if self.m.config.numa_balancing:
            pending = {tid: self.next_tick(th) for tid, th in self.m.threads.items()}
            heap = [(t, tid) for tid, t in pending.items()]
            heapq.heapify(heap)
            idle = IdleSkip(self, target)            # cycles of quiet scans are skipped
            while heap and heap[0][0] <= target:
                t, tid = heapq.heappop(heap)
                self.m.now_ns = t
                th = self.m.threads[tid]
                idle.before_tick(th)
                self._task_tick_numa(th)
                pending[tid] = self.next_tick(th)
                heapq.heappush(heap, (pending[tid], tid))
                if idle.after_tick(th, pending):     # the process's pending ticks moved
                    heap = [(t, tid) for tid, t in pending.items()]
                    heapq.heapify(heap)
        self.m.now_ns = target

    def next_tick(self, th):
        """The first tick after now at which the thread's runtime passes node_stamp +
        period (every thread runs all the time)."""
        t = self.m.tasks[th.slot]
        due = int(t[T_START] + t[T_NODE_STAMP] + t[T_SCAN_PERIOD] * NSEC_PER_MSEC) + 1
        return max(-(-due // TICK_NS), self.m.now_ns // TICK_NS + 1) * TICK_NS

    def _task_tick_numa(self, th):
        t = self.m.tasks[th.slot]
        period = t[T_SCAN_PERIOD] * NSEC_PER_MSEC
        if t[T_NODE_STAMP] == 0:
            proc = self.m.procs[th.pid]
            self._refresh_scan_bounds(proc)
            t[T_SCAN_PERIOD] = self.m.mms[proc.asid, M_SCAN_MIN]          # task_scan_start
        t[T_NODE_STAMP] += period
        if self.m.now_ns >= self.m.mms[t[T_ASID], M_NEXT_SCAN]:
            self.task_numa_work(th)

    # ------------------------------------------------------------------ the scan
    def _vma_policy_mof(self, v, th):
        """vma_policy_mof: does the policy governing v migrate on fault?"""
        if v.shm is not None:
            pol = v.shm.policy_at(v.pgoff)
            return pol is not None and bool(pol.flags & MPOL_F_MOF)
        pol = v.policy if v.policy is not None else th.policy
        return pol is None or bool(pol.flags & MPOL_F_MOF)

    def scans_alike(self, proc):
        """Is every VMA of ``proc`` scanned or skipped alike by all its threads (the
        policies' MOF; numa_balancing_quiet.py)?"""
        ths = [self.m.threads[t] for t in proc.tids]
        return all(len({self._vma_policy_mof(v, th) for th in ths}) == 1 for v in proc.vmas)

    def task_numa_work(self, th):
        """task_numa_work: one scan pass of the thread's address space (docs/linux-semantics.md §5.3)."""
        cfg = self.m.config
        now = self.m.now_ns
        proc = self.m.procs[th.pid]
        mm = self.m.mms[proc.asid]
        t = self.m.tasks[th.slot]
        if now < mm[M_NEXT_SCAN]:
            return
        self._refresh_scan_bounds(proc)       # the RSS now, as task_scan_min reads it
        if t[T_SCAN_PERIOD] == 0:
            t[T_SCAN_PERIOD_MAX] = mm[M_SCAN_MAX]
            t[T_SCAN_PERIOD] = mm[M_SCAN_MIN]
        mm[M_NEXT_SCAN] = now + t[T_SCAN_PERIOD] * NSEC_PER_MSEC
        t[T_NODE_STAMP] += 2 * TICK_NS
        pages = cfg.numa_balancing_scan_size_mb << 8
        virtpages = 8 * pages
        if not pages:
            return
        proc.vmas.sync_from_view()
        delay = cfg.numa_balancing_scan_delay_ms * NSEC_PER_MSEC
        node = self.m.topology.cpu_node[th.cpu]
        bit = 1 << int(pid_bit(th.tid))
        vmas = list(proc.vmas)
        start = int(mm[M_SCAN_OFFSET])
        i = next((k for k, v in enumerate(vmas) if v.end > start), None)
        if i is None:                                    # reset_ptenuma_scan
            mm[M_SCAN_SEQ] += 1
            mm[M_SCAN_OFFSET] = 0
            start, i = 0, 0
        seq = int(mm[M_SCAN_SEQ])
        forced = skipped_pid = False
        while True:
            while i < len(vmas):
                v = vmas[i]
                i += 1
                if not self._vma_policy_mof(v, th) or not v.accessible:
                    continue                             # (NUMAB_SKIP_INACCESSIBLE)
                ns = v.numab
                if ns is None:
                    ns = v.numab = NumabState(seq, now + delay, now + 5 * delay, seq - 1)
                if seq and now < ns.next_scan:
                    continue
                if seq and now > ns.pids_active_reset:
                    ns.pids_active_reset += 4 * delay
                    ns.pids0, ns.pids1 = ns.pids1, 0
                if ns.prev_scan_seq == seq:
                    mm[M_SCAN_OFFSET] = v.end
                    continue
                if not forced and not (seq - ns.start_scan_seq < 2
                                       or (ns.pids0 | ns.pids1) & bit
                                       or mm[M_SCAN_OFFSET] > v.start
                                       or seq > ns.prev_scan_seq + len(proc.tids)):
                    skipped_pid = True
                    continue
                start = max(start, v.start)
                while True:
                    end = min(-(-(start + pages) // PTRS_PER_PMD) * PTRS_PER_PMD, v.end)
                    if self.mark_range(proc, start, end, node):
                        pages -= end - start
                    virtpages -= end - start
                    start = end
                    if pages <= 0 or virtpages <= 0:
                        mm[M_SCAN_OFFSET] = start
                        return
                    if end == v.end:
                        break
                ns.prev_scan_seq = seq
                if forced:
                    mm[M_SCAN_OFFSET] = start
                    return
            if forced or not skipped_pid:
                break
            forced = True                                # retry once, ignoring the pids
            i = next((k for k, v in enumerate(vmas) if v.end > start), len(vmas))
        mm[M_SCAN_SEQ] += 1                              # the end of the list: wrap
        mm[M_SCAN_OFFSET] = 0

    # ------------------------------------------------------------------ observation
    def task_numa_stats(self, tid):
        """A thread's NUMA-balancing state (docs/lazy-migration.md §2) as a dict."""
        th = self.m.thread(tid)
        t = self.m.tasks[th.slot]
        f = self.m.task_faults[th.slot]
        return {
            "numa_scan_period": int(t[T_SCAN_PERIOD]),
            "numa_scan_period_max": int(t[T_SCAN_PERIOD_MAX]),
            "node_stamp": int(t[T_NODE_STAMP]),
            "numa_scan_seq": int(t[T_SCAN_SEQ]),
            "numa_preferred_nid": int(t[T_PREFERRED]),
            "numa_migrate_retry": int(t[T_MIGRATE_RETRY]),
            "numa_pages_migrated": int(t[T_PAGES_MIGRATED]),
            "numa_faults_locality": [int(t[T_LOC_REMOTE]), int(t[T_LOC_LOCAL]),
                                     int(t[T_LOC_FAILED])],
            "faults": f[:, 0:2].tolist(),
            "faults_buffer": f[:, 2:4].tolist(),
        }
