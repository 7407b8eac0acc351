"""NUMA hinting (docs/lazy-migration.md): ``sim.change_prot_numa`` scans of a populated
range, and the hinting faults (with migration) that follow an mbind(MPOL_MF_LAZY).

The ``*VsC`` classes compare both with the plain-C reference (``bench-ref``) in the same
process, as ``track_ratio_to_c`` (our rate / C's rate: above 1 = faster than C); without
../shared or a C compiler their ``setup`` raises NotImplementedError and asv reports them
as skipped, with the reason.

Machines: one process with two threads, the leader on CPU 0 (node 0) and a second one on
CPU 8 (node 1), so that mainline's "single-threaded process, page already local" rule
(§3 rule 5) never skips an entry: every present private page is marked, every marked page
faults and migrates.
"""
import functools
import time

import numpy as np

from .common import (PAGE_SHIFT, SEED, STREAM_SALT, addresses, load_bench_ref, median_rate,
                     sizes, stream_addresses, topology, warm_jit)

import fastnuma as fn
from fastnuma.dtypes import PTE_NUMA, PTRS_PER_PMD

#: CPU of the second thread: node 1 in common.topology (8 CPUs per node).
REMOTE_CPU = 8
#: Pages first-touched per sim.access call while populating (bounds the address array).
POPULATE_CHUNK = 1 << 22


# --------------------------------------------------------------------------- machines
def populated_two_threads(n_pages, thp="never"):
    """A machine with one process of two threads (CPU 0 on node 0, CPU 8 on node 1) and
    one private mapping of ``n_pages`` pages, all written once by the leader: present on
    node 0 as base pages (``thp="never"``) or as 2 MiB THPs (``"always"``, n_pages a
    multiple of 512; one write per 2 MiB faults in the whole THP).
    Returns (sim, pid, second tid, base address)."""
    sim = fn.Simulator(topology(n_pages), thp=thp)
    pid = sim.spawn(cpu=0)
    tid = sim.clone(pid, cpu=REMOTE_CPU)
    base = sim.mmap(pid, int(n_pages) << PAGE_SHIFT)
    step = PTRS_PER_PMD if thp == "always" else 1
    for lo in range(0, n_pages, POPULATE_CHUNK):
        pages = np.arange(lo, min(n_pages, lo + POPULATE_CHUNK), step, dtype=np.int64)
        sim.access(pid, addresses(base, pages), write=True)
    return sim, pid, tid, base


@functools.lru_cache(maxsize=1)
def shared_marking_machine(n_pages, thp):
    """One :func:`populated_two_threads` per benchmark process for the change_prot_numa
    benchmarks: a timed call only sets PTE_NUMA bits, which :func:`clear_marks` clears
    again before the next one."""
    return populated_two_threads(n_pages, thp)


def clear_marks(sim):
    """Clear PTE_NUMA on every PTE block in use (untimed): the next change_prot_numa then
    marks every entry again, so all timed calls do the same work."""
    used = sim.pt.n_blocks * PTRS_PER_PMD
    sim.pt.ptes[:used]["flags"] &= np.uint32(~PTE_NUMA & 0xFFFFFFFF)


_numa_warmed = False


def warm_numa():
    """Load (or compile) the marking kernels, serial and parallel (a range of
    PARALLEL_MIN_BLOCKS = 4096 PMDs or more), on base pages and THPs, and the hinting-fault
    path (mbind LAZY + faults that migrate), once per process."""
    global _numa_warmed
    warm_jit("access", "mbind")
    if _numa_warmed:
        return
    from fastnuma.numa_balancing import PARALLEL_MIN_BLOCKS
    n = (PARALLEL_MIN_BLOCKS + 16) * PTRS_PER_PMD
    # THP: one fault per 2 MiB fills PARALLEL_MIN_BLOCKS + 16 PMDs cheaply (parallel
    # kernel); base pages: 16 Ki pages (serial kernel), then one page in each of as many
    # PMDs (parallel kernel on PTE tables)
    for thp, n_pages, step in (("always", n, PTRS_PER_PMD), ("never", 1 << 14, 1),
                               ("never", n, PTRS_PER_PMD)):
        sim = fn.Simulator(topology(n_pages), thp=thp)
        pid = sim.spawn(cpu=0)
        tid = sim.clone(pid, cpu=REMOTE_CPU)
        base = sim.mmap(pid, n_pages << PAGE_SHIFT)
        pages = np.arange(0, n_pages, step, dtype=np.int64)
        sim.access(pid, addresses(base, pages), write=True)
        for _ in range(2):                    # the second call finds nothing to mark
            sim.change_prot_numa(pid, base, n_pages << PAGE_SHIFT)
        clear_marks(sim)
        sim.change_prot_numa(pid, base, 64 << PAGE_SHIFT)     # a short range: serial
        sim.access(tid, addresses(base, pages[:64]))           # hinting faults here too
    # the hinting-fault path: both stream orders
    for order in ("sequential", "random"):
        sim, pid, tid, base = lazy_machine(1 << 14)
        sim.access(tid, lazy_addresses(base, order, 1 << 14))
    _numa_warmed = True


