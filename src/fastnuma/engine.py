"""Simulator: owns the machine state (topology arrays, page tables, processes, counters),
the process calls (spawn/clone/fork/exit/sched) and the access path.

mmap/munmap/madvise live in ``mm.py``, the policy system calls in ``syscalls.py`` and the
observation calls in ``stats.py`` (mixins of :class:`Simulator`); kernels are in
``kernels/``.
"""
import errno
from dataclasses import dataclass, field

import numpy as np

from .balancing import BalancingMixin
from .config import SimConfig
from .constants import PAGE_SHIFT, TASK_SIZE
from .dtypes import C_OOM_KILL, N_NUMASTAT, N_VMSTAT
from .errors import OutOfMemory, SegmentationFault, raise_errno
from .kernels.alloc import N_OPTS
from .kernels.events import EV_DONE, EV_NEED_GROW, EV_SEGV, NEVER, run_events, tid_hash
from .kernels.numa import T_ACC_LOCAL, T_ACC_REMOTE, T_CPU, T_POLICY
from .kernels.range import copy_page_range, split_pmd_at
from .kernels.state import SimState
from .pagetable import PageTable
from .policy import PolicyTable, as_int
from .mm import MemoryMixin
from .replay import ReplayMixin
from .stats import ObservationMixin
from .syscalls import SyscallMixin
from .topology import Topology
from .vma import Vma, VmaList



class Thread:
    """A thread. Its CPU, task policy row and access counts live in the simulator's thread
    table (``Simulator._tasks``, row ``slot``), where the kernels read and update them."""
    __slots__ = ("tid", "pid", "slot", "il_prev", "il_weight", "_policy", "_sim")

    def __init__(self, sim, tid, pid, slot, il_prev=-1, il_weight=0):
        self._sim = sim
        self.tid, self.pid, self.slot = tid, pid, slot
        self.il_prev = il_prev       # last interleave node (MAX_NUMNODES-1 after set_mempolicy)
        self.il_weight = il_weight
        self._policy = None

    @property
    def cpu(self):
        return int(self._sim._tasks[self.slot, T_CPU])

    @cpu.setter
    def cpu(self, cpu):
        self._sim._tasks[self.slot, T_CPU] = cpu

    @property
    def policy(self):
        """The task policy (a Policy, or None for the default)."""
        return self._policy

    @policy.setter
    def policy(self, pol):
        self._policy = pol
        self._sim._tasks[self.slot, T_POLICY] = self._sim.policies.intern(pol)

    @property
    def local(self):
        """Accesses to memory on the node of the CPU the thread ran on."""
        return int(self._sim._tasks[self.slot, T_ACC_LOCAL])

    @property
    def remote(self):
        """Accesses to memory on another node."""
        return int(self._sim._tasks[self.slot, T_ACC_REMOTE])


@dataclass(eq=False, slots=True)
class Process:
    pid: int
    asid: int
    uid: int
    cap_sys_nice: bool
    vmas: VmaList
    tids: list = field(default_factory=list)
    forked: bool = False        # took part in a fork: private pages may be mapped twice


