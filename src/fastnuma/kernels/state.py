"""Page-table storage shared by every kernel: PTE blocks behind a hash of PMD keys, and frames.

Page tables are sized by what is mapped, not by the address span: a block of 512 PTEs (one
page-table page, 2 MiB of address space) exists only where something was mapped, found
through an open-addressing hash keyed by ``asid << ASID_SHIFT | pmd``. An asid names an
address space: a process, or a shared memory object (whose "page table" is its page cache,
indexed by page offset). Python (``pagetable.py``) allocates and grows the arrays; kernels
return ``NEED_GROW`` before touching anything when capacity runs short.
"""
from collections import namedtuple

import numpy as np

from ..dtypes import (C_THP_SPLIT_PAGE, C_THP_SPLIT_PMD, FRAME_FREE, PTE_HUGE, PTE_ZERO,
                      PTRS_PER_PMD, PTRS_PER_PMD_SHIFT)
from ._jit import kernel

ASID_SHIFT = 27                       # 47-bit addresses: 2**26 PMDs per address space
EMPTY = -1
NEED_GROW = -(1 << 40)                # status: grow the arrays, then call again

# ctl[] slots
CTL_NBLOCKS, CTL_NFRAMES, CTL_NFREE, CTL_HCOUNT = 0, 1, 2, 3
N_CTL = 4

Mem = namedtuple("Mem", ["ptes", "blk_key", "blk_used", "hkeys", "hvals",
                         "frames", "frame_free", "ctl"])
Mem.__doc__ = """Page tables and frames (see module docstring); arrays owned by pagetable.py."""

# headroom a kernel needs before handling one more event
ROOM_BLOCKS = 2
ROOM_FRAMES = PTRS_PER_PMD + 1


@kernel
def hash_slot(key, mask):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(h >> np.uint64(20)) & mask


@kernel
def find_block(mem, asid, pmd):
    """Index of the PTE block of (asid, pmd), or -1."""
    key = (np.int64(asid) << ASID_SHIFT) | pmd
    mask = mem.hkeys.size - 1
    s = hash_slot(key, mask)
    while True:
        k = mem.hkeys[s]
        if k == key:
            return np.int64(mem.hvals[s])
        if k == EMPTY:
            return np.int64(-1)
        s = (s + 1) & mask


@kernel
def has_room(mem):
    """True when one more event can add a block and split a THP without growing."""
    nb = mem.ctl[CTL_NBLOCKS]
    return (nb + ROOM_BLOCKS <= mem.blk_key.size
            and 2 * (mem.ctl[CTL_HCOUNT] + ROOM_BLOCKS) <= mem.hkeys.size
            and mem.ctl[CTL_NFRAMES] + ROOM_FRAMES <= mem.frames.size)


@kernel
def get_block(mem, asid, pmd):
    """Index of the block of (asid, pmd), created empty if absent (caller checked has_room)."""
    b = find_block(mem, asid, pmd)
    if b >= 0:
        return b
    key = (np.int64(asid) << ASID_SHIFT) | pmd
    b = mem.ctl[CTL_NBLOCKS]
    mem.ctl[CTL_NBLOCKS] = b + 1
    mem.blk_key[b] = key
    mem.blk_used[b] = 0
    base = b << PTRS_PER_PMD_SHIFT
    for i in range(PTRS_PER_PMD):
        mem.ptes[base + i]["frame"] = -1
        mem.ptes[base + i]["flags"] = 0
    mask = mem.hkeys.size - 1
    s = hash_slot(key, mask)
    while mem.hkeys[s] != EMPTY:
        s = (s + 1) & mask
    mem.hkeys[s] = key
    mem.hvals[s] = b
    mem.ctl[CTL_HCOUNT] += 1
    return b


@kernel
def new_frame(mem, node, order):
    """A frame record for a freshly allocated folio (the allocator already took the pages)."""
    nf = mem.ctl[CTL_NFREE]
    if nf > 0:
        f = np.int64(mem.frame_free[nf - 1])
        mem.ctl[CTL_NFREE] = nf - 1
    else:
        f = mem.ctl[CTL_NFRAMES]
        mem.ctl[CTL_NFRAMES] = f + 1
    mem.frames[f]["node"] = node
    mem.frames[f]["order"] = order
    mem.frames[f]["flags"] = 0
    mem.frames[f]["mapcount"] = 0
    mem.frames[f]["last_cpupid"] = -1
    return f


@kernel
def release_frame(mem, free_pages, f):
    """Give a folio's pages back to its node and its record to the free list."""
    fr = mem.frames[f]
    free_pages[fr["node"]] += np.int64(1) << fr["order"]
    mem.frames[f]["flags"] = FRAME_FREE
    mem.frames[f]["mapcount"] = 0
    mem.frame_free[mem.ctl[CTL_NFREE]] = f
    mem.ctl[CTL_NFREE] += 1


@kernel
def split_huge_pmd(mem, vm, b):
    """Split the PMD mapping of block b into 512 PTEs (__split_huge_pmd).

    fastnuma splits the folio with it (split_huge_page): a THP is either PMD-mapped
    everywhere or 512 base folios, so every process mapping the same THP sees the split.
    The huge zero page just becomes 512 zero-page PTEs.
    """
    base = b << PTRS_PER_PMD_SHIFT
    if not mem.ptes[base]["flags"] & PTE_HUGE:
        return
    if mem.ptes[base]["flags"] & PTE_ZERO:
        for i in range(PTRS_PER_PMD):
            mem.ptes[base + i]["flags"] &= ~np.uint32(PTE_HUGE)
        vm[C_THP_SPLIT_PMD] += 1
        return
    f = np.int64(mem.ptes[base]["frame"])
    node = mem.frames[f]["node"]
    mapcount = mem.frames[f]["mapcount"]
    cpupid = mem.frames[f]["last_cpupid"]
    sub = np.empty(PTRS_PER_PMD, np.int64)
    sub[0] = f
    mem.frames[f]["order"] = 0
    for i in range(1, PTRS_PER_PMD):
        sub[i] = new_frame(mem, node, 0)
        mem.frames[sub[i]]["mapcount"] = mapcount
        mem.frames[sub[i]]["last_cpupid"] = cpupid
    for bb in range(mem.ctl[CTL_NBLOCKS]):
        e = bb << PTRS_PER_PMD_SHIFT
        if mem.ptes[e]["frame"] == f and mem.ptes[e]["flags"] & PTE_HUGE:
            for i in range(PTRS_PER_PMD):
                mem.ptes[e + i]["frame"] = sub[i]
                mem.ptes[e + i]["flags"] &= ~np.uint32(PTE_HUGE)
            vm[C_THP_SPLIT_PMD] += 1
    vm[C_THP_SPLIT_PAGE] += 1


@kernel
def rehash(blk_key, n_blocks, hkeys, hvals):
    """Rebuild the PMD hash into fresh (empty) arrays."""
    mask = hkeys.size - 1
    for b in range(n_blocks):
        key = blk_key[b]
        s = hash_slot(key, mask)
        while hkeys[s] != EMPTY:
            s = (s + 1) & mask
        hkeys[s] = key
        hvals[s] = b
