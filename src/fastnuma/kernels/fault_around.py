"""Fault-around on shared anonymous memory (Linux 6.12 mm/memory.c do_read_fault,
should_fault_around, do_fault_around; mm/filemap.c filemap_map_pages, the shmem VMA's
->map_pages): before shmem_fault serves a read fault, the neighbouring pages already in
the object are mapped too, so a process that reads one page of memory another process
populated sees its neighbours present without faulting on them.

No page is allocated, no policy is consulted and no vmstat counter moves (the fault's
pgfault is counted once by handle_mm_fault; filemap_map_pages bumps only the mm's
MM_SHMEMPAGES rss and the node's NR_FILE_MAPPED, neither of which fastnuma models).
"""
import numpy as np

from ..dtypes import (OPT_FAULT_AROUND_PAGES, PTE_PRESENT, PTRS_PER_PMD, PTRS_PER_PMD_SHIFT,
                      VM_ROW_CONT)
from ._jit import kernel
from .state import find_block
from .vma import vma_pte_write


@kernel
def do_fault_around(st, vmas, v, b, vpn):
    """Map the object's pages around a read fault at vpn (VMA row v, PTE block b) into
    the empty PTEs of the window; returns how many were mapped.

    The window (do_fault_around): fault_around_pages PTEs naturally aligned in virtual
    address, clamped to the VMA and to the PTE table (one PMD). The VMA is the whole
    VMA, not the row: kernel_view cuts a shared VMA at shared-policy boundaries
    (VM_ROW_CONT marks the rows after its first). The faulting PTE itself is left to
    shmem_fault (fault.fault_shm), which maps the same cached page the same way when
    filemap_map_pages would have (VM_FAULT_NOPAGE) and allocates it otherwise.

    filemap_map_pages maps a page only where the PTE is none (a present PTE, or one
    marked for NUMA hinting, is skipped) and only pages in the page cache (an offset
    the object never populated is skipped: no allocation). Every shmem page fastnuma
    holds is uptodate and unlocked outside a call, so next_uptodate_folio takes them
    all. The PTE is what set_pte_range makes of a read fault on a shared VMA: present,
    writable when the VMA is (vm_page_prot of a shared mapping: shmem has no
    page_mkwrite and no dirty accounting), clean, no cached node (the page is shared);
    the folio's mapcount rises by one per PTE (folio_add_file_rmap_ptes).
    should_fault_around: fault_around_pages > 1 (shmem has ->map_pages; userfaultfd,
    which would turn it off, is not modelled).
    """
    nr = st.opts[OPT_FAULT_AROUND_PAGES]
    if nr <= 1:
        return 0
    # vm_page_prot: writable when the VMA is (the rows of one VMA share its protection)
    pte = np.uint32(PTE_PRESENT) | vma_pte_write(vmas, v)
    first = v                                   # the VMA's rows: [first, last]
    while vmas[first]["flags"] & VM_ROW_CONT:
        first -= 1
    last = v
    while last + 1 < vmas.size and vmas[last + 1]["flags"] & VM_ROW_CONT:
        last += 1
    pte_off = vpn & (PTRS_PER_PMD - 1)
    vma_off = vpn - vmas[first]["start"]        # page offset of vpn within the VMA
    from_pte = max(pte_off & ~(nr - 1), pte_off - min(pte_off, vma_off))
    to_pte = min(from_pte + nr, PTRS_PER_PMD, pte_off + vmas[last]["end"] - vpn) - 1
    # object offsets: each row maps the object linearly from its pgoff
    pgoff = vmas[v]["pgoff"] + (vpn - vmas[v]["start"])
    obj = vmas[v]["shm"]
    base = b << PTRS_PER_PMD_SHIFT
    ob_pmd, ob = np.int64(-1), np.int64(-1)
    mapped = 0
    for i in range(from_pte, to_pte + 1):
        if i == pte_off or st.ptes[base + i]["flags"] != 0:    # pte_none only
            continue
        off = pgoff + i - pte_off
        if off >> PTRS_PER_PMD_SHIFT != ob_pmd:                # the object's index block
            ob_pmd = off >> PTRS_PER_PMD_SHIFT
            ob = find_block(st, obj, ob_pmd)
        if ob < 0:
            continue
        oi = (ob << PTRS_PER_PMD_SHIFT) + (off & (PTRS_PER_PMD - 1))
        if not st.ptes[oi]["flags"] & PTE_PRESENT:             # not in the page cache
            continue
        f = st.ptes[oi]["frame"]
        st.frames[f]["mapcount"] += 1
        st.ptes[base + i]["frame"] = f
        st.ptes[base + i]["flags"] = pte
        st.blk_used[b] += 1
        mapped += 1
    return mapped
