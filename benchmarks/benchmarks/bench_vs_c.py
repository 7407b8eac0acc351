"""Like-for-like ratios to the plain-C reference (issue 13), each measured in one process,
ours and C alternated, medians: ``track_ratio_to_c`` = C's time / ours (above 1 = faster
than C). Without bench-ref (``$FASTNUMA_BENCH_REF`` or ``../shared/bench-ref``) or a C
compiler they are skipped, with the reason.

- ``HitsVsC``: hits only. bench-ref's ``make_events`` streams (sequential, uniform, Zipf;
  16 CPUs on 4 nodes) as a trace with pid and tid columns (one process, thread 100 + c on
  CPU c), replayed from an in-memory Arrow table on a machine where every page is present
  (first written by its owner CPU's thread) and the stream was replayed once: the timed
  replay takes no fault (checked), and C's ``ref_replay`` runs the same (page, cpu) stream
  on a table where every page is present and unmarked, on its owner CPU's node.
- ``TracesVsC``: real programs (sort, gzip, xz, sqlite3, git) recorded here with
  ``valgrind --tool=lackey --trace-mem=yes``, converted with ``fastnuma convert lackey``
  (data accesses only), replayed end to end from the ``.arrow`` file on a fresh machine;
  C replays the same (page, cpu) stream, pages renumbered densely in address order, from
  an empty table (a first touch per new page, as ours). ``setup_cache`` records them once
  into ``$FASTNUMA_ASV_CACHE/lackey``; without valgrind (or the program) the benchmark is
  skipped, with the reason.
- ``MbindLazyVsC``: change_prot_numa through ``mbind(MPOL_LOCAL, MPOL_MF_MOVE |
  MPOL_MF_LAZY)`` over every PTE of a two-thread process (the whole call: policy, VMA
  split and marking), against C's ``ref_change_prot_numa`` over as many PTEs.
- ``HintingReplayVsC``: the hinting fault with migration as in
  ``bench_numa.HintingFaultsVsC`` (pages first touched on node 0, marked by
  mbind(MPOL_LOCAL, MOVE | LAZY), each read once by the thread on node 1), the reads
  replayed from an Arrow table with pid and tid columns instead of ``sim.access``.
- Kept as they were: ``bench_numa.HintingFaultsVsC`` (the same faults through
  ``sim.access``) and ``bench_replay.ReplayVsC`` (generated traces, faults included).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc  # noqa: F401 (pa.ipc)

import fastnuma as fn

from .bench_numa import (REMOTE_CPU, HintingFaultsVsC, clear_marks, populated_two_threads,
                         warm_numa)
from .common import BENCH_REF, CACHE_ROOT, PAGE_SHIFT, QUICK, load_bench_ref, sizes

NODES, CPUS_PER_NODE = 4, 4
N_CPUS = NODES * CPUS_PER_NODE
HIT_PAGES = 1 << 14 if QUICK else 1 << 20
HIT_EVENTS = 200_000 if QUICK else 10_000_000
HIT_BASE = 1 << 32                # where the stream's pages are mapped (implicitly)
TID_BASE = 100                    # thread of CPU c: tid TID_BASE + c
REPEAT = 3                        # timed calls per side, alternated
LACKEY_DIR = CACHE_ROOT / "lackey"


def _median_pair(ours, c, repeat=REPEAT):
    """Median times of ``ours()`` and ``c()``, called alternately ``repeat`` times each
    (the host's load moves both the same way)."""
    a, b = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ours()
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c()
        b.append(time.perf_counter() - t0)
    return float(np.median(a)), float(np.median(b))


# --------------------------------------------------------------------------- hits only
def hit_table(page, cpu, write=False):
    """Trace v1 columns (their native types: nothing to convert while reading) of the
    (page, cpu) stream: one process (pid 1), thread TID_BASE + c on CPU c."""
    n = page.size
    return pa.table({"addr": (HIT_BASE + (page << PAGE_SHIFT)).astype(np.uint64),
                     "cpu": cpu.astype(np.uint16),
                     "op": np.full(n, int(write), np.uint8),
                     "ts": np.arange(n, dtype=np.uint64),
                     "tid": cpu.astype(np.uint32) + np.uint32(TID_BASE),
                     "pid": np.ones(n, np.uint32)})


def owner_cpus(n_pages):
    """The CPU that owns each page in make_events (n_pages split into N_CPUS regions)."""
    return (np.arange(n_pages, dtype=np.int64) * N_CPUS // n_pages).astype(np.uint16)


class HitsVsC:
    """Present pages only: ours (``Simulator.replay`` of an Arrow table, report
    included) / C's ``ref_replay``, the same stream; no fault on either side (checked)."""
    params = ["sequential", "uniform", "zipf"]
    param_names = ["pattern"]
    timeout = 900

    def setup(self, pattern):
        self.ref = ref = load_bench_ref()
        page, cpu = ref.make_events(pattern, HIT_PAGES, HIT_EVENTS, n_cpus=N_CPUS)
        owner = owner_cpus(HIT_PAGES)
        self.sim = fn.Simulator(fn.Topology.uniform(nodes=NODES, cpus_per_node=CPUS_PER_NODE,
                                                    pages_per_node=2 * HIT_PAGES))
        self.sim.replay(hit_table(np.arange(HIT_PAGES, dtype=np.int64), owner, write=True))
        self.table = hit_table(page, cpu)
        self.sim.replay(self.table)                     # warm: JIT, caches, every thread
        self.page, self.cpu = page, cpu
        self.pt = np.zeros(HIT_PAGES, ref.PTE_DTYPE)
        self.pt["pfn"] = np.arange(1, HIT_PAGES + 1)
        self.pt["flags"] = ref.PTE_PRESENT
        self.pt["mapcount"] = 1
        self.pt["node"] = owner // CPUS_PER_NODE
        self.node_of_cpu = ref.node_of_cpu_table(NODES, CPUS_PER_NODE)
        self.free = np.full(NODES, HIT_PAGES, np.int64)
        self.stats = np.zeros(len(ref.STAT_NAMES), np.int64)

    def _ours(self):
        faults = self.sim.vmstat()["pgfault"]
        self.sim.replay(self.table)
        if self.sim.vmstat()["pgfault"] != faults:
            raise RuntimeError("semantic drift: the hits-only replay took a fault")

    def _c(self):
        self.stats[:] = 0
        self.ref.replay(self.pt, self.page, self.cpu, self.node_of_cpu, self.free, self.stats)
        names = self.ref.STAT_NAMES
        if self.stats[names.index("fault")] or self.stats[names.index("first_touch")]:
            raise RuntimeError("bench-ref's hits-only replay took a fault")

    def track_ratio_to_c(self, pattern):
        ours, c = _median_pair(self._ours, self._c)
        return c / ours
    track_ratio_to_c.unit = "x C"

    def track_events_per_s(self, pattern):
        ours, _ = _median_pair(self._ours, self._c)
        return HIT_EVENTS / ours
    track_events_per_s.unit = "events/s"


# --------------------------------------------------------------------------- real traces
def _programs(work):
    """name -> argv of each recorded program (inputs made in ``work``; small: lackey runs
    them some 100x slower and writes ~40 bytes per access)."""
    text = work / "in.txt"
    rng = np.random.default_rng(13)
    text.write_text("".join(f"{x}\n" for x in rng.integers(0, 10**6, 3000 if not QUICK else 300)))
    blob = work / "blob.bin"
    blob.write_bytes(bytes(rng.integers(0, 16, 1 << (16 if not QUICK else 12), np.uint8)))
    db = work / "t.db"
    sql = ("create table t(k integer primary key, v text);"
           "with recursive c(x) as (select 1 union all select x + 1 from c where x < 2000) "
           "insert into t select x, hex(randomblob(16)) from c;"
           "select count(*), max(v) from t where v like '%AB%';")
    return {"sort": ["sort", str(text)],
            "gzip": ["gzip", "-c", str(blob)],
            "xz": ["xz", "-c", "-1", str(blob)],
            "sqlite3": ["sqlite3", str(db), sql],
            "git": ["git", "hash-object", str(text)]}


PROGRAMS = ["sort", "gzip", "xz", "sqlite3", "git"]


def lackey_trace(name):
    return LACKEY_DIR / f"{name}{'-quick' if QUICK else ''}.arrow"


def record_lackey_traces():
    """Record and convert every program of PROGRAMS that is installed (valgrind too),
    once; a missing one is left absent (its benchmark says why)."""
    if shutil.which("valgrind") is None:
        return
    LACKEY_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=LACKEY_DIR) as tmp:
        work = Path(tmp)
        for name, argv in _programs(work).items():
            out = lackey_trace(name)
            if out.exists() or shutil.which(argv[0]) is None:
                continue
            log = work / f"{name}.lackey"
            subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes",
                            f"--log-file={log}", *argv], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True, cwd=tmp,
                           env={**os.environ, "LC_ALL": "C"})
            tmp_out = work / f"{name}.arrow"
            subprocess.run([sys.executable, "-m", "fastnuma", "convert", "lackey", str(log),
                            "-o", str(tmp_out)], check=True, stdout=subprocess.DEVNULL)
            os.replace(tmp_out, out)                 # whole or not at all
            log.unlink()


