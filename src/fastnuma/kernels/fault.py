"""Page faults, as Linux takes them, for the event loop (events.py) when an access cannot
complete. Faults:
do_anonymous_page (zero page on read, allocation on write), do_huge_pmd_anonymous_page
(THP), do_wp_page (COW after fork, write to the zero page), shmem_fault (shared anonymous
memory found by page offset in its object).
"""
import numpy as np
from numba import types

from ..constants import HPAGE_PMD_ORDER
from ..dtypes import (C_PGFAULT, C_THP_FAULT_ALLOC, C_THP_FAULT_FALLBACK, FRAME_DIRTY,
                      FRAME_PTE_DIRTY, FRAME_SHM, PTE_DIRTY, PTE_HUGE, PTE_NUMA, PTE_PRESENT,
                      PTE_NODE_MASK, PTE_WRITE, PTE_ZERO, PTRS_PER_PMD, PTRS_PER_PMD_SHIFT,
                      VM_ANON, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_SHARED,
                      ZERO_PAGE_NODE)
from ._jit import apart, kernel
from ..dtypes import (DEFRAG_ALWAYS, DEFRAG_MADVISE, OPT_PMD_NUMA_BATCHING, OPT_THP,
                      OPT_THP_DEFRAG, OPT_ZERO_PAGE, THP_ALWAYS, THP_MADVISE)
from .alloc import alloc_pages_mpol
from .fault_around import do_fault_around
from .numa import do_numa_page, do_pmd_numa_page
from .state import find_block, get_block, new_frame, pte_node_bits, split_huge_pmd
from .vma import folio_ilx, ilx_of, vma_policy, vma_pte_write

FAULT_OK, FAULT_OOM = 0, -1


@kernel
def thp_eligible(st, vmas, v, pmd):
    """THP at this PMD: enabled for the VMA, private anonymous, and the 2 MiB inside it."""
    fl = vmas[v]["flags"]
    if fl & VM_SHARED or fl & VM_NOHUGEPAGE:
        return False
    mode = st.opts[OPT_THP]
    if not (mode == THP_ALWAYS or (mode == THP_MADVISE and fl & VM_HUGEPAGE)):
        return False
    first = pmd << PTRS_PER_PMD_SHIFT
    return vmas[v]["start"] <= first and first + PTRS_PER_PMD <= vmas[v]["end"]


@kernel(inline="always")
def thp_may_reclaim(st, vmas, v):
    d = st.opts[OPT_THP_DEFRAG]
    return d == DEFRAG_ALWAYS or (d == DEFRAG_MADVISE and vmas[v]["flags"] & VM_HUGEPAGE)


@kernel
def alloc_base_page(st, vmas, v, vpn, cpu, task_pol):
    """A fresh order-0 folio for vpn under the governing policy: frame index, or -1 (OOM)."""
    n = alloc_pages_mpol(st, vma_policy(vmas, v, task_pol), cpu,
                         ilx_of(vmas, v, vpn, 0), 0, False)
    if n < 0:
        return np.int64(-1)
    vmas[v]["flags"] |= VM_ANON                 # anon_vma_prepare
    f = new_frame(st, n, 0)
    st.frames[f]["mapcount"] = 1
    return f


@kernel
def fault_huge_anon(st, vmas, v, asid, pmd, cpu, task_pol, write):
    """do_huge_pmd_anonymous_page: True when the whole PMD got mapped (THP or huge zero)."""
    vmas[v]["flags"] |= VM_ANON                 # anon_vma_prepare, even for the zero page
    if not write and st.opts[OPT_ZERO_PAGE] != 0:
        flags = PTE_PRESENT | PTE_ZERO | PTE_HUGE | pte_node_bits(ZERO_PAGE_NODE)
        f = np.int64(-1)
    else:
        vpn0 = pmd << PTRS_PER_PMD_SHIFT
        n = alloc_pages_mpol(st, vma_policy(vmas, v, task_pol), cpu,
                             folio_ilx(st, vmas, v, vpn0, HPAGE_PMD_ORDER), HPAGE_PMD_ORDER,
                             thp_may_reclaim(st, vmas, v))
        if n < 0:
            st.vm[C_THP_FAULT_FALLBACK] += 1
            return False
        st.vm[C_THP_FAULT_ALLOC] += 1
        f = new_frame(st, n, HPAGE_PMD_ORDER)
        st.frames[f]["mapcount"] = 1
        flags = (PTE_PRESENT | PTE_DIRTY | PTE_HUGE | pte_node_bits(n)
                 | vma_pte_write(vmas, v))          # maybe_pmd_mkwrite
    b = get_block(st, asid, pmd)
    base = b << PTRS_PER_PMD_SHIFT
    for i in range(PTRS_PER_PMD):
        st.ptes[base + i]["frame"] = f
        st.ptes[base + i]["flags"] = flags
    st.blk_used[b] = PTRS_PER_PMD
    return True


