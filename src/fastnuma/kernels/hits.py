"""Plain hits a chunk at a time: the event loop's path for trace replay (issue 13).

Most events of a replay are hits: the page is present, its PTE caches the node, and the
access needs nothing but counting. ``hit_chunks`` runs them in chunks of HIT_CHUNK events,
in three passes over each chunk, so that the per-event pass does the least it can:

1. the checks that hold for a whole chunk or not at all, as reductions the compiler turns
   into vector code: no control op, CPUs in the topology, one process, thread ids in the
   direct tables' range;
2. the PTE index of each event into ``pte_at``: two lookups when the chunk lies in one or
   two PMDs, else a small PMD cache in front of the hash, with the PTE prefetched, so that
   the misses of a random stream overlap;
3. per event: the thread's counters from a table indexed by tid (no hash, no thread
   slot), the PTE flags, one counter incremented, the thread's CPU noted.

A chunk of one thread on one CPU counts in two registers instead (up to SOLO_NODES nodes).
Anything else ends the pass at that event, and the dispatcher (events.py) takes it. The
counters (``cells``: thread x CPU node x memory node x read/write; the arrays are
memory.hit_scratch's) go to the access matrix and the threads' local/remote counts when
the event loop returns (``flush_hits``), each thread's last CPU at the end of every call.
Indices are unsigned where the compiler cannot tell that they are not negative: a signed
index costs a wrap-around test per access and keeps the reductions scalar (5-10x slower,
measured).
"""
import numpy as np

from ..constants import OP_WRITE, PAGE_SHIFT
from ..dtypes import (PTE_DIRTY, PTE_NODE_SHIFT, PTE_NUMA, PTE_PRESENT, PTE_WRITE,
                      PTRS_PER_PMD, PTRS_PER_PMD_SHIFT, T_ACC_LOCAL, T_CPU)
from ._jit import kernel, prefetch
from .state import block_of

HIT_CHUNK = 256            # events per chunk (pte_at: 2 KiB, stays in L1)
HIT_THREADS = 64           # threads one call counts here (more: the dispatcher's way)
HIT_TID_LIMIT = 1 << 22    # tids below it have entries in the direct tables (pid_max)
SOLO_NODES = 4             # a chunk of one thread on one CPU counts in registers up to
                           # this many nodes (4 16-bit fields in 64 bits)
PMD_CACHE = 16             # PMDs a call keeps the blocks of (direct-mapped by PMD number)
HIT_CELLS_SHIFT = 12       # 4096 counters: thread x CPU node x memory node x read/write
NO_ROW = -(1 << 40)        # the key base of a CPU on no node: its keys are < 0
# the PTE bits of a hit: present and not PROT_NONE; a write also writable and already
# dirty (else the CPU sets the dirty bit: the general path)
FAST_READ = PTE_PRESENT | PTE_NUMA
FAST_WRITE = PTE_PRESENT | PTE_NUMA | PTE_WRITE | PTE_DIRTY
# this call's thread table: a column per thread (column 0 unused), these rows
TH_TID, TH_SLOT = range(2)
U_PAGE_SHIFT = np.uint64(PAGE_SHIFT)
U_PMD_ADDR_SHIFT = np.uint64(PAGE_SHIFT + PTRS_PER_PMD_SHIFT)
U_PTE_INDEX_MASK = np.uint64(PTRS_PER_PMD - 1)
U_PMD_CACHE_MASK = np.uint64(PMD_CACHE - 1)
U_WRITE_BITS = np.uint64(PTE_WRITE | PTE_DIRTY)
U_FAST_READ = np.uint64(FAST_READ)
U_NOT_NUMA = np.uint64(~PTE_NUMA & 0xFFFFFFFF)