class TracesVsC:
    """A real program's trace, end to end from its .arrow file on a fresh machine /
    C's ``ref_replay`` of the same (page, cpu) stream from an empty table."""
    params = PROGRAMS
    param_names = ["program"]
    timeout = 1800

    def setup_cache(self):
        if BENCH_REF.is_file():         # without the C side there is no ratio to record for
            record_lackey_traces()
    setup_cache.timeout = 3600      # lackey runs the programs ~100x slower (12 min here)

    def setup(self, program):
        self.ref = ref = load_bench_ref()
        if shutil.which("valgrind") is None:
            raise NotImplementedError("valgrind not installed: no lackey traces recorded")
        self.path = lackey_trace(program)
        if not self.path.exists():
            raise NotImplementedError(f"{program}: not installed, or its lackey recording "
                                      f"failed ({self.path} absent)")
        with pa.memory_map(str(self.path)) as src:
            t = pa.ipc.open_file(src).read_all()
        access = np.asarray(t.column("op")) <= 1
        addr = np.asarray(t.column("addr"))[access]
        pages, self.page = np.unique(addr >> np.uint64(PAGE_SHIFT), return_inverse=True)
        self.page = self.page.astype(np.int64)
        self.cpu = np.asarray(t.column("cpu"))[access].astype(np.uint16)
        self.n_pages = pages.size
        self.n_events = self.page.size
        self._fresh()
        self._ours()                                 # warm: JIT, page cache
        self.pt0 = np.zeros(self.n_pages, ref.PTE_DTYPE)
        self.node_of_cpu = ref.node_of_cpu_table(NODES, CPUS_PER_NODE)
        self.stats = np.zeros(len(ref.STAT_NAMES), np.int64)

    def _fresh(self):
        self.sim = fn.Simulator(fn.Topology.uniform(nodes=NODES, cpus_per_node=CPUS_PER_NODE,
                                                    pages_per_node=1 << 16))

    def _ours(self):
        self.sim.replay(self.path)

    def _c(self):
        self.stats[:] = 0
        self.ref.replay(self.pt, self.page, self.cpu, self.node_of_cpu, self.free, self.stats)

    def track_ratio_to_c(self, program):
        ours, c = [], []
        for _ in range(REPEAT):
            self._fresh()                             # untimed, as C's reset
            self.pt, self.free = self.pt0.copy(), np.full(NODES, 1 << 16, np.int64)
            o, k = _median_pair(self._ours, self._c, repeat=1)
            ours.append(o)
            c.append(k)
        return float(np.median(c)) / float(np.median(ours))
    track_ratio_to_c.unit = "x C"

    def track_events(self, program):
        return self.n_events
    track_events.unit = "events"


