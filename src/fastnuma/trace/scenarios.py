"""The synthetic workloads of ``fastnuma generate``: each scenario turns its checked
parameters into a plan, a list of segments whose rows numpy computes per chunk (see
:mod:`fastnuma.trace.generate` for the streaming, the seeds and the parameters).

Conventions shared by the scenarios
-----------------------------------
- One process, ``pid`` 1, one private anonymous mapping of ``pages`` 4 KiB pages at
  :data:`BASE_ADDR` (MMAP, flags ``MAP_PRIVATE | MAP_ANONYMOUS``) as the first row. Its main
  thread has ``tid`` 1 and runs on CPU 0 (node 0); threads have ``tid`` 1, 2, ... (the
  lazy scenario's workers 2, 3, ...). Thread k runs on node ``k % nodes``, CPU
  ``node * cpus_per_node + (k // nodes) % cpus_per_node`` (the numbering of
  ``Topology.uniform``); each thread's placement is a SCHED row before its accesses.
- ``events`` is the exact number of rows, control rows included; the fixed rows (MMAP,
  SCHED, ``init`` writes, ...) come first and the scenario's accesses fill the rest. Fewer
  events than fixed rows is a ValueError that says how many are needed.
- Time (``ts``, ns): threads run concurrently; each thread issues one event every
  ``ns_per_event`` ns, so a stretch where k threads interleave (round robin) advances the
  clock by ``ns_per_event`` every k rows. A group of control rows shares one timestamp; the
  next stretch starts ``ns_per_event`` later. NUMA-balancing scans (``scan_delay`` 1 s)
  fire once a trace spans more than a second of this clock.
- ``write_fraction``: the probability that a random access is a WRITE (else a READ).
- ``init=True``: the main thread writes every page once after the MMAP, so that first
  touch puts the whole working set on node 0 (lazy: always).
- ``bare=True``: only the access rows, and only the columns ``addr`` and ``cpu``. The
  ``events`` count then covers accesses only; ``tid`` reads back as ``cpu``.
- Addresses: random accesses carry a random 8-byte aligned offset inside their page;
  sweeps and the ``init`` writes are page aligned (sequential: ``stride``).
"""
import math

import numpy as np

from ..constants import (MPOL_LOCAL, MPOL_MF_LAZY, MPOL_MF_MOVE, OP_MBIND, OP_READ, OP_WRITE,
                         PAGE_SIZE)
from .segments import (BASE_ADDR, MAIN_TID, PID, Segment, check_int, cpu_of, event_rows,
                       init_writes, mmap_rows, n_threads, page_addr, plan, random_ops,
                       round_robin, sched_rows, start_rows)

__all__ = ["SCENARIOS", "BASE_ADDR", "PID", "MAIN_TID", "check_int"]

MAX_PAGES = 1 << 31                 # 8 TiB of working set; keeps page arithmetic in 64 bits
MAX_STRIDE = 1 << 19
LAZY_MBIND_FLAGS = MPOL_MF_MOVE | MPOL_MF_LAZY


