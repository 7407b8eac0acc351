"""Kernels over address ranges: unmap, fork's page-table copy, reading nodes, numa_maps stats.

``blocks`` arguments are the PTE blocks of one address space whose PMDs meet the range,
sorted by address (pagetable.PageTable.blocks_in gives them); ``lo``/``hi`` are vpns.
"""
import errno

import numpy as np

from ..dtypes import (PMD_KEY_MASK, FRAME_DIRTY, FRAME_SHM, PTE_DIRTY, PTE_FLAG_MASK, PTE_HUGE,
                      PTE_NODE_MASK, PTE_PRESENT, PTE_WRITE, PTE_ZERO, PTRS_PER_PMD,
                      PTRS_PER_PMD_SHIFT, VM_ANON, VM_SHARED, ZERO_PAGE_NODE)
from ._jit import kernel
from .vma import find_vma
from .state import block_span, find_block, get_block, release_frame, split_huge_pmd


@kernel
def zap_pte(st, pi):
    """Drop one base PTE: the page goes back when its last mapping goes (shm: the object
    keeps it)."""
    fl = st.ptes[pi]["flags"]
    f = st.ptes[pi]["frame"]
    if fl & PTE_PRESENT and f >= 0:
        if fl & PTE_DIRTY:                      # a dirty mapping goes: the page is dirty
            st.frames[f]["flags"] |= FRAME_DIRTY
        st.frames[f]["mapcount"] -= 1
        if st.frames[f]["mapcount"] == 0 and not st.frames[f]["flags"] & FRAME_SHM:
            release_frame(st, f)
    st.ptes[pi]["frame"] = -1
    st.ptes[pi]["flags"] = 0


@kernel
def unmap_range(st, blocks, lo, hi):
    """zap_page_range: clear [lo, hi); a THP cut by the range is split first. Pages freed."""
    for k in range(blocks.size):
        b = blocks[k]
        base, first, i0, i1 = block_span(st.blk_key, b, lo, hi)
        if i0 >= i1 or st.blk_used[b] == 0:
            continue
        fl = st.ptes[base]["flags"]
        if fl & PTE_HUGE and i0 == 0 and i1 == PTRS_PER_PMD:      # zap_huge_pmd
            f = st.ptes[base]["frame"]
            if f >= 0:
                st.frames[f]["mapcount"] -= 1
                if st.frames[f]["mapcount"] == 0:
                    release_frame(st, f)
            for i in range(PTRS_PER_PMD):
                st.ptes[base + i]["frame"] = -1
                st.ptes[base + i]["flags"] = 0
            st.blk_used[b] = 0
            continue
        if fl & PTE_HUGE:
            split_huge_pmd(st, b)
        for i in range(i0, i1):
            if st.ptes[base + i]["flags"] & PTE_PRESENT:
                zap_pte(st, base + i)
                st.blk_used[b] -= 1


@kernel
def page_nodes(st, blocks, lo, hi, out):
    """out[vpn - lo] = node of the page mapped at vpn; -1 when nothing is; zero page: 0."""
    out[:] = -1
    for k in range(blocks.size):
        b = blocks[k]
        base, first, i0, i1 = block_span(st.blk_key, b, lo, hi)
        for i in range(i0, i1):
            fl = st.ptes[base + i]["flags"]
            if fl & PTE_PRESENT:
                f = st.ptes[base + i]["frame"]
                out[first + i - lo] = ZERO_PAGE_NODE if f < 0 else st.frames[f]["node"]


@kernel
def page_flags(st, blocks, lo, hi, out):
    """out[vpn - lo] = the PTE flags at vpn (0 where nothing is mapped)."""
    out[:] = 0
    for k in range(blocks.size):
        b = blocks[k]
        base, first, i0, i1 = block_span(st.blk_key, b, lo, hi)
        for i in range(i0, i1):
            if st.ptes[base + i]["flags"] & PTE_PRESENT:
                out[first + i - lo] = st.ptes[base + i]["flags"] & PTE_FLAG_MASK


@kernel
def rss_of(st, blocks):
    """get_mm_rss: pages mapped in these blocks, the zero page aside (a THP counts 512)."""
    n = 0
    for k in range(blocks.size):
        base = blocks[k] << PTRS_PER_PMD_SHIFT
        if st.blk_used[blocks[k]] == 0:
            continue
        for i in range(PTRS_PER_PMD):
            if st.ptes[base + i]["flags"] & (PTE_PRESENT | PTE_ZERO) == PTE_PRESENT:
                n += 1
    return n


@kernel
def anon_private_vma_in(vmas, lo, hi):
    """True when a private VMA with an anon_vma overlaps [lo, hi)."""
    for v in range(vmas.size):
        if vmas[v]["start"] < hi and vmas[v]["end"] > lo and \
                not vmas[v]["flags"] & VM_SHARED and vmas[v]["flags"] & VM_ANON:
            return True
    return False