# --------------------------------------------------------------------------- mbind LAZY
MBIND_PTES = sizes([1 << 20, 1 << 24], [1 << 16])


class MbindLazyVsC:
    """mbind(MPOL_LOCAL, MPOL_MF_MOVE | MPOL_MF_LAZY) over the whole populated range of a
    two-thread process (every PTE marked: checked by numa_pte_updates) / C's
    ``ref_change_prot_numa`` over as many PTEs. The policy is reset (MPOL_DEFAULT) and
    the marks cleared between calls, untimed."""
    params = MBIND_PTES
    param_names = ["n_ptes"]
    number = 1
    timeout = 900

    def setup(self, n_ptes):
        self.ref = load_bench_ref()
        warm_numa()
        self.sim, self.pid, _, self.base = populated_two_threads(n_ptes)
        self.length = n_ptes << PAGE_SHIFT
        self._reset()
        self._mbind(n_ptes)                             # warm

    def _reset(self):
        self.sim.mbind(self.pid, self.base, self.length, fn.MPOL_DEFAULT, None)
        clear_marks(self.sim)

    def _mbind(self, n_ptes):
        before = self.sim.vmstat()["numa_pte_updates"]
        self.sim.mbind(self.pid, self.base, self.length, fn.MPOL_LOCAL, None,
                       fn.MPOL_MF_MOVE | fn.MPOL_MF_LAZY)
        if self.sim.vmstat()["numa_pte_updates"] - before != n_ptes:
            raise RuntimeError("semantic drift: mbind LAZY did not mark every PTE")

    def track_ratio_to_c(self, n_ptes):
        ours = []
        for _ in range(5):
            self._reset()
            t0 = time.perf_counter()
            self._mbind(n_ptes)
            ours.append(time.perf_counter() - t0)
        c = self.ref.measure_change_prot_numa(n_ptes, repeat=5)["median_s"]
        return c / float(np.median(ours))
    track_ratio_to_c.unit = "x C"


# --------------------------------------------------------------------------- hinting, replayed
class HintingReplayVsC(HintingFaultsVsC):
    """bench_numa.HintingFaultsVsC with the reads replayed (``Simulator.replay`` of an
    Arrow table: pid, tid, cpu, op, ts per event) rather than passed to ``sim.access``;
    the same checks (every read a hinting fault that migrates) and the same C stream."""

    def _fresh(self):
        sim, tid, addrs = super()._fresh()
        n = addrs.size
        table = pa.table({"addr": addrs.astype(np.uint64),
                          "cpu": np.full(n, REMOTE_CPU, np.uint16),
                          "op": np.zeros(n, np.uint8),
                          "ts": np.arange(n, dtype=np.uint64),
                          "tid": np.full(n, tid, np.uint32),
                          "pid": np.full(n, sim.threads[tid].pid, np.uint32)})
        return sim, table

    @staticmethod
    def _read(machine):
        sim, table = machine
        sim.replay(table)