@kernel
def fault_shm(st, vmas, v, pi, vpn, cpu, task_pol, write):
    """shmem_fault: find the object's page at this offset, or allocate it; map it here."""
    off = vmas[v]["pgoff"] + (vpn - vmas[v]["start"])
    ob = get_block(st, vmas[v]["shm"], off >> PTRS_PER_PMD_SHIFT)
    oi = (ob << PTRS_PER_PMD_SHIFT) + (off & (PTRS_PER_PMD - 1))
    if st.ptes[oi]["flags"] & PTE_PRESENT:
        f = np.int64(st.ptes[oi]["frame"])
    else:
        n = alloc_pages_mpol(st, vma_policy(vmas, v, task_pol), cpu, off, 0, False)
        if n < 0:
            return FAULT_OOM
        f = new_frame(st, n, 0)
        st.frames[f]["flags"] = FRAME_SHM
        st.ptes[oi]["frame"] = f
        st.ptes[oi]["flags"] = PTE_PRESENT | PTE_WRITE
        st.blk_used[ob] += 1
    if write:                                   # a write fault dirties the page
        st.frames[f]["flags"] |= FRAME_DIRTY | FRAME_PTE_DIRTY
    st.frames[f]["mapcount"] += 1
    st.ptes[pi]["frame"] = f
    # vm_page_prot: writable when the VMA is (shmem wants no write notification)
    st.ptes[pi]["flags"] = PTE_PRESENT | vma_pte_write(vmas, v) | (PTE_DIRTY if write else 0)
    return FAULT_OK


@kernel
def do_wp_page(st, vmas, v, asid, pi, vpn, cpu, task_pol):
    """Write to a write-protected present PTE: zero page or COW-shared page gets a copy."""
    fl = st.ptes[pi]["flags"]
    if fl & PTE_HUGE:
        if fl & PTE_ZERO or st.frames[st.ptes[pi]["frame"]]["mapcount"] > 1:
            split_huge_pmd(st, pi >> PTRS_PER_PMD_SHIFT)
            fl = st.ptes[pi]["flags"]
        else:                                   # exclusive THP: reuse the whole PMD
            base = (pi >> PTRS_PER_PMD_SHIFT) << PTRS_PER_PMD_SHIFT
            for i in range(PTRS_PER_PMD):
                st.ptes[base + i]["flags"] |= PTE_WRITE | PTE_DIRTY
            return FAULT_OK
    if not fl & PTE_ZERO:
        old = st.ptes[pi]["frame"]
        if st.frames[old]["mapcount"] == 1:    # wp_page_reuse: exclusive again
            st.ptes[pi]["flags"] = ((fl & ~np.uint32(PTE_NODE_MASK)) | PTE_WRITE | PTE_DIRTY
                                    | pte_node_bits(st.frames[old]["node"]))
            return FAULT_OK
    f = alloc_base_page(st, vmas, v, vpn, cpu, task_pol)
    if f < 0:
        return FAULT_OOM
    if not fl & PTE_ZERO:
        st.frames[st.ptes[pi]["frame"]]["mapcount"] -= 1
    st.ptes[pi]["frame"] = f
    st.ptes[pi]["flags"] = (PTE_PRESENT | PTE_WRITE | PTE_DIRTY
                            | pte_node_bits(st.frames[f]["node"]))   # exclusive: cached
    return FAULT_OK