@kernel
def new_hit_threads(n_nodes, enabled):
    """The call's thread table, empty: room for as many threads as the counters hold
    (none if not ``enabled``); column r's thread has counters from (r - 1) * 2n^2."""
    rows = min(HIT_THREADS, (1 << HIT_CELLS_SHIFT) // (2 * n_nodes * n_nodes)) if enabled else 0
    return np.full((2, rows + 1), -1, np.int64)


@kernel
def hit_cpu_bases(cpu_node, n_nodes):
    """Each CPU's part of a counter's key (its node times 2 * n_nodes), NO_ROW for a CPU
    on no node."""
    base = np.empty(cpu_node.size, np.int64)
    for c in range(cpu_node.size):
        base[c] = cpu_node[c] * 2 * n_nodes if cpu_node[c] >= 0 else NO_ROW
    return base


@kernel(inline="always")
def hit_node(ptes, x, w):
    """The node of the page whose PTE is ptes[x] when an access to it (w: 1 a write) is
    a plain hit (present, not PROT_NONE, the node cached; a write: writable and dirty),
    else -1."""
    fl = np.uint64(ptes[x]["flags"])
    need = U_FAST_READ | (w * U_WRITE_BITS)
    node = (np.int64(fl >> np.uint64(PTE_NODE_SHIFT)) & 0xFF) - 1
    return node if fl & need == need & U_NOT_NUMA else np.int64(-1)


@kernel
def hit_chunks(ptes, pmd_hash, blk_numa, tasks, tid_base, tid_cpu, cells, thr, cpu_base,
               pte_at, pmd_cache, addr, op, cpu, tid, pid, i, limit, asid, pp, n_rows,
               n_nodes):
    """Run plain hits from event i of process ``pp`` (address space ``asid``) whose
    threads are in columns 1..n_rows of ``thr``, on a machine of ``n_nodes`` nodes;
    returns the first event not run. Columns are per event (one element each)."""
    n_tids, n_cpus = tid_base.size, cpu_base.size
    pmd_tag, pmd_blk = pmd_cache[0], pmd_cache[1]
    pmd_tag[:] = -1               # faults since the last call may have made or cut blocks
    while i < limit:
        e = min(i + HIT_CHUNK, limit)
        m = e - i
        a_, o_, c_, t_, p_ = addr[i:e], op[i:e], cpu[i:e], tid[i:e], pid[i:e]
        o_any, c_lo, c_hi, t_lo, t_hi, p_lo, p_hi = o_[0], c_[0], c_[0], t_[0], t_[0], p_[0], p_[0]
        for k in range(m):
            o_any |= o_[k]
        for k in range(m):
            c_lo, c_hi = min(c_lo, c_[k]), max(c_hi, c_[k])
        for k in range(m):
            t_lo, t_hi = min(t_lo, t_[k]), max(t_hi, t_[k])
        for k in range(m):
            p_lo, p_hi = min(p_lo, p_[k]), max(p_hi, p_[k])
        if (np.int64(o_any) > OP_WRITE or np.int64(c_lo) < 0 or np.int64(c_hi) >= n_cpus
                or np.int64(t_lo) < 0 or np.int64(t_hi) >= n_tids
                or np.int64(p_lo) != pp or np.int64(p_hi) != pp):
            break
        pmd_lo, pmd_hi = a_[0] >> U_PMD_ADDR_SHIFT, a_[0] >> U_PMD_ADDR_SHIFT
        for k in range(m):
            pmd_lo = min(pmd_lo, a_[k] >> U_PMD_ADDR_SHIFT)
            pmd_hi = max(pmd_hi, a_[k] >> U_PMD_ADDR_SHIFT)
        b_lo = block_of(pmd_hash, asid, np.int64(pmd_lo))
        b_hi = block_of(pmd_hash, asid, np.int64(pmd_hi))
        n_mapped = m                              # events whose PTE index is in pte_at
        if (pmd_hi - pmd_lo <= 1 and b_lo >= 0 and b_hi >= 0 and blk_numa[b_lo] == 0
                and blk_numa[b_hi] == 0):         # one or two PMDs: no lookup per event
            x_lo = np.uint64(b_lo) << np.uint64(PTRS_PER_PMD_SHIFT)
            x_hi = np.uint64(b_hi) << np.uint64(PTRS_PER_PMD_SHIFT)
            for k in range(m):
                x = x_lo if a_[k] >> U_PMD_ADDR_SHIFT == pmd_lo else x_hi
                pte_at[k] = x + ((np.uint64(a_[k]) >> U_PAGE_SHIFT) & U_PTE_INDEX_MASK)
        else:                   # PMDs from a small cache, else the hash; PTEs prefetched
            for k in range(m):
                vpn = np.uint64(a_[k]) >> U_PAGE_SHIFT
                pmd = vpn >> np.uint64(PTRS_PER_PMD_SHIFT)
                slot = pmd & U_PMD_CACHE_MASK
                if pmd_tag[slot] != np.int64(pmd):
                    b = block_of(pmd_hash, asid, np.int64(pmd))
                    if b < 0 or blk_numa[b] != 0:
                        n_mapped = k
                        break
                    pmd_tag[slot], pmd_blk[slot] = np.int64(pmd), b
                x = ((np.uint64(pmd_blk[slot]) << np.uint64(PTRS_PER_PMD_SHIFT))
                     + (vpn & U_PTE_INDEX_MASK))
                pte_at[k] = x
                prefetch(ptes, x)
        n_run = 0
        t, c = t_[0], c_[0]
        tb, cb = np.int64(tid_base[t]), cpu_base[c]
        if t_lo == t_hi and c_lo == c_hi and n_nodes <= SOLO_NODES and tb > 0 and cb >= 0:
            # one thread on one CPU: the counts by (node, op) in two registers of 16-bit
            # fields (an add to one counter in memory per event is a store-to-load chain)
            reads, writes = np.uint64(0), np.uint64(0)
            for k in range(n_mapped):
                w = np.uint64(o_[k])
                node = hit_node(ptes, pte_at[k], w)
                if node < 0:
                    break
                reads += (np.uint64(1) - w) << np.uint64(16 * node)
                writes += w << np.uint64(16 * node)
                n_run = k + 1
            for node in range(n_nodes):
                key = np.uint64(tb - 1 + cb + 2 * node)
                cells[key] += np.int64((reads >> np.uint64(16 * node)) & np.uint64(0xFFFF))
                cells[key + np.uint64(1)] += np.int64((writes >> np.uint64(16 * node))
                                                      & np.uint64(0xFFFF))
            if n_run:
                tid_cpu[t] = np.int32(c) + np.int32(1)
        else:
            for k in range(n_mapped):
                t, c, w = t_[k], c_[k], np.uint64(o_[k])
                tb = np.int64(tid_base[t])
                node = hit_node(ptes, pte_at[k], w)
                key = tb + cpu_base[c] + 2 * node - 1
                if (key | node | (tb - 1)) < 0:
                    break
                cells[np.uint64(key) + w] += 1
                tid_cpu[t] = np.int32(c) + np.int32(1)
                n_run = k + 1
        i += n_run
        if n_run < m:
            break
    for r in range(1, n_rows + 1):             # each thread's CPU, as the loop leaves it
        t = thr[TH_TID, r]
        if tid_cpu[t] > 0:
            tasks[thr[TH_SLOT, r], T_CPU] = tid_cpu[t] - 1
            tid_cpu[t] = 0
    return i


@kernel
def flush_hits(tid_base, cells, thr, n_rows, counts, tasks):
    """Add the counters of threads 1..n_rows of ``thr`` to the access matrix ``counts``
    and to the threads' local/remote counts, and empty them and ``tid_base``."""
    n_nodes = counts.shape[1]
    for r in range(1, n_rows + 1):
        s, base = thr[TH_SLOT, r], (r - 1) * 2 * n_nodes * n_nodes
        for cn in range(n_nodes):
            for node in range(n_nodes):
                for w in range(2):
                    key = base + (cn * n_nodes + node) * 2 + w
                    n = cells[key]
                    cells[key] = 0
                    counts[cn, node, w] += n
                    tasks[s, T_ACC_LOCAL + np.int64(node != cn)] += n
        tid_base[thr[TH_TID, r]] = 0
