"""Engine versus the plain-Python reference model on random programs (hypothesis).

Every call is made on both; return values and errnos must agree call by call, and after
every step the counters, free pages, numa_maps of every process, the node and the PTE flags
(PRESENT|NUMA|HUGE|ZERO; an entry of a PROT_NONE VMA is NUMA) of every page of the arena, the access matrix, and the local and
remote accesses and NUMA-balancing state of every thread must agree too, and every node
cached in a PTE must be its folio's. Programs include lazy migration
(docs/lazy-migration.md): LAZY and MPOL_NOOP mbinds, change_prot_numa, simulated time
(scheduler ticks and the NUMA scanner) and random profiles, switches and scan knobs, and
memory protection (mmap's prot=, mprotect: splits, merges, SIGSEGV on access).
DifferentialTiering runs the same programs with memory tiering (docs/tiering.md): modes
1-3 with the tiering rules, demotion on or off, small thresholds and rate limits, and
compares the per-node tiering counters (node_vmstat) too."""
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

import fastnuma as fn
from fastnuma.constants import PAGE_SIZE
from fastnuma.invariants import check as check_invariants
from fastnuma.kernels.invariants import pte_node_mismatch
from tests.reference.model import RefMachine, RefTopology
from tests.strategies import knobs, lazy_knobs, tiering_knobs, topology_args

ARENA = 1 << 30                      # fixed mappings land in [ARENA, ARENA + ARENA_PAGES)
ARENA_PAGES = 3 * 512                # three PMDs: THP cases included
MODES = [fn.MPOL_DEFAULT, fn.MPOL_PREFERRED, fn.MPOL_BIND, fn.MPOL_INTERLEAVE, fn.MPOL_LOCAL,
         fn.MPOL_PREFERRED_MANY, fn.MPOL_WEIGHTED_INTERLEAVE, 7]
MODE_FLAGS = [0, 0, 0, fn.MPOL_F_STATIC_NODES, fn.MPOL_F_RELATIVE_NODES,
              fn.MPOL_F_NUMA_BALANCING]
MPOL_NOOP = getattr(fn, "MPOL_NOOP", 0x100)
LAZY_MODES = MODES + [MPOL_NOOP] * 3
LAZY_FLAGS = [fn.MPOL_MF_LAZY, fn.MPOL_MF_LAZY | fn.MPOL_MF_MOVE,
              fn.MPOL_MF_LAZY | fn.MPOL_MF_STRICT, fn.MPOL_MF_LAZY | fn.MPOL_MF_MOVE_ALL,
              fn.MPOL_MF_MOVE, 0]
RW = fn.PROT_READ | fn.PROT_WRITE
MMAP_PROTS = [fn.PROT_NONE, fn.PROT_READ, fn.PROT_WRITE, fn.PROT_READ | fn.PROT_EXEC]
MPROTECT_PROTS = MMAP_PROTS + [RW] * 3 + [fn.PROT_NONE] * 2 + [
    RW | fn.PROT_SEM, 0x10, fn.PROT_READ | fn.PROT_GROWSDOWN, fn.PROT_GROWSUP,
    fn.PROT_GROWSDOWN | fn.PROT_GROWSUP]
PTE_MASK = 1 | 2 | 8 | 16            # PRESENT | NUMA | HUGE | ZERO (WRITE/DIRTY: model-only)
MS = 1_000_000


def outcome(call):
    try:
        result = call()
    except OSError as e:
        return ("errno", e.errno)
    except (TypeError, ValueError) as e:
        return (type(e).__name__,)
    if isinstance(result, np.ndarray):
        return ("ok", result.tolist())
    return ("ok", result)


pages = st.integers(0, ARENA_PAGES + 8)
masks = st.integers(0, 31)