@kernel
def copy_page_range(st, vmas, parent_blocks, child_asid):
    """fork: copy_page_range for private VMAs with an anon_vma: every present entry is
    copied (zero pages too), both sides write-protected (COW), mapcount += 1, and the
    child gets the page tables the parent has there. Shared (MAP_SHARED) memory is not
    copied, as Linux: the child faults it in from the object. Returns PTEs copied."""
    copied = 0
    hint = np.int64(0)
    for k in range(parent_blocks.size):
        b = parent_blocks[k]
        pmd = st.blk_key[b] & PMD_KEY_MASK
        first = pmd << PTRS_PER_PMD_SHIFT
        if (st.blk_used[b] == 0 and st.blk_table[b] == 0) or \
                not anon_private_vma_in(vmas, first, first + PTRS_PER_PMD):
            continue
        base = b << PTRS_PER_PMD_SHIFT
        cb = get_block(st, child_asid, pmd)
        st.blk_table[cb] = st.blk_table[b]
        for i in range(PTRS_PER_PMD):
            fl = st.ptes[base + i]["flags"]
            if not fl & PTE_PRESENT:
                continue
            v = find_vma(vmas, first + i, hint)
            if v < 0 or vmas[v]["flags"] & VM_SHARED or not vmas[v]["flags"] & VM_ANON:
                continue
            hint = v
            f = st.ptes[base + i]["frame"]
            fl = fl & ~np.uint32(PTE_WRITE)
            if f >= 0:                          # mapped twice now: no cached node (dtypes)
                fl = fl & ~np.uint32(PTE_NODE_MASK)
            st.ptes[base + i]["flags"] = fl
            st.ptes[(cb << PTRS_PER_PMD_SHIFT) + i]["frame"] = f
            st.ptes[(cb << PTRS_PER_PMD_SHIFT) + i]["flags"] = fl
            st.blk_used[cb] += 1
            if f >= 0 and (not fl & PTE_HUGE or i == 0):
                st.frames[f]["mapcount"] += 1
            copied += 1
    return copied


@kernel
def release_object(st, blocks):
    """A shared object's last mapping went: its pages go back (the page cache empties)."""
    for k in range(blocks.size):
        b = blocks[k]
        base = b << PTRS_PER_PMD_SHIFT
        for i in range(PTRS_PER_PMD):
            if st.ptes[base + i]["flags"] & PTE_PRESENT:
                f = st.ptes[base + i]["frame"]
                if f >= 0:
                    release_frame(st, f)
                st.ptes[base + i]["frame"] = -1
                st.ptes[base + i]["flags"] = 0
        st.blk_used[b] = 0


@kernel
def numa_maps_stats(st, blocks, lo, hi, node_pages, out):
    """gather_stats for one VMA: node_pages[n] += pages on node n; out = [pages, dirty,
    mapmax, anon-exclusive...]. Zero-page PTEs are not counted (vm_normal_page fails)."""
    ptes, frames, blk_key = st.ptes, st.frames, st.blk_key   # read once, not per page
    pages = 0
    dirty = 0
    mapmax = 0
    for k in range(blocks.size):
        b = blocks[k]
        base, first, i0, i1 = block_span(blk_key, b, lo, hi)
        for i in range(i0, i1):
            fl = ptes[base + i]["flags"]
            f = ptes[base + i]["frame"]
            if not fl & PTE_PRESENT or f < 0:
                continue
            pages += 1
            node_pages[frames[f]["node"]] += 1
            if fl & PTE_DIRTY or frames[f]["flags"] & FRAME_DIRTY:
                dirty += 1
            mapmax = max(mapmax, frames[f]["mapcount"])
    out[0] = pages
    out[1] = dirty
    out[2] = mapmax


@kernel
def split_pmd_at(st, asid, vpn):
    """The split behind mm.vma_adjust_trans_huge: the PMD-mapped THP at vpn, if any."""
    b = find_block(st, asid, vpn >> PTRS_PER_PMD_SHIFT)
    if b >= 0 and st.ptes[b << PTRS_PER_PMD_SHIFT]["flags"] & PTE_HUGE:
        split_huge_pmd(st, b)


@kernel
def pages_stat(st, vmas, blocks, pmds, vpns, status):
    """do_pages_stat: node of each page; -EFAULT (no VMA, zero page), -ENOENT (nothing)."""
    hint = np.int64(0)
    for i in range(vpns.size):
        vpn = vpns[i]
        v = find_vma(vmas, vpn, hint)
        if v < 0:
            status[i] = -errno.EFAULT
            continue
        hint = v
        j = np.searchsorted(pmds, vpn >> PTRS_PER_PMD_SHIFT)
        if j >= pmds.size or pmds[j] != vpn >> PTRS_PER_PMD_SHIFT:
            status[i] = -errno.ENOENT
            continue
        pi = (blocks[j] << PTRS_PER_PMD_SHIFT) + (vpn & (PTRS_PER_PMD - 1))
        if not st.ptes[pi]["flags"] & PTE_PRESENT:
            status[i] = -errno.ENOENT
        elif st.ptes[pi]["frame"] < 0:
            status[i] = -errno.EFAULT
        else:
            status[i] = st.frames[st.ptes[pi]["frame"]]["node"]


@kernel
def release_frames(st, frames):
    """Free the given folios (page cache dropped)."""
    for k in range(frames.size):
        release_frame(st, frames[k])