# --------------------------------------------------------------------------- change_prot_numa
#: PTEs marked per call: 1 Mi (serial kernel: 2048 PMDs < PARALLEL_MIN_BLOCKS), 16 Mi and
#: 100 Mi (parallel kernel). 100 Mi base pages take ~2 GB and 15-25 s of setup per
#: benchmark process (first touch of every page); QUICK: 64 Ki (serial) and 4 Mi (parallel).
CPN_PTES = sizes([1 << 20, 1 << 24, 100 << 20], [1 << 16, 1 << 22])
THP_MODES = ["never", "always"]
#: Bytes of memory traffic per PTE of one change_prot_numa call, as the kernel touches
#: them (kernels/numa.py mark_block): the 8-byte PTE read and written back. No frame
#: record is read here: the process never forked (no COW-shared page to skip), it has two
#: threads (no "single-threaded and local" skip) and mainline has no mapcount rule; a THP
#: marks its 512 PTEs the same way. Both add the block list and block key, 16 bytes per
#: 512 PTEs.
BYTES_PER_PTE = {"never": 8 + 8 + 16 / PTRS_PER_PMD,
                 "always": 8 + 8 + 16 / PTRS_PER_PMD}
COPY_BYTES = 1 << 28          # measure_copy_gbps buffer (256 MiB, beyond every cache)


class _Marking:
    """Setup shared by the change_prot_numa benchmarks (no benchmark of its own): the
    machine is built once per process and ``setup`` clears every mark (untimed), so each
    timed call marks the same ``n_ptes`` entries."""
    params = (CPN_PTES, THP_MODES)
    param_names = ["n_ptes", "thp"]
    number = 1
    repeat = (3, 10, 30.0)
    timeout = 900

    def setup(self, n_ptes, thp):
        warm_numa()
        self.sim, self.pid, _, self.base = shared_marking_machine(n_ptes, thp)
        self.length = n_ptes << PAGE_SHIFT
        clear_marks(self.sim)

    def _run(self):
        return self.sim.change_prot_numa(self.pid, self.base, self.length)

    def _median_time(self, n_ptes, repeat=5):
        times = []
        for _ in range(repeat):
            clear_marks(self.sim)
            t0 = time.perf_counter()
            updates = self._run()
            times.append(time.perf_counter() - t0)
            if updates != n_ptes:
                raise RuntimeError(f"semantic drift: change_prot_numa over {n_ptes} present "
                                   f"private pages returned {updates} updates")
        return float(np.median(times))


class ChangeProtNuma(_Marking):
    """``sim.change_prot_numa`` over the whole populated range of ``n_ptes`` pages (two
    threads, so every entry is marked): ``thp="never"`` marks ``n_ptes`` PTEs one by one,
    ``"always"`` marks ``n_ptes / 512`` PMD-mapped THPs (512 updates each, one test per
    PMD, no frame read). The call includes the Python wrapper (range checks, the VMA's
    block list). ``track_ptes_per_s`` is the median of 5 calls and checks the update
    count."""

    def time_change_prot_numa(self, n_ptes, thp):
        self._run()

    def track_ptes_per_s(self, n_ptes, thp):
        return n_ptes / self._median_time(n_ptes)
    track_ptes_per_s.unit = "PTEs/s"