# ------------------------------------------------------------------ scenarios
def lazy(p):
    """Lazy migration after a re-homing mbind (the motivating scenario of MPOL_MF_LAZY).

    Models: one process; its main thread (CPU 0, node 0) maps ``pages`` pages and writes
    every one of them (first touch: all on node 0). SCHED rows then start ``threads``
    workers (default: one per node; worker k on node k % nodes), before the main thread
    calls ``mbind(whole array, MPOL_LOCAL, nodemask 0, MPOL_MF_MOVE | MPOL_MF_LAZY)``. Each
    worker then reads its share (``pages / threads`` consecutive pages, worker k the k-th)
    page by page, the workers interleaved; the remaining events are the workers' random
    accesses (``write_fraction``, default 0.25) within their own share.

    Exercises: mbind with MPOL_MF_LAZY marking every page for NUMA hinting faults, the
    fault-time migration of each page to the node of the worker that touches it first
    (MPOL_LOCAL), and, afterwards, that local accesses no longer fault or migrate.
    Row order: MMAP, ``pages`` WRITEs, ``threads`` SCHEDs, MBIND, ``pages`` share READs,
    then the workers' accesses.
    """
    w = n_threads(p, p["nodes"])
    if p["pages"] < w:
        raise ValueError(f"pages = {p['pages']} is fewer than threads = {w}: every worker "
                         "needs a share")
    tids = MAIN_TID + 1 + np.arange(w)
    cpus = cpu_of(np.arange(w), p["nodes"], p["cpus_per_node"])
    bounds = np.arange(w + 1, dtype=np.int64) * p["pages"] // w
    size = np.diff(bounds)
    q = p["pages"] // w
    extra = np.flatnonzero(size > q)                     # workers with one more page

    def mbind(rng, i):
        return event_rows(i.size, addr=BASE_ADDR, cpu=0, tid=MAIN_TID, op=OP_MBIND,
                     length=p["pages"] * PAGE_SIZE, mode=MPOL_LOCAL, nodemask=0,
                     flags=LAZY_MBIND_FLAGS)

    def share_reads(rng, i):
        k, j = round_robin(i, w)
        late = i >= q * w                                 # the extra pages, one per worker
        if extra.size:
            k = np.where(late, extra[np.clip(i - q * w, 0, extra.size - 1)], k)
        page = np.where(late, bounds[k + 1] - 1, bounds[k] + j)
        return event_rows(i.size, addr=page_addr(page), cpu=cpus[k], tid=tids[k], op=OP_READ)

    wf = p["write_fraction"]

    def accesses(rng, i):
        k, _ = round_robin(i, w)
        page = bounds[k] + (rng.random(i.size) * size[k]).astype(np.int64)
        return event_rows(i.size, addr=page_addr(page, rng), cpu=cpus[k], tid=tids[k],
                     op=random_ops(rng, i.size, wf))

    return plan(p, [mmap_rows(p), init_writes(p), sched_rows(tids, cpus),
                     Segment(1, 1, mbind, control=True), Segment(p["pages"], w, share_reads),
                     Segment(None, w, accesses)])


def _shared_random(p, pick_pages, threads_default):
    t = n_threads(p, threads_default)
    tids = MAIN_TID + np.arange(t)
    cpus = cpu_of(np.arange(t), p["nodes"], p["cpus_per_node"])
    wf = p["write_fraction"]

    def accesses(rng, i):
        k, _ = round_robin(i, t)
        page = pick_pages(rng, i.size)
        return event_rows(i.size, addr=page_addr(page, rng), cpu=cpus[k], tid=tids[k],
                     op=random_ops(rng, i.size, wf))
    return plan(p, start_rows(p, tids, cpus, p["init"]) + [Segment(None, t, accesses)])


def uniform(p):
    """Uniformly random accesses by ``threads`` threads (default: one per node) to a shared
    working set of ``pages`` pages (``write_fraction`` 0.25).

    Models: a shared hash table or graph with no locality. Exercises: first-touch placement
    spread over the nodes, remote-access statistics, and NUMA balancing on pages every node
    touches (the two-stage filter should keep them from ping-ponging).
    """
    n = p["pages"]
    return _shared_random(p, lambda rng, m: rng.integers(0, n, m), p["nodes"])


def _zipf_pages(n, exponent, scatter):
    """Page picker: rank r in [1, n] with P(r) ~ r**-exponent, then page (r*a + b) % n.

    Ranks come from the inverse CDF of the continuous power law on [1, n + 1) floored (an
    O(1)-memory approximation of the discrete Zipf law, any exponent > 0); ``a`` is odd and
    coprime with ``n`` (a bijection of the pages), so the hot ranks land scattered."""
    a = max(1, int(n * 0.6180339887498949)) | 1
    while math.gcd(a, n) != 1:
        a += 2
    s = exponent

    def pick(rng, m):
        u = rng.random(m)
        if abs(s - 1.0) < 1e-12:
            x = np.exp(u * math.log(n + 1.0))
        else:
            x = (u * ((n + 1.0) ** (1.0 - s) - 1.0) + 1.0) ** (1.0 / (1.0 - s))
        r = np.clip(x.astype(np.int64), 1, n) - 1
        return (r.astype(np.uint64) * np.uint64(a) + np.uint64(scatter)) % np.uint64(n)
    return pick


