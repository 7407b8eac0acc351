"""Simulator: owns the machine state (topology arrays, page tables, processes, counters)
and the memory calls (spawn/clone/fork/exit/sched, mmap/munmap/madvise, access).

The policy system calls live in ``syscalls.py`` and the observation calls in ``stats.py``
(mixins of :class:`Simulator`); kernels are in ``kernels/``.
"""
import errno
import os
from dataclasses import dataclass, field

import numpy as np

from .config import SimConfig
from .constants import (MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_NORMAL,
                        MAP_ANONYMOUS, MAP_HUGETLB, MAP_PRIVATE, MAP_SHARED, PAGE_SHIFT,
                        PAGE_SIZE, TASK_SIZE)
from .dtypes import C_OOM_KILL, N_NUMASTAT, N_VMSTAT, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_SHARED
from .errors import OutOfMemory, SegmentationFault, raise_errno
from .kernels.alloc import N_OPTS
from .kernels.fault import ACCESS_DONE, ACCESS_NEED_GROW, ACCESS_SEGV, access_batch
from .kernels.range import copy_page_range, release_object, split_pmd_at, unmap_range
from .kernels.state import SimState, set_policies
from .pagetable import PageTable
from .policy import PolicyTable, as_int
from .stats import ObservationMixin
from .syscalls import SyscallMixin
from .topology import Topology
from .vma import ShmObject, Vma, VmaList

MMAP_BASE = 0x7F0000000000 >> PAGE_SHIFT      # top of the mmap area, as a vpn
_U64 = (1 << 64) - 1
_PMD_PAGES = 512


@dataclass(eq=False, slots=True)
class Thread:
    tid: int
    pid: int
    cpu: int
    policy: object = None       # task policy (Policy or None)
    il_prev: int = -1           # last interleave node (MAX_NUMNODES-1 after set_mempolicy)
    il_weight: int = 0
    local: int = 0              # accesses to memory on the thread's node / elsewhere
    remote: int = 0


@dataclass(eq=False, slots=True)
class Process:
    pid: int
    asid: int
    uid: int
    cap_sys_nice: bool
    vmas: VmaList
    tids: list = field(default_factory=list)