class Simulator(MemoryMixin, SyscallMixin, ObservationMixin, BalancingMixin, ReplayMixin):
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
        # the frame table starts at the machine's size (up to 1M entries, calloc'd) and never
        # needs more than one entry per page of the machine (PageTable.max_frames)
        n_pages = sum(topology.node_pages)
        self.pt = PageTable(frames=min(n_pages + 1024, 1 << 20), max_frames=n_pages + 1024)
        self.topology_pages = ka["node_pages"]               # capacity per node
        self.free = ka["node_pages"].copy()                 # free pages per node
        self.vm = np.zeros(N_VMSTAT, np.int64)               # VMSTAT_NAMES counters
        self.node_stats = np.zeros((n, N_NUMASTAT), np.int64)  # NUMASTAT_NAMES per node
        self._policy_array = self.policies.array
        numa_tables = self._numa_init(n)
        self.st = SimState(cpu_node=ka["cpu_node"], fallback=ka["fallback"], free=self.free,
                           wmark_min=ka["wmark_min"], wmark_low=ka["wmark_low"],
                           wmark_high=ka["wmark_high"], il_weight=weights,
                           numastat=self.node_stats, vm=self.vm,
                           policies=self._policy_array, opts=opts, **numa_tables,
                           **self.pt.arrays)
        self.pt.st = self.st
        self.access_counts = np.zeros((n, n, 2), np.int64)   # cpu node x memory node x r/w
        self._scratch_counts = np.zeros((n, n, 2), np.int64)
        self._pos = np.zeros(1, np.int64)
        self._one = {k: np.zeros(1, np.int64) for k in ("tid", "pid", "cpu", "ts")}
        self._tid_keys = np.full(64, -1, np.int64)           # tid -> thread table row
        self._tid_vals = np.full(64, -1, np.int64)
        self._memory_mask = sum(1 << i for i in topology.memory_nodes())
        self.procs = {}
        self.threads = {}
        self._next_id = 1
        self._next_asid = 1
        self._page_cache = []          # frames of page-cache pages (page_cache_read)

    # ----------------------------------------------------------------- internals
    def _sync_policies(self):
        """Hand the kernels the policy table again if interning grew it."""
        if self._policy_array is not self.policies.array:
            self._policy_array = self.policies.array
            self.st.replace(policies=self._policy_array)

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
        self._mm_init(asid)
        self._new_thread(pid, pid, asid, cpu)
        return pid

    def clone(self, pid, cpu=None):
        """A new thread of process ``pid`` (CLONE_VM); inherits the leader's task policy and
        its interleave position (copy_process copies il_prev and il_weight)."""
        proc = self._proc(pid)
        leader = self._main_thread(proc)
        cpu = leader.cpu if cpu is None else self._check_cpu(cpu)
        tid = self._new_id()
        self._new_thread(tid, proc.pid, proc.asid, cpu, leader.policy, leader.il_prev,
                         leader.il_weight, parent=leader)
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
        cproc = Process(child, asid, proc.uid, proc.cap_sys_nice, vmas, [child], forked=True)
        proc.forked = True
        blocks = self.pt.blocks_of(proc.asid)
        self.pt.reserve(blocks=len(blocks) + 1, frames=0)
        copy_page_range(self.st, self._kernel_vmas(proc), blocks, cproc.asid)
        self.procs[child] = cproc
        self._mm_init(asid)
        self._new_thread(child, child, asid, th.cpu, th.policy, th.il_prev, th.il_weight)
        return child

    def exit(self, pid):
        """The process ends: every mapping goes, pages are freed."""
        proc = self._proc(pid)
        self._unmap(proc, 0, TASK_SIZE >> PAGE_SHIFT, check_count=False)
        for t in proc.tids:
            del self.threads[t]
        del self.procs[proc.pid]
        self._rebuild_tid_hash()

    def _adopt_thread(self, pid, tid, cpu):
        """A thread with the given ids (a trace's): it joins process ``pid``, or starts it
        (as the process's first thread, whatever its tid). Later ids from spawn/clone/fork
        do not collide with these."""
        self._next_id = max(self._next_id, pid + 1, tid + 1)
        proc = self.procs.get(pid)
        if proc is None:
            asid = self._new_asid()
            proc = Process(pid, asid, 0, True, self._vma_list(asid), [tid])
            self.procs[pid] = proc
            self._mm_init(asid)
            return self._new_thread(tid, pid, asid, cpu)
        leader = self._main_thread(proc)
        th = self._new_thread(tid, pid, proc.asid, cpu, leader.policy, leader.il_prev,
                              leader.il_weight, parent=leader)
        proc.tids.append(tid)
        return th

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

    # ----------------------------------------------------------------- access
    def _new_thread(self, tid, pid, asid, cpu, policy=None, il_prev=-1, il_weight=0,
                    parent=None):
        """A thread with its row in the thread table (``parent``: the thread cloning it)."""
        th = Thread(self, tid, pid, self._n_slots, il_prev, il_weight)
        self._task_init(th, asid, pid, cpu, parent)
        th.policy = policy
        self.threads[tid] = th
        self._tid_hash_insert(tid, th.slot)
        return th

    def _tid_hash_insert(self, tid, slot):
        keys = self._tid_keys
        if 2 * (len(self.threads) + 1) > keys.size:
            self._rebuild_tid_hash(2 * keys.size)
            keys = self._tid_keys
        mask = keys.size - 1
        s = int(tid_hash(tid, mask))            # the probe the event loop starts from
        while keys[s] != -1 and keys[s] != tid:
            s = (s + 1) & mask
        keys[s] = tid
        self._tid_vals[s] = slot

    def _rebuild_tid_hash(self, size=None):
        """The tid -> thread-table-row hash the event loop reads, over the live threads."""
        size = size or max(64, self._tid_keys.size)
        self._tid_keys = np.full(size, -1, np.int64)
        self._tid_vals = np.full(size, -1, np.int64)
        for tid, th in self.threads.items():
            self._tid_hash_insert(tid, th.slot)

    # ----------------------------------------------------------------- access
    def access(self, tid, addrs, write=False):
        """Loads (or stores) by thread ``tid`` on its current CPU; faults as Linux takes them.

        Raises SegmentationFault (EFAULT) at an unmapped address (earlier elements took
        effect) and OutOfMemory (ENOMEM) when an allocation failed: the process was
        OOM-killed and is gone.
        """
        th = self._thread(tid)
        addrs = _as_addr_array(addrs)
        ops = _as_write_array(write, addrs.size)
        counts = self._scratch_counts
        counts[:] = 0
        try:
            self._touch(th, addrs, ops)
        finally:                            # accesses before a fault that failed took place
            self.access_counts += counts

    def _touch(self, th, addrs, ops):
        """Run the event loop for thread ``th`` on its CPU at the current time (``ops``: 0
        read, 1 write, per address or one for all); counts go to _scratch_counts. Raises as
        :meth:`access` does."""
        proc = self.procs[th.pid]
        vmas = self._kernel_vmas(proc)
        self._vma_lo[proc.asid], self._vma_hi[proc.asid] = 0, len(vmas)
        one = self._one
        one["tid"][0], one["pid"][0], one["cpu"][0] = th.tid, th.pid, th.cpu
        one["ts"][0] = self.now_ns
        start = 0
        while True:
            status = run_events(self.st, vmas, self._vma_lo, self._vma_hi, self._tid_keys,
                                self._tid_vals, addrs, ops, one["cpu"], one["tid"], one["pid"],
                                one["ts"], start, addrs.size, NEVER, self._pos,
                                self._scratch_counts, 0)
            start = int(self._pos[0])
            if status != EV_NEED_GROW:
                break
            self.pt.grow()
        proc.vmas.sync_from_view()
        if status == EV_DONE:
            return
        if status == EV_SEGV:
            raise SegmentationFault(proc.pid, start, int(addrs[start]))
        self._oom_kill(proc)
        raise OutOfMemory(proc.pid, f"out of memory at address {int(addrs[start]):#x} "
                                    f"(element {start}): process {proc.pid} was OOM-killed")


_U64 = (1 << 64) - 1


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
    if w.dtype == np.bool_ and w.flags.c_contiguous:
        return w.view(np.uint8)                 # no copy: bools are bytes of 0 or 1
    return np.ascontiguousarray(w != 0, dtype=np.uint8)
