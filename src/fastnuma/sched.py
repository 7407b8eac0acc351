"""Processes and threads (kernel/fork.c, kernel/exit.c, the scheduler's CPU choice):
spawn, clone, fork (copy_page_range), exit, sched, and the OOM kill; the tid hash the
event loop looks threads up in."""
from __future__ import annotations

import errno

import numpy as np

from .constants import PAGE_SHIFT, TASK_SIZE
from .dtypes import C_OOM_KILL
from .errors import raise_errno
from .kernels.events import tid_hash
from .kernels.range import copy_page_range
from .machine import Process, Thread
from .policy import as_int
from .vma import Vma


class Sched:
    """Process and thread lifetimes over the machine's tables."""

    def __init__(self, machine, mm, numab):
        self.m = machine
        self.mm = mm
        self.numab = numab

    def spawn(self, cpu=0, uid=0, cap_sys_nice=True) -> int:
        """A new process with one thread on ``cpu``; returns its pid (== its first tid)."""
        m = self.m
        cpu = m.check_cpu(cpu)
        uid = as_int(uid, "uid")
        pid = m.new_id()
        asid = m.new_asid()
        m.procs[pid] = Process(pid, asid, uid, bool(cap_sys_nice), self.mm.new_vma_list(asid),
                               [pid])
        self.numab.mm_init(asid)
        self.new_thread(pid, pid, asid, cpu)
        return pid

    def clone(self, pid, cpu=None) -> int:
        """A new thread of process ``pid`` (CLONE_VM); inherits the leader's task policy and
        its interleave position (copy_process copies il_prev and il_weight)."""
        m = self.m
        proc = m.proc(pid)
        leader = m.main_thread(proc)
        cpu = leader.cpu if cpu is None else m.check_cpu(cpu)
        tid = m.new_id()
        self.new_thread(tid, proc.pid, proc.asid, cpu, leader.policy, leader.il_prev,
                        leader.il_weight, parent=leader)
        proc.tids.append(tid)
        return tid

    def fork(self, pid, tid=None) -> int:
        """Copy-on-write child of ``pid``; the child's thread copies thread ``tid``'s CPU
        and task policy (default: the leader). Returns the child's pid."""
        m = self.m
        proc = m.proc(pid)
        th = m.main_thread(proc) if tid is None else m.thread(tid)
        if th.pid != proc.pid:
            raise_errno(errno.ESRCH, f"thread {th.tid} is not in process {proc.pid}")
        child = m.new_id()
        asid = m.new_asid()
        vmas = self.mm.new_vma_list(asid)
        for v in proc.vmas:
            vmas.insert(Vma(v.start, v.end, v.flags, v.pgoff, v.policy, v.shm, v.anon,
                            prot=v.prot, account=v.account))
        cproc = Process(child, asid, proc.uid, proc.cap_sys_nice, vmas, [child], forked=True)
        proc.forked = True
        blocks = m.pt.blocks_of(proc.asid)
        m.pt.reserve(blocks=len(blocks) + 1, frames=0)
        copy_page_range(m.st, m.kernel_vmas(proc), blocks, cproc.asid)
        m.procs[child] = cproc
        self.numab.mm_init(asid)
        self.new_thread(child, child, asid, th.cpu, th.policy, th.il_prev, th.il_weight)
        return child

    def exit(self, pid) -> None:
        """The process ends: every mapping goes, pages are freed."""
        m = self.m
        proc = m.proc(pid)
        self.mm.unmap(proc, 0, TASK_SIZE >> PAGE_SHIFT, check_count=False)
        for t in proc.tids:
            del m.threads[t]
        del m.procs[proc.pid]
        self._rebuild_tid_hash()

    def adopt_thread(self, pid: int, tid: int, cpu: int) -> Thread:
        """A thread with the given ids (a trace's): it joins process ``pid``, or starts it
        (as the process's first thread, whatever its tid). Later ids from spawn/clone/fork
        do not collide with these."""
        m = self.m
        m.next_id = max(m.next_id, pid + 1, tid + 1)
        proc = m.procs.get(pid)
        if proc is None:
            asid = m.new_asid()
            proc = Process(pid, asid, 0, True, self.mm.new_vma_list(asid), [tid])
            m.procs[pid] = proc
            self.numab.mm_init(asid)
            return self.new_thread(tid, pid, asid, cpu)
        leader = m.main_thread(proc)
        th = self.new_thread(tid, pid, proc.asid, cpu, leader.policy, leader.il_prev,
                             leader.il_weight, parent=leader)
        proc.tids.append(tid)
        return th

    def oom_kill(self, proc: Process) -> None:
        """oom_kill_process: the allocating process is the victim."""
        self.m.vm[C_OOM_KILL] += 1
        self.exit(proc.pid)

    def sched(self, tid, cpu) -> None:
        """Thread ``tid`` now runs on ``cpu``."""
        th = self.m.thread(tid)
        th.cpu = self.m.check_cpu(cpu)

    def pids(self) -> list[int]:
        """Live processes."""
        return sorted(self.m.procs)

    def tids(self, pid) -> list[int]:
        """Threads of a process."""
        return list(self.m.proc(pid).tids)

    # ----------------------------------------------------------------- thread table
    def new_thread(self, tid, pid, asid, cpu, policy=None, il_prev=-1, il_weight=0,
                   parent=None) -> Thread:
        """A thread with its row in the thread table (``parent``: the thread cloning it)."""
        m = self.m
        th = Thread(m, tid, pid, m.n_slots, il_prev, il_weight)
        self.numab.task_init(th, asid, pid, cpu, parent)
        th.policy = policy
        m.threads[tid] = th
        self._tid_hash_insert(tid, th.slot)
        return th

    def _tid_hash_insert(self, tid, slot):
        m = self.m
        if 2 * (len(m.threads) + 1) > m.tid_keys.size:
            self._rebuild_tid_hash(2 * m.tid_keys.size)
        keys = m.tid_keys
        mask = keys.size - 1
        s = int(tid_hash(tid, mask))            # the probe the event loop starts from
        while keys[s] != -1 and keys[s] != tid:
            s = (s + 1) & mask
        keys[s] = tid
        m.tid_vals[s] = slot

    def _rebuild_tid_hash(self, size=None):
        """The tid -> thread-table-row hash the event loop reads, over the live threads."""
        m = self.m
        size = size or m.tid_keys.size
        m.set_tid_hash(np.full(size, -1, np.int64), np.full(size, -1, np.int64))
        for tid, th in m.threads.items():
            self._tid_hash_insert(tid, th.slot)