class Simulator(SyscallMixin, ObservationMixin):
    """A simulated Linux NUMA machine: processes, page tables, policies and counters.

    Parameters
    ----------
    topology : Topology
        The machine's nodes, CPUs and distances.
    **knobs
        Kernel knobs under their Linux names; see :class:`fastnuma.config.SimConfig`
        (``thp``, ``thp_defrag``, ``numa_balancing``, ``interleave_weights``,
        ``linux_strict_flags``, ``max_map_count``, ``zero_page``, ``numa_stat``).
    """

    def __init__(self, topology, **knobs):
        if not isinstance(topology, Topology):
            raise TypeError(f"topology must be a fastnuma.Topology, not "
                            f"{type(topology).__name__}")
        self.topology = topology
        self.config = SimConfig(**knobs)
        self.config.check_against(topology)
        ka = topology.to_kernel_args()
        n = topology.n_nodes
        weights = np.ones(64, np.int64)
        for node, w in (self.config.interleave_weights or {}).items():
            weights[node] = w if w > 0 else 1
        opts = np.zeros(N_OPTS, np.int64)
        opts[:] = self.config.kernel_opts()
        self.policies = PolicyTable()
        # every frame holds at least one page: the frame table never needs more entries than
        # the machine has pages (calloc'd: untouched entries cost no memory)
        self.pt = PageTable(frames=min(sum(topology.node_pages), 1 << 27) + 1024)
        self.free = ka["node_pages"].copy()                 # free pages per node
        self.vm = np.zeros(N_VMSTAT, np.int64)               # VMSTAT_NAMES counters
        self.node_stats = np.zeros((n, N_NUMASTAT), np.int64)  # NUMASTAT_NAMES per node
        self._policy_array = self.policies.array
        self.st = SimState(cpu_node=ka["cpu_node"], fallback=ka["fallback"], free=self.free,
                           wmark_min=ka["wmark_min"], wmark_low=ka["wmark_low"],
                           wmark_high=ka["wmark_high"], il_weight=weights,
                           numastat=self.node_stats, vm=self.vm,
                           policies=self._policy_array, opts=opts, **self.pt.arrays)
        self.pt.st = self.st
        self.access_counts = np.zeros((n, n, 2), np.int64)   # cpu node x memory node x r/w
        self._scratch_counts = np.zeros((n, n, 2), np.int64)
        self._pos = np.zeros(1, np.int64)
        self._memory_mask = sum(1 << i for i in topology.memory_nodes())
        self.procs = {}
        self.threads = {}
        self._next_id = 1
        self._next_asid = 1
        self.now_ns = 0
        self._page_cache = []          # frames of page-cache pages (page_cache_read)

    # ----------------------------------------------------------------- internals
    def _sync_policies(self):
        """Hand the kernels the policy table again if interning grew it."""
        if self._policy_array is not self.policies.array:
            self._policy_array = self.policies.array
            set_policies(self.st, self._policy_array)

    def _kernel_vmas(self, proc):
        """The VMA rows of ``proc`` for kernels, with the policy table they refer to."""
        view = proc.vmas.kernel_view(self.policies)
        self._sync_policies()
        return view

    def _vma_list(self, asid):
        return VmaList(self.config.max_map_count,
                       split_pmd=lambda vpn: self._split_pmd_at(asid, vpn))

    def _split_pmd_at(self, asid, vpn):
        """vma_adjust_trans_huge: a new VMA boundary inside a PMD-mapped THP splits it."""
        if vpn & 511:
            self.pt.reserve(blocks=0, frames=512)
            split_pmd_at(self.st, asid, vpn)

    def _new_id(self):
        i = self._next_id
        self._next_id += 1
        return i

    def _new_asid(self):
        a = self._next_asid
        self._next_asid += 1
        return a

    def _proc(self, pid):
        pid = as_int(pid, "pid")
        p = self.procs.get(pid)
        if p is None:
            raise_errno(errno.ESRCH, f"no process {pid}")
        return p

    def _thread(self, tid):
        tid = as_int(tid, "tid")
        t = self.threads.get(tid)
        if t is None:
            raise_errno(errno.ESRCH, f"no thread {tid}")
        return t

    def _main_thread(self, proc):
        """The thread group leader (tid == pid) if alive, else the first live thread."""
        return self.threads[proc.pid if proc.pid in self.threads else proc.tids[0]]

    def _check_cpu(self, cpu):
        cpu = as_int(cpu, "cpu")
        cn = self.topology.cpu_node
        if not 0 <= cpu < len(cn) or cn[cpu] < 0:
            raise_errno(errno.EINVAL, f"CPU {cpu} does not exist (CPUs: "
                                      f"{[c for c in range(len(cn)) if cn[c] >= 0]})")
        return cpu

    # ----------------------------------------------------------------- processes
    def spawn(self, cpu=0, uid=0, cap_sys_nice=True):
        """A new process with one thread on ``cpu``; returns its pid (== its first tid)."""
        cpu = self._check_cpu(cpu)
        uid = as_int(uid, "uid")
        pid = self._new_id()
        asid = self._new_asid()
        self.procs[pid] = Process(pid, asid, uid, bool(cap_sys_nice), self._vma_list(asid),
                                  [pid])
        self.threads[pid] = Thread(pid, pid, cpu)
        return pid

    def clone(self, pid, cpu=None):
        """A new thread of process ``pid`` (CLONE_VM); inherits the leader's task policy."""
        proc = self._proc(pid)
        leader = self._main_thread(proc)
        cpu = leader.cpu if cpu is None else self._check_cpu(cpu)
        tid = self._new_id()
        self.threads[tid] = Thread(tid, proc.pid, cpu, leader.policy)
        proc.tids.append(tid)
        return tid

    def fork(self, pid, tid=None):
        """Copy-on-write child of ``pid``; the child's thread copies thread ``tid``'s CPU
        and task policy (default: the leader). Returns the child's pid."""
        proc = self._proc(pid)
        th = self._main_thread(proc) if tid is None else self._thread(tid)
        if th.pid != proc.pid:
            raise_errno(errno.ESRCH, f"thread {th.tid} is not in process {proc.pid}")
        child = self._new_id()
        asid = self._new_asid()
        vmas = self._vma_list(asid)
        for v in proc.vmas:
            vmas.insert(Vma(v.start, v.end, v.flags, v.pgoff, v.policy, v.shm, v.anon))
        cproc = Process(child, asid, proc.uid, proc.cap_sys_nice, vmas, [child])
        blocks = self.pt.blocks_of(proc.asid)
        self.pt.reserve(blocks=len(blocks) + 1, frames=0)
        copy_page_range(self.st, self._kernel_vmas(proc), blocks, cproc.asid)
        self.procs[child] = cproc
        self.threads[child] = Thread(child, child, th.cpu, th.policy, th.il_prev, th.il_weight)
        return child

    def exit(self, pid):
        """The process ends: every mapping goes, pages are freed."""
        proc = self._proc(pid)
        self._unmap(proc, 0, TASK_SIZE >> PAGE_SHIFT, check_count=False)
        for t in proc.tids:
            del self.threads[t]
        del self.procs[proc.pid]

    def _oom_kill(self, proc):
        self.vm[C_OOM_KILL] += 1
        self.exit(proc.pid)

    def sched(self, tid, cpu):
        """Thread ``tid`` now runs on ``cpu``."""
        th = self._thread(tid)
        th.cpu = self._check_cpu(cpu)

    def pids(self):
        """Live processes."""
        return sorted(self.procs)

    def tids(self, pid):
        """Threads of a process."""
        return list(self._proc(pid).tids)

    # ----------------------------------------------------------------- memory
    def _range(self, addr, length, *, allow_zero):
        """Validate (addr, length) as munmap/madvise/mbind do: page-aligned start, length
        rounded up, both inside TASK_SIZE. Returns (lo_vpn, hi_vpn)."""
        addr = as_int(addr, "addr")
        length = as_int(length, "length") & _U64
        if addr & (PAGE_SIZE - 1) or addr < 0:
            raise_errno(errno.EINVAL, f"address {addr:#x} is not page aligned")
        end = (addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))) & _U64
        if end < addr:
            raise_errno(errno.EINVAL, f"range {addr:#x} + {length:#x} wraps around")
        if end == addr and not allow_zero:
            raise_errno(errno.EINVAL, "length 0")
        if end > TASK_SIZE:
            raise_errno(errno.EINVAL, f"range {addr:#x}-{end:#x} ends beyond the 47-bit user "
                                      f"address space")
        return addr >> PAGE_SHIFT, end >> PAGE_SHIFT

    def mmap(self, pid, length, flags=MAP_PRIVATE | MAP_ANONYMOUS, addr=None):
        """An anonymous mapping; returns its address. See docs/api.md for the rules."""
        proc = self._proc(pid)
        length = as_int(length, "length")
        flags = as_int(flags, "flags")
        if length == 0:
            raise_errno(errno.EINVAL, "mmap length 0")
        n_pages = ((length & _U64) + PAGE_SIZE - 1) >> PAGE_SHIFT
        if n_pages == 0 or n_pages << PAGE_SHIFT > TASK_SIZE:
            raise_errno(errno.ENOMEM, f"mmap length {length:#x} exceeds the address space")
        kind = flags & (MAP_SHARED | MAP_PRIVATE)
        if kind not in (MAP_SHARED, MAP_PRIVATE):
            raise_errno(errno.EINVAL, "mmap needs exactly one of MAP_SHARED and MAP_PRIVATE")
        if not flags & MAP_ANONYMOUS:
            raise_errno(errno.EINVAL, "only anonymous mappings (MAP_ANONYMOUS) are modelled")
        if flags & MAP_HUGETLB:
            raise_errno(errno.EINVAL, "MAP_HUGETLB (hugetlbfs) is not modelled")
        if len(proc.vmas) > self.config.max_map_count:
            raise_errno(errno.ENOMEM, f"process {proc.pid} has more than vm.max_map_count "
                                      f"({self.config.max_map_count}) mappings")
        if addr is None:
            lo = self._unmapped_area(proc, n_pages)
        else:
            addr = as_int(addr, "addr")
            if addr & (PAGE_SIZE - 1) or addr < 0:
                raise_errno(errno.EINVAL, f"mmap address {addr:#x} is not page aligned")
            lo = addr >> PAGE_SHIFT
            if (lo + n_pages) << PAGE_SHIFT > TASK_SIZE:
                raise_errno(errno.ENOMEM, f"mapping {addr:#x}+{length:#x} ends beyond the "
                                          f"47-bit user address space")
            self._unmap(proc, lo, lo + n_pages, check_count=True)
        hi = lo + n_pages
        vmas = proc.vmas
        if kind == MAP_SHARED:                       # a new object: never merges
            vmas.insert(Vma(lo, hi, VM_SHARED, 0, None, ShmObject(self._new_asid(), n_pages)))
            return lo << PAGE_SHIFT
        before = [v for v in vmas.overlapping(lo - 1, lo) if v.end == lo]
        after = [v for v in vmas.overlapping(hi, hi + 1) if v.start == hi]
        prev = before[0] if before and before[0].can_merge(None, lo, 0, None) else None
        nxt = after[0] if after and after[0].shm is None and after[0].flags == 0 and \
            after[0].policy is None and after[0].pgoff == hi else None
        if prev is not None and nxt is not None:      # vma_merge_new_range
            prev.end = nxt.end
            prev.anon = prev.anon or nxt.anon
            vmas.remove(nxt)
        elif prev is not None:
            prev.end = hi
            vmas.changed()
        elif nxt is not None:
            nxt.start = nxt.pgoff = lo
            vmas.changed()
        else:
            vmas.insert(Vma(lo, hi, 0, lo))
        return lo << PAGE_SHIFT

    def _unmapped_area(self, proc, n_pages):
        """Top-down search below MMAP_BASE (vm_unmapped_area), 2 MiB aligned for lengths
        that are multiples of 2 MiB (thp_get_unmapped_area)."""
        align = _PMD_PAGES if n_pages % _PMD_PAGES == 0 else 1
        top = MMAP_BASE
        for v in reversed(proc.vmas.vmas):
            if v.start >= top:
                continue
            if v.end <= top:
                cand = (top - n_pages) // align * align
                if cand >= v.end:
                    return cand
            top = min(top, v.start)
        cand = (top - n_pages) // align * align
        if cand < 1:
            raise_errno(errno.ENOMEM, f"no room for {n_pages} pages below the mmap base")
        return cand

    def _unmap(self, proc, lo, hi, *, check_count):
        """do_vmi_munmap over [lo, hi): ENOMEM when punching a hole in one VMA of a process
        at max_map_count; else split at the edges, zap the pages, remove the VMAs, free page
        tables no VMA overlaps any more, release shared objects left without mappings."""
        vmas = proc.vmas.overlapping(lo, hi)
        if not vmas:
            return
        first, last = vmas[0], vmas[-1]
        if check_count and first.start < lo and hi < first.end and \
                len(proc.vmas) >= self.config.max_map_count:
            raise_errno(errno.ENOMEM, f"munmap would split a VMA beyond vm.max_map_count "
                                      f"({self.config.max_map_count})")
        if lo > first.start:
            upper = proc.vmas.split(first, lo)
            if last is first:
                last = upper
        if hi < last.end:
            proc.vmas.split(last, hi)
        self._zap(proc, lo, hi)
        released = [proc.vmas.remove(v) for v in proc.vmas.overlapping(lo, hi)]
        self._free_pgtables(proc, lo, hi)
        for shm in released:
            if shm is not None:
                release_object(self.st, self.pt.blocks_of(shm.asid))

    def _zap(self, proc, lo, hi):
        """unmap_page_range over [lo, hi): pages go with their last mapping."""
        blocks = self.pt.blocks_of(proc.asid, lo, hi)
        self.pt.reserve(blocks=0, frames=2 * _PMD_PAGES)
        unmap_range(self.st, blocks, lo, hi)

    def _free_pgtables(self, proc, lo, hi):
        """free_pgtables: a PTE table goes when no VMA overlaps its 2 MiB any more."""
        first, last = lo >> 9, (hi - 1) >> 9
        gone = [pmd for pmd in (first, last) if not proc.vmas.overlapping(pmd << 9, (pmd + 1) << 9)]
        blocks = self.pt.blocks_of(proc.asid, lo, hi)
        pmds = self.pt.pmds_of(blocks)
        inner = (pmds > first) & (pmds < last)
        edge = np.isin(pmds, gone)
        self.pt.blk_used[blocks[inner | edge]] = 0         # (no entry left: zapped above)
        self.pt.blk_table[blocks[inner | edge]] = 0

    def munmap(self, pid, addr, length):
        """Remove mappings in [addr, addr+length); holes are fine."""
        proc = self._proc(pid)
        lo, hi = self._range(addr, length, allow_zero=False)
        self._unmap(proc, lo, hi, check_count=True)

    def madvise(self, pid, addr, length, advice):
        """MADV_HUGEPAGE / MADV_NOHUGEPAGE / MADV_NORMAL / MADV_DONTNEED over the range.

        As Linux: a split beyond vm.max_map_count fails with EAGAIN, and a hole in the range
        gives ENOMEM after the mapped parts were advised. MADV_NORMAL clears only hints that
        are not modelled (it keeps the huge-page advice)."""
        proc = self._proc(pid)
        advice = as_int(advice, "advice")
        if advice not in (MADV_NORMAL, MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE):
            raise_errno(errno.EINVAL, f"advice {advice} is not modelled (MADV_NORMAL, "
                                      f"MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE)")
        addr = as_int(addr, "addr")
        length = as_int(length, "length")
        if addr & (PAGE_SIZE - 1) or addr < 0:
            raise_errno(errno.EINVAL, f"address {addr:#x} is not page aligned")
        if length and not ((length & _U64) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & _U64:
            raise_errno(errno.EINVAL, f"madvise length {length:#x} rounds to 0")
        lo, hi = self._range(addr, length, allow_zero=True)
        if lo == hi:
            return
        unmapped, start = False, lo
        while start < hi:
            following = proc.vmas.overlapping(start, hi)
            if not following:
                raise_errno(errno.ENOMEM, f"part of {addr:#x}-{hi << PAGE_SHIFT:#x} is not "
                                          f"mapped")
            v = following[0]
            if start < v.start:
                unmapped, start = True, v.start
            end = min(hi, v.end)
            if advice == MADV_DONTNEED:
                self._zap(proc, start, end)
            elif advice in (MADV_HUGEPAGE, MADV_NOHUGEPAGE):
                set_f, clear_f = ((VM_HUGEPAGE, VM_NOHUGEPAGE) if advice == MADV_HUGEPAGE
                                  else (VM_NOHUGEPAGE, VM_HUGEPAGE))
                new = (v.flags | set_f) & ~clear_f
                if new != v.flags:
                    try:
                        v = proc.vmas.modify(v, start, end, new, v.policy)
                    except OSError as e:
                        if e.errno != errno.ENOMEM:
                            raise
                        raise OSError(errno.EAGAIN, f"{os.strerror(errno.EAGAIN)}: {e}") \
                            from None                         # madvise_update_vma
                    v.flags = new
                    proc.vmas.changed()
                end = max(end, min(hi, v.end))
            start = end
        if unmapped:
            raise_errno(errno.ENOMEM, f"part of {addr:#x}-{hi << PAGE_SHIFT:#x} is not mapped")

    # ----------------------------------------------------------------- access
    def access(self, tid, addrs, write=False):
        """Loads (or stores) by thread ``tid`` on its current CPU; faults as Linux takes them.

        Raises SegmentationFault (EFAULT) at an unmapped address (earlier elements took
        effect) and OutOfMemory (ENOMEM) when an allocation failed: the process was
        OOM-killed and is gone.
        """
        th = self._thread(tid)
        addrs = _as_addr_array(addrs)
        writes = _as_write_array(write, addrs.size)
        cn = self.topology.cpu_node[th.cpu]
        self._scratch_counts[:] = 0
        try:
            self._touch(th, addrs, writes)
        finally:                            # accesses before a fault that failed took place
            counts = self._scratch_counts
            self.access_counts += counts
            local = int(counts[cn, cn].sum())
            th.local += local
            th.remote += int(counts.sum()) - local

    def _touch(self, th, addrs, writes):
        """Run the access kernel for thread ``th``; returns the batch's access counts
        [cpu node, memory node, read/write]. Raises as :meth:`access` does."""
        proc = self.procs[th.pid]
        counts = self._scratch_counts
        counts[:] = 0
        task_pol = self.policies.intern(th.policy)
        vmas = self._kernel_vmas(proc)
        start = 0
        while True:
            status = access_batch(self.st, vmas, proc.asid, th.cpu, task_pol, addrs, writes,
                                  start, self._pos, counts)
            start = int(self._pos[0])
            if status != ACCESS_NEED_GROW:
                break
            self.pt.grow()
        proc.vmas.sync_anon()
        if status == ACCESS_DONE:
            return counts
        if status == ACCESS_SEGV:
            raise SegmentationFault(proc.pid, start, int(addrs[start]))
        self._oom_kill(proc)
        raise OutOfMemory(proc.pid, f"out of memory at address {int(addrs[start]):#x} "
                                    f"(element {start}): process {proc.pid} was OOM-killed")


def _as_addr_array(addrs):
    arr = np.asarray(addrs)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise TypeError(f"addrs must be an int or a 1-D array of ints, not {arr.ndim}-D")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"addrs must be integers, not {arr.dtype}")
    if arr.dtype == np.uint64:
        big = arr >= np.uint64(1 << 63)
        arr = np.where(big, np.uint64(TASK_SIZE), arr)
    return np.ascontiguousarray(arr, dtype=np.int64)


def _as_write_array(write, n):
    w = np.asarray(write)
    if w.ndim == 0:
        if w.dtype.kind not in "bui":
            raise TypeError(f"write must be a bool or an array of bools, not {w.dtype}")
        return np.full(1, bool(w), np.uint8)
    if w.shape != (n,):
        raise ValueError(f"write has shape {w.shape}; it must be a bool or match addrs ({n},)")
    if w.dtype.kind not in "bui":
        raise TypeError(f"write must be bools, not {w.dtype}")
    return np.ascontiguousarray(w != 0, dtype=np.uint8)