class ChangeProtNumaVsC(_Marking):
    """ChangeProtNuma against the C reference, in the same process (skipped without
    ../shared or a C compiler).

    ``track_ratio_to_c``: C's ``ref_change_prot_numa`` time over its own ``n_ptes``-entry
    table (16-byte PTEs, 82% present, ~69% eligible; bench_ref.measure_change_prot_numa,
    median of 5) divided by ours (median of 5): the same number of PTEs visited, above 1 =
    faster. With THPs ours tests one entry per 512, so it is expected above 1.
    ``track_bandwidth_fraction``: our bytes per PTE (:data:`BYTES_PER_PTE`: 16 B) times PTEs/s over C's memcpy rate (read + written, 256 MiB). C's own
    change_prot_numa reaches about 1.8x copy (an in-place stream is faster than a copy
    here), so 1 is not the ceiling.
    """

    def setup(self, n_ptes, thp):
        self.ref = load_bench_ref()              # first: skipped before the machine is built
        super().setup(n_ptes, thp)

    def track_ratio_to_c(self, n_ptes, thp):
        c = self.ref.measure_change_prot_numa(n_ptes, repeat=5)["median_s"]
        return c / self._median_time(n_ptes)
    track_ratio_to_c.unit = "x C"

    def track_bandwidth_fraction(self, n_ptes, thp):
        copy = self.ref.measure_copy_gbps(COPY_BYTES, repeat=5)["gbps"] * 1e9
        return BYTES_PER_PTE[thp] * n_ptes / self._median_time(n_ptes) / copy
    track_bandwidth_fraction.unit = "x memcpy"


# --------------------------------------------------------------------------- hinting faults
def lazy_machine(n_pages):
    """:func:`populated_two_threads` (all pages on node 0), then mbind(MPOL_LOCAL,
    MPOL_MF_MOVE | MPOL_MF_LAZY) over the range by the leader: every page is marked
    (two threads: nothing skipped) and the VMA policy (LOCAL + MOF) sends each page to the
    node of the thread that faults on it."""
    sim, pid, tid, base = populated_two_threads(n_pages)
    sim.mbind(pid, base, n_pages << PAGE_SHIFT, fn.MPOL_LOCAL, None,
              fn.MPOL_MF_MOVE | fn.MPOL_MF_LAZY)
    return sim, pid, tid, base


def lazy_addresses(base, order, n_pages):
    """Every page once: ascending (``sequential``) or a seeded permutation (``random``)."""
    return stream_addresses(base, order, n_pages, n_pages)


#: Pages of the lazy scenario (each faults once and migrates 0 -> 1).
LAZY_PAGES = sizes([1 << 20, 1 << 22], [1 << 14])
ORDERS = ["sequential", "random"]
C_NODES, C_CPUS_PER_NODE = 2, 4


@functools.lru_cache(maxsize=1)
def c_fault_stream(n_pages, order):
    """Events on which bench-ref's ``ref_replay`` takes a hinting fault and migrates at
    every event: its replay_initial_state(n_pages, 2 nodes) (make_page_table, then one
    change_prot_numa pass) has ~79% of entries present and marked, on node 0 or 1 at
    random; each such page once (ascending, or a seeded permutation), read by a CPU of the
    other node. Node capacity n/2 + n/8 leaves ~0.21 n free pages per node and every
    migration gives one back to the source, so no migration runs out of room (checked on
    the counters). Returns (pages, cpus)."""
    ref = load_bench_ref()
    pt, _ = ref.replay_initial_state(n_pages, C_NODES)
    want = ref.PTE_PRESENT | ref.PTE_NUMA
    pages = np.flatnonzero((pt["flags"] & want) == want).astype(np.int64)
    if order == "random":
        rng = np.random.default_rng([SEED, STREAM_SALT["random"], n_pages])
        pages = rng.permutation(pages)
    cpus = ((1 - pt["node"][pages]) * C_CPUS_PER_NODE).astype(np.uint16)
    return pages, cpus


