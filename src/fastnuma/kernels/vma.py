"""VMA rows as kernels see them (dtypes.VMA_DTYPE): lookup, governing policy, interleave
index."""
import numpy as np

from ..dtypes import NO_POLICY, OPT_IL_THP_BASE, PTE_WRITE, VM_ACCESS_FLAGS, VM_WRITE
from ._jit import kernel


@kernel(inline="always")
def find_vma_in(vmas, lo, hi, vpn, hint):
    """Index of the row of vmas[lo:hi] containing vpn (hint, an index into vmas, tried
    first), or -1 (a segfault). Indices are into ``vmas``, so callers need no slice (a
    slice is a new array reference: its reference counting costs an atomic operation per
    use in a hot loop)."""
    if lo <= hint < hi and vmas[hint]["start"] <= vpn < vmas[hint]["end"]:
        return hint
    top = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if vmas[mid]["end"] <= vpn:
            lo = mid + 1
        else:
            hi = mid
    if lo < top and vmas[lo]["start"] <= vpn:
        return lo
    return -1


@kernel(inline="always")
def access_error(vmas, v, write):
    """arch/x86/mm/fault.c access_error, for an access that could not complete (the
    event loop's slow path): a write needs VM_WRITE, a read any of VM_READ/WRITE/EXEC
    (vma_is_accessible: x86 pages are readable when writable or executable). True means
    SIGSEGV (SEGV_ACCERR), before handle_mm_fault: no pgfault is counted."""
    fl = vmas[v]["flags"]
    return not fl & VM_WRITE if write else not fl & VM_ACCESS_FLAGS


@kernel(inline="always")
def find_vma(vmas, vpn, hint):
    """Index of the VMA row containing vpn (hint tried first), or -1 (a segfault)."""
    return find_vma_in(vmas, 0, vmas.size, vpn, hint)


@kernel(inline="always")
def vma_policy(vmas, v, task_pol):
    """get_vma_policy: the VMA's (or shared object's) policy, else the task's, else none."""
    p = vmas[v]["policy"]
    return task_pol if p == NO_POLICY else p


@kernel(inline="always")
def ilx_of(vmas, v, vpn, order):
    """Interleave index: (vm_pgoff >> order) + ((addr - vm_start) >> (PAGE_SHIFT + order))."""
    return (vmas[v]["pgoff"] >> order) + ((vpn - vmas[v]["start"]) >> order)


@kernel
def folio_ilx(st, vmas, v, vpn, order):
    """The interleave index of a folio of ``order`` at vpn (seed: in base pages)."""
    vpn = (vpn >> order) << order
    if order > 0 and st.opts[OPT_IL_THP_BASE] != 0:
        return ilx_of(vmas, v, vpn, 0)
    return ilx_of(vmas, v, vpn, order)


@kernel(inline="always")
def vma_pte_write(vmas, v):
    """PTE_WRITE when VMA row v is writable (maybe_mkwrite, vm_page_prot), else 0."""
    return np.uint32(PTE_WRITE) if vmas[v]["flags"] & VM_WRITE else np.uint32(0)
