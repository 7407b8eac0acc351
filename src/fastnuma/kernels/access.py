"""One access through the page tables, as the event loop (events.py) and its streams of
hinting faults (fault_stream.py) take it: the PTE's index in its block, whether its flags
allow the access as it is and the node it reaches, the dirty bit the CPU sets, the
counts, and the look-ahead that prefetches the PTEs and frames of the events ahead.
"""
import numpy as np

from ..constants import PAGE_SHIFT
from ..dtypes import (FRAME_PTE_DIRTY, PTE_DIRTY, PTE_NODE_SHIFT, PTE_NUMA, PTE_PRESENT,
                      PTE_WRITE, PTRS_PER_PMD, PTRS_PER_PMD_SHIFT, T_ACC_LOCAL,
                      ZERO_PAGE_NODE)
from ._jit import kernel, prefetch
from .hits import FAST_READ, FAST_WRITE
from .state import block_of

PREFETCH_AHEAD = 32           # events of look-ahead for the PTEs (16: a stream of hinting
                              # faults waited on them, 1.5 ns a fault more, 2026-12-07)
RING = 2 * PREFETCH_AHEAD     # look-ahead blocks kept per event (event i + PREFETCH_AHEAD
                              # must not overwrite event i's entry before it is used)
PTE_INDEX_MASK = PTRS_PER_PMD - 1   # a page's entry in its PMD's PTE block
NODE_BYTE = 0xFF              # PTE bits 8-15 hold the node + 1 (dtypes.PTE_NODE_SHIFT)
NODE_IN_FRAME = -2            # pte_node: the PTE caches no node


@kernel(inline="always")
def pte_index(b, vpn):
    """The index in the PTE table of vpn's entry in block b."""
    return (b << PTRS_PER_PMD_SHIFT) + (vpn & PTE_INDEX_MASK)


@kernel(inline="always")
def cached_block(pmd_hash, asid, vpn, pmd, blk):
    """(pmd, block) of vpn, looked up only when its PMD differs from the cached ``pmd``."""
    if vpn >> PTRS_PER_PMD_SHIFT == pmd:
        return pmd, blk
    return vpn >> PTRS_PER_PMD_SHIFT, block_of(pmd_hash, asid, vpn >> PTRS_PER_PMD_SHIFT)


@kernel(inline="always")
def fast_node(ptes, b, vpn, w):
    """The node of vpn's page when the access needs nothing but counting (present, not
    PROT_NONE, node cached in the PTE; a write: writable and dirty), else -1."""
    fl = ptes[pte_index(b, vpn)]["flags"]
    need = FAST_WRITE if w else FAST_READ
    node = (np.int64(fl >> PTE_NODE_SHIFT) & NODE_BYTE) - 1
    return node if fl & need == need & ~PTE_NUMA else np.int64(-1)


@kernel(inline="always")
def pte_node(fl, w):
    """The node of an access that PTE flags ``fl`` allow (present, not PROT_NONE; a
    write: writable), as cached in them; NODE_IN_FRAME when they cache none (the frame
    says); -1 when the access needs a fault."""
    node = (np.int64(fl >> PTE_NODE_SHIFT) & NODE_BYTE) - 1
    allowed = fl & (PTE_PRESENT | PTE_NUMA) == PTE_PRESENT and (w == 0 or fl & PTE_WRITE)
    return (node if node >= 0 else NODE_IN_FRAME) if allowed else np.int64(-1)


@kernel(inline="always")
def ring_block(ring, i, asid):
    """The block the look-ahead found for event i in address space ``asid``, else -1."""
    k = i & (RING - 1)
    return ring[k, 2] if ring[k, 0] == i and ring[k, 1] == asid else np.int64(-1)


@kernel(inline="always")
def frame_of(ptes, ring, j, asid, vpn):
    """The frame of event j's page (at vpn) when the look-ahead found its block, else -1."""
    b = ring_block(ring, j, asid)
    f = ptes[pte_index(max(b, 0), vpn)]["frame"]
    return np.int64(f) if b >= 0 else np.int64(-1)


@kernel(inline="always")
def count_accesses(counts, tasks, s, cn, node, w, n):
    """n accesses by the thread in slot s from CPU node cn to memory on ``node`` (w: 0
    read, 1 write): the access matrix and the thread's local or remote count."""
    counts[cn, node, w] += n
    tasks[s, T_ACC_LOCAL + np.int64(node != cn)] += n


@kernel(inline="always")
def look_ahead(ptes, frames, pmd_hash, ring, addr, i, limit, asid, pf_pmd, pf_blk):
    """Look-ahead for streams of faults, at event i: the PTE PREFETCH_AHEAD events ahead
    is prefetched and its block kept in the ring (``pf_pmd``, ``pf_blk``: the last block
    looked up, returned updated); the frame a quarter as far (a hinting fault reads
    it), where the PTE that names it has landed."""
    j = i + PREFETCH_AHEAD
    if j < limit:
        vpn_j = np.int64(addr[j]) >> PAGE_SHIFT
        pf_pmd, pf_blk = cached_block(pmd_hash, asid, vpn_j, pf_pmd, pf_blk)
        ring[j & (RING - 1), 0], ring[j & (RING - 1), 1], ring[j & (RING - 1), 2] = j, asid, pf_blk
        if pf_blk >= 0:
            prefetch(ptes, pte_index(pf_blk, vpn_j))
    j = i + PREFETCH_AHEAD // 4
    f = frame_of(ptes, ring, j, asid, np.int64(addr[min(j, limit - 1)]) >> PAGE_SHIFT)
    if j < limit and f >= 0:
        prefetch(frames, f)
    return pf_pmd, pf_blk


@kernel(inline="always")
def access_node(frames, fl, f, w):
    """The node an access that PTE flags ``fl`` (mapping frame f) allow reaches, else -1
    (it needs a fault)."""
    node = pte_node(fl, w)
    if node == NODE_IN_FRAME:
        node = ZERO_PAGE_NODE if f < 0 else np.int64(frames[f]["node"])
    return node


@kernel(inline="always")
def set_dirty(ptes, frames, pi, fl, f, w):
    """A write through the PTE at pi (flags fl, frame f): the CPU sets its dirty bit."""
    if w and not fl & PTE_DIRTY:
        ptes[pi]["flags"] = fl | PTE_DIRTY
        frames[f]["flags"] |= FRAME_PTE_DIRTY


@kernel(inline="always")
def marked_entry(fl, w):
    """PTE flags of a present entry marked for a hinting fault whose access, once the mark
    is gone, completes without another fault (a write: the entry is writable)."""
    return fl & (PTE_PRESENT | PTE_NUMA) == PTE_PRESENT | PTE_NUMA and (w == 0 or fl & PTE_WRITE)
