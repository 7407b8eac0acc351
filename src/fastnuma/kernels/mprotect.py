"""change_protection for mprotect (mm/mprotect.c): the present entries of one VMA's range
get the VMA's new protection.

x86 encodes a PROT_NONE entry as it encodes a NUMA hinting mark (pte_protnone), so an
entry of an inaccessible VMA carries PTE_NUMA; the fault entry (vma.access_error) tells
the two apart by the VMA. ``change_pte_range`` without MM_CP_PROT_NUMA does
``pte_modify(oldpte, vma->vm_page_prot)``: the new protection replaces the old one, so a
NUMA hinting mark goes when the VMA becomes accessible, and the write bit comes from
vm_page_prot (writable for a writable MAP_SHARED mapping of shmem, which wants no write
notification; never for a private one), then MM_CP_TRY_CHANGE_WRITABLE
(can_change_pte_writable) makes a private writable VMA's exclusive anonymous pages
writable again.
"""
import numpy as np

from ..dtypes import (FRAME_SHM, PTE_HUGE, PTE_NUMA, PTE_PRESENT, PTE_WRITE, PTE_ZERO,
                      PTRS_PER_PMD)
from ._jit import kernel
from .state import block_span


@kernel(inline="always")
def new_entry_flags(st, fl, f, inaccessible, writable, shared):
    """pte_modify + can_change_pte_writable for one present entry (flags fl, frame f)."""
    fl = fl & ~np.uint32(PTE_NUMA | PTE_WRITE)
    if inaccessible:
        return fl | PTE_NUMA
    if writable and not fl & PTE_ZERO:
        # shared: vm_page_prot is writable. Private: an exclusive anonymous page only
        # (fastnuma: mapped once, the rule by which its write fault would reuse it)
        if shared or (f >= 0 and not st.frames[f]["flags"] & FRAME_SHM
                      and st.frames[f]["mapcount"] == 1):
            fl |= PTE_WRITE
    return fl


@kernel
def change_protection(st, blocks, lo, hi, inaccessible, writable, shared):
    """change_protection over vpns [lo, hi) of one VMA (``blocks``: its blocks there). A
    PMD-mapped THP is wholly inside (a VMA boundary splits it: vma_adjust_trans_huge),
    and changes as a unit (change_huge_pmd). Returns the entries changed (pages)."""
    pages = 0
    for k in range(blocks.size):
        b = blocks[k]
        base, first, i0, i1 = block_span(st.blk_key, b, lo, hi)
        if i0 >= i1 or st.blk_used[b] == 0:
            continue
        fl = st.ptes[base]["flags"]
        if fl & PTE_HUGE:
            if fl & PTE_PRESENT:
                new = new_entry_flags(st, fl, np.int64(st.ptes[base]["frame"]), inaccessible,
                                      writable, shared)
                for i in range(PTRS_PER_PMD):
                    st.ptes[base + i]["flags"] = new
                pages += PTRS_PER_PMD
            continue
        for i in range(i0, i1):
            fl = st.ptes[base + i]["flags"]
            if not fl & PTE_PRESENT:
                continue
            st.ptes[base + i]["flags"] = new_entry_flags(
                st, fl, np.int64(st.ptes[base + i]["frame"]), inaccessible, writable, shared)
            pages += 1
    return pages