class Differential(RuleBasedStateMachine):
    @initialize(targs=topology_args(), opts=knobs(), lazy=lazy_knobs(),
                workers=st.lists(st.integers(0, 7), min_size=1, max_size=2),
                fill=st.sampled_from([0, 1, 64, 600, ARENA_PAGES]))
    def build(self, targs, opts, lazy, workers, fill):
        if opts["interleave_weights"] and max(opts["interleave_weights"]) >= len(
                targs["node_pages"]):
            opts = {**opts, "interleave_weights": None}
        self._build(targs, {**opts, **lazy}, workers, fill)

    def _build(self, targs, opts, workers, fill):
        self.sim = fn.Simulator(fn.Topology(**targs), **opts)
        self.model = RefMachine(RefTopology(**targs), **opts)
        self.n_cpus = 1 + max(c for cpus in targs["node_cpus"] for c in cpus)
        self.pids, self.tids = [], []
        self.both("spawn", cpu=0)                      # a process with the arena mapped
        self.both("mmap", self.pids[0], ARENA_PAGES * PAGE_SIZE, addr=ARENA)
        fill = min(fill, sum(targs["node_pages"]) // 2)   # the leader writes part of it
        if fill:
            self.both("access", self.pids[0],
                      ARENA + np.arange(fill, dtype=np.int64) * PAGE_SIZE, True)
        for cpu in workers:                            # threads elsewhere: pages to pull
            self.both("clone", self.pids[0], cpu=cpu % self.n_cpus)

    def both(self, name, *args, **kwargs):
        a = outcome(lambda: getattr(self.sim, name)(*args, **kwargs))
        b = outcome(lambda: getattr(self.model, name)(*args, **kwargs))
        assert a == b, (name, args, kwargs, "engine", a, "model", b)
        self._refresh()
        return a

    def _refresh(self):
        self.pids = list(self.sim.pids())
        self.tids = [t for p in self.pids for t in self.sim.tids(p)]

    # ------------------------------------------------------------ processes
    @precondition(lambda self: len(self.pids) < 4)
    @rule(cpu=st.integers(0, 7))
    def spawn(self, cpu):
        self.both("spawn", cpu=cpu % self.n_cpus)

    @precondition(lambda self: self.pids)
    @rule(i=st.integers(0, 99), cpu=st.integers(0, 7))
    def clone(self, i, cpu):
        self.both("clone", self.pids[i % len(self.pids)], cpu=cpu % self.n_cpus)

    @precondition(lambda self: self.pids and len(self.pids) < 4)
    @rule(i=st.integers(0, 99))
    def fork(self, i):
        self.both("fork", self.pids[i % len(self.pids)])

    @precondition(lambda self: len(self.pids) > 2)
    @rule(i=st.integers(0, 99))
    def exit(self, i):
        self.both("exit", self.pids[i % len(self.pids)])

    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), cpu=st.integers(0, 9))
    def sched(self, i, cpu):
        self.both("sched", self.tids[i % len(self.tids)], cpu)

    # ------------------------------------------------------------ memory
    @precondition(lambda self: self.pids)
    @rule(i=st.integers(0, 99), first=pages, n=st.integers(1, 1100), shared=st.booleans(),
          fixed=st.integers(0, 3), odd=st.sampled_from([0] * 8 + [1, 2]),
          prot=st.sampled_from([RW] * 6 + MMAP_PROTS))
    def mmap(self, i, first, n, shared, fixed, odd, prot):
        flags = (fn.MAP_SHARED if shared else fn.MAP_PRIVATE) | fn.MAP_ANONYMOUS
        if odd:                                       # both kinds, or no MAP_ANONYMOUS
            flags = flags | fn.MAP_SHARED | fn.MAP_PRIVATE if odd == 1 else flags & ~fn.MAP_ANONYMOUS
        addr = None if fixed == 0 else ARENA + first * PAGE_SIZE
        n = n if fixed < 2 else max(n, 512)
        self.both("mmap", self.pids[i % len(self.pids)], n * PAGE_SIZE, flags, addr, prot=prot)

    @precondition(lambda self: self.pids)
    @rule(i=st.integers(0, 99), data=st.data(), prot=st.sampled_from(MPROTECT_PROTS),
          odd=st.sampled_from([0] * 8 + [1, 2]))
    def mprotect(self, i, data, prot, odd):
        """Mostly inside a mapped VMA (splits, merges back), sometimes across holes;
        odd: an unaligned start, or a length of 0."""
        pid = self.pids[i % len(self.pids)]
        first, n = self.arena_range(data, pid)
        addr = ARENA + first * PAGE_SIZE + (100 if odd == 1 else 0)
        self.both("mprotect", pid, addr, 0 if odd == 2 else n * PAGE_SIZE, prot)

    @precondition(lambda self: self.pids)
    @rule(i=st.integers(0, 99), first=pages, n=st.integers(0, 600))
    def munmap(self, i, first, n):
        self.both("munmap", self.pids[i % len(self.pids)], ARENA + first * PAGE_SIZE,
                  n * PAGE_SIZE)

    @precondition(lambda self: self.pids)
    @rule(i=st.integers(0, 99), first=pages, n=st.integers(0, 1100),
          advice=st.sampled_from([fn.MADV_HUGEPAGE, fn.MADV_NOHUGEPAGE, fn.MADV_DONTNEED]))
    def madvise(self, i, first, n, advice):
        self.both("madvise", self.pids[i % len(self.pids)], ARENA + first * PAGE_SIZE,
                  n * PAGE_SIZE, advice)

    @precondition(lambda self: self.pids and len(self.pids) < 4)
    @rule(i=st.integers(0, 99), first=pages, n=st.integers(1, 600), data=st.data())
    def shared_pair(self, i, first, n, data):
        """A shared anonymous mapping partly written by one process, then read by its
        fork and by itself: read faults map the neighbours already in the object
        (fault-around, docs/linux-semantics.md §1.8)."""
        pid = self.pids[i % len(self.pids)]
        out = self.both("mmap", pid, n * PAGE_SIZE, fn.MAP_SHARED | fn.MAP_ANONYMOUS,
                        ARENA + first * PAGE_SIZE)
        if out[0] != "ok":
            return
        addr = out[1]
        written = data.draw(st.lists(st.integers(0, n - 1), max_size=40))
        if written:
            self.both("access", pid, addr + np.array(written, np.int64) * PAGE_SIZE, True)
        if pid not in self.pids:                       # OOM-killed
            return
        child = self.both("fork", pid)
        for reader in ([child[1]] if child[0] == "ok" else []) + [pid]:
            reads = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6))
            if reader in self.pids:
                self.both("access", reader, addr + np.array(reads, np.int64) * PAGE_SIZE,
                          False)

    def mapped(self, pid):
        """Arena pages mapped in ``pid`` (what an access should mostly hit)."""
        out = []
        for v in self.sim.procs[pid].vmas:
            lo, hi = max(v.start, ARENA >> 12), min(v.end, (ARENA >> 12) + ARENA_PAGES)
            out.extend(range(lo - (ARENA >> 12), hi - (ARENA >> 12)))
        return out

    def arena_range(self, data, pid):
        """(first page, pages) in the arena: mostly inside one mapped VMA of ``pid``,
        sometimes anywhere (holes, unmapped: EFAULT)."""
        vmas = [(max(v.start, ARENA >> 12), min(v.end, (ARENA >> 12) + ARENA_PAGES))
                for v in self.sim.procs[pid].vmas]
        vmas = [(lo - (ARENA >> 12), hi - (ARENA >> 12)) for lo, hi in vmas if lo < hi]
        if not vmas or not data.draw(st.integers(0, 4)):
            return data.draw(pages), data.draw(st.integers(0, 1100))
        lo, hi = data.draw(st.sampled_from(vmas))
        first = data.draw(st.integers(lo, hi - 1))
        return first, data.draw(st.integers(1, hi - first))

    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), data=st.data())
    def access(self, i, data):
        tid = self.tids[i % len(self.tids)]
        mapped = self.mapped(self.sim.threads[tid].pid)
        page = st.sampled_from(mapped) if mapped and data.draw(st.integers(0, 9)) else pages
        idx = data.draw(st.lists(page, min_size=1, max_size=40))
        writes = data.draw(st.lists(st.booleans(), min_size=len(idx), max_size=len(idx)))
        addrs = np.array([ARENA + p * PAGE_SIZE for p in idx], np.int64)
        self.both("access", tid, addrs, np.array(writes))

    def touch_range(self, i, data, write):
        """Thread ``i`` reads or writes a run of (mostly mapped) arena pages."""
        tid = self.tids[i % len(self.tids)]
        first, n = self.arena_range(data, self.sim.threads[tid].pid)
        n = max(1, min(n, 600))
        addrs = ARENA + (first + np.arange(n, dtype=np.int64)) * PAGE_SIZE
        self.both("access", tid, addrs, write)

    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), data=st.data(), write=st.booleans())
    def access_range(self, i, data, write):
        """A run of pages (fills memory, takes hinting faults)."""
        self.touch_range(i, data, write)

    # ------------------------------------------------------------ policies
    @precondition(lambda self: self.pids)
    @rule(i=st.integers(0, 99), first=pages, n=st.integers(0, 1100),
          mode=st.sampled_from(MODES), flag=st.sampled_from(MODE_FLAGS), mask=masks,
          mflags=st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8, 10]))
    def mbind(self, i, first, n, mode, flag, mask, mflags):
        self.both("mbind", self.pids[i % len(self.pids)], ARENA + first * PAGE_SIZE,
                  n * PAGE_SIZE, mode | flag, mask, mflags)

    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), mode=st.sampled_from(MODES), flag=st.sampled_from(MODE_FLAGS),
          mask=masks)
    def set_mempolicy(self, i, mode, flag, mask):
        self.both("set_mempolicy", self.tids[i % len(self.tids)], mode | flag, mask)

    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), page=pages, flags=st.sampled_from([0, 1, 2, 3, 4, 6]),
          use_addr=st.booleans())
    def get_mempolicy(self, i, page, flags, use_addr):
        addr = ARENA + page * PAGE_SIZE if use_addr else 0
        self.both("get_mempolicy", self.tids[i % len(self.tids)], addr, flags)

    @precondition(lambda self: self.pids)
    @rule(i=st.integers(0, 99), data=st.data(), query=st.booleans(),
          flags=st.sampled_from([0, fn.MPOL_MF_MOVE, fn.MPOL_MF_MOVE_ALL]))
    def move_pages(self, i, data, query, flags):
        idx = data.draw(st.lists(pages, min_size=1, max_size=20))
        addrs = [ARENA + p * PAGE_SIZE for p in idx]
        nodes = None if query else data.draw(st.lists(st.integers(-1, 4), min_size=len(idx),
                                                      max_size=len(idx)))
        self.both("move_pages", self.pids[i % len(self.pids)], addrs, nodes, flags)

    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), n=st.integers(0, 40), drop=st.booleans())
    def page_cache(self, i, n, drop):
        self.both("page_cache_read", self.tids[i % len(self.tids)], n)
        if drop:
            self.both("drop_caches")

    @precondition(lambda self: self.pids)
    @rule(i=st.integers(0, 99), old=masks, new=masks)
    def migrate_pages(self, i, old, new):
        self.both("migrate_pages", self.pids[i % len(self.pids)], old, new)

    # ------------------------------------------------------------ lazy migration, time
    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), data=st.data(), mode=st.sampled_from(LAZY_MODES),
          flag=st.sampled_from(MODE_FLAGS + [0] * 6),
          mask=st.sampled_from([0, 0, 1, 2, 3, 5, 15]), mflags=st.sampled_from(LAZY_FLAGS))
    def mbind_lazy(self, i, data, mode, flag, mask, mflags):
        """LAZY (and MPOL_NOOP) mbind by a random thread of the process."""
        tid = self.tids[i % len(self.tids)]
        pid = self.sim.threads[tid].pid
        first, n = self.arena_range(data, pid)
        self.both("mbind", pid, ARENA + first * PAGE_SIZE, n * PAGE_SIZE, mode | flag, mask,
                  mflags, tid=tid)

    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), data=st.data(), by_leader=st.booleans())
    def change_prot_numa(self, i, data, by_leader):
        tid = self.tids[i % len(self.tids)]
        pid = self.sim.threads[tid].pid
        first, n = self.arena_range(data, pid)
        self.both("change_prot_numa", pid, ARENA + first * PAGE_SIZE, n * PAGE_SIZE,
                  None if by_leader else tid)

    @rule(ms=st.one_of(st.integers(0, 20), st.integers(100, 3000)),
          ns=st.sampled_from([0, 0, 0, 1, 999_999, 500_000]))
    def advance(self, ms, ns):
        """Simulated time: a few ticks, or up to 3 s (many scans with small knobs)."""
        self.both("advance", ms * MS + ns)

    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), data=st.data(), ms=st.integers(1, 1500), write=st.booleans())
    def run(self, i, data, ms, write):
        """A workload step: time passes (scans mark pages), then a thread touches a run of
        pages (hinting faults, placement once the scan sequence moved)."""
        self.both("advance", ms * MS)
        if self.tids:
            self.touch_range(i, data, write)

    @precondition(lambda self: self.tids)
    @rule(i=st.integers(0, 99), cpu=st.integers(0, 7))
    def sched_valid(self, i, cpu):
        """A thread moves to another (existing) CPU."""
        self.both("sched", self.tids[i % len(self.tids)], cpu % self.n_cpus)

    # ------------------------------------------------------------ state
    @invariant()
    def same_state(self):
        if not hasattr(self, "sim"):
            return
        a, b = self.sim.vmstat(), self.model.vmstat()
        assert a == b, {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        assert self.sim.numastat() == self.model.numastat()
        assert self.sim.free_pages().tolist() == list(self.model.free_pages())
        for pid in self.pids:
            assert self.sim.numa_maps(pid) == self.model.numa_maps(pid), pid
            a = self.sim.page_nodes(pid, ARENA, ARENA_PAGES * PAGE_SIZE)
            b = self.model.page_nodes(pid, ARENA, ARENA_PAGES * PAGE_SIZE)
            assert a.tolist() == list(b), pid
            a = np.asarray(self.sim.page_flags(pid, ARENA, ARENA_PAGES * PAGE_SIZE)) & PTE_MASK
            b = np.asarray(self.model.page_flags(pid, ARENA, ARENA_PAGES * PAGE_SIZE)) & PTE_MASK
            assert a.tolist() == b.tolist(), (pid, np.flatnonzero(a != b)[:8].tolist())
        assert self.sim.access_counts.tolist() == self.model.access_counts.tolist()
        for tid in self.tids:
            assert self.sim.task_numa_stats(tid) == self.model.task_numa_stats(tid), tid
            a, b = self.sim.threads[tid], self.model.threads[tid]
            assert (a.local, a.remote) == (b.local, b.remote), tid
        assert pte_node_mismatch(self.sim.st) == -1     # the event loop's node cache
        check_invariants(self.sim)                      # frames, capacity, numastat


Differential.TestCase.settings = settings(max_examples=300, stateful_step_count=25,
                                          deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_engine_matches_model = Differential.TestCase


@pytest.mark.slow
class TestDifferentialMany(Differential.TestCase):
    settings = settings(max_examples=3000, stateful_step_count=50, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow])


class DifferentialTiering(Differential):
    """The same programs with memory tiering on (strategies.tiering_knobs): promotion,
    kswapd, demotion and direct reclaim on both sides."""

    @initialize(targs=topology_args(), opts=tiering_knobs(),
                workers=st.lists(st.integers(0, 7), min_size=1, max_size=2),
                fill=st.sampled_from([0, 1, 64, 600, ARENA_PAGES]))
    def build(self, targs, opts, workers, fill):
        self._build(targs, opts, workers, fill)

    @invariant()
    def same_tiering_state(self):
        if hasattr(self, "sim"):
            assert self.sim.node_vmstat() == self.model.node_vmstat()


DifferentialTiering.TestCase.settings = settings(
    max_examples=200, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_engine_matches_model_with_tiering = DifferentialTiering.TestCase


@pytest.mark.slow
class TestDifferentialTieringMany(DifferentialTiering.TestCase):
    settings = settings(max_examples=3000, stateful_step_count=50, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow])
