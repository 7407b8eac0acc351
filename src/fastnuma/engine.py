"""Simulator: the public API (docs/api.md), a thin facade.

Each call delegates to the subsystem module that owns its Linux rules; the machine state
(arrays, clock, counters, the kernels' state struct) is :class:`~fastnuma.machine.Machine`.

=====================  ===========================================================
module                 calls
=====================  ===========================================================
``sched.py``           spawn, clone, fork, exit, sched, pids, tids (and the OOM kill)
``mm.py``              mmap, munmap, madvise (VMAs; vma_adjust_trans_huge)
``mprotect.py``        mprotect (protection: VMAs and their entries)
``memory.py``          access (the fault path through the event loop)
``mempolicy.py``       mbind, set_mempolicy, get_mempolicy
``migrate.py``         move_pages, migrate_pages
``filemap.py``         page_cache_read, drop_caches
``numa_balancing.py``  change_prot_numa, advance, task_numa_stats (the scanner)
``stats.py``           vmstat, numastat, numa_maps, page_nodes, page_flags, free_pages
``replay.py``          replay (trace batches through the event loop, then a Report)
=====================  ===========================================================
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Union

import numpy as np
import pyarrow as pa

from . import checkpoint as _checkpoint
from . import mprotect as _mprotect_call
from .config import SimConfig
from .constants import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from .filemap import Filemap
from .machine import Machine, Process, Thread
from .memory import Memory
from .mempolicy import Mempolicy
from .migrate import Migrate
from .mm import Mm
from .mprotect import Mprotect
from .numa_balancing import NumaBalancing
from .tiering import Tiering
from .pagetable import PageTable
from .replay import Replay
from .sched import Sched
from .stats import Stats
from .topology import Topology
from .trace.reader import DEFAULT_BATCH_ROWS, TraceBatch

if TYPE_CHECKING:
    from .kernels.state import SimState
    from .numactl import CpuPlacement, TaskPolicy
    from .report import Report

Nodes = Union[int, Iterable[int], None]     # a node mask: bits, or node ids


class Simulator:
    """A simulated Linux NUMA machine: processes, page tables, policies and counters.

    Parameters
    ----------
    topology : Topology
        The machine's nodes, CPUs and distances.
    **knobs
        Kernel knobs under their Linux names; see :class:`fastnuma.config.SimConfig`
        (``thp``, ``thp_defrag``, ``numa_balancing``, ``interleave_weights``,
        ``linux_strict_flags``, ``max_map_count``, ``zero_page``, ``numa_stat``,
        ``fault_around_bytes``, the scanner's ``numa_balancing_*`` and the lazy-migration
        switches).

    Attributes
    ----------
    topology, config : the machine and its knobs.
    access_counts : int64 [cpu node, memory node, read/write] of every access.
    procs, threads : live processes and threads by id.
    pt, st : the page tables and the kernels' state (for tests and benchmarks).
    machine : the :class:`~fastnuma.machine.Machine` every subsystem module works on (for
        modules that extend the simulator; its tables are laid out in ``dtypes.py``).
    """

    def __init__(self, topology: Topology, **knobs) -> None:
        if not isinstance(topology, Topology):
            raise TypeError(f"topology must be a fastnuma.Topology, not "
                            f"{type(topology).__name__}")
        config = SimConfig(**knobs)
        config.check_against(topology)
        m = self.machine = Machine(topology, config)
        self.topology: Topology = topology
        self.config: SimConfig = config
        self.access_counts: np.ndarray = m.access_counts
        self.procs: dict[int, Process] = m.procs
        self.threads: dict[int, Thread] = m.threads
        self.pt: PageTable = m.pt
        self.st: SimState = m.st
        self._mm = Mm(m)
        self._mprotect = Mprotect(m)
        self._numab = NumaBalancing(m, self._mm)
        self._sched = Sched(m, self._mm, self._numab)
        self._memory = Memory(m, self._sched)
        self._stats = Stats(m, self._mm)
        self._migrate = Migrate(m)
        self._mempolicy = Mempolicy(m, self._mm, self._migrate, self._numab, self._memory,
                                    self._stats)
        self._filemap = Filemap(m)
        self._replay = Replay(m, self._sched, self._numab, self._stats, self)
        self._tiering = m.tiering = Tiering(m)
        self._numab.kswapd = self._tiering.run_kswapds_until

    @property
    def now_ns(self) -> int:
        """Simulated time, in nanoseconds."""
        return self.machine.now_ns

    @now_ns.setter
    def now_ns(self, value: int) -> None:
        self.machine.now_ns = value

    # ----------------------------------------------------------------- processes
    def spawn(self, cpu: int = 0, uid: int = 0, cap_sys_nice: bool = True) -> int:
        """A new process with one thread on ``cpu``; returns its pid (== its first tid)."""
        return self._sched.spawn(cpu, uid, cap_sys_nice)

    def clone(self, pid: int, cpu: int | None = None) -> int:
        """A new thread of process ``pid`` (CLONE_VM); returns its tid."""
        return self._sched.clone(pid, cpu)

    def fork(self, pid: int, tid: int | None = None) -> int:
        """Copy-on-write child of ``pid`` (its thread copies ``tid``'s CPU and policy)."""
        return self._sched.fork(pid, tid)

    def exit(self, pid: int) -> None:
        """The process ends: every mapping goes, pages are freed."""
        self._sched.exit(pid)

    def sched(self, tid: int, cpu: int) -> None:
        """Thread ``tid`` now runs on ``cpu``."""
        self._sched.sched(tid, cpu)

    def pids(self) -> list[int]:
        """Live processes."""
        return self._sched.pids()

    def tids(self, pid: int) -> list[int]:
        """Threads of a process."""
        return self._sched.tids(pid)

    # ----------------------------------------------------------------- memory
    def mmap(self, pid: int, length: int, flags: int = MAP_PRIVATE | MAP_ANONYMOUS,
             addr: int | None = None, prot: int = PROT_READ | PROT_WRITE) -> int:
        """An anonymous mapping with protection ``prot``; returns its address."""
        return self._mm.mmap(pid, length, flags, addr, prot)

    # mprotect(2): mprotect.py's (the facade only names it)
    mprotect = _mprotect_call.simulator_mprotect

    def munmap(self, pid: int, addr: int, length: int) -> None:
        """Remove mappings in [addr, addr+length); holes are fine."""
        self._mm.munmap(pid, addr, length)

    def madvise(self, pid: int, addr: int, length: int, advice: int) -> None:
        """MADV_HUGEPAGE / MADV_NOHUGEPAGE / MADV_NORMAL / MADV_DONTNEED over the range."""
        self._mm.madvise(pid, addr, length, advice)

    def access(self, tid: int, addrs: int | np.ndarray, write: bool | np.ndarray = False
               ) -> None:
        """Loads (or stores) by thread ``tid`` on its current CPU; faults as Linux takes
        them (SegmentationFault at an unmapped address, OutOfMemory after an OOM kill)."""
        self._memory.access(tid, addrs, write)

    # ----------------------------------------------------------------- policies, migration
    def mbind(self, pid: int, addr: int, length: int, mode: int, nodemask: Nodes = None,
              flags: int = 0, *, maxnode: int | None = None, tid: int | None = None) -> None:
        """mbind(2) on process ``pid`` by its thread ``tid`` (default: the leader)."""
        self._mempolicy.mbind(pid, addr, length, mode, nodemask, flags, maxnode=maxnode,
                              tid=tid)

    def set_mempolicy(self, tid: int, mode: int, nodemask: Nodes = None, *,
                      maxnode: int | None = None) -> None:
        """set_mempolicy(2) for thread ``tid``; MPOL_DEFAULT removes its policy."""
        self._mempolicy.set_mempolicy(tid, mode, nodemask, maxnode=maxnode)

    def get_mempolicy(self, tid: int, addr: int = 0, flags: int = 0, *,
                      maxnode: int | None = None, mode: object = None,
                      nodemask: object = None) -> tuple[int, frozenset[int]] | int:
        """get_mempolicy(2): ``(mode, frozenset(nodes))``, or a node with MPOL_F_NODE
        (``mode``/``nodemask`` BAD_ADDRESS: unwritable outputs, EFAULT)."""
        return self._mempolicy.get_mempolicy(tid, addr, flags, maxnode=maxnode, mode=mode,
                                             nodemask=nodemask)

    def move_pages(self, pid: int, addrs: int | np.ndarray,
                   nodes: int | np.ndarray | None = None, flags: int = 0, *,
                   caller: int | None = None, status: object = None,
                   nr_pages: int | None = None) -> np.ndarray:
        """move_pages(2): query (``nodes`` None) or move; the per-page status array
        (``status`` BAD_ADDRESS: an unwritable status array, EFAULT)."""
        return self._migrate.move_pages(pid, addrs, nodes, flags, caller=caller,
                                        status=status, nr_pages=nr_pages)

    def migrate_pages(self, pid: int, old_nodes: Nodes, new_nodes: Nodes, *,
                      caller: int | None = None) -> int:
        """migrate_pages(2); returns the number of pages not moved."""
        return self._migrate.migrate_pages(pid, old_nodes, new_nodes, caller=caller)

    def page_cache_read(self, tid: int, n_pages: int = 1) -> np.ndarray:
        """Thread ``tid`` reads ``n_pages`` of an uncached file; the pages' nodes."""
        return self._filemap.page_cache_read(tid, n_pages)

    def drop_caches(self) -> None:
        """echo 1 > /proc/sys/vm/drop_caches: every page-cache page is freed."""
        self._filemap.drop_caches()

    # ----------------------------------------------------------------- NUMA balancing
    def change_prot_numa(self, pid: int, addr: int, length: int,
                         tid: int | None = None) -> int:
        """Mark [addr, addr+length) for NUMA hinting faults; the entries updated."""
        return self._numab.change_prot_numa(pid, addr, length, tid)

    def advance(self, ns: int) -> None:
        """Simulated time passes by ``ns`` ns (the NUMA scanner runs with it)."""
        self._numab.advance(ns)

    def task_numa_stats(self, tid: int) -> dict:
        """A thread's NUMA-balancing state (docs/lazy-migration.md §2) as a dict."""
        return self._numab.task_numa_stats(tid)

    # ----------------------------------------------------------------- observation
    def vmstat(self) -> dict[str, int]:
        """/proc/vmstat counters (Linux names); with memory tiering on also the tiering
        ones (docs/tiering.md §8)."""
        out = self._stats.vmstat()
        out.update(self._tiering.vmstat())
        return out

    def set_numa_balancing(self, mode: int) -> None:
        """sysctl kernel.numa_balancing = mode (0-3; docs/tiering.md K1)."""
        self.config = self._tiering.set_numa_balancing(mode)

    # memory tiering (docs/tiering.md): per-node counters, the knobs under the reference
    # model's names (one-line forwards, to keep the facade's method count down)
    node_vmstat = property(lambda self: self._tiering.node_vmstat, doc="node_vmstat() -> "
                           "{node: {pgpromote_success, pgpromote_candidate, pgdemote_*}}: "
                           "the tiering items of /sys/devices/system/node/nodeN/vmstat")
    numa_balancing = property(lambda self: self.config.numa_balancing)
    memory_tiering = property(lambda self: self._tiering.on)
    demotion_enabled = property(lambda self: self.config.demotion_enabled)
    promote_rate_limit_MBps = property(
        lambda self: self.config.numa_balancing_promote_rate_limit_MBps)
    hot_threshold_ms = property(lambda self: self.config.numa_balancing_hot_threshold_ms)

    def numastat(self) -> dict[int, dict[str, int]]:
        """/sys/devices/system/node/nodeN/numastat of every node."""
        return self._stats.numastat()

    def numa_maps(self, pid: int) -> str:
        """Text of /proc/PID/numa_maps."""
        return self._stats.numa_maps(pid)

    def page_nodes(self, pid: int, addr: int, length: int) -> np.ndarray:
        """Node of every page in [addr, addr+length) (int16; -1 where nothing is mapped)."""
        return self._stats.page_nodes(pid, addr, length)

    def page_flags(self, pid: int, addr: int, length: int) -> np.ndarray:
        """PTE flag bits (``fastnuma.dtypes.PTE_*``) of every page in the range."""
        return self._stats.page_flags(pid, addr, length)

    def free_pages(self) -> np.ndarray:
        """Free base pages per node."""
        return self._stats.free_pages()

    # ----------------------------------------------------------------- replay
    def replay(self, source: str | os.PathLike | pa.Table | pa.RecordBatchReader | None = None,
               *, batch_rows: int = DEFAULT_BATCH_ROWS, epoch_events: int | None = None,
               epoch_ns: int | None = None, strict: bool = False,
               progress: Callable[[int], None] | None = None,
               task_policy: str | TaskPolicy | None = None,
               cpu_map: str | CpuPlacement | None = None,
               heat_buckets: int | None = None,
               checkpoint: str | os.PathLike | None = None, checkpoint_every: int | None = None,
               checkpoint_meta: dict | None = None, resume: bool = False,
               on_batch: Callable[[TraceBatch, np.ndarray], None] | None = None) -> Report:
        """Replay a trace and return its :class:`~fastnuma.report.Report` (docs/api.md):
        ``task_policy`` and ``cpu_map`` as numactl would set them (docs/run-config.md),
        ``heat_buckets`` for the placement heatmap (docs/report.md); with ``checkpoint``
        and ``checkpoint_every`` (events) it saves itself as it goes, and ``resume=True``
        continues the replay of a loaded checkpoint (docs/checkpoint.md);
        ``on_batch(batch, epoch_ends)`` is called after each batch (docs/api.md)."""
        return self._replay.replay(source, batch_rows=batch_rows, epoch_events=epoch_events,
                                   epoch_ns=epoch_ns, strict=strict, progress=progress,
                                   task_policy=task_policy, cpu_map=cpu_map,
                                   heat_buckets=heat_buckets, checkpoint=checkpoint,
                                   checkpoint_every=checkpoint_every,
                                   checkpoint_meta=checkpoint_meta, resume=resume,
                                   on_batch=on_batch)

    # ----------------------------------------------------------------- checkpoints
    # docs/checkpoint.md; the code is checkpoint.py's (the facade only names it)
    save = _checkpoint.save                        # sim.save(path)
    load = classmethod(_checkpoint.load)           # Simulator.load(path) -> Simulator
    __reduce__ = _checkpoint.reduce_simulator      # pickling (Dask): the same state
