"""Whole-machine invariants, for tests and debug runs.

``violations(sim)`` returns a list of one-line descriptions (empty when the machine is
consistent); ``check(sim)`` raises :class:`InvariantError` with them. What must hold after
any sequence of calls or replayed events:

- pages in use per node (capacity - free) = the pages of the live frames on that node
  (each frame holds 2**order pages; page-cache frames included);
- no node above its capacity: 0 <= free <= capacity per node;
- every present PTE that names a frame names a live one (not on the free list) on a node
  of the machine;
- numastat: every allocation is counted once as numa_hit or numa_miss on the node that
  served it and once as local_node or other_node there, so sum(numa_hit + numa_miss) =
  sum(local_node + other_node) = allocations; every numa_miss has its numa_foreign;
- every node cached in a PTE (dtypes.PTE_NODE_SHIFT) is its frame's (the event loop
  trusts that cache);
- every present entry agrees with its VMA's protection (mprotect): none is writable in a
  VMA without PROT_WRITE, and every one of a PROT_NONE VMA is protnone (PTE_NUMA), so
  the event loop never completes an access the VMA forbids.

Whole-array numpy passes: O(page-table size), meant for tests and debugging, not for
every event of a production replay.
"""
import numpy as np

from .constants import PROT_WRITE
from .dtypes import (CTL_NBLOCKS, CTL_NFRAMES, FRAME_FREE, NS_FOREIGN, NS_HIT, NS_LOCAL,
                     NS_MISS, NS_OTHER, PTE_NUMA, PTE_PRESENT, PTE_WRITE, PTE_ZERO,
                     PTRS_PER_PMD, PTRS_PER_PMD_SHIFT)
from .kernels.invariants import pte_node_mismatch


class InvariantError(AssertionError):
    """The simulated machine is inconsistent (a fastnuma bug): the message lists how."""


def violations(sim):
    """The invariants of the module docstring that ``sim`` breaks, one line each."""
    out = []
    m = sim.machine
    pt = m.pt
    cap = np.asarray(m.node_pages, np.int64)
    free = np.asarray(m.free, np.int64)
    n = cap.size
    for node in np.flatnonzero((free < 0) | (free > cap)).tolist():
        out.append(f"node {node}: {free[node]} free pages of a capacity of {cap[node]}")
    frames = pt.frames[:int(pt.ctl[CTL_NFRAMES])]
    live = frames[(frames["flags"] & FRAME_FREE) == 0]
    bad_node = (live["node"] < 0) | (live["node"] >= n)
    if bad_node.any():
        out.append(f"{int(bad_node.sum())} live frames on no node of the machine "
                   f"(first node {int(live['node'][bad_node][0])})")
    live = live[~bad_node]
    held = np.bincount(live["node"].astype(np.int64), weights=np.left_shift(
        1, live["order"].astype(np.int64)), minlength=n).astype(np.int64)
    for node in np.flatnonzero(held != cap - free).tolist():
        out.append(f"node {node}: {cap[node] - free[node]} pages in use but live frames "
                   f"hold {held[node]}")
    ptes = pt.ptes[:int(pt.ctl[CTL_NBLOCKS]) * PTRS_PER_PMD]
    mapped = ptes[((ptes["flags"] & PTE_PRESENT) != 0) & ((ptes["flags"] & PTE_ZERO) == 0)]
    f = mapped["frame"].astype(np.int64)
    outside = (f < 0) | (f >= len(frames))
    if outside.any():
        out.append(f"{int(outside.sum())} present PTEs name no frame (first {int(f[outside][0])})")
    f = f[~outside]
    freed = (frames["flags"][f] & FRAME_FREE) != 0
    if freed.any():
        out.append(f"{int(freed.sum())} present PTEs map a freed frame (first "
                   f"{int(f[freed][0])})")
    ns = np.asarray(m.node_stats, np.int64)
    alloc_hm = int(ns[:, NS_HIT].sum() + ns[:, NS_MISS].sum())
    alloc_lo = int(ns[:, NS_LOCAL].sum() + ns[:, NS_OTHER].sum())
    if alloc_hm != alloc_lo:
        out.append(f"numa_hit + numa_miss = {alloc_hm} but local_node + other_node = "
                   f"{alloc_lo}")
    if int(ns[:, NS_MISS].sum()) != int(ns[:, NS_FOREIGN].sum()):
        out.append(f"numa_miss = {int(ns[:, NS_MISS].sum())} but numa_foreign = "
                   f"{int(ns[:, NS_FOREIGN].sum())}")
    k = int(pte_node_mismatch(m.st))
    if k >= 0:
        out.append(f"PTE {k}: its cached node is not its frame's")
    out.extend(_protection_violations(m))
    return out


def _protection_violations(m):
    """Present entries that allow more than their VMA's protection (O(blocks) per VMA
    that is not writable)."""
    out = []
    pt = m.pt
    for pid, proc in sorted(m.procs.items()):
        for v in proc.vmas:
            if v.prot & PROT_WRITE:
                continue
            for b in pt.blocks_of(proc.asid, v.start, v.end).tolist():
                first = int(pt.pmds_of(np.array([b]))[0]) << PTRS_PER_PMD_SHIFT
                i0, i1 = max(v.start - first, 0), min(v.end - first, PTRS_PER_PMD)
                fl = pt.ptes["flags"][b * PTRS_PER_PMD + i0:b * PTRS_PER_PMD + i1]
                fl = fl[(fl & PTE_PRESENT) != 0]
                if (fl & PTE_WRITE).any():
                    out.append(f"process {pid}: a writable entry in the read-only VMA at "
                               f"{v.start << 12:#x}")
                if not v.accessible and ((fl & PTE_NUMA) == 0).any():
                    out.append(f"process {pid}: an accessible entry in the PROT_NONE VMA "
                               f"at {v.start << 12:#x}")
    return out


def check(sim):
    """Raise :class:`InvariantError` listing every broken invariant of ``sim``."""
    found = violations(sim)
    if found:
        raise InvariantError("; ".join(found))
