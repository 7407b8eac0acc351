"""The access path, ``Simulator.access``: loads of present pages, first-touch faults, and
the memory a sparse process costs.

Rates are per event (one address of the batch): ``track_*`` in events/s or faults/s
beside the ``time_*`` of one call; ``track_ratio_to_c`` divides the present-page rate by
the C reference's ``ref_touch`` on the same page stream (the minimum work per event on a
flat 16-byte PTE array), both measured in the same process. Above 1: faster than C.
"""
import numpy as np

from .common import (PAGE_SHIFT, QUICK, addresses, load_bench_ref, median_rate,
                     new_process, page_stream, shared_populated_process, sizes,
                     sparse_pages, stream_addresses, topology, warm_jit)

import fastnuma as fn

#: Pages mapped (and all present) in the present-page benchmarks: from cache-resident to
#: far beyond the last-level cache (2**22 pages = 32 MiB of PTEs + 48 MiB of frames).
PRESENT_PAGES = sizes([2**16, 2**20, 2**22], [2**12, 2**16])
#: Events per call: one sweep of the mapping, and at least this many (so small mappings
#: are swept several times and every call lasts long enough to time).
MIN_EVENTS = 2**16 if QUICK else 2**20
PATTERNS = ["sequential", "uniform"]


def n_events(n_pages):
    return max(n_pages, MIN_EVENTS)


class _PresentPages:
    """Setup shared by the present-page benchmarks (no benchmark of its own)."""
    params = (PRESENT_PAGES, PATTERNS)
    param_names = ["n_pages", "pattern"]
    timeout = 300

    def setup(self, n_pages, pattern):
        warm_jit("access")
        self.n_events = n_events(n_pages)
        self.sim, self.pid, base = shared_populated_process(n_pages)
        self.addrs = stream_addresses(base, pattern, n_pages, self.n_events)

    def _run(self):
        self.sim.access(self.pid, self.addrs)


class AccessPresent(_PresentPages):
    """Loads by one thread (CPU 0) of pages that are all present: no fault, only the
    lookup (PMD hash -> PTE -> frame) and the local/remote count. Sequential sweeps and
    uniform random pages over ``n_pages``; the machine is built once per process (loads
    do not change placement), so every call sees the same state."""

    def time_access(self, n_pages, pattern):
        self._run()

    def track_events_per_s(self, n_pages, pattern):
        return median_rate(self._run, self.n_events, repeat=5)
    track_events_per_s.unit = "events/s"


class AccessPresentVsC(_PresentPages):
    """AccessPresent against the C reference (``bench-ref``'s ``measure_touch``) on the same
    page stream and number of pages, in the same process. Skipped without ../shared."""

    def setup(self, n_pages, pattern):
        self.ref = load_bench_ref()
        super().setup(n_pages, pattern)
        self.pages = np.ascontiguousarray(page_stream(pattern, n_pages, self.n_events))
        self.cpus = np.zeros(self.n_events, np.uint16)      # one thread on CPU 0, as ours

    def _c_rate(self, pattern, n_pages):
        r = self.ref.measure_touch(pattern, n_pages, self.n_events,
                                   events=(self.pages, self.cpus), repeat=5)
        return r["events_per_s"]

    def track_ratio_to_c(self, n_pages, pattern):
        c = self._c_rate(pattern, n_pages)
        ours = median_rate(self._run, self.n_events, repeat=5)
        return ours / c
    track_ratio_to_c.unit = "x C"

    def track_c_touch_events_per_s(self, n_pages, pattern):
        """The denominator of track_ratio_to_c, for reading the ratio across machines."""
        return self._c_rate(pattern, n_pages)
    track_c_touch_events_per_s.unit = "events/s"


class FirstTouch:
    """Write faults on a fresh mapping: every event allocates a page (do_anonymous_page
    under the default policy: local node). ``sequential`` faults the pages in address
    order, ``random`` in a random permutation; every page exactly once.

    Each timed call needs an untouched machine: ``setup`` builds it and ``number = 1``, so
    asv runs setup again before every timed call. The page-table growth is part of the cost.
    """
    params = (sizes([2**16, 2**20], [2**14]), ["sequential", "random"])
    param_names = ["n_pages", "order"]
    number = 1
    repeat = (3, 10, 20.0)
    timeout = 300

    def setup(self, n_pages, order):
        warm_jit("access")
        self.n_pages = n_pages
        self.order = order
        self.machine = self._fresh()

    def _fresh(self):
        sim, pid, base = new_process(self.n_pages)
        return sim, pid, stream_addresses(base, self.order, self.n_pages, self.n_pages)

    @staticmethod
    def _touch(machine):
        sim, pid, addrs = machine
        sim.access(pid, addrs, write=True)

    def time_first_touch(self, n_pages, order):
        self._touch(self.machine)

    def track_faults_per_s(self, n_pages, order):
        machines = []

        def prepare():
            machines.append(self._fresh())
            return machines[-1]
        rate = median_rate(self._touch, n_pages, repeat=3, prepare=prepare)
        vm = machines[-1][0].vmstat()
        if vm["pgfault"] != n_pages or vm["numa_local"] != n_pages:
            raise RuntimeError(f"semantic drift: {n_pages} first-touch writes gave "
                               f"pgfault={vm['pgfault']}, numa_local={vm['numa_local']}")
        return rate
    track_faults_per_s.unit = "faults/s"


SPAN_TIB = [1, 64]


class SparseProcess:
    """A process touching a few thousand pages scattered over terabytes of mapping: the
    page tables are 512-entry blocks found by hash, so memory follows the pages touched
    (at most one 4 KiB block per page), not the span. Compare the ``peakmem_`` figures
    with ``peakmem_reference`` (same imports and warm-up, nothing mapped), and read
    ``track_pagetable_bytes`` (the simulator's own arrays, exact)."""
    # page counts off the powers of two, where the page-table arrays double
    params = (sizes([1000, 4000, 16000], [4000]), SPAN_TIB)
    param_names = ["n_pages", "span_tib"]
    timeout = 120

    def setup(self, n_pages, span_tib):
        warm_jit("access")
        self.pages = sparse_pages(n_pages, (span_tib << 40) >> PAGE_SHIFT)

    def _touch(self, n_pages, span_tib):
        sim = fn.Simulator(topology(n_pages))
        pid = sim.spawn(cpu=0)
        base = sim.mmap(pid, span_tib << 40)
        sim.access(pid, addresses(base, self.pages), write=True)
        return sim

    def peakmem_sparse_touch(self, n_pages, span_tib):
        self._touch(n_pages, span_tib)

    def track_pagetable_bytes(self, n_pages, span_tib):
        sim = self._touch(n_pages, span_tib)
        return sum(a.nbytes for a in sim.pt.arrays.values())
    track_pagetable_bytes.unit = "bytes"


def peakmem_reference():
    """Baseline of the peakmem_ benchmarks: imports and JIT warm-up, no big mapping."""
    warm_jit("access")