# Paths a default run never takes, compiled on their first call and not into the fault
# path (_jit.apart): COW and writes to the zero page, shmem and its fault-around, THP,
# seed PMD batching, and a hinting fault that fault_stream does not take (a write to a
# marked read-only entry: the write fault follows)
do_fault_around_apart = apart(do_fault_around, types.int64)
do_pmd_numa_page_apart = apart(do_pmd_numa_page, types.none)
do_numa_page_apart = apart(do_numa_page, types.none)
do_wp_page_apart = apart(do_wp_page, types.int64)
fault_shm_apart = apart(fault_shm, types.int64)
fault_huge_anon_apart = apart(fault_huge_anon, types.boolean)


@kernel
def handle_mm_fault(st, vmas, v, asid, vpn, b, cpu, slot, task_pol, write):
    """One fault at vpn in VMA row v (``b``: its PTE block, or -1 when there is none yet)
    by thread ``slot`` on ``cpu``. Returns the block now holding vpn's PTE, or FAULT_OOM;
    the access is then retried (a hinting fault may be followed by a write fault)."""
    st.vm[C_PGFAULT] += 1
    pmd = vpn >> PTRS_PER_PMD_SHIFT
    if b >= 0:
        if st.blk_numa[b] != 0 and st.opts[OPT_PMD_NUMA_BATCHING] != 0:
            do_pmd_numa_page_apart(st, vmas, v, b, vpn, cpu, slot, task_pol)
            return b
        pi = (b << PTRS_PER_PMD_SHIFT) + (vpn & (PTRS_PER_PMD - 1))
        fl = st.ptes[pi]["flags"]
        if fl & PTE_NUMA:
            do_numa_page_apart(st, vmas, v, pi, vpn, cpu, slot, task_pol)
            return b
        if fl & PTE_PRESENT:
            if do_wp_page_apart(st, vmas, v, asid, pi, vpn, cpu, task_pol) != FAULT_OK:
                return FAULT_OOM
            return b
    if vmas[v]["flags"] & VM_SHARED:
        b = get_block(st, asid, pmd)
        pi = (b << PTRS_PER_PMD_SHIFT) + (vpn & (PTRS_PER_PMD - 1))
        if not write:                           # do_read_fault: neighbours first
            do_fault_around_apart(st, vmas, v, b, vpn)
        if fault_shm_apart(st, vmas, v, pi, vpn, cpu, task_pol, write) != FAULT_OK:
            return FAULT_OOM
        st.blk_used[b] += 1
        st.blk_table[b] = 1
        return b
    if (b < 0 or (st.blk_table[b] == 0 and st.blk_used[b] == 0)) and \
            thp_eligible(st, vmas, v, pmd):                  # pmd_none: no table, no THP
        if fault_huge_anon_apart(st, vmas, v, asid, pmd, cpu, task_pol, write):
            return find_block(st, asid, pmd)
    if b < 0:
        b = get_block(st, asid, pmd)
    pi = (b << PTRS_PER_PMD_SHIFT) + (vpn & (PTRS_PER_PMD - 1))
    if not write and st.opts[OPT_ZERO_PAGE] != 0:
        st.ptes[pi]["frame"] = -1
        st.ptes[pi]["flags"] = PTE_PRESENT | PTE_ZERO | pte_node_bits(ZERO_PAGE_NODE)
    else:
        f = alloc_base_page(st, vmas, v, vpn, cpu, task_pol)
        if f < 0:
            return FAULT_OOM
        st.ptes[pi]["frame"] = f
        # do_anonymous_page: writable and dirty only in a VM_WRITE VMA (a read fault
        # without the zero page in a read-only one maps a clean, read-only page)
        wd = vma_pte_write(vmas, v)
        st.ptes[pi]["flags"] = (PTE_PRESENT | wd | (PTE_DIRTY if wd else 0)
                                | pte_node_bits(st.frames[f]["node"]))   # exclusive: cached
    st.blk_used[b] += 1
    st.blk_table[b] = 1
    return b