class _LazyFaults:
    """Setup shared by the hinting-fault benchmarks (no benchmark of its own): a fresh
    marked machine per timed call (``setup`` + ``number = 1``)."""
    params = (LAZY_PAGES, ORDERS)
    param_names = ["n_pages", "order"]
    number = 1
    repeat = (3, 10, 30.0)
    timeout = 600

    def setup(self, n_pages, order):
        warm_numa()
        self.n_pages = n_pages
        self.order = order
        self.machine = self._fresh()

    def _fresh(self):
        sim, pid, tid, base = lazy_machine(self.n_pages)
        return sim, tid, lazy_addresses(base, self.order, self.n_pages)

    @staticmethod
    def _read(machine):
        sim, tid, addrs = machine
        sim.access(tid, addrs)

    def _rate(self):
        """numa_hint_faults per second: median of 3 fresh machines, outcome checked."""
        machines = []

        def prepare():
            machines.append(self._fresh())
            return machines[-1]
        rate = median_rate(self._read, self.n_pages, repeat=3, prepare=prepare)
        vm = machines[-1][0].vmstat()
        n = self.n_pages
        if vm["numa_hint_faults"] != n or vm["numa_pages_migrated"] != n or \
                vm["numa_hint_faults_local"] != 0:
            raise RuntimeError(f"semantic drift: {n} reads of marked pages from node 1 gave "
                               f"numa_hint_faults={vm['numa_hint_faults']}, "
                               f"numa_hint_faults_local={vm['numa_hint_faults_local']}, "
                               f"numa_pages_migrated={vm['numa_pages_migrated']}")
        return rate


class HintingFaults(_LazyFaults):
    """The faults after mbind(MPOL_LOCAL, MPOL_MF_MOVE | MPOL_MF_LAZY): ``n_pages`` pages
    first-touched on node 0 by the leader and all marked; the second thread (CPU 8, node 1)
    then reads every page once, in address order (``sequential``) or in a random
    permutation (``random``). Each read takes a NUMA hinting fault (do_numa_page:
    mpol_misplaced -> LOCAL = node 1) that migrates the page to node 1, then the read is
    retried and counted. ``track_faults_per_s``: numa_hint_faults per second, median of 3
    fresh machines, checked (every read faulted and migrated)."""

    def time_hinting_faults(self, n_pages, order):
        self._read(self.machine)

    def track_faults_per_s(self, n_pages, order):
        return self._rate()
    track_faults_per_s.unit = "faults/s"


class HintingFaultsVsC(_LazyFaults):
    """HintingFaults against bench-ref's replay loop, in the same process (skipped without
    ../shared or a C compiler).

    ``track_ratio_to_c``: ours / bench-ref's ``ref_replay`` (measure_replay, median of 3)
    on a stream where **every** event is a hinting fault with migration
    (:func:`c_fault_stream`: its marked pages, each read once from the other node, in the
    same order kind); the C counters are checked (fault == migrate == events). C's fault
    is the minimum work (clear the mark, new pfn and node, free-page counts); ours also
    walks the VMA policy, the watermark test, the allocation and fault counters, and the
    retried access. ``track_c_faults_per_s`` is the denominator.
    """

    def setup(self, n_pages, order):
        self.ref = load_bench_ref()              # first: skipped before the machine is built
        super().setup(n_pages, order)

    def _c_rate(self):
        pages, cpus = c_fault_stream(self.n_pages, self.order)
        r = self.ref.measure_replay(self.order, self.n_pages, pages.size, nnodes=C_NODES,
                                    cpus_per_node=C_CPUS_PER_NODE, repeat=3,
                                    events=(pages, cpus))
        s = r["stats"]
        if not s["fault"] == s["migrate"] == pages.size or s["local_fault"] or s["first_touch"]:
            raise RuntimeError(f"bench-ref stream is not all faults with migration: {s}")
        return r["events_per_s"]

    def track_ratio_to_c(self, n_pages, order):
        c = self._c_rate()
        return self._rate() / c
    track_ratio_to_c.unit = "x C"

    def track_c_faults_per_s(self, n_pages, order):
        """The denominator of track_ratio_to_c (C's faults with migration per second)."""
        return self._c_rate()
    track_c_faults_per_s.unit = "faults/s"


class LazySetupMemory:
    """Peak RSS of building the lazy scenario of :class:`HintingFaults` (first touch of
    ``n_pages`` pages by the leader, then the mbind LAZY that marks them all);
    ``peakmem_reference``: the same process with the same imports and JIT warm-up, without
    it. Read the difference: for 2**22 pages it holds the simulator's arrays (32 MiB of
    PTEs, 48 MiB of frames, each up to twice that while a geometric growth copies it) and
    the populate pass's address arrays (int64 per page, a few of them alive at once)."""
    params = sizes([1 << 22], [1 << 14])
    param_names = ["n_pages"]
    timeout = 300

    def setup(self, n_pages):
        warm_numa()

    def peakmem_lazy_setup(self, n_pages):
        lazy_machine(n_pages)

    def peakmem_reference(self, n_pages):
        pass
