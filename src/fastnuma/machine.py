"""Machine: the simulated machine's state, and no Linux rule.

It owns the arrays (page tables and frames through :class:`~fastnuma.pagetable.PageTable`,
free pages, counters, the thread/address-space/node tables, the clock), the kernels'
shared state struct (``st``, a :class:`~fastnuma.kernels.state.SimState`), the policy
table, and the Python objects (processes, threads). It grows tables and looks things up;
the subsystem modules (``sched``, ``mm``, ``mempolicy``, ``migrate``, ``numa_balancing``,
``stats``, ``memory``, ``replay``) apply Linux's rules to it.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field

import numpy as np

from .config import SimConfig
from .dtypes import (N_MM, N_NODE, N_NUMASTAT, N_TASK, N_TASK_FAULTS,
                     N_VMSTAT, T_ACC_LOCAL, T_ACC_REMOTE, T_CPU, T_POLICY)
from .errors import raise_errno
from .kernels.state import SimState
from .pagetable import PageTable
from .policy import Policy, PolicyTable, as_int
from .topology import Topology
from .vma import VmaList

_INITIAL_ROWS = 16            # rows of the thread and address-space tables at first
_TID_HASH_MIN = 64            # slots of the tid -> thread-row hash at first (a power of 2)


class Thread:
    """A thread. Its CPU, task policy row and access counts live in the machine's thread
    table (``Machine.tasks``, row ``slot``), where the kernels read and update them."""
    __slots__ = ("tid", "pid", "slot", "il_prev", "il_weight", "_policy", "_machine")

    def __init__(self, machine: Machine, tid: int, pid: int, slot: int, il_prev: int = -1,
                 il_weight: int = 0):
        self._machine = machine
        self.tid, self.pid, self.slot = tid, pid, slot
        self.il_prev = il_prev       # last interleave node (MAX_NUMNODES-1 after set_mempolicy)
        self.il_weight = il_weight
        self._policy = None

    @property
    def cpu(self) -> int:
        return int(self._machine.tasks[self.slot, T_CPU])

    @cpu.setter
    def cpu(self, cpu: int) -> None:
        self._machine.tasks[self.slot, T_CPU] = cpu

    @property
    def policy(self) -> Policy | None:
        """The task policy (a Policy, or None for the default)."""
        return self._policy

    @policy.setter
    def policy(self, pol: Policy | None) -> None:
        self._policy = pol
        self._machine.tasks[self.slot, T_POLICY] = self._machine.policies.intern(pol)

    @property
    def local(self) -> int:
        """Accesses to memory on the node of the CPU the thread ran on."""
        return int(self._machine.tasks[self.slot, T_ACC_LOCAL])

    @property
    def remote(self) -> int:
        """Accesses to memory on another node."""
        return int(self._machine.tasks[self.slot, T_ACC_REMOTE])


@dataclass(eq=False, slots=True)
class Process:
    pid: int
    asid: int
    uid: int
    cap_sys_nice: bool
    vmas: VmaList
    tids: list = field(default_factory=list)
    forked: bool = False        # took part in a fork: private pages may be mapped twice


class Machine:
    """Every table of the simulated machine, and the lookups over them."""

    def __init__(self, topology: Topology, config: SimConfig):
        self.topology = topology
        self.config = config
        ka = topology.to_kernel_args()
        n = topology.n_nodes
        weights = np.ones(64, np.int64)
        for node, w in (config.interleave_weights or {}).items():
            weights[node] = w if w > 0 else 1
        self.policies = PolicyTable()
        # the frame table starts at the machine's size (up to 1M entries, calloc'd) and never
        # needs more than one entry per page of the machine (PageTable.max_frames)
        n_pages = sum(topology.node_pages)
        self.pt = PageTable(frames=min(n_pages + 1024, 1 << 20), max_frames=n_pages + 1024)
        self.node_pages = ka["node_pages"]                   # capacity per node
        self.free = ka["node_pages"].copy()                 # free pages per node
        self.vm = np.zeros(N_VMSTAT, np.int64)               # VMSTAT_NAMES counters
        self.node_stats = np.zeros((n, N_NUMASTAT), np.int64)  # NUMASTAT_NAMES per node
        self.clock = np.zeros(1, np.int64)                   # simulated time, ns
        self.tasks = np.zeros((_INITIAL_ROWS, N_TASK), np.int64)
        self.task_faults = np.zeros((_INITIAL_ROWS, n, N_TASK_FAULTS), np.int64)
        self.mms = np.zeros((_INITIAL_ROWS, N_MM), np.int64)
        self.numa_nodes = np.zeros((n, N_NODE), np.int64)     # numa_balancing fills it
        self.vma_lo = np.zeros(_INITIAL_ROWS, np.int64)      # event loop: each address
        self.vma_hi = np.zeros(_INITIAL_ROWS, np.int64)      # space's rows of the VMA view
        self.n_slots = 0                                     # thread-table rows used
        self._policy_array = self.policies.array
        self.st = SimState(cpu_node=ka["cpu_node"], fallback=ka["fallback"], free=self.free,
                           wmark_min=ka["wmark_min"], wmark_low=ka["wmark_low"],
                           wmark_high=ka["wmark_high"], il_weight=weights,
                           numastat=self.node_stats, vm=self.vm,
                           policies=self._policy_array, opts=config.kernel_opts(),
                           tasks=self.tasks, task_faults=self.task_faults, mms=self.mms,
                           numa_nodes=self.numa_nodes, clock=self.clock, **self.pt.arrays)
        self.pt.st = self.st
        self.access_counts = np.zeros((n, n, 2), np.int64)   # cpu node x memory node x r/w
        self.scratch_counts = np.zeros((n, n, 2), np.int64)
        self.tid_keys = np.full(_TID_HASH_MIN, -1, np.int64)  # tid -> thread table row
        self.tid_vals = np.full(_TID_HASH_MIN, -1, np.int64)
        self.memory_mask = sum(1 << i for i in topology.memory_nodes())
        self.procs: dict[int, Process] = {}
        self.threads: dict[int, Thread] = {}
        self.next_id = 1
        self.next_asid = 1
        self.page_cache: list[int] = []          # frames of page-cache pages

    # ----------------------------------------------------------------- time
    @property
    def now_ns(self) -> int:
        """Simulated time, in nanoseconds."""
        return int(self.clock[0])

    @now_ns.setter
    def now_ns(self, value: int) -> None:
        self.clock[0] = value

    # ----------------------------------------------------------------- ids and lookups
    def new_id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    def new_asid(self) -> int:
        a = self.next_asid
        self.next_asid += 1
        return a

    def proc(self, pid) -> Process:
        """The live process ``pid``, else ESRCH."""
        return _live(self.procs, as_int(pid, "pid"), "process")

    def thread(self, tid) -> Thread:
        """The live thread ``tid``, else ESRCH."""
        return _live(self.threads, as_int(tid, "tid"), "thread")

    def main_thread(self, proc: Process) -> Thread:
        """The thread group leader (tid == pid) if alive, else the first live thread."""
        return self.threads[proc.pid if proc.pid in self.threads else proc.tids[0]]

    def caller_thread(self, proc: Process, tid) -> Thread:
        """Thread ``tid`` of ``proc`` (default: its leader), else ESRCH."""
        if tid is None:
            return self.main_thread(proc)
        th = self.thread(tid)
        if th.pid != proc.pid:
            raise_errno(errno.ESRCH, f"thread {th.tid} is not in process {proc.pid}")
        return th

    def check_cpu(self, cpu) -> int:
        """``cpu`` if the topology has it, else EINVAL."""
        cpu = as_int(cpu, "cpu")
        cn = self.topology.cpu_node
        if not 0 <= cpu < len(cn) or cn[cpu] < 0:
            raise_errno(errno.EINVAL, f"CPU {cpu} does not exist (CPUs: "
                                      f"{[c for c in range(len(cn)) if cn[c] >= 0]})")
        return cpu

    # ----------------------------------------------------------------- tables
    def sync_policies(self) -> None:
        """Hand the kernels the policy table again if interning grew it."""
        if self._policy_array is not self.policies.array:
            self._policy_array = self.policies.array
            self.st.replace(policies=self._policy_array)

    def kernel_vmas(self, proc: Process) -> np.ndarray:
        """The VMA rows of ``proc`` for kernels, with the policy table they refer to."""
        view = proc.vmas.kernel_view(self.policies)
        self.sync_policies()
        return view

    def grow_tables(self, slots: int, asids: int) -> None:
        """Room for ``slots`` thread rows and ``asids`` address spaces (doubling)."""
        changed = False
        if slots > self.tasks.shape[0]:
            cap = max(slots, 2 * self.tasks.shape[0])
            self.tasks = _grown_rows(self.tasks, cap)
            self.task_faults = _grown_rows(self.task_faults, cap)
            changed = True
        if asids > self.mms.shape[0]:
            self.mms = _grown_rows(self.mms, max(asids, 2 * self.mms.shape[0]))
            changed = True
        if changed:
            self.st.replace(tasks=self.tasks, task_faults=self.task_faults, mms=self.mms)
            self.vma_lo = np.zeros(self.mms.shape[0], np.int64)
            self.vma_hi = np.zeros(self.mms.shape[0], np.int64)

    def set_tid_hash(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Install a rebuilt tid -> thread-row hash (sched.py owns its rule)."""
        self.tid_keys, self.tid_vals = keys, vals


def _live(table: dict, key: int, what: str):
    """``table[key]``, or ESRCH naming the missing process or thread."""
    found = table.get(key)
    if found is None:
        raise_errno(errno.ESRCH, f"no {what} {key}")
    return found


def _grown_rows(arr: np.ndarray, rows: int) -> np.ndarray:
    """``arr`` with zero rows appended up to ``rows``."""
    return np.concatenate([arr, np.zeros((rows - arr.shape[0],) + arr.shape[1:], arr.dtype)])