def zipf(p):
    """Skewed accesses: page popularity follows Zipf's law with ``exponent`` (default 1.0)
    over ``pages`` pages; the hottest pages are scattered over the whole mapping (a seeded
    affine bijection of the ranks). ``threads`` (default one per node) share it.

    Models: caches, key-value stores, most real heaps. Exercises: a small hot set
    dominating hint faults and migrations while the cold tail is rarely touched; THP
    regions mixing hot and cold pages.
    """
    scatter = int(np.random.default_rng([p["seed"], 0x5EED]).integers(0, p["pages"]))
    pick = _zipf_pages(p["pages"], p["exponent"], scatter)
    return _shared_random(p, pick, p["nodes"])


def phase(p):
    """A phase change: ``threads`` threads (default one per node) each access their own
    slice (``pages / threads`` pages, random, ``write_fraction`` 0.25); between phases
    (``phases``, default 2, of equal length) SCHED rows move every thread to the next node
    (thread k runs on node (k + phase) % nodes).

    Models: the scheduler migrating threads away from their memory (load balancing, a
    cpuset change). Exercises: NUMA balancing noticing remote private faults after the
    move and migrating each slice to its thread's new node; scan-period adaptation.
    """
    t = n_threads(p, p["nodes"])
    if p["pages"] < t:
        raise ValueError(f"pages = {p['pages']} is fewer than threads = {t}")
    tids = MAIN_TID + np.arange(t)
    nodes, cpn = p["nodes"], p["cpus_per_node"]
    bounds = np.arange(t + 1, dtype=np.int64) * p["pages"] // t
    size = np.diff(bounds)
    wf = p["write_fraction"]

    def accesses_on(shift):
        cpus = cpu_of(np.arange(t), nodes, cpn, shift)

        def accesses(rng, i):
            k, _ = round_robin(i, t)
            page = bounds[k] + (rng.random(i.size) * size[k]).astype(np.int64)
            return event_rows(i.size, addr=page_addr(page, rng), cpu=cpus[k], tid=tids[k],
                         op=random_ops(rng, i.size, wf))
        return accesses

    segs = start_rows(p, tids, cpu_of(np.arange(t), nodes, cpn), p["init"])
    for ph in range(p["phases"]):
        if ph:
            segs.append(sched_rows(tids, cpu_of(np.arange(t), nodes, cpn, ph)))
        segs.append(Segment(None, t, accesses_on(ph)))
    return plan(p, segs)


def prodcons(p):
    """Producer-consumer sharing through a ring of ``pages`` pages: the first half of
    ``threads`` (default 2; at least one producer and one consumer) write on node 0, the
    others read on node 1 what was written ``lag`` pages earlier (default pages // 2).
    Producer k's j-th write is page (j * producers + k) % pages; consumer c's j-th read is
    page (max(j * producers - lag, 0) + c) % pages. Needs ``nodes`` >= 2.

    Models: a pipeline, a message queue between sockets. Exercises: pages written on one
    node and read on another: hint faults from two nodes, the last_cpupid two-stage filter,
    shared-page rules, migrations that should not ping-pong.
    """
    if p["nodes"] < 2:
        raise ValueError("scenario 'prodcons' needs nodes >= 2 (writers and readers on "
                         "different nodes)")
    t = n_threads(p, 2)
    if t < 2:
        raise ValueError("scenario 'prodcons' needs threads >= 2 (a producer, a consumer)")
    n_prod = t // 2
    lag = p["lag"] if p["lag"] is not None else p["pages"] // 2
    check_int("lag", lag, 0, p["pages"] - 1)
    k_all = np.arange(t)
    role = np.where(k_all < n_prod, 0, 1)               # node of the role
    idx = np.where(k_all < n_prod, k_all, k_all - n_prod)
    cpus = role * p["cpus_per_node"] + idx % p["cpus_per_node"]
    tids = MAIN_TID + k_all
    n = p["pages"]

    def accesses(rng, i):
        k, j = round_robin(i, t)
        pos = j * n_prod
        page = np.where(k < n_prod, pos + k, np.maximum(pos - lag, 0) + (k - n_prod)) % n
        op = np.where(k < n_prod, OP_WRITE, OP_READ)
        return event_rows(i.size, addr=page_addr(page), cpu=cpus[k], tid=tids[k], op=op)
    return plan(p, start_rows(p, tids, cpus, p["init"]) + [Segment(None, t, accesses)])


def sequential(p):
    """A sequential stream: each of ``threads`` threads (default 1) walks the whole mapping
    in address order with ``stride`` bytes (1..512 KiB, default 4096: one access per
    page), wrapping at its end; thread k starts at page k * pages // threads. READs unless
    ``write_fraction`` > 0.

    Models: a scan, a copy, a streaming kernel. Exercises: faults in address order (THP
    and PMD-sized work), the NUMA scanner's address-ordered windows.
    """
    t = n_threads(p, 1)
    tids = MAIN_TID + np.arange(t)
    cpus = cpu_of(np.arange(t), p["nodes"], p["cpus_per_node"])
    span = p["pages"] * PAGE_SIZE
    stride = check_int("stride", p["stride"], 1, MAX_STRIDE)
    period = span // math.gcd(span, stride)            # accesses before the walk repeats
    start = np.arange(t, dtype=np.int64) * p["pages"] // t * PAGE_SIZE
    wf = p["write_fraction"]

    def accesses(rng, i):                               # < 2**43 * 2**19: no overflow
        k, j = round_robin(i, t)
        off = (start[k] + (j % period) * stride) % span
        return event_rows(i.size, addr=BASE_ADDR + off.astype(np.uint64), cpu=cpus[k],
                     tid=tids[k], op=random_ops(rng, i.size, wf))
    return plan(p, start_rows(p, tids, cpus, p["init"]) + [Segment(None, t, accesses)])


def _sweep(p, own_slice):
    t = n_threads(p, p["nodes"] * p["cpus_per_node"])
    if p["pages"] < t:
        raise ValueError(f"pages = {p['pages']} is fewer than threads = {t}")
    tids = MAIN_TID + np.arange(t)
    cpus = cpu_of(np.arange(t), p["nodes"], p["cpus_per_node"])
    bounds = np.arange(t + 1, dtype=np.int64) * p["pages"] // t
    size = np.diff(bounds)
    n = p["pages"]
    wf = p["write_fraction"]

    def accesses(rng, i):
        k, j = round_robin(i, t)
        page = bounds[k] + j % size[k] if own_slice else (bounds[k] + j) % n
        return event_rows(i.size, addr=page_addr(page), cpu=cpus[k], tid=tids[k],
                     op=random_ops(rng, i.size, wf))
    return plan(p, start_rows(p, tids, cpus, p["init"]) + [Segment(None, t, accesses)])


def numa01(p):
    """autonuma-benchmark numa01: every thread sweeps the whole shared region.

    ``threads`` (default nodes * cpus_per_node, one per CPU) each write (memset:
    ``write_fraction`` 1) every page of the one mapping in order, thread k starting at
    page k * pages // threads and wrapping. ``init`` (default True): the main thread
    first-touches everything on node 0. (The original runs two processes of half the
    threads each; here all threads belong to process 1.)

    Exercises: NUMA balancing on memory that every node uses: no placement is local for
    everyone, so it should settle rather than bounce pages between nodes.
    """
    return _sweep(p, own_slice=False)


def numa02(p):
    """autonuma-benchmark numa02: each thread sweeps its own slice.

    ``threads`` (default one per CPU) each write (``write_fraction`` 1) the pages of their
    own slice (``pages / threads`` consecutive pages) in order, over and over. ``init``
    (default True): the main thread first-touches everything on node 0.

    Exercises: NUMA balancing converging to perfect locality: every slice should end on
    its thread's node (private faults, fast scan-period decrease).
    """
    return _sweep(p, own_slice=True)


# scenario -> (builder, its own parameters with their defaults)
_WF = {"write_fraction": 0.25, "init": False}
SCENARIOS = {
    "lazy": (lazy, {"write_fraction": 0.25}),
    "uniform": (uniform, dict(_WF)),
    "zipf": (zipf, dict(_WF, exponent=1.0)),
    "phase": (phase, dict(_WF, phases=2)),
    "prodcons": (prodcons, {"lag": None, "init": False}),
    "sequential": (sequential, {"write_fraction": 0.0, "stride": PAGE_SIZE,
                                "init": False}),
    "numa01": (numa01, {"write_fraction": 1.0, "init": True}),
    "numa02": (numa02, {"write_fraction": 1.0, "init": True}),
}
